"""Tests for SPAP, AttentiveFuse and AtrousConvBlock (genattn_jax/layers/spap.py)."""

import functools

from absl.testing import parameterized
import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from genattn_jax.layers import norms
from genattn_jax.layers.spap import (AtrousConvBlock, AttentiveFuse,
                                     SpatialPyramidAttentivePooling)
from tests.layers._util import np_conv


def np_sigmoid(z):
  return 1.0 / (1.0 + np.exp(-z))


def np_attentive_fuse(p, f_a, f_b):
  """Eq. 5 with the conv -> ReLU -> 1x1 conv -> sigmoid attention net."""
  z = np.concatenate([f_a, f_b], axis=-1)
  h = np.maximum(np_conv(z, p["attention_hidden"]["kernel"], p["attention_hidden"]["bias"]), 0)
  alpha = np_sigmoid(np_conv(h, p["attention_logits"]["kernel"], p["attention_logits"]["bias"]))
  return f_a * alpha + f_b * (1 - alpha)


def np_spap(p, x, levels, gamma):
  """Full NumPy SPAP: ReLU pyramid levels, cascade of Eq. 5, Eq. 6 residual."""
  x = np.asarray(x, np.float64)
  feats = []
  for k, r in levels:
    q = p[f"branch_k{k}_d{r}"]
    feats.append(np.maximum(np_conv(x, q["kernel"], q["bias"], dilation=(r, r)), 0))
  o = feats[0]
  for i, f in enumerate(feats[1:]):
    o = np_attentive_fuse(p[f"fuse_{i}"], o, f)
  return gamma * o + (1 - gamma) * x


def with_gamma(variables, value):
  params = dict(variables["params"])
  params["gamma"] = jnp.asarray(value, jnp.float32)
  return {**variables, "params": params}


def normal(key, shape):
  return jax.random.normal(jax.random.PRNGKey(key), shape, jnp.float32)


class AttentiveFuseTest(chex.TestCase):

  def test_matches_numpy_eq5(self):
    f_a, f_b = normal(1, (3, 8, 12, 4)), normal(2, (3, 8, 12, 4))
    fuse = AttentiveFuse(hidden_features=5)
    variables = fuse.init(jax.random.PRNGKey(0), f_a, f_b)
    y, state = fuse.apply(variables, f_a, f_b, mutable=["intermediates"])
    chex.assert_shape(y, (3, 8, 12, 4))
    ref = np_attentive_fuse(variables["params"], np.asarray(f_a), np.asarray(f_b))
    np.testing.assert_allclose(np.asarray(y), ref, rtol=1e-5, atol=1e-5)
    (alpha,) = state["intermediates"]["attention"]
    chex.assert_shape(alpha, (3, 8, 12, 1))
    self.assertTrue(bool(jnp.all((alpha > 0) & (alpha < 1))))

  def test_identical_inputs_pass_through(self):
    f = normal(3, (1, 5, 7, 3))
    fuse = AttentiveFuse()
    variables = fuse.init(jax.random.PRNGKey(0), f, f)
    chex.assert_trees_all_close(fuse.apply(variables, f, f), f, atol=1e-6)

  def test_shape_mismatch_raises(self):
    with self.assertRaisesRegex(ValueError, "`f_b`"):
      AttentiveFuse().init(jax.random.PRNGKey(0), jnp.zeros((1, 4, 4, 2)), jnp.zeros((1, 4, 5, 2)))
    with self.assertRaisesRegex(ValueError, "`f_a`"):
      AttentiveFuse().init(jax.random.PRNGKey(0), jnp.zeros((4, 4, 2)), jnp.zeros((4, 4, 2)))


class SpapTest(chex.TestCase):

  @parameterized.parameters(
      ((1, 8, 8, 4), "coarse_to_fine"),
      ((3, 8, 12, 4), "fine_to_coarse"),
      ((1, 12, 8, 3), "coarse_to_fine"),
  )
  def test_shape_and_numpy_reference(self, shape, order):
    x = normal(4, shape)
    model = SpatialPyramidAttentivePooling(order=order, gamma_init=0.3)
    variables = model.init(jax.random.PRNGKey(0), x)
    y = model.apply(variables, x)
    chex.assert_shape(y, shape)
    levels = model.levels()
    if order == "fine_to_coarse":
      levels = levels[::-1]
    ref = np_spap(variables["params"], x, levels, 0.3)
    np.testing.assert_allclose(np.asarray(y), ref, rtol=1e-4, atol=1e-5)

  def test_levels_sorted_by_receptive_field(self):
    model = SpatialPyramidAttentivePooling(rates=(5, 3, 7))
    self.assertEqual(model.levels(), [(3, 7), (3, 5), (3, 3), (3, 1), (1, 1)])
    model = SpatialPyramidAttentivePooling(rates=(12, 6), local_levels=False)
    self.assertEqual(model.levels(), [(3, 12), (3, 6)])

  @chex.variants(with_jit=True, without_jit=True)
  def test_jit_matches_eager(self):
    x = normal(5, (3, 8, 12, 4))
    model = SpatialPyramidAttentivePooling(rates=(6, 12, 18), gamma_init=0.5)
    variables = model.init(jax.random.PRNGKey(0), x)
    expected = model.apply(variables, x)
    got = self.variant(model.apply)(variables, x)
    chex.assert_trees_all_close(got, expected, rtol=1e-5, atol=1e-5)

  def test_gamma_limits_eq6(self):
    x = normal(6, (2, 8, 8, 4))
    model = SpatialPyramidAttentivePooling()
    variables = model.init(jax.random.PRNGKey(0), x)
    self.assertEqual(float(variables["params"]["gamma"]), 0.0)
    y0 = model.apply(variables, x)
    np.testing.assert_array_equal(np.asarray(y0), np.asarray(x))
    y1, state = model.apply(with_gamma(variables, 1.0), x, mutable=["intermediates"])
    (o,) = state["intermediates"]["pyramid_output"]
    chex.assert_trees_all_close(y1, o, atol=1e-6)
    self.assertGreater(float(jnp.max(jnp.abs(o - x))), 1e-2)

  def test_order_switch_changes_result(self):
    x = normal(7, (2, 8, 12, 4))
    c2f = SpatialPyramidAttentivePooling(order="coarse_to_fine")
    f2c = SpatialPyramidAttentivePooling(order="fine_to_coarse")
    variables = with_gamma(c2f.init(jax.random.PRNGKey(0), x), 1.0)
    self.assertEqual(jax.tree.structure(variables),
                     jax.tree.structure(f2c.init(jax.random.PRNGKey(0), x)))
    diff = jnp.max(jnp.abs(c2f.apply(variables, x) - f2c.apply(variables, x)))
    self.assertGreater(float(diff), 1e-4)

  def test_gamma_constraints(self):
    x = normal(8, (1, 8, 8, 2))
    clip = SpatialPyramidAttentivePooling(gamma_constraint="clip")
    variables = with_gamma(clip.init(jax.random.PRNGKey(0), x), 1.7)
    y, state = clip.apply(variables, x, mutable=["intermediates"])
    chex.assert_trees_all_close(y, state["intermediates"]["pyramid_output"][0], atol=1e-6)

    sig = SpatialPyramidAttentivePooling(gamma_constraint="sigmoid", gamma_init=0.25)
    variables = sig.init(jax.random.PRNGKey(0), x)
    np.testing.assert_allclose(float(variables["params"]["gamma"]), np.log(1 / 3), rtol=1e-6)
    y, state = sig.apply(variables, x, mutable=["intermediates"])
    o = state["intermediates"]["pyramid_output"][0]
    chex.assert_trees_all_close(y, 0.25 * o + 0.75 * x, atol=1e-6)

  def test_gradients_finite_and_nonzero(self):
    x = normal(9, (1, 8, 8, 3))
    model = SpatialPyramidAttentivePooling(gamma_init=0.5)
    variables = model.init(jax.random.PRNGKey(0), x)
    loss = lambda v, x: jnp.sum(model.apply(v, x) ** 2)
    g_params, g_x = jax.jit(jax.grad(loss, argnums=(0, 1)))(variables, x)
    chex.assert_tree_all_finite((g_params, g_x))
    for name in ("branch_k3_d7", "branch_k1_d1", "fuse_3"):
      leaves = jax.tree.leaves(g_params["params"][name])
      self.assertGreater(max(float(jnp.max(jnp.abs(l))) for l in leaves), 0.0, name)
    self.assertNotEqual(float(g_params["params"]["gamma"]), 0.0)

  def test_bfloat16(self):
    x = normal(10, (1, 8, 12, 4))
    model32 = SpatialPyramidAttentivePooling(gamma_init=0.5)
    model16 = SpatialPyramidAttentivePooling(gamma_init=0.5, dtype=jnp.bfloat16)
    variables = model32.init(jax.random.PRNGKey(0), x)
    y16 = model16.apply(variables, x.astype(jnp.bfloat16))
    self.assertEqual(y16.dtype, jnp.bfloat16)
    chex.assert_tree_all_finite(y16)
    chex.assert_trees_all_close(y16.astype(jnp.float32), model32.apply(variables, x),
                                atol=0.1, rtol=0.05)

  def test_injected_conv_is_used(self):
    zero_conv = functools.partial(nn.Conv, kernel_init=nn.initializers.zeros)
    x = normal(11, (1, 6, 6, 2))
    model = SpatialPyramidAttentivePooling(conv=zero_conv, gamma_init=0.5)
    y = model.apply(model.init(jax.random.PRNGKey(0), x), x)
    # All levels are 0, so o == 0 and y == x / 2.
    chex.assert_trees_all_close(y, 0.5 * x, atol=1e-7)

  def test_spectral_conv(self):
    x = normal(12, (1, 8, 8, 2))
    model = SpatialPyramidAttentivePooling(conv=norms.SpectralConv, gamma_init=0.5)
    variables = model.init(jax.random.PRNGKey(0), x)
    self.assertIn("batch_stats", variables)
    y = model.apply(variables, x)
    chex.assert_shape(y, x.shape)
    chex.assert_tree_all_finite(y)

  @parameterized.named_parameters(
      ("rank", {}, (8, 8, 4), "`x`"),
      ("order", {"order": "random"}, (1, 8, 8, 4), "`order`"),
      ("empty_rates", {"rates": ()}, (1, 8, 8, 4), "`rates`"),
      ("neg_rate", {"rates": (3, -1)}, (1, 8, 8, 4), "`rates`"),
      ("dup_rate", {"rates": (3, 3)}, (1, 8, 8, 4), "`rates`"),
      ("rate1_dup", {"rates": (1, 3)}, (1, 8, 8, 4), "`rates`"),
      ("one_level", {"rates": (3,), "local_levels": False}, (1, 8, 8, 4), "`rates`"),
      ("constraint", {"gamma_constraint": "tanh"}, (1, 8, 8, 4), "`gamma_constraint`"),
      ("sigmoid_init", {"gamma_constraint": "sigmoid"}, (1, 8, 8, 4), "`gamma_init`"),
      ("hidden", {"attention_hidden_features": 0}, (1, 8, 8, 4), "`hidden_features`"),
  )
  def test_bad_arguments_raise(self, kwargs, shape, match):
    model = SpatialPyramidAttentivePooling(**kwargs)
    with self.assertRaisesRegex(ValueError, match):
      model.init(jax.random.PRNGKey(0), jnp.zeros(shape))


class AtrousConvBlockTest(chex.TestCase):

  @parameterized.parameters(
      ((1, 8, 8, 3), 2, (1, 4, 4, 5)),
      ((3, 8, 12, 3), 2, (3, 4, 6, 5)),
      ((2, 9, 7, 3), 2, (2, 5, 4, 5)),
      ((1, 8, 12, 3), 1, (1, 8, 12, 5)),
  )
  def test_equals_numpy_branch_average(self, shape, stride, out_shape):
    x = normal(13, shape)
    block = AtrousConvBlock(features=5, strides=stride)
    variables = block.init(jax.random.PRNGKey(0), x)
    y = block.apply(variables, x)
    chex.assert_shape(y, out_shape)
    p = variables["params"]
    s = (stride, stride)
    original = np_conv(x, p["conv"]["kernel"], p["conv"]["bias"], strides=s)
    atrous = [np_conv(x, p[f"atrous_d{r}"]["kernel"], p[f"atrous_d{r}"]["bias"], strides=s,
                      dilation=(r, r)) for r in (3, 5, 7)]
    ref = np.mean([original, np.mean(atrous, axis=0)], axis=0)
    np.testing.assert_allclose(np.asarray(y), ref, rtol=1e-4, atol=1e-5)

  @chex.variants(with_jit=True, without_jit=True)
  def test_jit_matches_eager(self):
    x = normal(14, (3, 8, 12, 3))
    block = AtrousConvBlock(features=4)
    variables = block.init(jax.random.PRNGKey(0), x)
    chex.assert_trees_all_close(self.variant(block.apply)(variables, x),
                                block.apply(variables, x), rtol=1e-5, atol=1e-5)

  def test_gradients_and_bfloat16(self):
    x = normal(15, (1, 8, 8, 3))
    block = AtrousConvBlock(features=4, rates=(2, 3))
    variables = block.init(jax.random.PRNGKey(0), x)
    grads = jax.grad(lambda v: jnp.sum(block.apply(v, x) ** 2))(variables)
    chex.assert_tree_all_finite(grads)
    self.assertGreater(float(jnp.max(jnp.abs(grads["params"]["atrous_d3"]["kernel"]))), 0.0)
    y16 = AtrousConvBlock(features=4, rates=(2, 3), dtype=jnp.bfloat16).apply(variables, x)
    self.assertEqual(y16.dtype, jnp.bfloat16)
    chex.assert_trees_all_close(y16.astype(jnp.float32), block.apply(variables, x),
                                atol=0.05, rtol=0.05)

  def test_spectral_conv(self):
    x = normal(16, (2, 8, 8, 3))
    block = AtrousConvBlock(features=4, conv=norms.SpectralConv)
    variables = block.init(jax.random.PRNGKey(0), x)
    self.assertIn("atrous_d7", variables["batch_stats"])
    y, updates = block.apply(variables, x, mutable=["batch_stats"])
    chex.assert_shape(y, (2, 4, 4, 4))
    chex.assert_tree_all_finite(y)
    # Power iteration ran on the atrous branches (stats updated while mutable).
    before, after = variables["batch_stats"]["atrous_d5"], updates["batch_stats"]["atrous_d5"]
    changed = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), before, after)
    self.assertGreater(max(jax.tree.leaves(changed)), 0.0)

  @parameterized.named_parameters(
      ("rank", {"features": 4}, (8, 8, 3), "`x`"),
      ("features", {"features": 0}, (1, 8, 8, 3), "`features`"),
      ("strides", {"features": 4, "strides": 0}, (1, 8, 8, 3), "`strides`"),
      ("kernel", {"features": 4, "kernel_size": (4, 4, 4)}, (1, 8, 8, 3), "`kernel_size`"),
      ("rates", {"features": 4, "rates": ()}, (1, 8, 8, 3), "`rates`"),
  )
  def test_bad_arguments_raise(self, kwargs, shape, match):
    with self.assertRaisesRegex(ValueError, match):
      AtrousConvBlock(**kwargs).init(jax.random.PRNGKey(0), jnp.zeros(shape))
