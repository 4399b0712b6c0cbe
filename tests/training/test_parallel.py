"""Data-parallel steps equal a single-device step on the same global batch (8 CPU devices)."""

import chex
import jax
import numpy as np
import pytest

from configs import cifar10_sndcgan_spap, cifar10_sngan_an
from genattn_jax.training import parallel, state as state_lib, trainer

STEPS = 3


def _config(backend, model="sndcgan"):
  if model == "sndcgan":
    c = cifar10_sndcgan_spap.get_test_config()
    c.model.g_blocks = []        # keep compile time small: backbone with BN in G and SN in D
    c.model.d_atrous = False
    c.training.n_critic = 2
    c.training.batch_size = 16   # 2 rows per device per D update on 8 devices
    c.training.r1_gamma = 1.0
    c.training.r1_interval = 2
  else:
    # The main job's model: ResNet G with class-conditional BN and AN (self-sampling and the
    # orthogonal regulariser), projection D with AN. One D update per step keeps compiles short.
    c = cifar10_sngan_an.get_test_config()
    c.training.n_critic = 1
    c.training.batch_size = 32   # 4 rows per device
  c.parallel.backend = backend
  return c


def _batches():
  rng = np.random.default_rng(0)
  for _ in range(STEPS):
    yield {"image": rng.uniform(-1, 1, (32, 32, 32, 3)).astype(np.float32),
           "label": rng.integers(0, 10, (32,)).astype(np.int32)}


def _run(backend_name, devices, model):
  config = _config(backend_name, model)
  generator, discriminator, train_step = trainer.build(config)
  state = state_lib.create_gan_state(config, generator, discriminator, jax.random.PRNGKey(0))
  backend = parallel.make_backend(backend_name, train_step, devices)
  dev_state = backend.put_state(state)
  metrics = None
  for batch in _batches():
    dev_state, metrics = backend.step(dev_state, backend.put_batch(batch), jax.random.PRNGKey(1))
  return jax.device_get(backend.get_state(dev_state)), backend.get_metrics(metrics)


@pytest.fixture(scope="module", params=["sndcgan", "resnet_an"])
def single_device(request):
  return request.param, _run("jit", jax.devices()[:1], request.param)


@pytest.mark.parametrize("backend", ["jit", "pmap"])
def test_eight_devices_equal_one(single_device, backend):
  assert jax.device_count() == 8
  model, (ref_state, ref_metrics) = single_device
  state, metrics = _run(backend, jax.devices(), model)
  assert int(state.step) == STEPS
  chex.assert_trees_all_close(state.g_params, ref_state.g_params, atol=1e-5, rtol=1e-5)
  chex.assert_trees_all_close(state.d_params, ref_state.d_params, atol=1e-5, rtol=1e-5)
  chex.assert_trees_all_close(state.ema_params, ref_state.ema_params, atol=1e-5, rtol=1e-5)
  # Cross-replica BatchNorm: running statistics equal the global-batch ones.
  chex.assert_trees_all_close(state.g_state, ref_state.g_state, atol=1e-5, rtol=1e-5)
  for k in ("d_loss", "g_loss", "d_real", "d_fake"):
    np.testing.assert_allclose(metrics[k], ref_metrics[k], rtol=1e-4, atol=1e-5)


def test_params_moved(single_device):
  model, (trained, _) = single_device
  config = _config("jit", model)
  generator, discriminator, _ = trainer.build(config)
  init = state_lib.create_gan_state(config, generator, discriminator, jax.random.PRNGKey(0))
  diff = jax.tree_util.tree_map(lambda a, b: float(np.abs(np.asarray(a) - b).max()),
                                init.g_params, trained.g_params)
  assert max(jax.tree_util.tree_leaves(diff)) > 1e-4


def test_batch_not_divisible_by_devices_is_an_error():
  backend = parallel.make_backend("pmap", lambda s, b, r: (s, {}), jax.devices())
  with pytest.raises(ValueError, match="not divisible"):
    backend.put_batch({"image": np.zeros((12, 2))})
  with pytest.raises(ValueError, match="config.parallel.backend"):
    parallel.make_backend("shard_map", lambda s, b, r: (s, {}))


def test_pmap_get_state_is_the_first_replica_and_outlives_the_next_step():
  """`PmapBackend.get_state`: one copy per leaf on the first local device, equal to every
  replica, and not freed when the next step donates the stacked state."""
  def step(state, batch, rng):
    del rng
    shift = jax.lax.pmean(batch["x"].mean(), parallel.PMAP_AXIS)
    return jax.tree_util.tree_map(lambda v: v + shift.astype(v.dtype), state), {"shift": shift}

  backend = parallel.PmapBackend(step)
  state = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "n": np.int32(7)}
  dev_state = backend.put_state(state)
  batch = backend.put_batch({"x": np.arange(16, dtype=np.float32).reshape(16, 1)})
  dev_state, _ = backend.step(dev_state, batch, None)
  first = backend.get_state(dev_state)
  for leaf in jax.tree_util.tree_leaves(first):
    assert leaf.sharding.device_set == {jax.local_devices()[0]}
  np.testing.assert_array_equal(first["w"], state["w"] + 7.5)
  assert first["n"].shape == () and int(first["n"]) == 7 + 7  # 7.5 cast to int32
  dev_state, _ = backend.step(dev_state, batch, None)   # donates the stacked state
  np.testing.assert_array_equal(np.asarray(first["w"]), state["w"] + 7.5)
  np.testing.assert_array_equal(np.asarray(backend.get_state(dev_state)["w"]), state["w"] + 15.0)
