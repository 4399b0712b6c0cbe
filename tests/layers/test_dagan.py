"""Tests of DAGAN's SAM, CAM and their sum against NumPy re-computations."""

import functools

from absl.testing import parameterized
import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genattn_jax.layers import dagan
from tests.layers._util import np_conv, np_normal, np_random_init


def np_sigmoid(z):
  return 1.0 / (1.0 + np.exp(-z))


def np_sam(params, x):
  """Eq. 2-4 with the module's parameters."""
  x = np.asarray(x, np.float64)
  pooled = np.concatenate([x.mean(-1, keepdims=True), x.max(-1, keepdims=True)], -1)
  p = params["conv"]
  return x * np_sigmoid(np_conv(pooled, p["kernel"], p.get("bias")))


def np_cam(params, feats, variant):
  """Eq. 5-9 with the module's parameters; earlier maps are integer-factor
  nearest upsampled (np.repeat)."""
  feats = [np.asarray(f, np.float64) for f in feats]
  last = feats[-1]
  h, w = last.shape[1:3]
  branches = []
  for i, f in enumerate(feats[:-1]):
    f = np.repeat(np.repeat(f, h // f.shape[1], axis=1), w // f.shape[2], axis=2)
    p = params[f"branch_{i}"]
    branches.append(np_conv(f, p["kernel"], p["bias"]))
  if len(branches) == 1:  # one earlier map: F~ is its single conv
    assert "fuse" not in params
    fused = branches[0]
  else:
    fused = np_conv(np.concatenate(branches, -1), params["fuse"]["kernel"],
                    params["fuse"]["bias"])
  alpha = np.concatenate([fused, last], -1).mean(axis=(1, 2))  # [B, 2C]
  p0, p1 = params["scale_0"], params["scale_1"]
  gamma = np.maximum(alpha @ p0["kernel"][0, 0] + p0["bias"], 0.0) @ p1["kernel"][0, 0] + p1["bias"]
  delta = np_sigmoid(gamma)[:, None, None, :]
  if variant == "I":
    return delta * fused + last
  return delta * last + fused


def _features(seed, batch, h, w):
  """Three backbone maps: two earlier (1/2 and full size) and the last one."""
  return [np_normal(seed, (batch, h // 2, w // 2, 3)), np_normal(seed + 100, (batch, h, w, 2)),
          np_normal(seed + 200, (batch, h, w, 4))]


class SpatialAttentionTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.named_parameters(("square_b1", 1, 8, 8), ("nonsquare_b3", 3, 8, 12))
  def test_matches_numpy(self, batch, h, w):
    x = np_normal(1, (batch, h, w, 5))
    module = dagan.SpatialAttentionModule(use_bias=True)
    params = np_random_init(module, x)["params"]
    out = self.variant(lambda p, x: module.apply({"params": p}, x))(params, x)
    chex.assert_shape(out, (batch, h, w, 5))
    chex.assert_trees_all_close(np.asarray(out), np_sam(params, x), atol=1e-5)

  def test_attention_map_in_unit_interval_and_conv_injectable(self):
    x = np_normal(2, (2, 8, 12, 3))
    zero_conv = functools.partial(nn.Conv, kernel_init=nn.initializers.zeros)
    module = dagan.SpatialAttentionModule(conv=zero_conv, kernel_size=7, init_scheme="default")
    variables = jax.jit(module.init)(jax.random.PRNGKey(0), x)  # the real (zero) init
    chex.assert_shape(variables["params"]["conv"]["kernel"], (7, 7, 2, 1))
    out, state = jax.jit(functools.partial(module.apply, mutable=["intermediates"]))(variables, x)
    # A zero conv gives logits 0, so sigmoid = 1/2 everywhere.
    chex.assert_trees_all_close(out, 0.5 * x, atol=1e-6)
    (attn,) = state["intermediates"]["attention"]
    chex.assert_shape(attn, (2, 8, 12, 1))

  def test_bad_rank(self):
    module = dagan.SpatialAttentionModule()
    with pytest.raises(ValueError, match="`x` must have rank 4"):
      np_random_init(module, jnp.zeros((8, 8, 3)))


class ChannelAttentionTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.named_parameters(
      ("I_square_b1", "I", 1, 8, 8), ("II_nonsquare_b3", "II", 3, 8, 12))
  def test_matches_numpy(self, variant, batch, h, w):
    feats = _features(3, batch, h, w)
    module = dagan.ChannelAttentionModule(variant=variant, hidden_features=3)
    params = np_random_init(module, feats)["params"]
    out = self.variant(lambda p, f: module.apply({"params": p}, f))(params, feats)
    chex.assert_shape(out, (batch, h, w, 4))
    chex.assert_trees_all_close(np.asarray(out), np_cam(params, feats, variant), atol=1e-5)

  @parameterized.named_parameters(("cam_I", "I"), ("cam_II", "II"))
  def test_one_earlier_map_is_one_conv(self, variant):
    """Eq. 5 with one earlier map (the official code's setting): F~ = Conv(F^1),
    no fusing conv; the earlier map has 2C channels at half size here."""
    feats = [np_normal(11, (2, 4, 6, 8)), np_normal(12, (2, 8, 12, 4))]
    module = dagan.ChannelAttentionModule(variant=variant)
    params = np_random_init(module, feats, seed=3)["params"]
    assert set(params) == {"branch_0", "scale_0", "scale_1"}
    chex.assert_shape(params["branch_0"]["kernel"], (3, 3, 8, 4))
    out = jax.jit(module.apply)({"params": params}, feats)
    chex.assert_trees_all_close(np.asarray(out), np_cam(params, feats, variant), atol=1e-5)
    with pytest.raises(ValueError, match="`branch_features` .* must be None or C = 4"):
      np_random_init(module.clone(branch_features=2), feats)

  def test_spade_init_is_xavier_normal_gain_002(self):
    feats = [np_normal(13, (1, 4, 4, 64)), np_normal(14, (1, 4, 4, 32))]
    module = dagan.ChannelAttentionModule()
    params = jax.jit(module.init)(jax.random.PRNGKey(0), feats)["params"]
    kernel = np.asarray(params["branch_0"]["kernel"])  # [3, 3, 64, 32]
    expected = 0.02 * np.sqrt(2.0 / (9 * 64 + 9 * 32))
    np.testing.assert_allclose(kernel.std(), expected, rtol=0.05)
    assert abs(kernel.mean()) < 0.1 * expected
    np.testing.assert_array_equal(params["branch_0"]["bias"], 0.0)
    default = jax.jit(module.clone(init_scheme="default").init)(jax.random.PRNGKey(0), feats)
    lecun = 1.0 / np.sqrt(9 * 64)  # Flax's own initialiser when asked for 'default'
    np.testing.assert_allclose(np.asarray(default["params"]["branch_0"]["kernel"]).std(), lecun,
                               rtol=0.1)
    with pytest.raises(ValueError, match="`init_scheme` must be one of"):
      np_random_init(module.clone(init_scheme="kaiming"), feats)

  def test_variants_differ_and_weights_sown(self):
    feats = _features(4, 2, 8, 8)
    mod1 = dagan.ChannelAttentionModule(variant="I")
    variables = np_random_init(mod1, feats)
    out1, state = jax.jit(functools.partial(mod1.apply, mutable=["intermediates"]))(
        variables, feats)
    out2 = jax.jit(dagan.ChannelAttentionModule(variant="II").apply)(variables, feats)
    assert not np.allclose(out1, out2)
    (delta,) = state["intermediates"]["channel_weights"]
    chex.assert_shape(delta, (2, 1, 1, 4))
    assert np.all((delta > 0) & (delta < 1))

  def test_bilinear_resize_any_sizes(self):
    feats = [np_normal(5, (3, 3, 5, 6)), np_normal(6, (3, 8, 12, 4))]
    module = dagan.ChannelAttentionModule(resize_method="bilinear")
    variables = np_random_init(module, feats)
    out = jax.jit(module.apply)(variables, feats)
    chex.assert_shape(out, (3, 8, 12, 4))
    chex.assert_tree_all_finite(out)

  @parameterized.named_parameters(
      ("single_map", lambda f: [f[-1]], "at least 2"),
      ("array_not_list", lambda f: f[-1], "list or tuple"),
      ("wrong_rank", lambda f: [f[0][0], f[-1]], r"`features\[0\]` must have rank 4"),
      ("batch_mismatch", lambda f: [f[0][:1], f[-1]], r"`features\[1\]` has batch size"),
  )
  def test_bad_features(self, make, message):
    feats = _features(6, 2, 8, 8)
    module = dagan.ChannelAttentionModule()
    with pytest.raises(ValueError, match=message):
      np_random_init(module, make(feats))

  def test_bad_variant(self):
    feats = _features(6, 2, 8, 8)
    with pytest.raises(ValueError, match="`variant` must be one of"):
      np_random_init(dagan.ChannelAttentionModule(variant="III"), feats)


class DualAttentionTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.named_parameters(("square_b1", 1, 8, 8), ("nonsquare_b3", 3, 8, 12))
  def test_is_sum_of_sam_and_cam(self, batch, h, w):
    feats = _features(7, batch, h, w)
    module = dagan.DualAttention(cam_variant="II")
    params = np_random_init(module, feats)["params"]
    out = self.variant(lambda p, f: module.apply({"params": p}, f))(params, feats)
    chex.assert_shape(out, (batch, h, w, 4))
    expected = np_sam(params["sam"], feats[-1]) + np_cam(params["cam"], feats, "II")
    chex.assert_trees_all_close(np.asarray(out), expected, atol=1e-5)

  def test_gradients_finite(self):
    feats = _features(8, 2, 8, 12)
    module = dagan.DualAttention()
    params = np_random_init(module, feats)["params"]

    def loss(p, f):
      return jnp.mean(module.apply({"params": p}, f) ** 2)

    g_params, g_feats = jax.jit(jax.grad(loss, argnums=(0, 1)))(params, feats)
    chex.assert_tree_all_finite((g_params, g_feats))
    # Every parameter, SAM's and CAM's, receives a gradient.
    for leaf in jax.tree_util.tree_leaves(g_params):
      assert np.any(np.asarray(leaf) != 0)

  def test_bfloat16(self):
    feats = [f.astype(jnp.bfloat16) for f in _features(9, 3, 8, 12)]
    module = dagan.DualAttention(dtype=jnp.bfloat16)
    variables = np_random_init(module, feats)
    for leaf in jax.tree_util.tree_leaves(variables):
      assert leaf.dtype == jnp.float32
    out = jax.jit(module.apply)(variables, feats)
    assert out.dtype == jnp.bfloat16
    chex.assert_shape(out, (3, 8, 12, 4))
    chex.assert_tree_all_finite(out)
    ref = jax.jit(module.clone(dtype=None).apply)(variables, [f.astype(jnp.float32) for f in feats])
    chex.assert_trees_all_close(out.astype(jnp.float32), ref, atol=0.1, rtol=0.05)
