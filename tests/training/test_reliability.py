"""Issue 9: a damaged checkpoint does not stop training, one run per workdir, no non-finite
state is ever saved, bad config values are named at start, the final evaluation follows
`eval.every_steps`.

The runs use the SNDCGAN test model of `test_parallel.py` / `test_resume.py` (same train
step, so the persistent compilation cache compiles it once for the suite); each trains 3 to 5
steps on the committed CIFAR-10 fixture images.
"""

import contextlib
import io
import json
import logging
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from configs import cifar10_sndcgan_spap
from genattn_jax.training import checkpoint as ckpt_lib
from genattn_jax.training import cli
from genattn_jax.training import evaluation
from genattn_jax.training import parallel
from genattn_jax.training import sampling
from genattn_jax.training import trainer
from genattn_jax.training import validate
from genattn_jax.training import workdir_lock

from tests.conftest import REPO_ROOT


def _config(num_steps: int):
  c = cifar10_sndcgan_spap.get_test_config()
  c.model.g_blocks = []
  c.model.d_atrous = False
  c.training.n_critic = 2
  c.training.batch_size = 16
  c.training.r1_gamma = 1.0
  c.training.r1_interval = 2
  c.training.num_steps = num_steps
  c.checkpoint.every_steps = 1
  c.checkpoint.keep = 10
  c.eval.every_steps = 0
  return c


def _train(config, workdir):
  out = io.StringIO()
  with contextlib.redirect_stdout(out):
    result = trainer.train_and_evaluate(config, str(workdir))
  return result, out.getvalue()


def _steps(workdir: pathlib.Path):
  return sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())


def _damage(step_dir: pathlib.Path) -> None:
  files = [p for p in (step_dir / "state").rglob("*") if p.is_file()]
  target = max(files, key=lambda p: p.stat().st_size)
  data = bytearray(target.read_bytes())
  for i in range(len(data) // 2, len(data) // 2 + 64):
    data[i] ^= 0xFF
  target.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def three_steps(tmp_path_factory):
  """A run trained 3 steps with a checkpoint every step (kept pristine; tests copy it)."""
  workdir = tmp_path_factory.mktemp("rel") / "run"
  config = _config(3)
  config.eval.every_steps = 10  # beyond the run's last step: no evaluation at all
  result, log = _train(config, workdir)
  return workdir, result, log


def _copy(src: pathlib.Path, tmp_path: pathlib.Path) -> pathlib.Path:
  dst = tmp_path / "run"
  shutil.copytree(src, dst)
  return dst


def test_final_evaluation_follows_every_steps(three_steps):
  workdir, result, log = three_steps
  assert result["step"] == 3
  assert "fid" not in result and "sample_grid" not in result
  assert not (workdir / "samples").exists() and not (workdir / "fid_stats").exists()
  assert "no evaluation in this run: eval.every_steps = 10" in log
  assert not (workdir / workdir_lock.HOLDER_NAME).exists()  # released at the end


def test_eval_plan_says_what_and_how_many():
  c = _config(25)
  c.eval.every_steps = 10
  c.eval.num_fake, c.eval.num_real = 500, 400
  plan = trainer._eval_plan(c, start=0)  # pylint: disable=protected-access
  assert "500 EMA-generator samples vs 400 real images" in plan
  assert "2 step(s) every 10 (first 10, last 20)" in plan
  plan_of = trainer._eval_plan  # pylint: disable=protected-access
  c.eval.fid_params = "raw"
  assert "500 raw-generator samples" in plan_of(c, 0)
  c.eval.fid_both = True
  assert "500 EMA- and raw-generator samples" in plan_of(c, 0)
  c.eval.every_steps = 0
  assert "no evaluation" in trainer._eval_plan(c, 0)  # pylint: disable=protected-access


def test_damaged_newest_checkpoint_is_moved_aside_and_the_run_finishes(three_steps, tmp_path):
  workdir = _copy(three_steps[0], tmp_path)
  _damage(workdir / "checkpoints" / "3")
  result, log = _train(_config(5), workdir)
  assert result["step"] == 5
  assert "resumed from step 2" in log and "moved unusable checkpoint 3 aside" in log
  assert _steps(workdir) == [1, 2, 3, 4, 5]
  moved = [p for p in (workdir / "checkpoints").iterdir() if p.name.startswith("3.corrupt-")]
  assert len(moved) == 1 and (moved[0] / "state").is_dir()
  # The next restart resumes from 5 with nothing more to move.
  result, log = _train(_config(5), workdir)
  assert "resumed from step 5" in log and "moved" not in log


def test_all_checkpoints_damaged_is_an_error_unless_restart_is_asked(three_steps, tmp_path):
  workdir = _copy(three_steps[0], tmp_path)
  for step in (1, 2, 3):
    _damage(workdir / "checkpoints" / str(step))
  (workdir / "checkpoints" / "2" / "meta" / "metadata").unlink()
  with pytest.raises(ckpt_lib.NoUsableCheckpointError,
                     match=r"(?s)found 3, all refused.*step 3.*step 2.*step 1"):
    _train(_config(4), workdir)
  assert _steps(workdir) == [1, 2, 3]  # untouched: no silent restart over them
  config = _config(2)
  config.checkpoint.allow_restart_from_scratch = True
  result, log = _train(config, workdir)
  assert result["step"] == 2 and "starting from step 0" in log
  assert _steps(workdir) == [1, 2]
  assert len([p for p in (workdir / "checkpoints").iterdir() if ".corrupt-" in p.name]) == 3


def test_non_finite_update_at_a_checkpoint_step_is_never_saved(three_steps, tmp_path,
                                                               monkeypatch):
  workdir = _copy(three_steps[0], tmp_path)
  make_backend = parallel.make_backend

  def poisoned_backend(name, train_step, devices=None):
    backend = make_backend(name, train_step, devices)
    step = backend.step

    def poisoned(state, batch, rng):
      state, metrics = step(state, batch, rng)
      # The losses of a step are computed before its update: only the parameters show it.
      return state.replace(g_params=jax.tree_util.tree_map(lambda x: x * np.nan,
                                                           state.g_params)), metrics
    backend.step = poisoned
    return backend

  monkeypatch.setattr(parallel, "make_backend", poisoned_backend)
  with pytest.raises(trainer.NonFiniteStateError,
                     match=r"after step 4 .*generator \d+, discriminator 0, EMA generator \d+.*"
                           r"checkpoint 4 was NOT saved.*step 3, holds parameters that passed"):
    _train(_config(5), workdir)
  assert _steps(workdir) == [1, 2, 3]
  assert not (workdir / workdir_lock.HOLDER_NAME).exists()  # lock released on the error


def test_eval_refuses_a_non_finite_generator(three_steps, tmp_path):
  workdir = _copy(three_steps[0], tmp_path)
  config, state, _ = sampling.load_run(str(workdir))
  del config
  bad = state.replace(ema_params=jax.tree_util.tree_map(lambda x: x * np.inf, state.ema_params))
  ckpt = ckpt_lib.Checkpointer(str(workdir / "checkpoints"), keep=10, async_save=False)
  ckpt.save(9, jax.device_get(bad))
  ckpt.close()
  with pytest.raises(evaluation.NonFiniteOutputError, match="non-finite pixels"):
    list(sampling.sample_images_from_workdir(str(workdir), num_images=4, batch_size=4))


def _train_py(*args, timeout=600):  # generous: imports alone took >120 s at load 30
  env = dict(os.environ, JAX_PLATFORMS="cpu")  # XLA_FLAGS: 8 devices (conftest)
  return subprocess.run([sys.executable, "train.py", *args], cwd=REPO_ROOT, env=env,
                        capture_output=True, text=True, timeout=timeout)


def test_second_run_on_a_locked_workdir_is_refused_at_once(tmp_path):
  workdir = tmp_path / "busy"
  holder = workdir_lock.WorkdirLock(str(workdir), enabled=True).acquire()
  try:
    start = time.monotonic()
    proc = _train_py("--config=configs/cifar10_sndcgan_spap.py", f"--workdir={workdir}")
    took = time.monotonic() - start
    assert proc.returncode != 0
    assert "WorkdirLockedError" in proc.stderr
    assert f"pid {os.getpid()} on host {socket.gethostname()!r}" in proc.stderr, proc.stderr
    note = json.loads((workdir / workdir_lock.HOLDER_NAME).read_text())
    assert note["pid"] == os.getpid()  # the holder's lock and note are untouched
    assert not (workdir / "checkpoints").exists()  # refused before building anything
    print(f"refused after {took:.1f} s (interpreter start and imports included)")
    # In this process too: a second lock on the same workdir is refused.
    with pytest.raises(workdir_lock.WorkdirLockedError, match=f"pid {os.getpid()}"):
      workdir_lock.WorkdirLock(str(workdir), enabled=True).acquire()
  finally:
    holder.release()
  assert not (workdir / workdir_lock.HOLDER_NAME).exists()


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path, capsys):
  workdir = tmp_path / "stale"
  workdir.mkdir()
  dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                        capture_output=True, text=True, check=True)
  dead_pid = int(dead.stdout)
  (workdir / workdir_lock.LOCK_NAME).write_text("")
  (workdir / workdir_lock.HOLDER_NAME).write_text(json.dumps(
      {"host": "old-host", "pid": dead_pid, "start_time": "2026-01-01T00:00:00+00:00"}))
  lock = workdir_lock.WorkdirLock(str(workdir), enabled=True).acquire()
  try:
    assert lock.took_over["pid"] == dead_pid
    assert f"left by pid {dead_pid} on host 'old-host'" in capsys.readouterr().out
    assert json.loads((workdir / workdir_lock.HOLDER_NAME).read_text())["pid"] == os.getpid()
  finally:
    lock.release()


def test_only_process_zero_takes_the_lock(tmp_path, monkeypatch):
  monkeypatch.setattr(jax, "process_index", lambda: 1)
  lock = workdir_lock.WorkdirLock(str(tmp_path / "w"))
  assert not lock.enabled
  lock.acquire()
  assert not (tmp_path / "w" / workdir_lock.HOLDER_NAME).exists()
  lock.release()


@pytest.mark.parametrize("field,value,match", [
    ("optimizer.g_lr", -2e-4, r"config\.optimizer\.g_lr` = -0\.0002: expected a finite "
                              r"learning rate > 0"),
    ("optimizer.d_lr", 0.0, r"config\.optimizer\.d_lr"),
    ("optimizer.eps", 0.0, r"config\.optimizer\.eps` = 0\.0: expected Adam's offset"),
    ("training.n_critic", 0, r"config\.training\.n_critic` = 0: expected an integer >= 1"),
    ("model.resolution", 16, r"config\.model\.resolution` = 16 and `config\.data\.image_size` "
                             r"= 32 differ"),
    ("training.batch_size", 12, r"config\.training\.batch_size` = 12 is not divisible by the "
                                r"8 devices"),
    ("training.ema_decay", 1.5, r"config\.training\.ema_decay"),
    ("checkpoint.every_steps", 0, r"config\.checkpoint\.every_steps"),
    ("training.d_ortho_weight", -1e-4, r"config\.training\.d_ortho_weight` = -0\.0001: "
                                       r"expected >= 0"),
    ("eval.fid_params", "best", r"config\.eval\.fid_params` = 'best': expected 'ema'"),
    ("eval.intra_fid_classes", 3, r"config\.eval\.intra_fid_classes` = 3: expected an integer "
                                  r"in \[0, model\.num_classes = 0\]"),
    ("eval.intra_fid_per_class", 1, r"config\.eval\.intra_fid_per_class` = 1"),
])
def test_bad_config_values_are_named(field, value, match):
  c = _config(3)
  section, key = field.split(".")
  c[section][key] = value
  with pytest.raises(validate.ConfigError, match=match):
    validate.validate_config(c, device_count=8)


def test_every_shipped_config_validates():
  import importlib  # pylint: disable=g-import-not-at-top
  for path in sorted((REPO_ROOT / "configs").glob("*.py")):
    if path.stem == "__init__":
      continue
    module = importlib.import_module(f"configs.{path.stem}")
    validate.validate_config(module.get_config(), device_count=1)
    # Test twins are sized for their own tests (some run on one device): check the fields,
    # not the 8-device sharding (covered by the batch-divisibility tests above).
    validate.validate_config(module.get_test_config(), device_count=1)


def test_train_py_takes_json_block_overrides_and_names_bad_fields(tmp_path):
  # The JSON list is accepted (absl refused list overrides); the run then stops at the
  # config check, before any model is built, naming the negative learning rate.
  proc = _train_py("--config=configs/cifar10_sndcgan_spap.py",
                   f"--workdir={tmp_path / 'w'}",
                   '--config.model.g_blocks=[{"block": "lap", "resolutions": [8, 16]}]',
                   "--config.optimizer.g_lr=-0.001")
  assert proc.returncode == 1, proc.stderr[-2000:]
  assert "ConfigError" in proc.stderr and "config.optimizer.g_lr` = -0.001" in proc.stderr
  assert "Traceback" not in proc.stderr
  saved = json.loads((tmp_path / "w" / "config.json").read_text()) if (
      tmp_path / "w" / "config.json").exists() else None
  assert saved is None  # nothing written for a refused config


def test_json_overrides_split_and_apply():
  argv = ["train.py", "--config=c.py", '--config.model.g_blocks=[{"block": "lap", '
          '"resolutions": [8, 16]}]', "--config.model.d_blocks", "[]", "--config.seed=3"]
  rest, overrides = cli.split_json_overrides(argv)
  assert rest == ["train.py", "--config=c.py", "--config.seed=3"]
  c = _config(3)
  cli.apply_json_overrides(c, overrides)
  assert c.model.g_blocks == [{"block": "lap", "resolutions": [8, 16]}]
  assert c.model.d_blocks == []
  with pytest.raises(ValueError, match=r"--config\.model\.g_blocks: value is not valid JSON"):
    cli.apply_json_overrides(c, [("model.g_blocks", "[{block: lap}]")])
  with pytest.raises(ValueError, match=r"no field `model\.nope`"):
    cli.apply_json_overrides(c, [("model.nope", "[]")])


def test_quiet_logging_drops_third_party_info_only():
  flt = cli._FILTER  # pylint: disable=protected-access

  def record(path, level):
    return logging.LogRecord("absl", level, path, 1, "msg", None, None)

  orbax_file = os.path.join(os.path.dirname(ckpt_lib.ocp.__file__), "checkpoint_manager.py")
  assert not flt.filter(record(orbax_file, logging.INFO))
  assert flt.filter(record(orbax_file, logging.WARNING))
  assert flt.filter(record(trainer.__file__, logging.INFO))
