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
from tests.training import float64

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
  """STEPS steps in float64 (see tests/training/float64.py): (final state, metrics)."""
  rng = np.random.default_rng(0)
  batches = [{"image": rng.uniform(-1, 1, (32, 8, 8, 3)),  # float64
              "label": np.zeros((32,), np.int32)} for _ in range(STEPS)]
  _, final, metrics = float64.run_steps(_config(backend_name), batches, backend_name, devices)
  return final, metrics


@pytest.fixture(scope="module")
def single_device():
  return _run("jit", jax.devices()[:1])


@pytest.mark.parametrize("backend", ["jit", "pmap"])
def test_stylegan_lap_eight_devices_equal_one(single_device, backend):
  """8 devices = 1 in float64. Also initialises with the backend's generator (pmap: axis
  'batch', unbound at init).

  In float32 pmap differed from 1 device in 3 of 2,304 elements of synthesis/conv8/kernel
  (6.3e-5 after 2 steps; jit within 3.0e-6): float32 rounding of the different summation
  orders, which float64 removes down to 1.2e-7 (see tests/training/float64.py). With the official
  constant-layer bias (`model.const_bias=True`) float32 jit differed by 2.0e-3 (the bias: true
  gradient 0, ±lr Adam steps from rounding noise).
  """
  assert jax.device_count() == 8
  tol = float64.TOLERANCE
  ref_state, ref_metrics = single_device
  state, metrics = _run(backend, jax.devices())
  assert int(state.step) == STEPS
  for field in ("g_params", "d_params", "g_state"):  # g_state: w_avg
    chex.assert_trees_all_close(getattr(state, field), getattr(ref_state, field),
                                atol=tol, rtol=tol)
  for k in ("d_loss", "g_loss", "r1"):
    np.testing.assert_allclose(metrics[k], ref_metrics[k], rtol=tol, atol=tol)
  # LAP's learned shape weights are trained (moved from 1/3).
  lap = state.g_params["synthesis"]["lap_r8_conv0"]["pyramid"]["shape_weights"]
  assert float(np.abs(np.asarray(lap) - 1 / 3).max()) > 1e-6
