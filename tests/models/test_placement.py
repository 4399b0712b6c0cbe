"""Placing the papers' blocks in the backbones from config lists."""

import chex
import jax
import jax.numpy as jnp
from absl.testing import parameterized

from genattn_jax import models
from genattn_jax.layers import norms
from genattn_jax.models import placement as pl
from tests.models._util import np_init

W = 1 / 16
B = 2
# SNDCGAN-32 at width 1/16: G stage channels {4: 32, 8: 16, 16: 8, 32: 4};
# D stage channels {32: 4, 16: 8, 8: 16, 4: 32}.
G_CH = {4: 32, 8: 16, 16: 8, 32: 4}
D_CH = {32: 4, 16: 8, 8: 16, 4: 32}
REAL_BLOCKS = [n for n in pl.BLOCK_NAMES if n != "none"]


def _build(name="sndcgan", g_blocks=(), d_blocks=(), **extra):
  c = models.default_model_config(name, 32)
  c.update({"g_width": W, "d_width": W, "upsample": "nearest", "num_classes": 0, **extra})
  c.g_blocks = list(g_blocks)
  c.d_blocks = list(d_blocks)
  return models.build_gan(c)


def _block_outputs(module, variables, *args, **kwargs):
  """eval_shape of apply, capturing the outputs of the placed blocks."""
  def fn(v):
    _, state = module.apply(v, *args, capture_intermediates=lambda m, _: "_r" in (m.name or ""),
                            mutable=["intermediates", "batch_stats"],
                            rngs={"sampling": jax.random.PRNGKey(1)}, **kwargs)
    return state["intermediates"]
  return jax.eval_shape(fn, variables)


def _init_shapes(module, *args):
  return jax.eval_shape(lambda: module.init(
      {"params": jax.random.PRNGKey(0), "sampling": jax.random.PRNGKey(1)}, *args))


class PlacementTest(parameterized.TestCase):

  @parameterized.parameters(*REAL_BLOCKS)
  def test_block_sits_at_the_right_stage(self, block):
    g, d = _build(g_blocks=[{"block": "none", "resolutions": [8]},
                            {"block": block, "resolutions": [16]}],
                  d_blocks=[{"block": block, "resolutions": [8]}])
    z, x = jnp.zeros((B, 128)), jnp.zeros((B, 32, 32, 3))
    gv = _init_shapes(g, z)
    key = f"{block}_1_r16"
    self.assertIn(key, gv["params"])
    self.assertNotIn("none_0_r8", gv["params"])  # 'none' is the identity
    out = _block_outputs(g, gv, z)[key]["__call__"][0]
    chex.assert_shape(out, (B, 16, 16, G_CH[16]))
    # Generator without spectral norm: the block's convs are plain nn.Conv.
    g_plain, _ = _build(g_blocks=[{"block": block, "resolutions": [16]}],
                        g_spectral_norm=False)
    self.assertNotIn(f"{block}_0_r16", _init_shapes(g_plain, z).get("batch_stats", {}))

    dv = _init_shapes(d, x)
    dkey = f"{block}_0_r8"
    self.assertIn(dkey, dv["params"])
    chex.assert_shape(_block_outputs(d, dv, x)[dkey]["__call__"][0], (B, 8, 8, D_CH[8]))
    # Inside D the block's convs are spectrally normalised (state in 'batch_stats').
    self.assertIn(dkey, dv["batch_stats"])

  def test_resnet_placement(self):
    g, d = _build("resnet", g_blocks=[{"block": "self_attention", "resolutions": [16, 32]}],
                  d_blocks=[{"block": "self_attention", "resolutions": [8]}], num_classes=0)
    z, x = jnp.zeros((B, 128)), jnp.zeros((B, 32, 32, 3))
    gv = _init_shapes(g, z)
    self.assertIn("self_attention_0_r16", gv["params"])
    self.assertIn("self_attention_0_r32", gv["params"])
    dv = _init_shapes(d, x)
    self.assertEqual(d.block_resolutions(), (16, 8, 8, 8))
    self.assertIn("self_attention_0_r8", dv["params"])  # once, after block2
    self.assertNotIn("self_attention_0_r16", dv["params"])
    out = _block_outputs(d, dv, x)["self_attention_0_r8"]["__call__"][0]
    chex.assert_shape(out, (B, 8, 8, 8))

  def test_spap_paper_config_runs(self):
    # SPAP in G (after the R/2 map), AN in G, atrous D with self-attention; train mode.
    g, d = _build(g_blocks=[{"block": "spap", "resolutions": [16], "rates": [2, 3]},
                            {"block": "an", "resolutions": [8], "num_entities": 4}],
                  d_blocks=[{"block": "cbam", "resolutions": [16], "reduction_ratio": 2}],
                  d_atrous=True)

    key = jax.random.PRNGKey(0)
    z = jax.random.normal(key, (B, 128))
    gv = np_init(g, z)
    dv = np_init(d, jnp.zeros((B, 32, 32, 3)))

    @jax.jit
    def fn(gv, dv):
      img, _ = g.apply(gv, z, mutable=["batch_stats"], rngs={"sampling": key})
      img_eval = g.apply(gv, z, train=False)
      logits, _ = d.apply(dv, img, mutable=["batch_stats"])
      return img, img_eval, logits

    img, img_eval, logits = fn(gv, dv)
    chex.assert_shape(img, (B, 32, 32, 3))
    chex.assert_shape(logits, (B,))
    chex.assert_tree_all_finite((img, img_eval, logits))
    self.assertEqual(gv["params"]["an_1_r8"]["t"].shape, (4,))

  def test_kwargs_are_forwarded_and_frozen(self):
    (p,) = pl.normalize_placements([{"block": "spap", "resolutions": [16, 8, 16],
                                     "rates": [1, 2]}], "g_blocks", (4, 8, 16, 32))
    self.assertEqual(p.resolutions, (8, 16))
    self.assertEqual(dict(p.kwargs), {"rates": (1, 2)})
    hash(p)
    module = pl.make_block(p, spectral_conv=True, dtype=jnp.bfloat16)
    self.assertEqual(tuple(module.rates), (1, 2))
    self.assertIs(module.conv, norms.SpectralConv)
    self.assertEqual(module.dtype, jnp.bfloat16)
    self.assertIsNone(pl.make_block(pl.BlockPlacement("none", (8,))))

  def test_unknown_block_name_raises(self):
    with self.assertRaisesRegex(ValueError, r"g_blocks\[0\]\.block"):
      _build(g_blocks=[{"block": "transformer", "resolutions": [8]}])
    with self.assertRaisesRegex(ValueError, r"d_blocks\[1\]"):
      _build(d_blocks=[{"block": "none", "resolutions": [8]}, {"resolutions": [8]}])

  def test_bad_resolution_raises(self):
    with self.assertRaisesRegex(ValueError, r"g_blocks\[0\]\.resolutions"):
      _build(g_blocks=[{"block": "lap", "resolutions": [64]}])
    with self.assertRaisesRegex(ValueError, r"d_blocks\[0\]\.resolutions"):
      _build(d_blocks=[{"block": "lap", "resolutions": [2]}])
    with self.assertRaisesRegex(ValueError, r"d_blocks\[0\]\.resolutions"):
      _build("resnet", d_blocks=[{"block": "cbam", "resolutions": [32]}], num_classes=0)
    with self.assertRaisesRegex(ValueError, r"g_blocks\[0\]\.resolutions"):
      _build(g_blocks=[{"block": "lap", "resolutions": []}])
    with self.assertRaisesRegex(ValueError, r"g_blocks\[0\]"):
      _build(g_blocks=[{"block": "lap"}])

  def test_unknown_block_argument_raises(self):
    g, _ = _build(g_blocks=[{"block": "cbam", "resolutions": [8], "ratio": 2}])
    with self.assertRaisesRegex(ValueError, "cbam.*ratio"):
      _init_shapes(g, jnp.zeros((B, 128)))

  def test_single_dict_instead_of_list_raises(self):
    with self.assertRaisesRegex(ValueError, "g_blocks"):
      pl.normalize_placements({"block": "lap", "resolutions": [8]}, "g_blocks")
