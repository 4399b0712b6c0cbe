"""CycleGAN task: losses against hand computations, history pool, 8 devices = 1 (tiny nets)."""

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import cityscapes_cyclegan_demo, cityscapes_cyclegan_demo_spap
from genattn_jax.models import cyclegan
from genattn_jax.training import state as state_lib, trainer
from genattn_jax.training.tasks.cyclegan import CycleGANTask
from tests.training import float64


class _Scale(nn.Module):
  """x -> s * x with one learned scalar (a generator whose output is easy to hand-compute)."""
  init_value: float

  @nn.compact
  def __call__(self, x):
    return self.param("s", lambda *_: jnp.asarray(self.init_value, jnp.float32)) * x


class _MeanLogit(nn.Module):
  """x -> w * mean over channels, a [B, H, W, 1] 'patch' map."""
  init_value: float

  @nn.compact
  def __call__(self, x):
    w = self.param("w", lambda *_: jnp.asarray(self.init_value, jnp.float32))
    return w * jnp.mean(x, axis=-1, keepdims=True)


def _toy_task(lambda_identity=0.5):
  config = cityscapes_cyclegan_demo_spap.get_test_config()
  config.task.lambda_identity = lambda_identity
  g = cyclegan.GeneratorPair(ab=_Scale(0.7), ba=_Scale(-1.3))
  d = cyclegan.DiscriminatorPair(d_a=_MeanLogit(0.4), d_b=_MeanLogit(-0.9),
                                 image_shape=(4, 4, 3), pool_size=0)
  task = CycleGANTask(config, g, d)
  x = jnp.zeros((1, 4, 4, 3))
  g_vars = g.init(jax.random.PRNGKey(0), x, x)
  d_vars = d.init(jax.random.PRNGKey(1), x, x)
  st = state_lib.GANState(step=0, g_params=g_vars["params"], d_params=d_vars["params"],
                          g_state={}, d_state={"history": d_vars["history"]}, g_opt_state=None,
                          d_opt_state=None, ema_params=g_vars["params"])
  return task, st


@pytest.mark.parametrize("lambda_identity", [0.5, 0.0])
def test_generator_loss_matches_hand_computation(lambda_identity):
  task, st = _toy_task(lambda_identity)
  rng = np.random.default_rng(0)
  a = rng.uniform(-1, 1, (2, 4, 4, 3)).astype(np.float32)
  b = rng.uniform(-1, 1, (2, 4, 4, 3)).astype(np.float32)
  loss, aux, _ = task.g_loss(st.g_params, st, {"image_a": a, "image_b": b}, jax.random.PRNGKey(0))
  s_ab, s_ba, w_a, w_b = 0.7, -1.3, 0.4, -0.9
  fake_b, fake_a = s_ab * a, s_ba * b
  adv = np.mean((w_b * fake_b.mean(-1) - 1) ** 2) + np.mean((w_a * fake_a.mean(-1) - 1) ** 2)
  cycle = np.mean(np.abs(s_ba * fake_b - a)) + np.mean(np.abs(s_ab * fake_a - b))
  identity = np.mean(np.abs(s_ab * b - b)) + np.mean(np.abs(s_ba * a - a))
  want = adv + 10.0 * cycle + 10.0 * lambda_identity * identity
  np.testing.assert_allclose(float(aux["cycle_loss"]), cycle, rtol=1e-5)
  if lambda_identity:
    np.testing.assert_allclose(float(aux["identity_loss"]), identity, rtol=1e-5)
  np.testing.assert_allclose(float(loss), want, rtol=1e-5)


def test_discriminator_loss_matches_hand_computation():
  task, st = _toy_task()
  rng = np.random.default_rng(1)
  a = rng.uniform(-1, 1, (2, 4, 4, 3)).astype(np.float32)
  b = rng.uniform(-1, 1, (2, 4, 4, 3)).astype(np.float32)
  loss, _, _ = task.d_loss(st.d_params, st, {"image_a": a, "image_b": b},
                           jax.random.PRNGKey(0), jnp.zeros((), jnp.int32))
  w_a, w_b = 0.4, -0.9
  la = 0.5 * (np.mean((w_a * a.mean(-1) - 1) ** 2) + np.mean((w_a * (-1.3 * b).mean(-1)) ** 2))
  lb = 0.5 * (np.mean((w_b * b.mean(-1) - 1) ** 2) + np.mean((w_b * (0.7 * a).mean(-1)) ** 2))
  np.testing.assert_allclose(float(loss), la + lb, rtol=1e-5)


def test_history_pool_fills_then_swaps():
  size = 3
  pool = jnp.zeros((size, 2, 2, 1))
  count = jnp.zeros((), jnp.int32)
  imgs = jnp.arange(1, 4, dtype=jnp.float32)[:, None, None, None] * jnp.ones((3, 2, 2, 1))
  out, pool, count = cyclegan.pool_query(pool, count, imgs, jax.random.PRNGKey(0))
  np.testing.assert_array_equal(out, imgs)       # not full: returned as given, and stored
  np.testing.assert_array_equal(pool, imgs)
  assert int(count) == size
  query = jax.jit(cyclegan.pool_query)
  returned_old = kept_new = 0
  for t in range(40):                            # full: each image swaps in with prob. 1/2
    new = jnp.full((1, 2, 2, 1), 10.0 + t)
    before = np.asarray(pool)
    out, pool, count = query(pool, count, new, jax.random.PRNGKey(t + 1))
    after = np.asarray(pool)
    assert int(count) == size
    v = float(out[0, 0, 0, 0])
    if v == 10.0 + t:                            # new image returned, pool unchanged
      np.testing.assert_array_equal(after, before)
      kept_new += 1
    else:                                        # a stored image returned, its slot refilled
      slot = [i for i in range(size) if before[i, 0, 0, 0] == v]
      assert len(slot) == 1
      expect = before.copy()
      expect[slot[0]] = 10.0 + t
      np.testing.assert_array_equal(after, expect)
      returned_old += 1
  assert returned_old > 5 and kept_new > 5
  same, _, _ = cyclegan.pool_query(jnp.zeros((0, 2, 2, 1)), count, imgs, jax.random.PRNGKey(0))
  np.testing.assert_array_equal(same, imgs)


def test_transposed_upsampling_doubles_like_pytorch():
  g = cyclegan.ResnetGenerator(ngf=2, n_blocks=1, upsample="transposed")
  x = jnp.zeros((1, 16, 16, 3))
  out = jax.eval_shape(g.init_with_output, jax.random.PRNGKey(0), x)[0]
  assert out.shape == (1, 16, 16, 3)
  d = cyclegan.PatchDiscriminator(ndf=2, atrous=True)
  assert jax.eval_shape(d.init_with_output, jax.random.PRNGKey(0),
                        jnp.zeros((1, 256, 256, 3)))[0].shape == (1, 30, 30, 1)


def _bias_paths(params):
  return {jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(params)[0]
          if jax.tree_util.keystr(p).endswith("['bias']")}


@pytest.mark.parametrize("net", ["g", "d"])
def test_biases_before_instance_norm_dropped_and_change_nothing(net):
  x = jax.random.uniform(jax.random.PRNGKey(0), (2, 24, 24, 3), minval=-1.0, maxval=1.0)
  if net == "g":
    make = lambda nb: cyclegan.ResnetGenerator(ngf=2, n_blocks=1, upsample="nearest",
                                               norm_bias=nb)
    kept = {"['conv_out']['bias']"}
  else:
    make = lambda nb: cyclegan.PatchDiscriminator(ndf=2, norm_bias=nb)
    kept = {"['conv0']['bias']", "['conv_out']['bias']"}
  official = make(True)
  v = jax.jit(official.init)(jax.random.PRNGKey(1), x)  # jitted: eager ops are slow on CPU
  assert _bias_paths(jax.eval_shape(make(False).init, jax.random.PRNGKey(1), x)["params"]) == kept
  dropped = _bias_paths(v["params"]) - kept
  assert len(dropped) == (7 if net == "g" else 3)
  rs = np.random.RandomState(0)
  moved = jax.tree_util.tree_map_with_path(
      lambda p, a: a + rs.randn(*a.shape).astype(np.float32)
      if jax.tree_util.keystr(p)[len("['params']"):] in dropped else a, v)
  # Each moved bias feeds an affine-free instance norm, which subtracts it.
  apply = jax.jit(official.apply)
  np.testing.assert_allclose(apply(moved, x), apply(v, x), atol=1e-5)
  with pytest.raises(ValueError, match="24"):
    cyclegan.PatchDiscriminator(ndf=2).init(jax.random.PRNGKey(0), jnp.zeros((1, 16, 16, 3)))


def _run(backend_name, devices):
  """2 steps in float64 (see tests/training/float64.py): (initial, final state, metrics)."""
  config = cityscapes_cyclegan_demo.get_test_config()  # no SPAP: keeps the 3 compiles small
  config.model.resolution = config.data.image_size = 24  # the smallest with a PatchGAN patch
  config.model.pool_size = 4
  config.training.batch_size = 8
  rng = np.random.default_rng(0)
  batches = [{k: rng.uniform(-1, 1, (8, 24, 24, 3)) for k in ("image_a", "image_b")}  # float64
             for _ in range(2)]
  return float64.run_steps(config, batches, backend_name, devices,
                           float_fields=("g_params", "d_params", "d_state"))


def test_eight_devices_equal_one():
  """The step on 8 devices (jit and pmap) equals 1 device, in float64: the history pools are
  updated on the global batch with a replicated key, so every device keeps the pools one
  device keeps.

  In float32 the same comparison differs by up to 3.3e-4 in G_AB's kernels after 2 steps
  (D 6e-8, pools 2.2e-6, every loss 1e-7 to 6e-7, G's gradient norm 0.014): the cycle term's
  gradient through G_BA's instance norms amplifies the rounding of the different summation
  orders. In float64 every parameter agrees to 1e-16 and the pools to 4e-15 (measured), so
  that gap is float32 rounding, not the data-parallel code. Before the bias fix the float32
  gap was 6.9e-4 (lr-sized Adam steps of the biases before instance norm, whose true gradient
  is 0; `model.norm_bias`); at resolution 16 D's patch map was empty, every loss a NaN mean and
  D never trained (now a ValueError).
  """
  assert jax.device_count() == 8
  tol = float64.TOLERANCE
  init, ref_state, ref_metrics = _run("jit", jax.devices()[:1])
  assert all(np.isfinite(v) for v in ref_metrics.values()), ref_metrics
  for net in ("g_params", "d_params"):  # both networks trained
    moved = jax.tree_util.tree_map(lambda a, b: float(np.abs(np.asarray(a) - b).max()),
                                   getattr(init, net), getattr(ref_state, net))
    assert min(jax.tree_util.tree_leaves(moved)) > 1e-5, (net, moved)
  for backend in ("jit", "pmap"):
    _, state, metrics = _run(backend, jax.devices())
    for field in ("g_params", "d_params", "d_state"):  # d_state: the history pools
      chex.assert_trees_all_close(getattr(state, field), getattr(ref_state, field),
                                  atol=tol, rtol=tol)
    for k in ("d_loss", "g_loss", "cycle_loss", "identity_loss"):
      np.testing.assert_allclose(metrics[k], ref_metrics[k], rtol=tol, atol=tol)
  assert int(ref_state.d_state["history"]["count_a"]) == 4   # 2 steps x 8 images, pool of 4


CYCLEGAN_CONFIGS = ["cityscapes_cyclegan", "cityscapes_cyclegan_spap", "cityscapes_cyclegan_aspp",
                    "maps_cyclegan_spap", "facades_cyclegan_spap", "cityscapes_cyclegan_demo",
                    "cityscapes_cyclegan_demo_spap"]


@pytest.mark.parametrize("name", CYCLEGAN_CONFIGS)
def test_cyclegan_configs_build_and_trace_a_step(name):
  import importlib  # pylint: disable=g-import-not-at-top
  module = importlib.import_module(f"configs.{name}")
  assert "Command" in module.__doc__ and f"configs/{name}.py" in module.__doc__
  full = module.get_config()
  assert full.task.name == "cyclegan" and full.model.name == "cyclegan"
  g, d = trainer.models.build_gan(full.model)
  task = CycleGANTask(full, g, d)
  state = jax.eval_shape(lambda: state_lib.create_gan_state(full, g, d, jax.random.PRNGKey(0),
                                                            task=task))
  r = full.model.resolution
  pools = state.d_state["history"]
  assert pools["pool_a"].shape == (full.model.pool_size, r, r, 3)
  if full.model.pyramid != "none":
    assert full.model.pyramid in state.g_params["ab"] and full.model.pyramid in state.g_params["ba"]
  c = module.get_test_config()
  _, _, train_step = trainer.build(c)
  small = jax.eval_shape(lambda: state_lib.create_gan_state(
      c, *trainer.models.build_gan(c.model), jax.random.PRNGKey(0)))
  rr = c.model.resolution
  batch = {k: jax.ShapeDtypeStruct((c.training.batch_size, rr, rr, 3), jnp.float32)
           for k in ("image_a", "image_b")}
  new_state, metrics = jax.eval_shape(train_step, small, batch, jax.random.PRNGKey(1))
  assert jax.tree_util.tree_structure(new_state) == jax.tree_util.tree_structure(small)
  for key in ("d_loss", "g_loss", "cycle_loss", "identity_loss"):
    assert metrics[key].shape == ()
