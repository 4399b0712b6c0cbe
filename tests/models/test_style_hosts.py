"""StyleGAN / MSG-StyleGAN / MSG-DCGAN hosts: layers vs NumPy, shapes, MSG gradients, LAP count."""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genattn_jax import models
from genattn_jax.models import msg, style_layers as sl, stylegan
from genattn_jax.training.tasks.multiscale import pyramid_r1_penalty


def _leaky(x):
  return np.where(x >= 0, x, 0.2 * x)


# ------------------------------------------------------------------ layers vs hand computations


def test_equalized_dense_scaling_and_init():
  x = np.random.default_rng(0).normal(size=(3, 64)).astype(np.float32)
  layer = sl.EqualizedDense(5, lr_mul=0.01, bias_init=1.0)
  params = layer.init(jax.random.PRNGKey(0), x)["params"]
  w, b = np.asarray(params["kernel"], np.float64), np.asarray(params["bias"], np.float64)
  assert abs(w.std() - 100.0) < 10.0         # stored weights ~ N(0, 1 / lr_mul²)
  np.testing.assert_allclose(b * 0.01, 1.0, rtol=1e-6)  # effective bias starts at bias_init
  params = {"kernel": w, "bias": np.random.default_rng(1).normal(size=5)}
  y = layer.apply({"params": params}, x)
  ref = x @ (w * math.sqrt(2) / math.sqrt(64) * 0.01) + params["bias"] * 0.01
  np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)


def test_equalized_conv_scaling():
  x = np.random.default_rng(2).normal(size=(2, 4, 4, 3)).astype(np.float32)
  layer = sl.EqualizedConv(2, kernel_size=1, gain=1.0)
  params = layer.init(jax.random.PRNGKey(0), x)["params"]
  params = {"kernel": params["kernel"], "bias": jnp.asarray([0.5, -1.0])}
  y = layer.apply({"params": params}, x)
  ref = np.einsum("bhwc,cd->bhwd", x, np.asarray(params["kernel"])[0, 0] / math.sqrt(3)) + [0.5, -1]
  np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)


def test_mapping_network_matches_numpy():
  z = np.random.default_rng(3).normal(size=(4, 6)).astype(np.float32)
  net = stylegan.MappingNetwork(num_layers=3, w_dim=6, lr_mul=0.01)
  params = net.init(jax.random.PRNGKey(1), z)["params"]
  h = z / np.sqrt(np.mean(z**2, axis=-1, keepdims=True) + 1e-8)
  for i in range(3):
    p = params[f"dense{i}"]
    h = _leaky(h @ (np.asarray(p["kernel"]) * math.sqrt(2) / math.sqrt(6) * 0.01)
               + np.asarray(p["bias"]) * 0.01)
  np.testing.assert_allclose(net.apply({"params": params}, z), h, rtol=1e-4, atol=1e-5)


def test_noise_injection():
  x = jnp.asarray(np.random.default_rng(4).normal(size=(2, 4, 4, 3)), jnp.float32)
  layer = sl.NoiseInjection()
  params = layer.init(jax.random.PRNGKey(0), x)["params"]
  np.testing.assert_array_equal(params["weight"], 0.0)          # identity at init
  np.testing.assert_allclose(layer.apply({"params": params}, x), x)
  w = jnp.asarray([0.5, -2.0, 1.0])
  noise = jnp.asarray(np.random.default_rng(5).normal(size=(2, 4, 4, 1)), jnp.float32)
  y = layer.apply({"params": {"weight": w}}, x, noise)
  np.testing.assert_allclose(y, np.asarray(x) + np.asarray(w) * np.asarray(noise), rtol=1e-6)
  # Drawn noise: one map per sample, shared by the channels, from the 'sampling' rng.
  y1 = layer.apply({"params": {"weight": w}}, x, rngs={"sampling": jax.random.PRNGKey(7)})
  n1 = (np.asarray(y1) - np.asarray(x)) / np.asarray(w)
  np.testing.assert_allclose(n1[..., 0], n1[..., 1], rtol=1e-4, atol=1e-5)
  assert not np.allclose(n1[0], n1[1])
  y2 = layer.apply({"params": {"weight": w}}, x, rngs={"sampling": jax.random.PRNGKey(8)})
  assert not np.allclose(y1, y2)
  # Without the rng (evaluation): fixed noise, deterministic.
  e1, e2 = (layer.apply({"params": {"weight": w}}, x) for _ in range(2))
  np.testing.assert_array_equal(e1, e2)


def test_noise_injection_initialises_with_an_unbound_pmap_axis():
  x = jnp.ones((2, 4, 4, 3))
  layer = sl.NoiseInjection(axis_name="batch")  # the pmap backend's model, built outside pmap
  params = layer.init({"params": jax.random.PRNGKey(0), "sampling": jax.random.PRNGKey(1)},
                      x)["params"]
  np.testing.assert_array_equal(params["weight"], np.zeros(3))


def test_constant_layer_bias_is_official_option_and_redundant():
  cfg = models.default_model_config("stylegan", 8)
  cfg.g_width, cfg.z_dim, cfg.style_mixing_prob = 1 / 32, 16, 0.0
  z = jax.random.normal(jax.random.PRNGKey(0), (4, 16))
  rngs = {"params": jax.random.PRNGKey(1), "sampling": jax.random.PRNGKey(2)}
  gen, _ = models.build_gan(cfg)
  syn = jax.eval_shape(lambda: gen.init(rngs, z, train=False))["params"]["synthesis"]
  assert "bias0" not in syn and "bias1" in syn
  cfg.const_bias = True
  official, _ = models.build_gan(cfg)
  v = official.init(rngs, z, train=False)
  assert v["params"]["synthesis"]["bias0"].shape == (syn["const"].shape[-1],)
  # The constant (ones) + zero-weighted noise + bias stays positive, so LeakyReLU is the
  # identity and AdaIN's instance norm removes the bias: moving it changes nothing.
  run = lambda v: official.apply(v, z, rngs={"sampling": jax.random.PRNGKey(3)},
                                 mutable=["batch_stats"])[0]
  moved = jax.tree_util.tree_map_with_path(
      lambda p, a: a + 0.5 if jax.tree_util.keystr(p).endswith("['bias0']") else a, v)
  np.testing.assert_allclose(run(moved), run(v), atol=1e-5)


def test_style_modulation_is_adain():
  rng = np.random.default_rng(6)
  x, w = rng.normal(size=(2, 4, 4, 3)).astype(np.float32), rng.normal(size=(2, 5)).astype(np.float32)
  layer = sl.StyleModulation()
  params = layer.init(jax.random.PRNGKey(0), x, w)["params"]
  a = params["affine"]
  style = w @ (np.asarray(a["kernel"]) / math.sqrt(5)) + np.asarray(a["bias"])
  mu, var = x.mean(axis=(1, 2), keepdims=True), x.var(axis=(1, 2), keepdims=True)
  ref = (x - mu) / np.sqrt(var + 1e-8) * (1 + style[:, None, None, :3]) + style[:, None, None, 3:]
  np.testing.assert_allclose(layer.apply({"params": params}, x, w), ref, rtol=1e-4, atol=1e-4)


def test_minibatch_stddev_matches_numpy():
  x = np.random.default_rng(7).normal(size=(8, 3, 3, 4)).astype(np.float32)
  y = np.asarray(sl.minibatch_stddev(jnp.asarray(x), group_size=4))
  assert y.shape == (8, 3, 3, 5)
  np.testing.assert_array_equal(y[..., :4], x)
  for g in range(2):
    group = x[4 * g:4 * g + 4]
    expected = np.sqrt(group.var(axis=0) + 1e-8).mean()
    np.testing.assert_allclose(y[4 * g:4 * g + 4, ..., 4], expected, rtol=1e-5)
  with pytest.raises(ValueError, match="group size"):
    sl.minibatch_stddev(jnp.zeros((6, 2, 2, 1)), group_size=4)


def test_style_mixing_and_truncation_against_hand_computation():
  gen = stylegan.StyleGANGenerator(resolution=8, z_dim=4, w_dim=4, width=1 / 64,
                                   mapping_layers=2, style_mixing_prob=1.0,
                                   truncation_psi=0.5, truncation_cutoff=2)
  z = jax.random.normal(jax.random.PRNGKey(0), (4, 4))
  variables = gen.init({"params": jax.random.PRNGKey(1), "sampling": jax.random.PRNGKey(2)}, z,
                       train=False)
  mapping = lambda v: stylegan.MappingNetwork(num_layers=2, w_dim=4).apply(
      {"params": variables["params"]["mapping"]}, v)
  noise = [jnp.zeros((4, r, r, 1)) for r in (4, 4, 8, 8)]
  out, inter = gen.apply(variables, z, train=True, noise=noise, rngs={"sampling": jax.random.PRNGKey(3)},
                         mutable=["batch_stats", "intermediates"])
  inter = inter["intermediates"]
  cutoff = int(inter["mixing_cutoff"][0])
  assert 1 <= cutoff < 4                             # prob 1: always mixed
  w1, w2 = np.asarray(mapping(z)), np.asarray(mapping(inter["mixing_z2"][0]))
  hand = np.stack([w1 if i < cutoff else w2 for i in range(4)], axis=1)
  np.testing.assert_allclose(inter["ws"][0], hand, rtol=1e-5, atol=1e-6)
  synth = stylegan.SynthesisNetwork(resolution=8, width=1 / 64)
  expected = synth.apply({"params": variables["params"]["synthesis"]}, jnp.asarray(hand),
                         noise=noise)
  np.testing.assert_allclose(out[0] if isinstance(out, tuple) else out, expected, rtol=1e-4,
                             atol=1e-5)
  # w_avg moved towards the batch mean of w (decay 0.995 from zeros).
  state = gen.apply(variables, z, train=True, noise=noise, rngs={"sampling": jax.random.PRNGKey(3)},
                    mutable=["batch_stats"])[1]
  np.testing.assert_allclose(state["batch_stats"]["w_avg"], 0.005 * w1.mean(0), rtol=1e-4, atol=1e-7)
  # Truncation at sampling: w_avg + psi (w - w_avg) on layers < cutoff (2), untouched after.
  avg = np.asarray([0.1, -0.2, 0.3, 0.0], np.float32)
  v2 = {"params": variables["params"], "batch_stats": {"w_avg": avg}}
  _, inter = gen.apply(v2, z, train=False, mutable=["intermediates"])
  ws = np.asarray(inter["intermediates"]["ws"][0])
  np.testing.assert_allclose(ws[:, :2], np.repeat(avg + 0.5 * (w1[:, None] - avg), 2, 1),
                             rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(ws[:, 2:], np.repeat(w1[:, None], 2, 1), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ hosts: shapes


@pytest.mark.parametrize("name", ["stylegan", "msg_stylegan", "msg_dcgan"])
@pytest.mark.parametrize("res,width", [(32, 1 / 32), (256, 1 / 64)])
def test_host_shapes(name, res, width):
  cfg = models.default_model_config(name, res)
  cfg.g_width = cfg.d_width = width
  cfg.z_dim = 16
  cfg.attention = "lap"
  gen, disc = models.build_gan(cfg)
  z = jnp.zeros((4, 16))
  stages = [2**k for k in range(2, int(math.log2(res)) + 1)]

  def run(rng):
    g_vars = gen.init({"params": rng, "sampling": rng}, z, train=False,
                      multiscale=name != "stylegan")
    imgs = gen.apply(g_vars, z, train=False, multiscale=name != "stylegan")
    d_vars = disc.init(rng, imgs)
    return imgs, disc.apply(d_vars, imgs)

  imgs, logits = (jax.eval_shape if res == 256 else lambda f, r: f(r))(run, jax.random.PRNGKey(0))
  if name == "stylegan":
    assert imgs.shape == (4, res, res, 3)
  else:
    assert [i.shape for i in imgs] == [(4, r, r, 3) for r in stages]
  assert logits.shape == (4,) and logits.dtype == jnp.float32
  if res == 32:
    chex.assert_tree_all_finite((imgs, logits))


# ------------------------------------------------------------------ MSG: scales and gradients


@pytest.mark.parametrize("combine", ["simple", "lin", "cat", "dcgan_code"])
def test_msg_discriminator_uses_every_scale_and_g_gets_gradients(combine):
  gen = msg.MSGDCGANGenerator(resolution=16, z_dim=8, width=1 / 32)
  if combine == "dcgan_code":
    disc = msg.MSGDCGANDiscriminator(resolution=16, width=1 / 32)
  else:
    disc = msg.MSGDiscriminator(resolution=16, width=1 / 32, combine=combine)
  z = jax.random.normal(jax.random.PRNGKey(0), (4, 8))
  g_vars = gen.init(jax.random.PRNGKey(1), z, multiscale=True)
  imgs = gen.apply(g_vars, z, multiscale=True)
  d_vars = disc.init(jax.random.PRNGKey(2), imgs)
  # D depends on every scale it is given.
  grads = jax.grad(lambda xs: jnp.sum(disc.apply(d_vars, list(xs))))(tuple(imgs))
  for g, r in zip(grads, (4, 8, 16)):
    assert g.shape == (4, r, r, 3) and float(jnp.abs(g).max()) > 0, r
  # Every G stage's RGB head gets gradient from D's score.
  g_grads = jax.grad(lambda p: jnp.sum(disc.apply(d_vars, gen.apply({"params": p}, z,
                                                                    multiscale=True))))(
      g_vars["params"])
  for r in (4, 8, 16):
    assert float(jnp.abs(g_grads[f"to_rgb{r}"]["kernel"]).max()) > 0, r
  # R1 over the pyramid: the sum over scales of the squared input gradients.
  r1 = pyramid_r1_penalty(lambda xs: disc.apply(d_vars, xs), imgs)
  np.testing.assert_allclose(r1, sum(float(jnp.sum(g**2)) for g in grads) / 4, rtol=1e-4)
  with pytest.raises(ValueError, match="3 scales"):
    disc.apply(d_vars, imgs[1:])


def _param_count(cfg):
  gen, disc = models.build_gan(cfg)
  stages = [2**k for k in range(2, cfg.resolution.bit_length())]
  g = jax.eval_shape(lambda r: gen.init({"params": r, "sampling": r}, jnp.zeros((4, cfg.z_dim)),
                                        train=False, multiscale=True), jax.random.PRNGKey(0))
  imgs = [jax.ShapeDtypeStruct((4, r, r, 3), jnp.float32) for r in stages]
  d = jax.eval_shape(disc.init, jax.random.PRNGKey(0), imgs)
  count = lambda t: sum(x.size for x in jax.tree_util.tree_leaves(t))
  return count(g), count(d)


def test_msg_dcgan256_counts_table2_parameters():
  """The official code's network at 256², counted by hand from its layers (module doc).

  G: 4x4 transposed conv 512·512·16 + 512, conv 3x3 512→512, 3 stages of 2 × 512→512, then
  512→256 + 256→256, 256→128 + 128→128, 128→64 + 64→64, seven ToRGB 1x1 convs. D: three
  blocks 512→512→256, then 256→256→256, 128→128→128, 64→64→64, FromRGB 1x1 convs to
  256 (×4), 128, 64, 64 channels, head conv 3x3 513→512, 4x4 512→512, 1x1 512→1.
  """
  conv = lambda cin, cout, k=3: k * k * cin * cout + cout
  g = (512 * 512 * 16 + 512 + conv(512, 512) + 6 * conv(512, 512) + conv(512, 256)
       + conv(256, 256) + conv(256, 128) + conv(128, 128) + conv(128, 64) + conv(64, 64)
       + 4 * conv(512, 3, 1) + conv(256, 3, 1) + conv(128, 3, 1) + conv(64, 3, 1))
  d = (3 * (conv(512, 512) + conv(512, 256)) + 2 * conv(256, 256) + 2 * conv(128, 128)
       + 2 * conv(64, 64) + 4 * conv(3, 256, 1) + conv(3, 128, 1) + 2 * conv(3, 64, 1)
       + conv(513, 512) + conv(512, 512, 4) + conv(512, 1, 1))
  assert (g, d) == (23_044_309, 18_733_185)
  cfg = models.default_model_config("msg_dcgan", 256)
  assert _param_count(cfg) == (g, d)
  assert round((g + d) / 1e6, 2) in (41.77, 41.78)   # Table 2: 41.77M
  cfg.equalized = False                               # plain layers: the same count
  assert _param_count(cfg) == (g, d)


def test_msg_dcgan_generator_first_layers_match_numpy():
  """dense (one bias per channel) → LeakyReLU → eq. conv 3x3 → LeakyReLU → pixel norm → ToRGB."""
  gen = msg.MSGDCGANGenerator(resolution=8, z_dim=6, width=1 / 128)   # 4 channels
  z = np.random.default_rng(5).normal(size=(2, 6)).astype(np.float32)
  params = jax.tree_util.tree_map(np.asarray, gen.init(jax.random.PRNGKey(0), z,
                                                       multiscale=True)["params"])
  rng = np.random.default_rng(6)
  params["bias4"] = rng.normal(size=4).astype(np.float32)
  params["conv4"]["bias"] = rng.normal(size=4).astype(np.float32)
  params["to_rgb4"]["bias"] = rng.normal(size=3).astype(np.float32)
  out4 = gen.apply({"params": params}, z, multiscale=True)[0]
  z64 = z.astype(np.float64)
  h = (z64 @ params["dense4"]["kernel"] * math.sqrt(2) / math.sqrt(6)).reshape(2, 4, 4, 4)
  h = _leaky(h + params["bias4"])
  k = params["conv4"]["kernel"] * math.sqrt(2) / math.sqrt(9 * 4)
  hp = np.pad(h, ((0, 0), (1, 1), (1, 1), (0, 0)))
  y = sum(np.einsum("bhwc,cd->bhwd", hp[:, i:i + 4, j:j + 4], k[i, j])
          for i in range(3) for j in range(3)) + params["conv4"]["bias"]
  y = _leaky(y)
  y = y / np.sqrt(np.mean(y**2, axis=-1, keepdims=True) + 1e-8)
  rgb = np.einsum("bhwc,cd->bhwd", y, params["to_rgb4"]["kernel"][0, 0] * math.sqrt(2) / 2)
  np.testing.assert_allclose(out4, rgb + params["to_rgb4"]["bias"], rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------ LAP parameter count


def test_stylegan256_lap_learned_combination_adds_table5_count():
  """3 weights (one per patch shape) per channel of each of the 12 LAP modules: 11,904."""
  cfg = models.default_model_config("stylegan", 256)
  cfg.attention = "lap"
  gen, _ = models.build_gan(cfg)
  shapes = jax.eval_shape(lambda r: gen.init({"params": r, "sampling": r}, jnp.zeros((2, 512)),
                                             train=False), jax.random.PRNGKey(0))["params"]
  syn = shapes["synthesis"]
  laps = {k: v for k, v in syn.items() if k.startswith("lap_")}
  assert len(laps) == 12                        # two convs per block, 8² … 256²
  channels = [sl.stage_channels(int(k.split("_r")[1].split("_")[0])) for k in laps]
  formula = 3 * sum(channels)
  assert formula == 3 * 2 * (3 * 512 + 256 + 128 + 64) == 11_904
  count = sum(int(np.prod(v["pyramid"]["shape_weights"].shape)) for v in laps.values())
  assert count == formula
  # Sec. 4.1 (channel-separated transform): 12 x 19 spatial-conv + 20 per channel.
  cst = sum(int(np.prod(x.shape)) for v in laps.values()
            for x in jax.tree_util.tree_leaves(v["transform"]))
  assert cst == 12 * 19 + 20 * sum(channels)
  # The host itself: G + D = 49.13M parameters, Table 2's StyleGAN-256.
  _, disc = models.build_gan(models.default_model_config("stylegan", 256))
  d_shapes = jax.eval_shape(lambda r: disc.init(r, jnp.zeros((2, 256, 256, 3))),
                            jax.random.PRNGKey(0))["params"]
  n = lambda t: int(sum(np.prod(x.shape) for x in jax.tree_util.tree_leaves(t)))
  lap_total = sum(n(v) for v in laps.values())
  assert lap_total == 11_904 + cst == 91_492
  assert round((n(shapes) - lap_total + n(d_shapes)) / 1e4) == 4913


def test_lap_experiment_settings_follow_the_official_codes():
  """StyleGAN takes the official code's lr of its training resolution (G_lrate_dict, base
  0.001 below 128²); the MSG hosts keep 0.003; MSG-DCGAN has no R1 (the MSG-GAN code)."""
  from genattn_jax.training import lap_experiments as le  # pylint: disable=g-import-not-at-top
  lrs = {(host, data): le.host_config(host, data).optimizer.g_lr
         for host in le.HOST_SETTINGS for data in le.DATASETS}
  assert lrs == {("stylegan", "lsun_bedroom"): 0.002, ("stylegan", "cifar10"): 0.001,
                 ("msg_stylegan", "lsun_bedroom"): 0.003, ("msg_stylegan", "cifar10"): 0.003,
                 ("msg_dcgan", "lsun_bedroom"): 0.003, ("msg_dcgan", "cifar10"): 0.003}
  for host in le.HOST_SETTINGS:
    c = le.host_config(host, "lsun_bedroom")
    assert c.optimizer.d_lr == c.optimizer.g_lr
    assert c.training.r1_gamma == (0.0 if host == "msg_dcgan" else 10.0)
    assert not c.data.random_flip  # Sec. 5.2
