"""Tests for genattn_jax.layers.cbam (CBAM, Woo et al. 2018)."""

from absl.testing import parameterized
import chex
import jax
import jax.numpy as jnp
import numpy as np

from genattn_jax.layers.cbam import CBAM
from genattn_jax.layers.norms import SpectralConv, SpectralDense
from tests.layers._util import np_conv


def _np_cbam(params, x):
  p = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), params)
  x = np.asarray(x, np.float64)

  def mlp(v):
    hid = np.maximum(v @ p["mlp_hidden"]["kernel"] + p["mlp_hidden"]["bias"], 0)
    return hid @ p["mlp_out"]["kernel"] + p["mlp_out"]["bias"]

  sigmoid = lambda t: 1 / (1 + np.exp(-t))
  mc = sigmoid(mlp(x.mean(axis=(1, 2))) + mlp(x.max(axis=(1, 2))))
  x = x * mc[:, None, None, :]
  desc = np.concatenate([x.max(-1, keepdims=True), x.mean(-1, keepdims=True)], -1)
  ms = sigmoid(np_conv(desc, p["spatial_conv"]["kernel"], p["spatial_conv"]["bias"]))
  return x * ms


def _perturbed(variables, seed=7):
  """Adds noise to every parameter (biases start at 0) so each term matters."""
  leaves, tree = jax.tree_util.tree_flatten(variables)
  keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
  return jax.tree_util.tree_unflatten(
      tree, [v + 0.3 * jax.random.normal(k, v.shape) for v, k in zip(leaves, keys)])


class CBAMTest(parameterized.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.named_parameters(
      ("square_b2_c32", (2, 8, 8, 32), 16, 7),
      ("nonsquare_b1_c16", (1, 8, 12, 16), 4, 7),
      ("odd_batch_small_c", (3, 5, 7, 4), 16, 3),  # C < r: hidden width clamps to 1
  )
  def test_matches_numpy(self, shape, ratio, k):
    x = jax.random.normal(jax.random.PRNGKey(1), shape)
    module = CBAM(reduction_ratio=ratio, spatial_kernel_size=k)
    variables = _perturbed(module.init(jax.random.PRNGKey(0), x))
    hidden = variables["params"]["mlp_hidden"]["kernel"].shape[-1]
    self.assertEqual(hidden, max(1, shape[-1] // ratio))
    y = self.variant(module.apply)(variables, x)
    chex.assert_shape(y, shape)
    np.testing.assert_allclose(y, _np_cbam(variables["params"], x), rtol=1e-5, atol=1e-5)

  def test_gates_shrink_and_grads_finite(self):
    x = jax.random.normal(jax.random.PRNGKey(2), (2, 8, 8, 16))
    module = CBAM()
    variables = module.init(jax.random.PRNGKey(0), x)
    y = module.apply(variables, x)
    # Both gates lie in (0, 1): |y| < |x| elementwise wherever x != 0.
    self.assertTrue(bool(jnp.all(jnp.abs(y) < jnp.abs(x))))
    grads = jax.jit(jax.grad(lambda v, t: jnp.sum(module.apply(v, t) ** 2),
                             argnums=(0, 1)))(variables, x)
    chex.assert_tree_all_finite(grads)
    for leaf in jax.tree_util.tree_leaves(grads[0]):
      self.assertGreater(float(jnp.max(jnp.abs(leaf))), 0.0)

  def test_bfloat16(self):
    x = jax.random.normal(jax.random.PRNGKey(3), (1, 8, 8, 16))
    variables = CBAM().init(jax.random.PRNGKey(0), x)
    y16 = jax.jit(CBAM(dtype=jnp.bfloat16).apply)(variables, x.astype(jnp.bfloat16))
    self.assertEqual(y16.dtype, jnp.bfloat16)
    np.testing.assert_allclose(np.asarray(y16, np.float32), CBAM().apply(variables, x),
                               atol=0.05, rtol=0.05)

  def test_spectral_injection(self):
    x = jax.random.normal(jax.random.PRNGKey(4), (2, 4, 4, 32))
    module = CBAM(conv=SpectralConv, dense=SpectralDense)
    variables = module.init(jax.random.PRNGKey(0), x)
    self.assertEqual(set(variables["batch_stats"]), {"mlp_hidden", "mlp_out", "spatial_conv"})
    y, state = module.apply(variables, x, mutable=["batch_stats"])
    chex.assert_shape(y, x.shape)
    chex.assert_trees_all_equal_structs(state["batch_stats"], variables["batch_stats"])

  @parameterized.named_parameters(
      ("rank3", (8, 8, 16), {}, "`x` must have rank 4"),
      ("even_kernel", (1, 8, 8, 16), dict(spatial_kernel_size=4), "spatial_kernel_size"),
      ("zero_ratio", (1, 8, 8, 16), dict(reduction_ratio=0), "reduction_ratio"),
  )
  def test_bad_input_raises(self, shape, kwargs, message):
    with self.assertRaisesRegex(ValueError, message):
      CBAM(**kwargs).init(jax.random.PRNGKey(0), jnp.zeros(shape))
