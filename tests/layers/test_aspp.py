"""Tests for the DeepLab v3 ASPP baseline (genattn_jax/layers/aspp.py)."""

from absl.testing import parameterized
import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from genattn_jax.layers.aspp import ASPP
from tests.layers._util import np_conv


def normal(key, shape):
  return jax.random.normal(jax.random.PRNGKey(key), shape, jnp.float32)


def np_aspp(p, x, rates, image_pooling=True):
  """NumPy ASPP without norm: ReLU branches, pooled branch, concat, 1x1 fuse."""
  x = np.asarray(x, np.float64)
  relu = lambda z: np.maximum(z, 0)
  conv = lambda z, name, r=1: relu(np_conv(z, p[f"{name}_conv"]["kernel"],
                                           p[f"{name}_conv"]["bias"], dilation=(r, r)))
  branches = [conv(x, "branch_1x1")] + [conv(x, f"branch_d{r}", r) for r in rates]
  if image_pooling:
    pooled = conv(x.mean(axis=(1, 2), keepdims=True), "image_pool")
    branches.append(np.broadcast_to(pooled, x.shape[:3] + pooled.shape[-1:]))
  return conv(np.concatenate(branches, axis=-1), "project")


class ASPPTest(chex.TestCase):

  @parameterized.parameters(
      ((1, 8, 8, 4), None, (6, 12, 18), True),
      ((3, 8, 12, 4), 6, (6, 12, 18), True),
      ((1, 12, 8, 3), 5, (1, 2, 3), False),
  )
  def test_shape_and_numpy_reference(self, shape, features, rates, image_pooling):
    x = normal(1, shape)
    model = ASPP(features=features, rates=rates, image_pooling=image_pooling)
    variables = model.init(jax.random.PRNGKey(0), x)
    y = model.apply(variables, x)
    chex.assert_shape(y, shape[:3] + (features or shape[-1],))
    ref = np_aspp(variables["params"], x, rates, image_pooling)
    np.testing.assert_allclose(np.asarray(y), ref, rtol=1e-4, atol=1e-5)
    n_branches = 1 + len(rates) + int(image_pooling)
    self.assertEqual(variables["params"]["project_conv"]["kernel"].shape[2],
                     n_branches * (features or shape[-1]))

  def test_image_pool_branch_constant_over_space(self):
    x = normal(2, (3, 8, 12, 4))
    model = ASPP(features=5)
    variables = model.init(jax.random.PRNGKey(0), x)
    _, state = model.apply(variables, x, mutable=["intermediates"])
    (pooled,) = state["intermediates"]["image_pool"]
    chex.assert_shape(pooled, (3, 8, 12, 5))
    chex.assert_trees_all_close(pooled, jnp.broadcast_to(pooled[:, :1, :1], pooled.shape))
    # Differs across samples of the batch (it depends on each image's mean).
    self.assertGreater(float(jnp.max(jnp.abs(pooled[0, 0, 0] - pooled[1, 0, 0]))), 0.0)
    # Unchanged when the positions of the input are shuffled.
    perm = np.random.default_rng(0).permutation(8 * 12)
    shuffled = x.reshape(3, 96, 4)[:, perm].reshape(x.shape)
    _, state2 = model.apply(variables, shuffled, mutable=["intermediates"])
    chex.assert_trees_all_close(state2["intermediates"]["image_pool"][0], pooled, atol=1e-5)

  @chex.variants(with_jit=True, without_jit=True)
  def test_jit_matches_eager(self):
    x = normal(3, (3, 8, 12, 4))
    model = ASPP(features=4)
    variables = model.init(jax.random.PRNGKey(0), x)
    chex.assert_trees_all_close(self.variant(model.apply)(variables, x),
                                model.apply(variables, x), rtol=1e-5, atol=1e-5)

  def test_batch_norm_train_and_eval(self):
    x = normal(4, (3, 8, 8, 4))
    model = ASPP(features=4, norm=nn.BatchNorm)
    variables = model.init(jax.random.PRNGKey(0), x, use_running_average=False)
    self.assertIn("batch_stats", variables)
    self.assertNotIn("bias", variables["params"]["branch_1x1_conv"])
    y, updates = model.apply(variables, x, use_running_average=False, mutable=["batch_stats"])
    chex.assert_shape(y, (3, 8, 8, 4))
    old_mean = variables["batch_stats"]["project_norm"]["mean"]
    new_mean = updates["batch_stats"]["project_norm"]["mean"]
    self.assertGreater(float(jnp.max(jnp.abs(new_mean - old_mean))), 0.0)
    # In evaluation each sample is processed independently of the batch.
    variables = {**variables, **updates}
    y_eval = model.apply(variables, x, use_running_average=True)
    y_first = model.apply(variables, x[:1], use_running_average=True)
    chex.assert_trees_all_close(y_eval[:1], y_first, atol=1e-5)

  def test_gradients_finite(self):
    x = normal(5, (1, 8, 8, 3))
    model = ASPP(features=4, rates=(2, 3, 4))
    variables = model.init(jax.random.PRNGKey(0), x)
    grads = jax.grad(lambda v, x: jnp.sum(model.apply(v, x) ** 2), argnums=(0, 1))(variables, x)
    chex.assert_tree_all_finite(grads)
    self.assertGreater(float(jnp.max(jnp.abs(grads[0]["params"]["image_pool_conv"]["kernel"]))),
                       0.0)

  def test_bfloat16(self):
    x = normal(6, (1, 8, 12, 4))
    model = ASPP(features=4)
    variables = model.init(jax.random.PRNGKey(0), x)
    y16 = ASPP(features=4, dtype=jnp.bfloat16).apply(variables, x.astype(jnp.bfloat16))
    self.assertEqual(y16.dtype, jnp.bfloat16)
    chex.assert_trees_all_close(y16.astype(jnp.float32), model.apply(variables, x),
                                atol=0.1, rtol=0.05)

  @parameterized.named_parameters(
      ("rank", {}, (8, 8, 4), "`x`"),
      ("features", {"features": 0}, (1, 8, 8, 4), "`features`"),
      ("neg_rate", {"rates": (6, 0)}, (1, 8, 8, 4), "`rates`"),
      ("dup_rate", {"rates": (6, 6)}, (1, 8, 8, 4), "`rates`"),
  )
  def test_bad_arguments_raise(self, kwargs, shape, match):
    with self.assertRaisesRegex(ValueError, match):
      ASPP(**kwargs).init(jax.random.PRNGKey(0), jnp.zeros(shape))
