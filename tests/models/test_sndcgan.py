"""SNDCGAN generator / discriminator: shapes, ranges, conditioning, state updates.

Compiling these models is the slow part on CPU, so each configuration is
initialised and run once (one jit, cached below) and shared by the tests;
structural checks use `jax.eval_shape`, which compiles nothing.
"""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import parameterized

from genattn_jax import models
from genattn_jax.models import sndcgan
from tests.models._util import np_init

W = 1 / 16  # tiny widths: G 32..4, D 4..32 channels
B = 2


def _build(resolution=32, num_classes=0, upsample="nearest", **extra):
  c = models.default_model_config("sndcgan", resolution)
  c.update(dict(g_width=W, d_width=W, num_classes=num_classes, upsample=upsample, **extra))
  return models.build_gan(c)


def _labels(num_classes):
  return jnp.arange(B, dtype=jnp.int32) % num_classes if num_classes else None


def _kernel_shapes(tree):
  return [v.shape for p, v in jax.tree_util.tree_leaves_with_path(tree)
          if jax.tree_util.keystr(p).endswith("['kernel']")]


@functools.lru_cache(maxsize=None)
def _run(res=32, num_classes=0, upsample="nearest", dtype=""):
  """Train-mode G / D passes + D param grads, in one jit (cached per config)."""
  g, d = _build(res, num_classes, upsample, dtype=dtype)
  z = jax.random.normal(jax.random.PRNGKey(0), (B, 128))
  y = _labels(num_classes)
  gv = np_init(g, z, y)
  dv = np_init(d, jnp.zeros((B, res, res, 3)), y)

  def fn(gv, dv):
    img, g_state = g.apply(gv, z, y, mutable=["batch_stats"])
    logits, d_state = d.apply(dv, img, y, mutable=["batch_stats"])
    grads = jax.grad(lambda p: jnp.sum(d.apply({**dv, "params": p}, img, y)))(dv["params"])
    return dict(img=img, logits=logits, g_state=g_state, d_state=d_state, grads=grads)
  out = jax.jit(fn)(gv, dv)
  return g, d, dict(out, gv=gv, dv=dv)


class SNDCGANTest(parameterized.TestCase):

  @parameterized.parameters((32, 5, "nearest"), (64, 0, "transposed"))
  def test_run_shapes_range_and_grads(self, res, num_classes, upsample):
    _, _, out = _run(res, num_classes, upsample)
    chex.assert_shape(out["img"], (B, res, res, 3))
    chex.assert_shape(out["logits"], (B,))
    self.assertEqual(out["img"].dtype, jnp.float32)
    self.assertEqual(out["logits"].dtype, jnp.float32)
    self.assertLessEqual(float(jnp.max(jnp.abs(out["img"]))), 1.0)
    self.assertGreater(float(jnp.std(out["img"])), 0.0)
    chex.assert_tree_all_finite((out["img"], out["logits"], out["grads"]))

  @parameterized.product(res=(32, 64), num_classes=(0, 5), upsample=("transposed", "nearest"))
  def test_layout_abstract(self, res, num_classes, upsample):
    g, d = _build(res, num_classes, upsample)
    z, y = jnp.zeros((B, 128)), _labels(num_classes)
    gv = jax.eval_shape(lambda: g.init(jax.random.PRNGKey(0), z, y))
    img = jax.eval_shape(lambda v: g.apply(v, z, y, mutable=["batch_stats"])[0], gv)
    chex.assert_shape(img, (B, res, res, 3))
    m = res // 8  # Table 3: first G map R/8 x R/8 x 512w
    self.assertIn((128, m * m * 32), _kernel_shapes(gv["params"]["linear"]))
    layer = "deconv1" if upsample == "transposed" else "upconv1"
    self.assertIn((4, 4, 32, 16) if upsample == "transposed" else (3, 3, 32, 16),
                  _kernel_shapes(gv["params"][layer]))
    x = jnp.zeros((B, res, res, 3))
    dv = jax.eval_shape(lambda: d.init(jax.random.PRNGKey(0), x, y))
    # D: 3x3 s1 (64w), 4x4 s2 (64w), 3x3 (128w), ... 3x3 (512w), then dense on R/8 x R/8.
    self.assertIn((3, 3, 3, 4), _kernel_shapes(dv["params"]["conv0"]))
    self.assertIn((4, 4, 4, 4), _kernel_shapes(dv["params"]["conv1"]))
    self.assertIn((3, 3, 16, 32), _kernel_shapes(dv["params"]["conv6"]))
    self.assertIn((m * m * 32, 1), _kernel_shapes(dv["params"]["linear"]))
    self.assertEqual("embed" in dv["params"], num_classes > 0)
    logits = jax.eval_shape(lambda v: d.apply(v, x, y), dv)
    chex.assert_shape(logits, (B,))

  def test_spectral_norm_state_updates_only_when_mutable(self):
    _, d, out = _run(32, 5)
    y = _labels(5)
    changed = jax.tree_util.tree_map(lambda a, b: bool(jnp.any(a != b)),
                                     out["dv"]["batch_stats"], out["d_state"]["batch_stats"])
    self.assertTrue(any(jax.tree_util.tree_leaves(changed)))
    # Immutable 'batch_stats': apply returns logits only and uses the stored vectors, so
    # the result is the same as a train-mode pass from the same state.
    eval_logits = jax.jit(lambda v, x: d.apply(v, x, y))(out["dv"], out["img"])
    self.assertNotIsInstance(eval_logits, tuple)
    chex.assert_trees_all_close(eval_logits, out["logits"], atol=1e-5)

  def test_bn_running_stats_and_eval_mode(self):
    g, _, out = _run(32, 5)
    y = _labels(5)
    mean = lambda tree: [v for p, v in jax.tree_util.tree_leaves_with_path(tree["bn0"])
                         if jax.tree_util.keystr(p).endswith("mean']")][0]
    self.assertFalse(np.allclose(mean(out["gv"]["batch_stats"]),
                                 mean(out["g_state"]["batch_stats"])))
    # Eval mode: each sample's output does not depend on the rest of the batch.
    z = jax.random.normal(jax.random.PRNGKey(5), (B, 128))
    variables = {**out["gv"], **out["g_state"]}
    apply = jax.jit(lambda v, z, y: g.apply(v, z, y, train=False))
    both = apply(variables, z, y)
    swapped = apply(variables, z[::-1], y[::-1])
    chex.assert_trees_all_close(both[::-1], swapped, atol=1e-5)
    self.assertLessEqual(float(jnp.max(jnp.abs(both))), 1.0)

  def test_projection_uses_labels(self):
    _, d, out = _run(32, 5)
    apply = jax.jit(lambda y: d.apply(out["dv"], out["img"], y))
    a = apply(jnp.array([0, 1], jnp.int32))
    b = apply(jnp.array([3, 4], jnp.int32))
    self.assertGreater(float(jnp.max(jnp.abs(a - b))), 1e-6)

  def test_atrous_discriminator(self):
    _, d = _build(d_atrous=True, d_atrous_stages=[2, 3])
    x = jnp.zeros((B, 32, 32, 3))
    shapes = jax.eval_shape(lambda: d.init(jax.random.PRNGKey(0), x))
    params = shapes["params"]
    self.assertIn("atrous3", params)
    self.assertIn("atrous5", params)
    self.assertIn("conv1", params)  # stage 1 keeps the plain strided conv
    self.assertNotIn("conv3", params)
    self.assertEqual(sorted(params["atrous3"]), ["atrous_d3", "atrous_d5", "atrous_d7", "conv"])
    # Spectral norm reaches the atrous branches.
    self.assertIn("atrous3", shapes["batch_stats"])
    out = jax.eval_shape(lambda v: d.apply(v, x), shapes)
    chex.assert_shape(out, (B,))

  def test_bfloat16(self):
    _, _, out = _run(32, 0, "transposed", "bfloat16")
    self.assertEqual(jax.tree_util.tree_leaves(out["gv"]["params"])[0].dtype, jnp.float32)
    chex.assert_tree_all_finite((out["img"], out["logits"], out["grads"]))
    self.assertEqual(out["img"].dtype, jnp.float32)
    self.assertLessEqual(float(jnp.max(jnp.abs(out["img"]))), 1.0)

  def test_128_layout_abstract(self):
    g, d = _build(128, upsample="transposed")
    z = jnp.zeros((B, 128))
    gv = jax.eval_shape(lambda: g.init(jax.random.PRNGKey(0), z))
    img = jax.eval_shape(lambda v: g.apply(v, z, mutable=["batch_stats"])[0], gv)
    chex.assert_shape(img, (B, 128, 128, 3))
    dv = jax.eval_shape(lambda: d.init(jax.random.PRNGKey(0), jnp.zeros((B, 128, 128, 3))))
    self.assertIn((16 * 16 * 32, 1), _kernel_shapes(dv["params"]["linear"]))

  def test_errors(self):
    g, d = _build()
    with self.assertRaisesRegex(ValueError, "`z`"):
      jax.eval_shape(lambda: g.init(jax.random.PRNGKey(0), jnp.zeros((B, 64))))
    with self.assertRaisesRegex(ValueError, "`x`"):
      jax.eval_shape(lambda: d.init(jax.random.PRNGKey(0), jnp.zeros((B, 16, 16, 3))))
    gc, _ = _build(num_classes=3)
    with self.assertRaisesRegex(ValueError, "`y`"):
      jax.eval_shape(lambda: gc.init(jax.random.PRNGKey(0), jnp.zeros((B, 128))))
    with self.assertRaisesRegex(ValueError, "upsample"):
      _build(upsample="bilinear")
    with self.assertRaisesRegex(ValueError, "resolution"):
      _build(resolution=36)
    with self.assertRaisesRegex(ValueError, "dtype"):
      _build(dtype="float33")
    with self.assertRaisesRegex(ValueError, "unknown model config fields"):
      _build(g_widht=1.0)
    bad = sndcgan.SNDCGANDiscriminator(atrous=True, atrous_stages=(4,), width=W)
    with self.assertRaisesRegex(ValueError, "atrous_stages"):
      jax.eval_shape(lambda: bad.init(jax.random.PRNGKey(0), jnp.zeros((B, 32, 32, 3))))
