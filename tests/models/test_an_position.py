"""AN in the paper's position (inside the residual block) and its orthogonal regulariser on D."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import imagenet128_resnet_an
from genattn_jax.layers.attentive_norm import AttentiveNormalization, orthogonal_penalty
from genattn_jax.models import placement as pl
from genattn_jax.models import resnet
from genattn_jax.training import state as state_lib, step as step_lib, trainer


def _perturb(params, key):
  """Random values for every leaf (AN starts as the identity: rho = 0)."""
  leaves, tree = jax.tree_util.tree_flatten(params)
  keys = jax.random.split(key, len(leaves))
  return jax.tree_util.tree_unflatten(
      tree, [0.5 * jax.random.normal(k, l.shape, l.dtype) for k, l in zip(keys, leaves)])


def test_d_block_with_an_equals_hand_built_block():
  inner = pl.split_by_position(pl.normalize_placements(
      [{"block": "an", "resolutions": [8], "position": "in_block", "num_entities": 4}],
      "blocks"), "blocks")[1]
  block = resnet.ResNetDBlock(features=8, optimized=True, conv=nn.Conv, inner=inner,
                              inner_resolution=8)
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 16, 16, 3))
  params = _perturb(block.init(jax.random.PRNGKey(1), x, False)["params"], jax.random.PRNGKey(2))
  out = block.apply({"params": params}, x, False)
  assert out.shape == (2, 8, 8, 8)
  conv = lambda k, name, t: nn.Conv(8, (k, k), padding="SAME").apply({"params": params[name]}, t)
  h = conv(3, "conv1", x)
  h = AttentiveNormalization(num_entities=4).apply({"params": params["an_0_r8"]}, h, train=False)
  h = conv(3, "conv2", nn.relu(h))
  pool = lambda t: nn.avg_pool(t, (2, 2), strides=(2, 2))
  want = pool(h) + nn.Conv(8, (1, 1), padding="VALID").apply({"params": params["shortcut"]},
                                                             pool(x))
  np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)


def test_paper_config_shapes_and_layout():
  c = imagenet128_resnet_an.get_test_config()
  c.model.d_num_blocks = 3
  g, d = trainer.models.build_gan(c.model)
  z, y = jnp.zeros((2, 128)), jnp.zeros((2,), jnp.int32)
  g_vars = jax.eval_shape(lambda: g.init({"params": jax.random.PRNGKey(0),
                                          "sampling": jax.random.PRNGKey(1)}, z, y, train=True))
  assert "an_0_r16" in g_vars["params"]["block2"]        # inside the 8 -> 16 up-block
  x = jnp.zeros((2, 32, 32, 3))
  logits, d_vars = jax.eval_shape(lambda: d.init_with_output(
      {"params": jax.random.PRNGKey(0), "sampling": jax.random.PRNGKey(1)}, x, y, train=True))
  assert logits.shape == (2,)
  assert "an_0_r16" in d_vars["params"]["block1"]        # inside D's first block
  assert sorted(k for k in d_vars["params"] if k.startswith("block")) == [
      "block1", "block2", "block3"]
  with pytest.raises(ValueError, match="position"):
    pl.split_by_position(pl.normalize_placements(
        [{"block": "an", "resolutions": [16], "position": "middle"}], "blocks"), "blocks")


def test_ortho_gradient_reaches_d_an_params():
  c = imagenet128_resnet_an.get_test_config()
  c.training.d_ortho_weight = 1.0
  g, d, _ = trainer.build(c)
  task = trainer.tasks_lib.get_task(c, g, d)
  state = jax.eval_shape(lambda: state_lib.create_gan_state(c, g, d, jax.random.PRNGKey(0),
                                                            task=task))
  d_params = _perturb(state.d_params, jax.random.PRNGKey(3))
  grads = jax.grad(lambda p: task.regularize_d_params(jnp.zeros(()), {}, p))(d_params)
  an_grad = grads["block1"]["an_0_r16"]["semantic_entities"]
  assert float(jnp.abs(jax.tree_util.tree_leaves(an_grad)[0]).sum()) > 0
  others = jax.tree_util.tree_leaves(grads["block2"])
  assert all(float(jnp.abs(l).sum()) == 0 for l in others)
  np.testing.assert_allclose(task.regularize_d_params(jnp.zeros(()), {}, d_params),
                             orthogonal_penalty(d_params), rtol=1e-6)
  # The shared train step adds it to every task's D loss (traced, not compiled).
  calls = []
  original = task.regularize_d_params
  task.regularize_d_params = lambda loss, aux, p: calls.append(p) or original(loss, aux, p)
  train_step = step_lib.make_train_step(c, g, d, task=task)
  batch = {"image": jnp.zeros((8, 32, 32, 3)), "label": jnp.zeros((8,), jnp.int32)}
  _, metrics = jax.eval_shape(train_step, state, batch, jax.random.PRNGKey(0))
  assert calls and "d_ortho" in metrics
