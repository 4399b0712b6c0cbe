"""SPADE generator / encoder / multi-scale discriminator: shapes, structure, KL, D pooling."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genattn_jax.models import spade


def _seg(b, h, w, n=5, seed=0):
  lab = jax.random.randint(jax.random.PRNGKey(seed), (b, h, w), 0, n)
  return jax.nn.one_hot(lab, n)


@pytest.mark.parametrize("mode,h,w", [("normal", 32, 64), ("more", 64, 128), ("most", 128, 128)])
def test_generator_non_square_and_upsampling_modes(mode, h, w):
  g = spade.SPADEGenerator(height=h, width=w, ngf=2, num_upsampling_layers=mode,
                           spade_hidden=4)
  seg = _seg(2, h, w)
  variables = g.init({"params": jax.random.PRNGKey(0)}, seg, train=False)
  (out, kl), _ = g.apply(variables, seg, train=True, mutable=["batch_stats"])
  assert out.shape == (2, h, w, 3) and float(jnp.abs(out).max()) <= 1.0
  assert float(kl) == 0.0
  names = set(variables["params"])
  assert ("up_4" in names) == (mode == "most")
  # Learned shortcut exactly where channels change (16·ngf → 8·ngf in up_0, not in head_0).
  assert "conv_s" in variables["params"]["up_0"] and "conv_s" not in variables["params"]["head_0"]
  # The fc conv reads the label map at the bottom resolution (H, W) / 2^u.
  assert g.bottom_size() == (h // 2 ** spade.NUM_UP[mode], w // 2 ** spade.NUM_UP[mode])
  with pytest.raises(ValueError, match="divisible"):
    spade.SPADEGenerator(height=h + 2, width=w, num_upsampling_layers=mode).bottom_size()


def test_vae_encoder_and_kl():
  g = spade.SPADEGenerator(height=32, width=32, ngf=2, use_vae=True, z_dim=8, spade_hidden=4)
  seg, img = _seg(2, 32, 32), jax.random.uniform(jax.random.PRNGKey(1), (2, 32, 32, 3)) * 2 - 1
  rngs = {"params": jax.random.PRNGKey(0), "sampling": jax.random.PRNGKey(2)}
  v = g.init(rngs, seg, image=img, train=False)
  assert "encoder" in v["params"]
  (out, kl), _ = g.apply(v, seg, None, img, train=True, rngs={"sampling": jax.random.PRNGKey(3)},
                         mutable=["batch_stats"])
  assert out.shape == (2, 32, 32, 3) and float(kl) > 0
  mu, logvar = np.array([[0.5, -1.0]]), np.array([[0.2, -0.3]])
  want = -0.5 * np.sum(1 + logvar - mu ** 2 - np.exp(logvar))
  np.testing.assert_allclose(float(spade.kl_divergence(jnp.asarray(mu), jnp.asarray(logvar))),
                             want, rtol=1e-6)
  # Without an image the style code is drawn: two keys give two different photos.
  (a, _), _ = g.apply(v, seg, train=False, rngs={"sampling": jax.random.PRNGKey(4)},
                      mutable=["batch_stats"])
  (b, _), _ = g.apply(v, seg, train=False, rngs={"sampling": jax.random.PRNGKey(5)},
                      mutable=["batch_stats"])
  assert float(jnp.abs(a - b).max()) > 0


def test_multiscale_discriminator_features():
  d = spade.MultiscaleDiscriminator(ndf=4, n_layers=4, num_d=2)
  seg, img = _seg(2, 32, 64), jnp.zeros((2, 32, 64, 3))
  v = d.init(jax.random.PRNGKey(0), seg, img, train=False)
  out = d.apply(v, seg, img, train=False)
  assert len(out) == 2 and all(len(o) == 5 for o in out)
  # k4 / pad 2: stride-2 convs give floor(n/2) + 1, the stride-1 ones n + 1.
  assert [f.shape[1:3] for f in out[0]] == [(17, 33), (9, 17), (5, 9), (6, 10), (7, 11)]
  assert out[0][-1].shape[-1] == 1 and out[0][2].shape[-1] == 16
  # The second scale sees the input average-pooled (3x3, stride 2, padding not counted).
  x = jax.random.normal(jax.random.PRNGKey(1), (1, 7, 9, 2))
  want = nn.avg_pool(x, (3, 3), (2, 2), ((1, 1), (1, 1)), count_include_pad=False)
  np.testing.assert_allclose(np.asarray(spade.downsample_d_input(x)), np.asarray(want),
                             rtol=1e-6, atol=1e-6)
  with pytest.raises(ValueError, match="differ"):
    d.apply(v, seg, jnp.zeros((2, 16, 64, 3)), train=False)


def _bias_paths(params):
  return {jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(params)[0]
          if jax.tree_util.keystr(p).endswith("['bias']")}


def test_biases_a_spade_norm_removes_are_dropped_and_change_nothing():
  h, w = 32, 64
  seg = _seg(4, h, w)
  kw = dict(height=h, width=w, ngf=2, spade_hidden=4)
  official = spade.SPADEGenerator(block_bias=True, **kw)
  v = jax.jit(lambda r: official.init({"params": r}, seg, train=False))(jax.random.PRNGKey(0))
  default = jax.eval_shape(lambda: spade.SPADEGenerator(**kw).init(
      {"params": jax.random.PRNGKey(0)}, seg, train=False))["params"]
  dropped = _bias_paths(v["params"]) - _bias_paths(default)
  blocks = ("head_0", "G_middle_0", "G_middle_1", "up_0", "up_1", "up_2", "up_3")
  want = ({"['fc']['bias']"} | {f"['{b}']['conv_0']['conv']['bias']" for b in blocks} |
          {f"['{b}']['conv_1']['conv']['bias']" for b in blocks[:-1]})
  assert dropped == want
  assert "['up_3']['conv_1']['conv']['bias']" in _bias_paths(default)  # feeds conv_img
  most = jax.eval_shape(lambda: spade.SPADEGenerator(height=128, width=128, ngf=2, spade_hidden=4,
                                                     num_upsampling_layers="most").init(
      {"params": jax.random.PRNGKey(0)}, _seg(1, 128, 128), train=False))["params"]
  assert "bias" not in most["up_3"]["conv_1"]["conv"] and "bias" in most["up_4"]["conv_1"]["conv"]
  # Train mode (batch statistics): moving every dropped bias by 0.01 (100 lr-sized steps)
  # leaves the image unchanged up to rounding (measured 1.6e-7), moving the kept
  # up_3.conv_1 bias as much does not (4.0e-4). Flax's batch norm computes E[x²] - E[x]², so
  # much larger moves would cost precision there, not change the function.
  apply = jax.jit(lambda v: official.apply(v, seg, train=True, mutable=["batch_stats"])[0][0])
  rs = np.random.RandomState(0)

  def move(paths):
    return jax.tree_util.tree_map_with_path(
        lambda p, x: x + 0.01 * rs.randn(*x.shape).astype(np.float32)
        if jax.tree_util.keystr(p)[len("['params']"):] in paths else x, v)

  base = np.asarray(apply(v))
  np.testing.assert_allclose(np.asarray(apply(move(want))), base, atol=1e-6)
  kept = np.asarray(apply(move({"['up_3']['conv_1']['conv']['bias']"})))
  assert np.abs(kept - base).max() > 1e-4
