"""Tests for genattn_jax.layers.lap (LAP paper, Sec. 4 and 5.2)."""

import functools

from absl.testing import parameterized
import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genattn_jax.layers import lap


# ----------------------------------------------------------------------------
# Independent NumPy references (float64, explicit loops).
# ----------------------------------------------------------------------------

def np_patch_in(x, ph, pw, eps=1e-5):
  x = np.asarray(x, np.float64)
  out = np.empty_like(x)
  _, h, w, _ = x.shape
  for i in range(0, h, ph):
    for j in range(0, w, pw):
      patch = x[:, i:i + ph, j:j + pw, :]
      mean = patch.mean(axis=(1, 2), keepdims=True)
      var = ((patch - mean)**2).mean(axis=(1, 2), keepdims=True)
      out[:, i:i + ph, j:j + pw, :] = (patch - mean) / np.sqrt(var + eps)
  return out


def np_lap(x, levels, alpha=0.5, shapes=("square", "wide", "long"), eps=1e-5, weights=None):
  """NumPy Eq. 5-8 per shape; branches averaged, or summed with per-channel `weights` [S, C]."""
  x = np.asarray(x, np.float64)
  _, h, w, _ = x.shape
  results = []
  for shape in shapes:
    f = x
    for p in range(levels, -1, -1):
      sh = h if shape == "long" else h // 2**p
      sw = w if shape == "wide" else w // 2**p
      m = 1.0 / (1.0 + np.exp(-np_patch_in(f, sh, sw, eps)))
      f = alpha * f + (1 - alpha) * m * f
    results.append(f)
  if weights is None:
    return np.mean(results, axis=0)
  weights = np.asarray(weights, np.float64)
  return sum(weights[i] * r for i, r in enumerate(results))


def np_conv_same(x, kernel, bias, groups):
  """Stride-1 'SAME' cross-correlation; kernel in Flax layout [kh, kw, Cin/g, Cout]."""
  x = np.asarray(x, np.float64)
  kernel = np.asarray(kernel, np.float64)
  b, h, w, cin = x.shape
  kh, kw, cin_g, cout = kernel.shape
  xp = np.pad(x, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
  out = np.zeros((b, h, w, cout))
  cout_g = cout // groups
  for o in range(cout):
    g = o // cout_g
    for dy in range(kh):
      for dx in range(kw):
        for ci in range(cin_g):
          out[..., o] += xp[:, dy:dy + h, dx:dx + w, g * cin_g + ci] * kernel[dy, dx, ci, o]
  if bias is not None:
    out += np.asarray(bias, np.float64)
  return out


def np_channel_separated(x, params):
  x = np.asarray(x, np.float64)
  c = x.shape[-1]
  pooled = np.concatenate([x.mean(-1, keepdims=True), x.max(-1, keepdims=True)], -1)
  sp = params["spatial_conv"]
  f_prime = np_conv_same(pooled, sp["kernel"], sp.get("bias"), 1)
  g, be = params["depthwise_gamma"], params["depthwise_beta"]
  gamma = np_conv_same(x, g["kernel"], g.get("bias"), c)
  beta = np_conv_same(x, be["kernel"], be.get("bias"), c)
  return gamma * np.tile(f_prime, (1, 1, 1, c)) + beta


def _randomise_biases(params, key):
  """Replaces biases and LAP shape weights (constant at init) by random ones for the references."""
  leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
  keys = jax.random.split(key, len(leaves))
  new = [jax.random.normal(k, v.shape, v.dtype)
         if any(n in jax.tree_util.keystr(path) for n in ("bias", "shape_weights")) else v
         for (path, v), k in zip(leaves, keys)]
  return jax.tree_util.tree_unflatten(treedef, new)


# ----------------------------------------------------------------------------
# Level schedule (Sec. 5.2).
# ----------------------------------------------------------------------------

class LevelScheduleTest(parameterized.TestCase):

  @parameterized.parameters((4, 0), (8, 1), (16, 1), (32, 2), (64, 2), (128, 3),
                            (256, 3), (512, 4), (1024, 4))
  def test_schedule(self, resolution, level):
    self.assertEqual(lap.lap_levels_for_resolution(resolution), level)

  @parameterized.parameters(0, 1, 2, -8, 12, 48, 8.0, True)
  def test_bad_resolution(self, resolution):
    with pytest.raises(ValueError, match="resolution"):
      lap.lap_levels_for_resolution(resolution)


# ----------------------------------------------------------------------------
# Patch-IN (Eq. 4).
# ----------------------------------------------------------------------------

class PatchInstanceNormTest(parameterized.TestCase):

  @parameterized.parameters(((3, 8, 12, 2), (4, 3)), ((1, 8, 12, 3), (2, 12)),
                            ((2, 8, 8, 2), (8, 8)), ((3, 8, 12, 2), (8, 2)))
  def test_matches_numpy_and_normalises_each_patch(self, shape, patch_hw):
    x = 3.0 * jax.random.normal(jax.random.PRNGKey(1), shape) + 2.0
    y = lap.patch_instance_norm(x, patch_hw)
    chex.assert_shape(y, shape)
    chex.assert_trees_all_close(np.asarray(y, np.float64), np_patch_in(x, *patch_hw),
                                atol=1e-5, rtol=1e-5)
    ph, pw = patch_hw
    b, h, w, c = shape
    blocks = np.asarray(y).reshape(b, h // ph, ph, w // pw, pw, c)
    np.testing.assert_allclose(blocks.mean(axis=(2, 4)), 0.0, atol=1e-5)
    np.testing.assert_allclose(blocks.var(axis=(2, 4)), 1.0, atol=1e-3)

  def test_constant_patch_gives_zero(self):
    x = jnp.ones((1, 4, 4, 1)) * 5.0
    np.testing.assert_array_equal(lap.patch_instance_norm(x, (2, 2)), 0.0)

  def test_bfloat16(self):
    x = jax.random.normal(jax.random.PRNGKey(2), (2, 8, 8, 3))
    y = lap.patch_instance_norm(x.astype(jnp.bfloat16), (4, 4))
    self.assertEqual(y.dtype, jnp.bfloat16)
    chex.assert_tree_all_finite(y)
    chex.assert_trees_all_close(y.astype(jnp.float32), lap.patch_instance_norm(x, (4, 4)),
                                atol=0.1, rtol=0.05)

  @parameterized.parameters(
      (np.zeros((8, 8, 2)), (2, 2), "`x`"),
      (np.zeros((1, 8, 12, 2)), (3, 4), "x height H"),
      (np.zeros((1, 8, 12, 2)), (4, 5), "x width W"),
      (np.zeros((1, 8, 8, 2)), (0, 2), "patch_hw"),
      (np.zeros((1, 8, 8, 2)), (2,), "patch_hw"),
      (np.zeros((1, 8, 8, 2)), (2.5, 2), "patch_hw"))
  def test_bad_input(self, x, patch_hw, message):
    with pytest.raises(ValueError, match=message):
      lap.patch_instance_norm(jnp.asarray(x, jnp.float32), patch_hw)


# ----------------------------------------------------------------------------
# Local attention pyramid (Eq. 3, 5-8).
# ----------------------------------------------------------------------------

class LocalAttentionPyramidTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.named_parameters(
      ("square_batch1", (1, 8, 8, 3), 2, ("square", "wide", "long")),
      ("nonsquare_batch3", (3, 8, 12, 2), 2, ("square", "wide", "long")),
      ("square_only", (3, 8, 12, 2), 1, ("square",)),
      ("wide_long", (1, 8, 4, 2), 2, ("wide", "long")))
  def test_matches_numpy(self, shape, levels, shapes):
    x = jax.random.normal(jax.random.PRNGKey(3), shape) * 2.0
    module = lap.LocalAttentionPyramid(levels=levels, patch_shapes=shapes, combine="mean")
    self.assertEqual(module.init(jax.random.PRNGKey(0), x), {})
    y = self.variant(lambda v: module.apply({}, v))(x)
    chex.assert_shape(y, shape)
    chex.assert_trees_all_close(np.asarray(y, np.float64), np_lap(x, levels, 0.5, shapes),
                                atol=1e-5, rtol=1e-5)

  def test_output_is_bounded_rescaling(self):
    levels, alpha = 2, 0.3
    x = jax.random.normal(jax.random.PRNGKey(4), (3, 8, 12, 2))
    y = jax.jit(lap.LocalAttentionPyramid(levels=levels, alpha=alpha, combine="mean").apply)({}, x)
    ratio = np.asarray(y / x)
    self.assertTrue(np.all(ratio <= 1.0 + 1e-6))
    self.assertTrue(np.all(ratio >= alpha**(levels + 1) - 1e-6))
    self.assertFalse(np.allclose(ratio, ratio.flat[0]))  # genuinely spatially varying

  def test_alpha_one_is_identity(self):
    x = jax.random.normal(jax.random.PRNGKey(5), (3, 8, 12, 2))
    y = jax.jit(lap.LocalAttentionPyramid(levels=2, alpha=1.0, combine="mean").apply)({}, x)
    chex.assert_trees_all_close(y, x, atol=1e-6, rtol=1e-6)  # up to the 3-way mean rounding

  def test_levels_none_follows_schedule(self):
    x = jax.random.normal(jax.random.PRNGKey(6), (2, 16, 8, 2))  # longer side 16 -> P = 1
    run = lambda **kw: jax.jit(lap.LocalAttentionPyramid(combine="mean", **kw).apply)({}, x)
    auto = run()
    chex.assert_trees_all_close(auto, run(levels=1))
    self.assertGreater(float(jnp.max(jnp.abs(auto - run(levels=2)))), 1e-4)

  def test_gradients_and_bfloat16(self):
    x = jax.random.normal(jax.random.PRNGKey(7), (3, 8, 8, 2))
    module = lap.LocalAttentionPyramid(levels=2, combine="mean")
    grad = jax.jit(jax.grad(lambda v: jnp.sum(module.apply({}, v)**2)))(x)
    chex.assert_tree_all_finite(grad)
    self.assertGreater(float(jnp.max(jnp.abs(grad))), 0.0)
    y16 = jax.jit(lap.LocalAttentionPyramid(levels=2, combine="mean", dtype=jnp.bfloat16).apply)({}, x)
    self.assertEqual(y16.dtype, jnp.bfloat16)
    chex.assert_tree_all_finite(y16)
    chex.assert_trees_all_close(y16.astype(jnp.float32), jax.jit(module.apply)({}, x),
                                atol=0.05, rtol=0.05)

  def test_wide_only_needs_no_width_divisibility(self):
    x = jnp.ones((1, 8, 6, 1)) * jnp.arange(6.0)
    y = jax.jit(lap.LocalAttentionPyramid(levels=3, patch_shapes=("wide",), combine="mean").apply)({}, x)
    chex.assert_trees_all_close(y, np_lap(x, 3, 0.5, ("wide",)), atol=1e-5, rtol=1e-5)

  @parameterized.named_parameters(
      ("rank3", (8, 8, 2), dict(levels=1), "`x`"),
      ("height_level", (1, 12, 8, 2), dict(levels=3), r"H=12, W=8: H=12 .* p=3"),
      ("width_level", (1, 8, 6, 2), dict(levels=2), r"H=8, W=6: W=6 .* p=2 .*'square'"),
      ("long_width", (1, 8, 6, 2), dict(levels=2, patch_shapes=("long",)), r"W=6 .* p=2"),
      ("auto_levels", (1, 12, 12, 2), dict(), "`levels`"),
      ("negative_levels", (1, 8, 8, 2), dict(levels=-1), "`levels`"),
      ("alpha", (1, 8, 8, 2), dict(levels=1, alpha=1.5), "`alpha`"),
      ("shape_name", (1, 8, 8, 2), dict(levels=1, patch_shapes=("diag",)), "`patch_shapes`"),
      ("no_shapes", (1, 8, 8, 2), dict(levels=1, patch_shapes=()), "`patch_shapes`"),
      ("combine", (1, 8, 8, 2), dict(levels=1, combine="max"), "`combine`"))
  def test_bad_input(self, shape, kwargs, message):
    with pytest.raises(ValueError, match=message):
      lap.LocalAttentionPyramid(**{"combine": "mean", **kwargs}).apply({}, jnp.zeros(shape))

  def test_learned_combination_params_init_and_weights(self):
    """One weight per (shape, channel), initialised to 1/S: equals the fixed mean at init."""
    x = jax.random.normal(jax.random.PRNGKey(30), (2, 8, 12, 5)) * 2.0
    module = lap.LocalAttentionPyramid(levels=2)  # combine='learned' is the default
    params = module.init(jax.random.PRNGKey(0), x)["params"]
    chex.assert_shape(params["shape_weights"], (3, 5))
    self.assertEqual(sum(v.size for v in jax.tree_util.tree_leaves(params)), 3 * 5)
    y0 = jax.jit(module.apply)({"params": params}, x)
    chex.assert_trees_all_close(np.asarray(y0, np.float64), np_lap(x, 2), atol=1e-5, rtol=1e-5)
    w = jax.random.uniform(jax.random.PRNGKey(31), (3, 5), minval=-1.0, maxval=2.0)
    y = jax.jit(module.apply)({"params": {"shape_weights": w}}, x)
    chex.assert_trees_all_close(np.asarray(y, np.float64), np_lap(x, 2, weights=w),
                                atol=1e-5, rtol=1e-5)
    self.assertGreater(float(jnp.max(jnp.abs(y - y0))), 1e-3)
    grad = jax.grad(lambda p: jnp.sum(module.apply({"params": p}, x)**2))(params)
    self.assertGreater(float(jnp.min(jnp.abs(grad["shape_weights"]))), 0.0)


# ----------------------------------------------------------------------------
# Channel-separated transformation (Eq. 1-2).
# ----------------------------------------------------------------------------

class ChannelSeparatedTransformTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.named_parameters(("batch1_square", (1, 8, 8, 3)),
                                  ("batch3_nonsquare", (3, 8, 12, 4)))
  def test_matches_numpy(self, shape):
    x = jax.random.normal(jax.random.PRNGKey(8), shape)
    module = lap.ChannelSeparatedTransform()
    variables = module.init(jax.random.PRNGKey(9), x)
    params = _randomise_biases(variables["params"], jax.random.PRNGKey(10))
    c = shape[-1]
    chex.assert_shape(params["spatial_conv"]["kernel"], (3, 3, 2, 1))
    chex.assert_shape(params["depthwise_gamma"]["kernel"], (3, 3, 1, c))
    chex.assert_shape(params["depthwise_beta"]["kernel"], (3, 3, 1, c))
    y = self.variant(lambda p, v: module.apply({"params": p}, v))(params, x)
    chex.assert_shape(y, shape)
    chex.assert_trees_all_close(np.asarray(y, np.float64), np_channel_separated(x, params),
                                atol=1e-4, rtol=1e-4)

  def test_injected_conv_is_used(self):
    x = jax.random.normal(jax.random.PRNGKey(11), (1, 8, 8, 2))
    zero_conv = functools.partial(nn.Conv, kernel_init=nn.initializers.zeros)
    module = lap.ChannelSeparatedTransform(conv=zero_conv, use_bias=False, kernel_size=(1, 1))
    variables = module.init(jax.random.PRNGKey(0), x)
    chex.assert_shape(variables["params"]["depthwise_gamma"]["kernel"], (1, 1, 1, 2))
    self.assertNotIn("bias", variables["params"]["spatial_conv"])
    np.testing.assert_array_equal(module.apply(variables, x), 0.0)

  def test_rank_check(self):
    with pytest.raises(ValueError, match="`x`"):
      lap.ChannelSeparatedTransform().init(jax.random.PRNGKey(0), jnp.zeros((8, 8, 2)))


# ----------------------------------------------------------------------------
# Residual LAP block (Fig. 2).
# ----------------------------------------------------------------------------

class LAPBlockTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.named_parameters(("batch1_square_auto", (1, 8, 8, 3), None),
                                  ("batch3_nonsquare", (3, 8, 12, 2), 2))
  def test_residual_form(self, shape, levels):
    x = jax.random.normal(jax.random.PRNGKey(12), shape)
    block = lap.LAPBlock(levels=levels)
    params = _randomise_biases(block.init(jax.random.PRNGKey(13), x)["params"],
                               jax.random.PRNGKey(14))
    self.assertEqual(set(params), {"transform", "pyramid"})
    y = self.variant(lambda p, v: block.apply({"params": p}, v))(params, x)
    chex.assert_shape(y, shape)
    f_a = np_channel_separated(x, params["transform"])
    expected = np.asarray(x, np.float64) + np_lap(f_a, levels if levels is not None else 1,
                                                  weights=params["pyramid"]["shape_weights"])
    chex.assert_trees_all_close(np.asarray(y, np.float64), expected, atol=1e-4, rtol=1e-4)

  def test_gradients_finite(self):
    x = jax.random.normal(jax.random.PRNGKey(15), (3, 8, 8, 2))
    block = lap.LAPBlock(levels=2)
    params = block.init(jax.random.PRNGKey(16), x)["params"]
    loss = lambda p, v: jnp.mean(block.apply({"params": p}, v)**2)
    g_params, g_x = jax.jit(jax.grad(loss, argnums=(0, 1)))(params, x)
    chex.assert_tree_all_finite((g_params, g_x))
    for leaf in jax.tree_util.tree_leaves(g_params):
      self.assertGreater(float(jnp.max(jnp.abs(leaf))), 0.0)

  def test_bfloat16(self):
    x = jax.random.normal(jax.random.PRNGKey(17), (3, 8, 12, 2))
    block32 = lap.LAPBlock(levels=1)
    block16 = lap.LAPBlock(levels=1, dtype=jnp.bfloat16)
    params = block32.init(jax.random.PRNGKey(18), x)["params"]
    y16 = jax.jit(block16.apply)({"params": params}, x.astype(jnp.bfloat16))
    self.assertEqual(y16.dtype, jnp.bfloat16)
    chex.assert_tree_all_finite(y16)
    chex.assert_trees_all_close(y16.astype(jnp.float32),
                                jax.jit(block32.apply)({"params": params}, x),
                                atol=0.15, rtol=0.1)
    p16 = lap.LAPBlock(levels=1, dtype=jnp.bfloat16, param_dtype=jnp.bfloat16).init(
        jax.random.PRNGKey(18), x.astype(jnp.bfloat16))["params"]
    for leaf in jax.tree_util.tree_leaves(p16):
      self.assertEqual(leaf.dtype, jnp.bfloat16)

  @parameterized.named_parameters(
      ("rank5", (1, 1, 8, 8, 2), dict(levels=1), "`x`"),
      ("not_divisible", (1, 8, 12, 2), dict(levels=3), r"H=8, W=12: W=12 .* p=3"))
  def test_bad_input(self, shape, kwargs, message):
    with pytest.raises(ValueError, match=message):
      lap.LAPBlock(**kwargs).init(jax.random.PRNGKey(0), jnp.zeros(shape))
