"""How many cores XLA:CPU's convolution uses, against its matmul, with and without YNNPACK.

The CPU train steps of this project scale worse from one core to two than PyTorch's (SNDCGAN
on this project's 2-core VM: 2.15 s/step pinned to one core with `taskset -c 0`, 1.25 s/step
on both, against PyTorch's 2.24 and 1.11 s). This script shows where: for each operation it
prints the wall time per call and the process's CPU time over the wall time while the
operation runs in a loop (2.0 = both cores busy, 1.0 = one).

Operations, SNDCGAN's discriminator shapes at batch 128 (float32, NHWC / HWIO):
  * `conv3x3`: [128, 16, 16, 64] -> 128, stride 1, SAME (D conv2);
  * `conv4x4_s2`: [128, 32, 32, 64] -> 64, stride 2, padding 1 (D conv1);
  * `conv3x3_rgb`: [128, 32, 32, 3] -> 64 (D conv0, three input channels);
  * `matmul`: [512, 32768] @ [32768, 64] (a kernel-gradient matmul of layers/conv.py);
  * `transpose`: [128, 34, 34, 64] -> channels first;
  * `leaky_relu`: elementwise on [128, 34, 34, 64].
Each runs in a fresh process per XLA_FLAGS variant ('default', and
`--xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_DOT`, which hands convolutions to
YNNPACK's multi-threaded kernels). Jitted `jax.lax` calls only; no project code.

Usage (repository root; prints JSON and writes it to --out):
  JAX_PLATFORMS=cpu .venv/bin/python benchmarks/xla_cpu_threads.py \
      --out benchmarks/results/xla_cpu_threads.json
"""

import argparse
import json
import os
import subprocess
import sys
import time

try:
  from benchmarks import gpu_suite  # run as a module, or with the repository on PYTHONPATH
except ImportError:  # run as a script: benchmarks/ is sys.path[0]
  import gpu_suite  # type: ignore[no-redef]

VARIANTS = {
    "default": "",
    "ynn_dot": "--xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_DOT",
}


def _measure(seconds: float):
  """{op: {ms_per_call, cpu_over_wall}} in this process (XLA_FLAGS already set)."""
  import jax  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel

  nhwc = ("NHWC", "HWIO", "NHWC")
  rng = np.random.default_rng(0)
  arr = lambda *s: jax.numpy.asarray(rng.standard_normal(s, dtype=np.float32))
  conv = lambda x, w, s, p: jax.lax.conv_general_dilated(x, w, s, p, dimension_numbers=nhwc)
  ops = {
      "conv3x3": (lambda x, w: conv(x, w, (1, 1), "SAME"), arr(128, 16, 16, 64),
                  arr(3, 3, 64, 128)),
      "conv4x4_s2": (lambda x, w: conv(x, w, (2, 2), ((1, 1), (1, 1))), arr(128, 32, 32, 64),
                     arr(4, 4, 64, 64)),
      "conv3x3_rgb": (lambda x, w: conv(x, w, (1, 1), "SAME"), arr(128, 32, 32, 3),
                      arr(3, 3, 3, 64)),
      "matmul": (lambda a, b: a @ b, arr(512, 32768), arr(32768, 64)),
      "transpose": (lambda x: x.transpose(3, 0, 1, 2) * 1.0, arr(128, 34, 34, 64)),
      "leaky_relu": (lambda x: jax.nn.leaky_relu(x, 0.1), arr(128, 34, 34, 64)),
  }
  out = {}
  for name, (fn, *args) in ops.items():
    f = jax.jit(fn)
    jax.block_until_ready(f(*args))
    cpu0, t0, calls = time.process_time(), time.perf_counter(), 0
    while time.perf_counter() - t0 < seconds:
      jax.block_until_ready(f(*args))
      calls += 1
    wall = time.perf_counter() - t0
    out[name] = {"ms_per_call": round(1e3 * wall / calls, 2),
                 "cpu_over_wall": round((time.process_time() - cpu0) / wall, 2),
                 "calls": calls}
  return out


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--seconds", type=float, default=3.0, help="loop time per operation")
  parser.add_argument("--out", default="")
  parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.worker:
    print(json.dumps(_measure(args.seconds)))
    return 0
  result = {"benchmark": "xla_cpu_threads",
            "host": gpu_suite.host_info(), "variants": {}}
  for name, flags in VARIANTS.items():
    env = dict(os.environ, XLA_FLAGS=flags, JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, __file__, "--worker", "--seconds",
                           str(args.seconds)], env=env, capture_output=True, text=True,
                          check=False)
    if proc.returncode:
      raise RuntimeError(f"worker for {name!r} failed:\n{proc.stderr[-2000:]}")
    result["variants"][name] = {"xla_flags": flags,
                                "ops": json.loads(proc.stdout.strip().splitlines()[-1])}
  import jax  # pylint: disable=import-outside-toplevel
  result["env"] = {"jax": jax.__version__}
  text = json.dumps(result, indent=1)
  print(text)
  if args.out:
    with open(args.out, "w", encoding="utf-8") as f:
      f.write(text + "\n")
  return 0


if __name__ == "__main__":
  sys.exit(main())
