"""Tests of `eval.py` and genattn_jax.metrics.evaluate.evaluate_paths."""

import json
import os
import pathlib
import subprocess
import sys
import tarfile

import numpy as np
from PIL import Image
import pytest

from genattn_jax.metrics import evaluate
from genattn_jax.metrics import fid
from genattn_jax.metrics import inception_score as is_lib
from genattn_jax.metrics import kid as kid_lib

REPO = pathlib.Path(__file__).resolve().parents[2]


def _run_cli(*args, timeout=120):
  env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
  return subprocess.run([sys.executable, str(REPO / "eval.py"), *args], capture_output=True,
                        text=True, timeout=timeout, cwd=REPO, env=env)


@pytest.fixture
def stats_files(tmp_path):
  rng = np.random.default_rng(0)
  real = rng.standard_normal((200, 16))
  fake = rng.standard_normal((150, 16)) * 1.2 + 0.3
  real_path = fid.save_statistics(tmp_path / "real.npz", *fid.feature_statistics(real))
  fake_path = fid.save_statistics(tmp_path / "fake.npz", *fid.feature_statistics(fake))
  return real_path, fake_path, fid.fid_from_features(real, fake)


def test_cli_statistics_json(stats_files, tmp_path):
  real_path, fake_path, want = stats_files
  out = tmp_path / "copy.npz"
  proc = _run_cli(f"--real={real_path}", f"--fake={fake_path}", "--json",
                  f"--save_stats={out}")
  assert proc.returncode == 0, proc.stderr
  result = json.loads(proc.stdout)
  np.testing.assert_allclose(result["fid"], want, rtol=1e-9)
  assert result["real_kind"] == result["fake_kind"] == "stats_npz"
  assert "kid_mean" not in result and "is_mean" not in result
  assert any("KID skipped" in n for n in result["notes"])
  assert result["saved_real_stats"] == str(out)
  for got, ref in zip(fid.load_statistics(out), fid.load_statistics(real_path)):
    np.testing.assert_array_equal(got, ref)


def test_cli_statistics_text_and_errors(stats_files, tmp_path):
  real_path, fake_path, want = stats_files
  proc = _run_cli(f"--real={real_path}", f"--fake={fake_path}")
  assert proc.returncode == 0, proc.stderr
  assert f"FID: {want:.4f}" in proc.stdout
  proc = _run_cli(f"--real={tmp_path / 'missing'}", f"--fake={fake_path}")
  assert proc.returncode != 0
  assert "does not exist" in proc.stderr and "image folder" in proc.stderr
  proc = _run_cli(f"--real={real_path}")
  assert proc.returncode != 0 and "exactly one of --fake and --workdir" in proc.stderr
  proc = _run_cli(f"--real={real_path}", f"--workdir={tmp_path}")
  assert proc.returncode != 0 and "has no config.json" in proc.stderr


def _toy_extractor(batches, *, batch_size, with_logits, progress):
  """Stand-in for the Inception: 4x4-block colour means (48-d) and a 10-way linear head."""
  del batch_size, progress
  feats = []
  for batch in batches:
    batch = np.asarray(batch)
    if batch.dtype == np.uint8:
      batch = batch / 127.5 - 1.0
    batch = batch.astype(np.float64)
    b, h, w, c = batch.shape
    blocks = batch.reshape(b, 4, h // 4, 4, w // 4, c).mean(axis=(2, 4))
    feats.append(blocks.reshape(b, -1))
  pool = np.concatenate(feats).astype(np.float32)
  logits = pool @ np.linspace(-1, 1, pool.shape[1] * 10).reshape(-1, 10) if with_logits else None
  return {"pool": pool, "logits": logits}


def test_evaluate_paths_images_with_injected_extractor(tmp_path):
  rng = np.random.default_rng(1)
  real = rng.integers(0, 256, (24, 8, 8, 3), dtype=np.uint8)
  fake = np.clip(real.astype(int) + rng.integers(-60, 60, real.shape), 0, 255).astype(np.uint8)
  for i, image in enumerate(real):
    Image.fromarray(image).save(tmp_path / f"{i:03d}.png")
  np.savez(tmp_path / "fake.npz", images=fake.transpose(0, 3, 1, 2))  # NCHW on disk.
  result = evaluate.evaluate_paths(
      tmp_path, tmp_path / "fake.npz", batch_size=5, kid_subsets=5, kid_subset_size=10,
      is_splits=2, extract_fn=_toy_extractor, save_fake_stats=tmp_path / "out" / "fake",
      progress=False)
  real_f = _toy_extractor([real], batch_size=1, with_logits=False, progress=False)["pool"]
  fake_out = _toy_extractor([fake], batch_size=1, with_logits=True, progress=False)
  np.testing.assert_allclose(result["fid"], fid.fid_from_features(real_f, fake_out["pool"]),
                             rtol=1e-6)
  np.testing.assert_allclose(
      (result["kid_mean"], result["kid_std"]),
      kid_lib.kernel_inception_distance(real_f, fake_out["pool"], num_subsets=5,
                                        subset_size=10), rtol=1e-6)
  np.testing.assert_allclose((result["is_mean"], result["is_std"]),
                             is_lib.inception_score(fake_out["logits"], 2), rtol=1e-6)
  assert (result["num_real"], result["num_fake"]) == (24, 24)
  assert (result["real_kind"], result["fake_kind"]) == ("folder", "images_npz")
  assert result["saved_fake_stats"].endswith("fake.npz")
  assert result["notes"] == []
  text = evaluate.format_result(result)
  assert "FID:" in text and "KID:" in text and "IS:" in text
  # Mixed: statistics against images, with a limit on the number of images.
  limited = evaluate.evaluate_paths(result["saved_fake_stats"], tmp_path, num_images=10,
                                    extract_fn=_toy_extractor, progress=False)
  assert limited["num_fake"] == 10 and "kid_mean" not in limited and "is_mean" in limited
  np.testing.assert_allclose(limited["fid"], fid.fid_from_features(fake_out["pool"],
                                                                   real_f[:10]), rtol=1e-6)


def test_cli_end_to_end_inception_on_cifar10(shared_data_dir, tmp_path,
                                            inception_weights_fetched_with_pip):
  """Real InceptionV3 on a few CIFAR-10 JPEGs (needs genattn_jax.metrics.features)."""
  count = {"cat": 0, "ship": 0}
  with tarfile.open(shared_data_dir / "cifar10-jpeg.tar.gz") as tar:
    for member in tar:
      parts = member.name.split("/")
      if member.isfile() and len(parts) == 3 and parts[1] in count and count[parts[1]] < 8:
        tar.extract(member, tmp_path, filter="data")
        count[parts[1]] += 1
      if min(count.values()) == 8:
        break
  cats, ships = tmp_path / "train" / "cat", tmp_path / "train" / "ship"
  proc = _run_cli(f"--real={cats}", f"--fake={ships}", "--json", "--batch_size=8",
                  "--kid_subset_size=8", "--kid_subsets=4", "--is_splits=2",
                  f"--save_stats={tmp_path / 'cats.npz'}", timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  result = json.loads(proc.stdout)
  assert np.isfinite(result["fid"]) and result["fid"] > 0
  assert result["num_real"] == result["num_fake"] == 8
  assert np.isfinite(result["kid_mean"])
  mu, sigma = fid.load_statistics(tmp_path / "cats.npz")
  assert mu.shape == (2048,) and sigma.shape == (2048, 2048)
