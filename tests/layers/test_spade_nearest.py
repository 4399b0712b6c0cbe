"""`layers.SPADE` resizes label maps with PyTorch's nearest rule: index floor(i · in / out)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genattn_jax.layers import norms


@pytest.mark.parametrize("hin,win,hout,wout", [(16, 32, 4, 8), (17, 23, 5, 7), (6, 10, 12, 15),
                                               (128, 256, 4, 8)])
def test_nearest_resize_matches_numpy_index(hin, win, hout, wout):
  x = np.random.default_rng(0).normal(size=(2, hin, win, 3)).astype(np.float32)
  rows = np.array([int(np.floor(i * hin / hout)) for i in range(hout)])
  cols = np.array([int(np.floor(j * win / wout)) for j in range(wout)])
  want = x[:, rows][:, :, cols]
  np.testing.assert_array_equal(np.asarray(norms.nearest_resize(jnp.asarray(x), (hout, wout))),
                                want)


def test_spade_block_sees_top_left_labels():
  # 4x4 one-hot map with a distinct label per pixel; at 2x2 SPADE must see pixels (0,0),
  # (0,2), (2,0), (2,2) (top-left of each block), not the centres jax.image.resize picks.
  labels = np.arange(16).reshape(1, 4, 4)
  seg = jax.nn.one_hot(labels, 16)
  x = jnp.ones((1, 2, 2, 1))
  spade = norms.SPADE(hidden_features=1, kernel_size=1, norm="instance")
  params = spade.init(jax.random.PRNGKey(0), x, seg)
  # Make gamma's output the identity of the label map's one-hot index: beta reads label id.
  p = jax.tree_util.tree_map(jnp.zeros_like, params)
  p["params"]["shared"]["kernel"] = jnp.arange(16, dtype=jnp.float32).reshape(1, 1, 16, 1)
  p["params"]["beta"]["kernel"] = jnp.ones((1, 1, 1, 1))
  out = spade.apply(p, x, seg)  # instance-normed constant x → 0, + beta = label id
  np.testing.assert_array_equal(np.asarray(out)[0, :, :, 0], [[0, 2], [8, 10]])
