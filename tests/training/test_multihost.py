"""Multi-host for real: two `jax.distributed` processes (2 x 4 CPU devices) on one machine.

Training (`train.py` through `multihost_worker.py`, on the real CIFAR-10 images of
tests/fixtures/cifar10_mini):
  * run 1: both processes train, checkpoint steps 1 and 2, then are SIGKILLed;
  * run 2: the same command resumes from checkpoint 2 and runs step 3.
Checked: each process read its own, disjoint shard, batch for batch the one an uninterrupted
loader gives (so the data iterator resumed where it stopped); the parameters in checkpoints 2
and 3 equal a single-process 8-device run of the same global batches from the same initial
state to 1e-5; every step has exactly one committed checkpoint, written by orbax's
multi-process protocol (both processes' array and iterator files, one set of metadata, no
temporary directories).

FID (`eval.py --distributed`): feature extraction split over the two processes gives the FID
of a single-process run to 1e-6 relative, on both processes.

Every launch has a deadline; both processes are killed (whole process groups) when it passes
or the test fails.
"""

import glob
import hashlib
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from genattn_jax.training import checkpoint as ckpt_lib
from genattn_jax.training import parallel
from genattn_jax.training import state as state_lib
from genattn_jax.training import trainer
from tests.training import multihost_config

REPO = pathlib.Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "cifar10_mini"
CONFIG = "tests/training/multihost_config.py"
DEADLINE_S = 1800  # per launch: on 2 cores shared with other jobs, one took 16 min


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _child_env():
  env = dict(os.environ)
  flags = [f for f in env.get("XLA_FLAGS", "").split()
           if not f.startswith("--xla_force_host_platform_device_count")]
  env.update(XLA_FLAGS=" ".join(flags + ["--xla_force_host_platform_device_count=4"]),
             JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO) + os.pathsep + env.get("PYTHONPATH", ""))
  return env


def _dist_flags(port: int, i: int, config_prefix: str):
  return [f"--{config_prefix}distributed=True",
          f"--{config_prefix}coordinator_address=127.0.0.1:{port}",
          f"--{config_prefix}num_processes=2", f"--{config_prefix}process_id={i}"]


def _run_pair(argvs, logdir: pathlib.Path, name: str, until: str = ""):
  """Runs two processes; returns their logs once both exit (or both print `until`).

  With `until`, both are SIGKILLed as soon as each has printed it. On a deadline, a
  non-zero exit or any error, both process groups are killed and the test fails.
  """
  logs = [logdir / f"{name}_{i}.log" for i in range(2)]
  procs = []
  try:
    for argv, log in zip(argvs, logs):
      with open(log, "w") as f:
        procs.append(subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, cwd=REPO,
                                      env=_child_env(), start_new_session=True))
    deadline = time.time() + DEADLINE_S
    while time.time() < deadline:
      texts = [log.read_text(errors="replace") for log in logs]
      if until and all(until in t for t in texts):
        return texts
      codes = [p.poll() for p in procs]
      if any(c not in (None, 0) for c in codes) or (all(c == 0 for c in codes) and until):
        pytest.fail(f"{name}: exit codes {codes}\n" + "\n".join(t[-3000:] for t in texts))
      if all(c == 0 for c in codes):
        return texts
      time.sleep(0.5)
    pytest.fail(f"{name}: not done after {DEADLINE_S} s\n" +
                "\n".join(log.read_text(errors="replace")[-3000:] for log in logs))
  finally:
    for p in procs:
      if p.poll() is None:
        os.killpg(p.pid, signal.SIGKILL)
      p.wait()


def _train_argvs(workdir, record_dir, data_dir, pause_after=-1):
  port = _free_port()
  return [[sys.executable, "tests/training/multihost_worker.py", f"--record_dir={record_dir}",
           f"--pause_after_step={pause_after}", "--",
           f"--config={CONFIG}", f"--workdir={workdir}", f"--config.data.data_dir={data_dir}",
           *_dist_flags(port, i, "config.parallel.")] for i in range(2)]


def _recorded(record_dir, process):
  files = sorted(glob.glob(os.path.join(record_dir, f"batch_p{process}_c*.npz")),
                 key=lambda f: int(f.rsplit("_c", 1)[1][:-4]))
  return [dict(np.load(f)) for f in files]


def _image_keys(images):
  """A key per image that a horizontal flip (the loader's augmentation) does not change."""
  return [min(hashlib.sha1(np.ascontiguousarray(im).tobytes()).hexdigest(),
              hashlib.sha1(np.ascontiguousarray(im[:, ::-1]).tobytes()).hexdigest())
          for im in images]


def _expected_shards(config, data_dir, monkeypatch, steps):
  """The batches each of the two processes reads in `steps` uninterrupted steps."""
  from genattn_jax.data import pipeline  # pylint: disable=g-import-not-at-top
  from genattn_jax.data import local_images  # pylint: disable=g-import-not-at-top
  cfg = config.data.copy_and_resolve_references()
  cfg.data_dir = str(data_dir)
  monkeypatch.setattr(pipeline, "_prepare_local_once", local_images.prepare_local_images)
  shards = []
  for i in range(2):
    monkeypatch.setattr(jax, "process_index", lambda i=i: i)
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    it = iter(pipeline.create_data_loader(
        cfg, global_batch_size=config.training.batch_size * config.training.n_critic,
        seed=config.seed))
    shards.append([next(it) for _ in range(steps)])
  monkeypatch.undo()
  return shards


def _reference_states(config, initial, global_batches):
  """Single process, all 8 devices: (backend, host copies of the state after each batch)."""
  _, _, train_step = trainer.build(config)
  assert jax.process_count() == 1 and jax.device_count() == 8
  backend = parallel.make_backend("jit", train_step)
  step_rng = jax.random.split(jax.random.PRNGKey(config.seed))[1]  # as the trainer splits it
  state, out = backend.put_state(initial), []
  for batch in global_batches:
    state, _ = backend.step(state, backend.put_batch(batch), step_rng)
    out.append(jax.device_get(backend.get_state(state)))  # a copy: the step donates `state`
  return backend, out


@pytest.mark.slow
def test_two_processes_train_resume_and_match_one(tmp_path, monkeypatch):
  config = multihost_config.get_config()
  data_dir, workdir = tmp_path / "tfds", tmp_path / "run"
  rec1, rec2 = tmp_path / "rec1", tmp_path / "rec2"

  # Run 1: steps 1-2, then both processes are killed.
  texts = _run_pair(_train_argvs(workdir, rec1, data_dir, pause_after=2), tmp_path, "run1",
                    until="PAUSED")
  assert all("PAUSED" in t and "[train] done" not in t for t in texts)
  checkpoints = workdir / "checkpoints"
  assert sorted(int(p.name) for p in checkpoints.iterdir() if p.name.isdigit()) == [1, 2]

  # Run 2: the same command resumes from checkpoint 2 and finishes step 3.
  texts = _run_pair(_train_argvs(workdir, rec2, data_dir), tmp_path, "run2")
  assert all("resumed from step 2" in t and "[train] done" in t for t in texts), texts[0][-2000:]

  # Data: each process read its own shard, disjoint from the other's, and after the restart
  # went on with the batch an uninterrupted loader gives.
  read = [_recorded(rec1, p)[:2] + _recorded(rec2, p) for p in range(2)]
  assert [len(r) for r in read] == [3, 3]
  per_process = config.training.batch_size // 2
  keys = [sum((_image_keys(b["image"]) for b in r), []) for r in read]
  for k in keys:
    assert len(k) == 3 * per_process == len(set(k))
  assert not set(keys[0]) & set(keys[1])
  expected = _expected_shards(config, data_dir, monkeypatch, steps=3)
  for p in range(2):
    for got, want in zip(read[p], expected[p]):
      np.testing.assert_array_equal(got["image"], want["image"])
      np.testing.assert_array_equal(got["label"], want["label"])

  # Checkpoints: one committed directory per step, written through orbax's multi-process
  # protocol: each process wrote its own OCDBT sub-store and array metadata, process 0
  # merged them under one manifest and committed once; one iterator state per process.
  names = sorted(p.name for p in checkpoints.iterdir())
  assert names == ["1", "2", "3"], names
  for step in (1, 2, 3):
    d = checkpoints / str(step)
    assert sorted(p.name for p in d.iterdir() if p.is_dir()) == ["data", "meta", "state"]
    assert (d / "commit_success.txt").is_file() and (d / "_CHECKPOINT_METADATA").is_file()
    assert sorted(p.name for p in (d / "data").glob("process_*")) == [
        "process_0-of-2.json", "process_1-of-2.json"]
    state_dir = d / "state"
    assert sorted(p.name for p in state_dir.glob("ocdbt.process_*")) == [
        "ocdbt.process_0", "ocdbt.process_1"]
    assert sorted(p.name for p in (state_dir / "array_metadatas").iterdir()) == [
        "process_0", "process_1"]
    assert (state_dir / "manifest.ocdbt").is_file() and (state_dir / "_METADATA").is_file()
    assert not list(d.rglob("*tmp*")), list(d.rglob("*tmp*"))

  # Parameters: equal to one process on 8 devices given the same global batches.
  generator, discriminator, _ = trainer.build(config)
  initial = _initial_state_from(rec1, config, generator, discriminator)
  global_batches = [{k: np.concatenate([read[0][s][k], read[1][s][k]])
                     for k in ("image", "label")} for s in range(3)]
  backend, refs = _reference_states(config, initial, global_batches)
  ckpt = ckpt_lib.Checkpointer(str(checkpoints), async_save=False)
  try:
    for step in (2, 3):
      restored = jax.device_get(ckpt.restore(step, backend.put_state(refs[step - 1])))
      assert int(restored.step) == step
      for part in ("g_params", "d_params", "ema_params", "d_state", "g_state"):
        np.testing.assert_allclose(
            np.concatenate([np.ravel(x) for x in jax.tree_util.tree_leaves(
                getattr(restored, part))]),
            np.concatenate([np.ravel(x) for x in jax.tree_util.tree_leaves(
                getattr(refs[step - 1], part))]), rtol=1e-5, atol=1e-5,
            err_msg=f"checkpoint {step} {part}")
  finally:
    ckpt.close()


def _initial_state_from(record_dir, config, generator, discriminator):
  """The initial state the workers built (saved by process 0 at `put_state`)."""
  shapes = jax.eval_shape(lambda r: state_lib.create_gan_state(config, generator, discriminator,
                                                               r), jax.random.PRNGKey(0))
  saved = np.load(os.path.join(record_dir, "state_p0.npz"))
  leaves = [saved[f"leaf{i}"] for i in range(len(saved.files))]
  treedef = jax.tree_util.tree_structure(shapes)
  for leaf, shape in zip(leaves, jax.tree_util.tree_leaves(shapes)):
    assert leaf.shape == shape.shape and leaf.dtype == shape.dtype
  return jax.tree_util.tree_unflatten(treedef, leaves)


@pytest.mark.slow
def test_two_processes_fid_equals_one(tmp_path):
  from genattn_jax.metrics import evaluate  # pylint: disable=g-import-not-at-top
  from genattn_jax.metrics import inception_weights  # pylint: disable=g-import-not-at-top
  from tests.metrics.test_inception import random_state_dict  # pylint: disable=g-import-not-at-top
  # Seeded random Inception weights (tests/fixtures/inception_random.npz's recipe): no download.
  r = np.load(REPO / "tests" / "fixtures" / "inception_random.npz")
  shapes = {str(k): tuple(int(d) for d in s[:n])
            for k, s, n in zip(r["keys"], r["shapes"], r["ndims"])}
  weights = inception_weights.save_npz(random_state_dict(shapes, int(r["seed"])),
                                       tmp_path / "inception_random_weights.npz", "random")
  real, fake = FIXTURE / "train", FIXTURE / "test"
  common = [f"--real={real}", f"--fake={fake}", f"--weights={weights}", "--batch_size=8",
            "--num_images=16", "--nokid", "--noinception_score", "--noprogress", "--json"]
  port = _free_port()
  texts = _run_pair([[sys.executable, "eval.py", *common,
                      *_dist_flags(port, i, "")]
                     for i in range(2)], tmp_path, "fid")
  results = [json.loads([line for line in t.splitlines() if line.startswith("{")][-1])
             for t in texts]
  want = evaluate.evaluate_paths(str(real), str(fake), weights_path=weights, batch_size=8,
                                 num_images=16, compute_kid=False, compute_is=False,
                                 progress=False)
  assert want["num_real"] == want["num_fake"] == 16
  for got in results:
    assert got["num_real"] == got["num_fake"] == 16
    np.testing.assert_allclose(got["fid"], want["fid"], rtol=1e-6)


def test_initialize_distributed_checks_its_fields():
  assert parallel.initialize_distributed({"distributed": False}) is False
  with pytest.raises(ValueError, match="num_processes.*process_id"):
    parallel.initialize_distributed({"distributed": True, "num_processes": 2})
  with pytest.raises(ValueError, match=r"process_id.*\[0, 2\)"):
    parallel.initialize_distributed({"distributed": True, "num_processes": 2, "process_id": 2})
