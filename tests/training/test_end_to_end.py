"""`train_and_evaluate` on real CIFAR-10 images: checkpoint, sample grid, finite FID; then
`eval.py --workdir` samples the trained EMA and raw generators and scores them."""

import glob
import json
import math
import os
import pathlib
import subprocess
import sys

import chex
import jax
import numpy as np
from PIL import Image
import pytest

from configs import cifar10_sngan_an
from genattn_jax.training import sampling, trainer

REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, inception_weights_fetched_with_pip):
  workdir = tmp_path_factory.mktemp("run")
  config = cifar10_sngan_an.get_test_config()   # ResNet + AN in G and D, ortho reg on
  result = trainer.train_and_evaluate(config, str(workdir))
  return config, workdir, result


@pytest.mark.slow
def test_run_writes_checkpoint_grid_and_finite_fid(trained_run):
  config, workdir, result = trained_run
  assert result["step"] == config.training.num_steps
  assert math.isfinite(result["fid"]) and result["fid"] > 0
  assert math.isfinite(result["ortho"]) and result["ortho"] > 0
  # The config asks for both generators (eval.fid_both); 'fid' is the one eval.fid_params names.
  assert result["fid"] == result["fid_ema"] and math.isfinite(result["fid_raw"])
  assert result["fid_raw"] != result["fid_ema"]
  steps = sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
  assert steps[-1] == config.training.num_steps
  grid = Image.open(result["sample_grid"])
  rows = config.eval.grid_rows
  assert grid.size == (rows * 32, rows * 32) and grid.mode == "RGB"
  assert np.asarray(grid).std() > 0
  lines = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert lines[-1]["step"] == config.training.num_steps and lines[-1]["fid"] == result["fid"]
  assert glob.glob(str(workdir / "events.out.tfevents.*"))
  assert len(glob.glob(str(workdir / "fid_stats" / "real_*.npz"))) == 1


@pytest.mark.slow
def test_restored_run_matches_final_state_and_samples(trained_run):
  config, workdir, result = trained_run
  _, state, step = sampling.load_run(str(workdir))
  assert step == config.training.num_steps
  chex.assert_trees_all_equal(state.ema_params, jax.device_get(result["final_state"].ema_params))
  chex.assert_trees_all_equal(state.g_state, jax.device_get(result["final_state"].g_state))
  batches = list(sampling.sample_images_from_workdir(str(workdir), num_images=10, batch_size=4))
  assert [b.shape for b in batches] == [(4, 32, 32, 3), (4, 32, 32, 3), (2, 32, 32, 3)]
  assert all(b.dtype == np.uint8 for b in batches)
  raw = list(sampling.sample_images_from_workdir(str(workdir), num_images=10, batch_size=4,
                                                 generator="raw"))
  assert [b.shape for b in raw] == [b.shape for b in batches]
  assert any(np.any(r != e) for r, e in zip(raw, batches))  # G's own weights, not the EMA
  with pytest.raises(ValueError, match="`generator` must be 'ema' or 'raw'"):
    next(sampling.sample_images_from_workdir(str(workdir), num_images=4, generator="best"))


@pytest.mark.slow
def test_eval_cli_scores_a_workdir(trained_run):
  _, workdir, _ = trained_run
  stats = glob.glob(str(workdir / "fid_stats" / "real_*.npz"))[0]
  env = dict(os.environ, XLA_FLAGS=os.environ["XLA_FLAGS"],  # 8 devices (conftest)
             JAX_PLATFORMS="cpu")


  def eval_py(*flags):
    proc = subprocess.run([sys.executable, "eval.py", f"--real={stats}", f"--workdir={workdir}",
                           "--num_images=16", "--batch_size=8", "--json", *flags],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])

  both = eval_py()  # the run's config has eval.fid_both: EMA and raw G, suffixed keys
  assert math.isfinite(both["fid_ema"]) and both["fid_ema"] > 0
  assert math.isfinite(both["fid_raw"]) and both["fid_raw"] != both["fid_ema"]
  raw = eval_py("--generator=raw")  # the same samples as the raw half of `both`
  assert raw["fid"] == pytest.approx(both["fid_raw"], rel=1e-6)
