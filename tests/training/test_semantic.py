"""The 'semantic' task (SPADE) through the one train step: real pairs, resume, 8 devices = 1."""

import os

import chex
import jax
import numpy as np
import pytest

from configs import pairs_demo
from genattn_jax.training import state as state_lib, trainer
from tests.training import float64

STEPS = 2


def _config(tmp_path, **task):
  c = pairs_demo.get_test_config()
  c.data.source = os.path.join(os.environ.get("GENATTN_SHARED_DATA", os.path.join(
      os.path.dirname(__file__), "..", "..", "..", "shared", "data")), "pairs", "cityscapes")
  c.data.data_dir = str(tmp_path / "tfds")
  c.eval.every_steps = 0
  c.training.batch_size = 8  # the trainer shards every batch over the 8 test devices
  c.optimizer.decay_start = 0  # constant rates: the tests run 1-2 steps
  c.task.update(task)
  return c


def max_change(a, b) -> float:
  """Largest absolute difference between two parameter trees."""
  moved = jax.tree_util.tree_map(lambda x, y: float(np.abs(np.asarray(x) - y).max()), a, b)
  return max(jax.tree_util.tree_leaves(moved))


def one_step(c, workdir):
  """One trainer step of config `c` (on the shared pairs): (metrics, initial, final state);
  asserts that G's and D's parameters moved."""
  assert os.path.isdir(c.data.source), f"shared Cityscapes pairs missing at {c.data.source}"
  c.training.num_steps = 1
  out = trainer.train_and_evaluate(c, str(workdir))
  g, d, _ = trainer.build(c)
  init = state_lib.create_gan_state(c, g, d, jax.random.PRNGKey(c.seed))
  final = out["final_state"]
  assert int(final.step) == 1
  assert max_change(init.g_params, final.g_params) > 1e-6
  assert max_change(init.d_params, final.d_params) > 1e-6
  return out, init, final


def test_one_step_on_shared_pairs_changes_params(tmp_path):
  out, _, _ = one_step(_config(tmp_path), tmp_path / "run")
  for k in ("g_adv_loss", "g_feat_loss", "g_vgg_loss", "d_loss"):
    assert np.isfinite(out[k]), k
  assert out["g_vgg_loss"] > 0 and out["g_feat_loss"] > 0


def test_resume_equals_uninterrupted(tmp_path):
  c = _config(tmp_path, lambda_vgg=0.0)
  c.training.num_steps = STEPS
  straight = trainer.train_and_evaluate(c, str(tmp_path / "a"))["final_state"]
  trainer.train_and_evaluate(c, str(tmp_path / "b"))
  # Drop the last checkpoint: the resumed run redoes step 2 from checkpoint 1 (with the
  # data iterator position saved there).
  import shutil  # pylint: disable=g-import-not-at-top
  shutil.rmtree(tmp_path / "b" / "checkpoints" / str(STEPS))
  resumed = trainer.train_and_evaluate(c, str(tmp_path / "b"))["final_state"]
  chex.assert_trees_all_equal(jax.device_get(resumed), jax.device_get(straight))


def _parallel_config(tmp_path, backend):
  c = _config(tmp_path, lambda_vgg=0.0)
  c.training.batch_size = 8  # one row per device
  c.parallel.backend = backend
  return c


def _batches(dtype=np.float32):
  rng = np.random.default_rng(0)
  for _ in range(STEPS):
    label = rng.integers(0, 35, (8, 32, 64)).astype(np.int32)
    yield {"image": rng.uniform(-1, 1, (8, 32, 64, 3)).astype(dtype), "label": label,
           "edge": (rng.uniform(size=(8, 32, 64)) < 0.2).astype(dtype)}


def run_float64(c, batches, backend_name, devices):
  """Steps of config `c` on `batches` in float64 (tests/training/float64.py) with the named
  backend on `devices`: (final state, metrics)."""
  _, final, metrics = float64.run_steps(c, batches, backend_name, devices)
  return final, metrics


def assert_same_run(run, ref, metric_keys):
  """Every parameter and state array, and the named metrics, agree to float64.TOLERANCE."""
  tol = float64.TOLERANCE
  (st, m), (ref_st, ref_m) = run, ref
  for field in ("g_params", "d_params", "g_state", "d_state"):
    chex.assert_trees_all_close(getattr(st, field), getattr(ref_st, field), atol=tol, rtol=tol)
  for k in metric_keys:
    np.testing.assert_allclose(m[k], ref_m[k], rtol=tol, atol=tol)


@pytest.fixture(scope="module")
def single(tmp_path_factory):
  c = _parallel_config(tmp_path_factory.mktemp("one"), "jit")
  return run_float64(c, _batches(np.float64), "jit", jax.devices()[:1])


@pytest.mark.parametrize("backend", ["jit", "pmap"])
def test_eight_devices_equal_one(single, tmp_path, backend):
  """8 devices (jit, pmap) = 1 in float64: synchronized batch norm in SPADE (global-batch
  statistics).

  In float32 the same runs differed after 2 steps in a few elements (jit: 2 of 9,216 of
  G_middle_0/conv_0's kernel, 2.3e-5; pmap: up_1/norm_s/beta/bias, 4.0e-5), from rounding of
  the different summation orders (tests/training/float64.py). With the official layout
  (`model.g_block_bias=True`) G's biases that only a SPADE norm sees have a true gradient of
  0, and Adam (beta1 = 0) turns their float32 rounding noise into lr-sized steps; the default
  layout drops them (`models/spade.py`).
  """
  assert jax.device_count() == 8
  c = _parallel_config(tmp_path, backend)
  run = run_float64(c, _batches(np.float64), backend, jax.devices())
  assert_same_run(run, single, ("d_loss", "g_loss", "g_feat_loss"))
