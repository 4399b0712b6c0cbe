"""ResNet SNGAN / SAGAN backbones: shapes, conditioning, projection head, cross-device BN."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import parameterized

from genattn_jax import models
from genattn_jax.models import resnet
from tests.models._util import np_init

W = 1 / 16  # CIFAR layout: G 16 channels, D 8 channels
B = 2


def _build(resolution=32, num_classes=0, **extra):
  c = models.default_model_config("resnet", resolution)
  c.update(dict(g_width=W, d_width=W, num_classes=num_classes, **extra))
  return models.build_gan(c)


def _kernel_shapes(tree):
  return [v.shape for p, v in jax.tree_util.tree_leaves_with_path(tree)
          if jax.tree_util.keystr(p).endswith("['kernel']")]


@functools.lru_cache(maxsize=None)
def _cached(num_classes=0, dtype=""):
  g, d = _build(num_classes=num_classes, dtype=dtype)
  return g, d, _run(g, d, num_classes)


def _run(g, d, num_classes, res=32):
  z = jax.random.normal(jax.random.PRNGKey(0), (B, 128))
  y = jnp.arange(B, dtype=jnp.int32) if num_classes else None
  gv = np_init(g, z, y)
  dv = np_init(d, jnp.zeros((B, res, res, 3)), y)

  def fn(gv, dv):
    img, g_state = g.apply(gv, z, y, mutable=["batch_stats"])
    logits, d_state = d.apply(dv, img, y, mutable=["batch_stats"])
    grads = jax.grad(lambda p: jnp.sum(g.apply({**gv, "params": p}, z, y,
                                               mutable=["batch_stats"])[0]))(gv["params"])
    return img, logits, g_state, d_state, grads
  img, logits, g_state, d_state, grads = jax.jit(fn)(gv, dv)
  return img, logits, gv, dv, g_state, d_state, grads


class ResNetTest(parameterized.TestCase):

  @parameterized.parameters(0, 4)
  def test_cifar_shapes_and_layout(self, num_classes):
    # The unconditional model is compiled in bfloat16 (shared with test_bfloat16).
    _, _, (img, logits, gv, dv, _, d_state, grads) = (
        _cached(num_classes) if num_classes else _cached(0, "bfloat16"))
    chex.assert_shape(img, (B, 32, 32, 3))
    chex.assert_shape(logits, (B,))
    self.assertLessEqual(float(jnp.max(jnp.abs(img))), 1.0)
    chex.assert_tree_all_finite((img, logits, grads))
    # G: dense -> 4x4x256w, three up-blocks; D: optimized block + 3 blocks.
    self.assertIn((128, 16 * 16), _kernel_shapes(gv["params"]["linear"]))
    self.assertEqual(sorted(k for k in gv["params"] if k.startswith("block")),
                     ["block1", "block2", "block3"])
    self.assertEqual(sorted(k for k in dv["params"] if k.startswith("block")),
                     ["block1", "block2", "block3", "block4"])
    bn1 = gv["params"]["block1"]["bn1"]
    if num_classes:  # class-conditional BN: per-class gains and biases
      self.assertIn((num_classes, 16), [v.shape for v in jax.tree_util.tree_leaves(bn1)])
      self.assertIn("embed", dv["params"])
    else:
      chex.assert_shape(bn1["scale"], (16,))
      self.assertNotIn("embed", dv["params"])
    # Blocks 3, 4 keep width and resolution: identity shortcut (no 1x1 conv).
    self.assertNotIn("shortcut", dv["params"]["block3"])
    self.assertIn("shortcut", dv["params"]["block2"])
    self.assertIn("batch_stats", d_state)  # spectral-norm state

  def test_labels_change_outputs(self):
    g, d, (img, _, gv, dv, _, _, _) = _cached(4)
    z = jax.random.normal(jax.random.PRNGKey(1), (B, 128))
    g_apply = jax.jit(lambda y: g.apply(gv, z, y, train=False))
    d_apply = jax.jit(lambda y: d.apply(dv, img, y))
    y1, y2 = jnp.array([0, 1], jnp.int32), jnp.array([2, 3], jnp.int32)
    # Fresh CBN params are per-class identical (gain 1, bias 0): perturb one class.
    self.assertGreater(float(jnp.max(jnp.abs(d_apply(y1) - d_apply(y2)))), 1e-6)
    gv2 = jax.tree_util.tree_map_with_path(
        lambda p, v: v + 0.5 * jnp.arange(v.size).reshape(v.shape) / v.size
        if "bn" in jax.tree_util.keystr(p) and v.ndim == 2 else v, gv)
    g_apply2 = jax.jit(lambda y: g.apply(gv2, z, y, train=False))
    self.assertGreater(float(jnp.max(jnp.abs(g_apply2(y1) - g_apply2(y2)))), 1e-6)
    # Fresh per-class CBN parameters are identical, so the labels cannot matter yet.
    chex.assert_trees_all_close(g_apply(y1), g_apply(y2), atol=1e-6)
    # After the perturbation each sample depends on its own label only.
    a, b = g_apply2(jnp.array([0, 1], jnp.int32)), g_apply2(jnp.array([0, 3], jnp.int32))
    chex.assert_trees_all_close(a[0], b[0], atol=1e-6)
    self.assertGreater(float(jnp.max(jnp.abs(a[1] - b[1]))), 1e-6)

  def test_projection_matches_formula(self):
    _, d = _build(num_classes=4, d_spectral_norm=False)
    x = jax.random.normal(jax.random.PRNGKey(2), (B, 32, 32, 3))
    y = jnp.array([1, 3], jnp.int32)
    dv = np_init(d, x, y)
    out, inter = jax.jit(lambda v: d.apply(v, x, y, capture_intermediates=True))(dv)
    h = np.sum(np.maximum(np.asarray(inter["intermediates"]["block4"]["__call__"][0]), 0),
               axis=(1, 2))
    p = dv["params"]
    expected = (h @ np.asarray(p["linear"]["kernel"]))[:, 0] + np.asarray(p["linear"]["bias"])
    expected += np.sum(np.asarray(p["embed"]["kernel"])[np.asarray(y)] * h, axis=1)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)

  def test_bfloat16(self):
    _, _, (img, logits, _, _, _, _, grads) = _cached(0, "bfloat16")
    chex.assert_tree_all_finite((img, logits, grads))

  def test_pmap_batch_norm_matches_global_batch(self):
    g, _ = _build(bn_axis_name="batch", g_spectral_norm=False)
    g_single, _ = _build(g_spectral_norm=False)
    z = jax.random.normal(jax.random.PRNGKey(3), (4, 128))
    gv = np_init(g_single, z)
    full = jax.jit(lambda v, z: g_single.apply(v, z, mutable=["batch_stats"])[0])(gv, z)
    per_dev = jax.pmap(lambda v, z: g.apply(v, z, mutable=["batch_stats"])[0],
                       axis_name="batch", in_axes=(None, 0), devices=jax.devices()[:2])(
                           gv, z.reshape(2, 2, 128))
    chex.assert_trees_all_close(per_dev.reshape(full.shape), full, atol=2e-5)

  @parameterized.parameters((64, 5, 5), (128, 6, 6))
  def test_imagenet_layouts_abstract(self, res, n_g_blocks, n_d_blocks):
    g, d = _build(res, num_classes=10)
    z, y = jnp.zeros((B, 128)), jnp.zeros((B,), jnp.int32)
    gv = jax.eval_shape(lambda: g.init(jax.random.PRNGKey(0), z, y))
    img = jax.eval_shape(lambda v: g.apply(v, z, y, mutable=["batch_stats"])[0], gv)
    chex.assert_shape(img, (B, res, res, 3))
    # n_g_blocks multipliers: the dense layer's, then one per up-block.
    self.assertLen([k for k in gv["params"] if k.startswith("block")], n_g_blocks - 1)
    # G: 4x4 x 16ch from the dense layer (ch = 64 w = 4).
    self.assertIn((128, 16 * 64), _kernel_shapes(gv["params"]["linear"]))
    dv = jax.eval_shape(lambda: d.init(jax.random.PRNGKey(0), jnp.zeros((B, res, res, 3)), y))
    self.assertLen([k for k in dv["params"] if k.startswith("block")], n_d_blocks)
    self.assertIn((64, 1), _kernel_shapes(dv["params"]["linear"]))
    self.assertEqual(d.block_resolutions()[-1], 4 if res == 128 else 2)

  def test_block_bias_layout_and_batch_norm_cancels_it(self):
    z = jax.random.normal(jax.random.PRNGKey(4), (4, 128))
    g_default, _ = _build()
    shapes = jax.eval_shape(lambda: g_default.init(jax.random.PRNGKey(0), z))["params"]
    for name in ("conv1", "conv2", "shortcut"):
      self.assertNotIn("bias", shapes["block1"][name]["conv"])
    self.assertIn("bias", shapes["conv_out"]["conv"])  # feeds tanh, not a BN
    g, _ = _build(g_block_bias=True, g_spectral_norm=False)
    gv = np_init(g, z)
    apply = jax.jit(lambda v: g.apply(v, z, mutable=["batch_stats"])[0])
    rs = np.random.RandomState(0)
    moved = jax.tree_util.tree_map_with_path(
        lambda p, v: v + rs.randn(*v.shape).astype(np.float32)
        if "block" in jax.tree_util.keystr(p) and jax.tree_util.keystr(p).endswith("['bias']")
        and "bn" not in jax.tree_util.keystr(p) else v, gv)
    self.assertEqual(sum(int(not np.array_equal(a, b)) for a, b in zip(
        jax.tree_util.tree_leaves(gv), jax.tree_util.tree_leaves(moved))), 9)  # 3 blocks x 3
    # Every moved bias feeds a batch norm (train mode: batch statistics), which removes it.
    chex.assert_trees_all_close(apply(moved), apply(gv), atol=2e-5)

  def test_errors(self):
    with self.assertRaisesRegex(ValueError, "resolution"):
      _build(resolution=48)
    with self.assertRaisesRegex(ValueError, "upsample"):
      _build(upsample="transposed")
    with self.assertRaisesRegex(ValueError, "d_atrous"):
      _build(d_atrous=True)
    with self.assertRaisesRegex(ValueError, "g_block_bias"):
      models.build_gan(dict(name="sndcgan", g_block_bias=True))
    d = resnet.ResNetDiscriminator(num_classes=3, width=W)
    with self.assertRaisesRegex(ValueError, "`y`"):
      jax.eval_shape(lambda: d.init(jax.random.PRNGKey(0), jnp.zeros((B, 32, 32, 3)),
                                    jnp.zeros((B + 1,), jnp.int32)))
