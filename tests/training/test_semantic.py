"""The 'semantic' task (SPADE) through the one train step: real pairs, resume, 8 devices = 1."""

import os

import chex
import jax
import numpy as np
import pytest

from configs import pairs_demo
from genattn_jax.training import parallel, state as state_lib, trainer

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


def _batches():
  rng = np.random.default_rng(0)
  for _ in range(STEPS):
    label = rng.integers(0, 35, (8, 32, 64)).astype(np.int32)
    yield {"image": rng.uniform(-1, 1, (8, 32, 64, 3)).astype(np.float32), "label": label,
           "edge": (rng.uniform(size=(8, 32, 64)) < 0.2).astype(np.float32)}


def _run(tmp_path, backend_name, devices):
  c = _parallel_config(tmp_path, backend_name)
  g, d, train_step = trainer.build(c)
  st = state_lib.create_gan_state(c, g, d, jax.random.PRNGKey(0))
  backend = parallel.make_backend(backend_name, train_step, devices)
  dev = backend.put_state(st)
  metrics = None
  for batch in _batches():
    dev, metrics = backend.step(dev, backend.put_batch(batch), jax.random.PRNGKey(1))
  return jax.device_get(backend.get_state(dev)), backend.get_metrics(metrics)


@pytest.fixture(scope="module")
def single(tmp_path_factory):
  return _run(tmp_path_factory.mktemp("one"), "jit", jax.devices()[:1])


@pytest.mark.parametrize("backend", ["jit", "pmap"])
@pytest.mark.xfail(run=False, reason=(
    "known gap, open in issue 10: with G's conv biases that only a SPADE norm sees dropped "
    "(model.g_block_bias=False), 8 devices still differ from 1 after 2 steps: jit in 2 of "
    "9,216 elements of G_middle_0/conv_0 kernel (2.3e-5 > 2e-5), pmap in up_1/norm_s/beta/bias "
    "(4.0e-5; also a zero-true-gradient bias: norm_s -> conv_s -> the next block's norms), "
    "Adam (beta1 = 0) making lr-sized steps of near-zero gradients"))
def test_eight_devices_equal_one(single, tmp_path, backend):
  """8 devices (jit, pmap) = 1: synchronized batch norm in SPADE (global-batch statistics).

  With the official layout (`model.g_block_bias=True`) G's biases that only a SPADE norm sees
  have a true gradient of 0, and Adam (beta1 = 0) turns their rounding noise into lr-sized
  steps that differ between 8 devices and 1 (2.4e-5 and 2.8e-5 after 2 steps, jit and pmap);
  the default layout drops them (`models/spade.py`).
  """
  assert jax.device_count() == 8
  ref, ref_m = single
  st, m = _run(tmp_path, backend, jax.devices())
  for field in ("g_params", "d_params", "g_state", "d_state"):
    chex.assert_trees_all_close(getattr(st, field), getattr(ref, field), atol=2e-5, rtol=2e-5)
  for k in ("d_loss", "g_loss", "g_feat_loss"):
    np.testing.assert_allclose(m[k], ref_m[k], rtol=1e-4, atol=1e-5)
