"""Peak memory of one LGGAN local-branch training step (ADE20K size) on this host.

What is measured: the gradient, with respect to all parameters, of the
generator-side LGGAN terms that the local branch adds, for one ADE20K-shaped
sample (batch 1, 256 x 256, K = 151 label channels: 150 classes plus
"other", as the authors' code), i.e. `LabelEncoder` (shared E(S)) +
`LGGANHead` (9 residual blocks, two transposed convs, the class branches with
Eq. 4 fusion, the Eq. 5 classification module, G_w and Eq. 7) with loss
`L1(I^C) + L1(I^L) + class_masked_l1 (Eq. 2) + class loss (Eq. 5)`. The
global generator (SPADE) is not part of it: a fixed random image stands in
for `I^G` (its memory is that of the SPADE generator, measured elsewhere).

Configurations (`--configs`, comma-separated names):
  all151       151 branches at once (`class_chunk_size=None`), no remat
  chunk8       151 branches, scanned in chunks of 8 with remat
  chunk1       151 branches, one per scan step with remat
  top51        `max_local_classes=51` (52 branches, the authors' ADE20K
               code), all at once
  top51_chunk4 52 branches in chunks of 4 with remat

Each configuration runs in its own fresh Python process, which
  * compiles the step with `jax.jit(...).lower(...).compile()` and records
    XLA's buffer plan from `compiled.memory_analysis()`
    (`temp_size_in_bytes`, `argument_size_in_bytes`, `output_size_in_bytes`;
    what the step itself needs, independent of the host process);
  * runs the step once (unless the plan exceeds `--max_run_fraction` of
    MemAvailable, then it is reported as skipped) and records the process's
    peak resident set size (`resource.getrusage(RUSAGE_SELF).ru_maxrss`,
    which includes the Python/JAX runtime, about 0.3-0.5 GB) and the wall time.

Usage (from the repository root):
  PYTHONPATH=$PWD JAX_PLATFORMS=cpu nice -n 19 .venv/bin/python \
      benchmarks/lggan_memory.py --out benchmarks/results/lggan_memory_cpu.json
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

CONFIGS = {
    "all151": dict(max_local_classes=None, class_chunk_size=None, remat=False),
    "chunk8": dict(max_local_classes=None, class_chunk_size=8, remat=True),
    "chunk1": dict(max_local_classes=None, class_chunk_size=1, remat=True),
    "top51": dict(max_local_classes=51, class_chunk_size=None, remat=False),
    "top51_chunk4": dict(max_local_classes=51, class_chunk_size=4, remat=True),
}


def _mem_available_bytes() -> int:
  with open("/proc/meminfo") as f:
    for line in f:
      if line.startswith("MemAvailable:"):
        return int(line.split()[1]) * 1024
  return 0


def worker(name: str, size: int, num_classes: int, max_run_fraction: float) -> dict:
  """Compiles and runs one configuration; returns its measurements."""
  import jax
  import jax.numpy as jnp
  import numpy as np

  from genattn_jax.layers import lggan
  from genattn_jax.models import lggan_heads

  cfg = CONFIGS[name]
  rng = np.random.default_rng(0)
  ids = jnp.asarray(rng.integers(0, num_classes, (1, size, size)), jnp.int32)
  labels = jax.nn.one_hot(ids, num_classes)
  target = jnp.asarray(rng.uniform(-1, 1, (1, size, size, 3)), jnp.float32)
  global_image = jnp.asarray(rng.uniform(-1, 1, (1, size, size, 3)), jnp.float32)
  encoder = lggan_heads.LabelEncoder()
  head = lggan_heads.LGGANHead(num_classes=num_classes, **cfg)

  def init(key):
    k1, k2 = jax.random.split(key)
    enc_vars = encoder.init(k1, labels)
    x_encode, _ = encoder.apply(enc_vars, labels)
    return {"encoder": enc_vars["params"],
            "head": head.init(k2, x_encode, ids, global_image)["params"]}

  params = jax.jit(init)(jax.random.PRNGKey(0))

  def loss_fn(p, ids, labels, target, global_image):  # data as arguments: no constant folding
    x_encode, _ = encoder.apply({"params": p["encoder"]}, labels)
    out = head.apply({"params": p["head"]}, x_encode, ids, global_image)
    l1 = jnp.mean(jnp.abs(out["image"] - target)) + jnp.mean(jnp.abs(out["local"] - target))
    local_l1 = lggan.class_masked_l1(target, out["class_images"], ids, num_classes=num_classes,
                                     max_local_classes=cfg["max_local_classes"])
    return l1 + local_l1 + out["class_loss"]

  step = jax.jit(jax.value_and_grad(loss_fn))
  t0 = time.perf_counter()
  data = (ids, labels, target, global_image)
  compiled = step.lower(params, *data).compile()
  compile_s = time.perf_counter() - t0
  mem = compiled.memory_analysis()
  plan = {k: int(getattr(mem, k)) for k in ("temp_size_in_bytes", "argument_size_in_bytes",
                                            "output_size_in_bytes")}
  plan_total = sum(plan.values())
  result = {"config": name, **cfg, "num_branches": lggan.num_local_branches(
      num_classes, cfg["max_local_classes"]), "compile_s": round(compile_s, 1),
            "xla_plan_bytes": plan, "xla_plan_total_gib": round(plan_total / 2 ** 30, 3),
            "param_count": int(sum(x.size for x in jax.tree_util.tree_leaves(params)))}
  print(json.dumps(result), file=sys.stderr, flush=True)  # progress: the plan before the run
  available = _mem_available_bytes()
  if plan_total > max_run_fraction * available:
    result["run"] = (f"skipped: plan {plan_total / 2**30:.2f} GiB > {max_run_fraction} x "
                     f"MemAvailable {available / 2**30:.2f} GiB")
    return result
  t0 = time.perf_counter()
  value, grads = compiled(params, *data)
  jax.block_until_ready(grads)
  result["run_s"] = round(time.perf_counter() - t0, 1)
  result["loss"] = float(value)
  result["grads_finite"] = bool(all(np.isfinite(np.asarray(g)).all()
                                    for g in jax.tree_util.tree_leaves(grads)))
  result["peak_rss_gib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                                 * 1024 / 2 ** 30, 3)
  return result


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--configs", default=",".join(CONFIGS))
  parser.add_argument("--size", type=int, default=256)
  parser.add_argument("--num_classes", type=int, default=151)
  parser.add_argument("--max_run_fraction", type=float, default=0.6)
  parser.add_argument("--out", default="")
  parser.add_argument("--worker", default="", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.worker:
    print(json.dumps(worker(args.worker, args.size, args.num_classes, args.max_run_fraction)))
    return
  names = [n for n in args.configs.split(",") if n]
  for n in names:
    if n not in CONFIGS:
      raise ValueError(f"--configs: unknown configuration {n!r}; expected from {tuple(CONFIGS)}.")
  rows = []
  for n in names:
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", n, "--size", str(args.size), "--num_classes",
         str(args.num_classes), "--max_run_fraction", str(args.max_run_fraction)],
        capture_output=True, text=True, env=os.environ.copy())
    if proc.returncode != 0:
      rows.append({"config": n, "error": proc.stderr.strip().splitlines()[-1:]})
    else:
      rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    print(json.dumps(rows[-1]), flush=True)
    _write(args, rows)


def _write(args, rows) -> None:
  """Writes the report so far (after every configuration)."""
  import jax  # only for the report's versions
  report = {
      "benchmark": "lggan_memory", "size": args.size, "batch": 1,
      "num_classes": args.num_classes, "machine": platform.processor() or platform.machine(),
      "cpu_count": os.cpu_count(), "jax": jax.__version__, "backend": "cpu",
      "note": ("Local-branch LGGAN generator step (encoder + LGGANHead S5 + Eq. 2/5 losses), "
               "SPADE global generator not included; xla_plan = compiled.memory_analysis(); "
               "peak_rss includes the Python/JAX runtime."),
      "results": rows}
  if args.out:
    with open(args.out, "w") as f:
      json.dump(report, f, indent=1)


if __name__ == "__main__":
  main()
