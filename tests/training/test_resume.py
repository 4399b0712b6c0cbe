"""A run killed with SIGKILL and resumed ends bitwise where an uninterrupted run ends.

`train.py` runs in a subprocess (8 simulated CPU devices, like the tests) on a config file
written to a temporary folder; it is killed as soon as checkpoint `KILL_AFTER` is on disk,
while it is still training (its `num_steps` is far away). Then, in this process, the same
workdir is resumed to `n` = newest surviving checkpoint + 2 and a fresh workdir is trained
to `n` without interruption; every array of the two final states must agree. The data
iterator position comes back from the checkpoint too, which the comparison needs: a resumed
run that re-read the first batches would end elsewhere.

The subprocess shares this process's persistent compilation cache, so the train step is
compiled once for the three runs (and not at all after `test_parallel.py`, whose model and
step are the same).
"""

import contextlib
import importlib.util
import io
import os
import pathlib
import signal
import subprocess
import sys
import time

import chex
import jax
import numpy as np
import pytest

from genattn_jax.training import checkpoint as ckpt_lib
from genattn_jax.training import trainer

from tests.conftest import REPO_ROOT

KILL_AFTER = 2          # checkpoint that must exist before the kill
WAIT_S = 480            # cold start on a busy 2-core machine included

CONFIG_TEXT = '''"""Resume test: SNDCGAN backbone at test size, n_critic 2, no evaluation."""
from configs import cifar10_sndcgan_spap


def get_config():
  c = cifar10_sndcgan_spap.get_test_config()
  c.model.g_blocks = []        # backbone only: BatchNorm in G, spectral norm in G and D
  c.model.d_atrous = False
  # As tests/training/test_parallel.py, so the suite compiles this train step once.
  c.training.n_critic = 2
  c.training.batch_size = 16   # 32 of the 60 fixture images a step: one batch an epoch
  c.training.r1_gamma = 1.0
  c.training.r1_interval = 2
  c.eval.every_steps = 0
  c.checkpoint.every_steps = 1
  c.checkpoint.keep = 3
  c.data.data_dir = {data_dir!r}
  return c
'''


def _load_config(path: pathlib.Path, num_steps: int):
  spec = importlib.util.spec_from_file_location("resume_test_config", str(path))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  config.training.num_steps = num_steps
  return config


def _tail(path: pathlib.Path, n: int = 3000) -> str:
  return path.read_text(errors="replace")[-n:] if path.exists() else "(no log)"


def _run_and_kill(config_path: pathlib.Path, workdir: pathlib.Path, log_path: pathlib.Path):
  """Starts train.py, SIGKILLs it once checkpoint KILL_AFTER exists; returns its exit code."""
  env = dict(os.environ)
  env["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
  env["JAX_PLATFORMS"] = "cpu"
  cmd = [sys.executable, "train.py", f"--config={config_path}", f"--workdir={workdir}",
         "--config.training.num_steps=100000"]
  marker = workdir / "checkpoints" / str(KILL_AFTER)
  with open(log_path, "w") as log:
    proc = subprocess.Popen(cmd, cwd=str(REPO_ROOT), env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    try:
      deadline = time.monotonic() + WAIT_S
      while not marker.is_dir():
        if proc.poll() is not None:
          pytest.fail(f"train.py exited ({proc.returncode}) before checkpoint {KILL_AFTER}:\n"
                      + _tail(log_path))
        if time.monotonic() > deadline:
          pytest.fail(f"no checkpoint {KILL_AFTER} after {WAIT_S}s:\n" + _tail(log_path))
        time.sleep(0.02)
      os.kill(proc.pid, signal.SIGKILL)
    finally:
      if proc.poll() is None:
        proc.kill()
      proc.wait()
  return proc.returncode


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  base = tmp_path_factory.mktemp("resume")
  config_path = base / "resume_config.py"
  config_path.write_text(CONFIG_TEXT.format(data_dir=str(base / "tfds")))
  killed_dir, fresh_dir = base / "killed", base / "fresh"
  returncode = _run_and_kill(config_path, killed_dir, base / "killed.log")
  survived = ckpt_lib.Checkpointer(str(killed_dir / "checkpoints"), async_save=False)
  steps_on_disk = survived.all_steps()
  survived.close()
  n = max(steps_on_disk) + 2
  out = io.StringIO()
  with contextlib.redirect_stdout(out):
    resumed = trainer.train_and_evaluate(_load_config(config_path, n), str(killed_dir))
  resumed_log = out.getvalue()
  with contextlib.redirect_stdout(io.StringIO()):
    fresh = trainer.train_and_evaluate(_load_config(config_path, n), str(fresh_dir))
  return dict(returncode=returncode, steps_on_disk=steps_on_disk, n=n, resumed=resumed,
              resumed_log=resumed_log, fresh=fresh, killed_dir=killed_dir,
              log=base / "killed.log")


def test_run_was_killed_mid_training(runs):
  assert runs["returncode"] == -signal.SIGKILL, _tail(runs["log"])
  assert KILL_AFTER in runs["steps_on_disk"]
  assert max(runs["steps_on_disk"]) < 100000
  assert "[train] step 1/100000" in runs["log"].read_text()


def test_resume_started_from_newest_checkpoint(runs):
  newest = max(runs["steps_on_disk"])
  assert f"resumed from step {newest}" in runs["resumed_log"]
  # Only the steps after the checkpoint were trained again.
  assert f"step {newest + 1}/{runs['n']}" in runs["resumed_log"]
  assert f"step {newest}/" not in runs["resumed_log"]
  assert runs["resumed"]["step"] == runs["fresh"]["step"] == runs["n"]


def test_resumed_state_equals_uninterrupted(runs):
  resumed = jax.device_get(runs["resumed"]["final_state"])
  fresh = jax.device_get(runs["fresh"]["final_state"])
  assert int(resumed.step) == int(fresh.step) == runs["n"]
  for field in ("g_params", "d_params", "ema_params", "g_state", "d_state", "g_opt_state",
                "d_opt_state"):
    chex.assert_trees_all_close(getattr(resumed, field), getattr(fresh, field), atol=1e-6,
                                rtol=0, custom_message=field)
  for key in ("d_loss", "g_loss", "d_real", "d_fake", "r1"):
    np.testing.assert_allclose(runs["resumed"][key], runs["fresh"][key], atol=1e-6, rtol=0)


def test_resumed_run_left_its_final_checkpoint(runs):
  ckpt = ckpt_lib.Checkpointer(str(runs["killed_dir"] / "checkpoints"), async_save=False)
  step, state = ckpt.restore_latest(jax.device_get(runs["fresh"]["final_state"]))
  ckpt.close()
  assert step == runs["n"]
  chex.assert_trees_all_close(state.g_params, runs["fresh"]["final_state"].g_params,
                              atol=1e-6, rtol=0)
