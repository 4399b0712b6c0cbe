"""FID and sample grid of finished CIFAR-10 runs (the LAP host pairs), from their checkpoints.

  python benchmarks/lap_cifar10_pair.py --workdirs runs/a runs/b \
      --real_stats runs/cifar10_test5000_stats.npz --num_fake 2000 \
      --json_out benchmarks/results/x.json --grid_dir docs/samples

For each workdir: restores a verified checkpoint (`training.sampling.load_run`; the newest, or
`--step`), computes (when `--real_stats` is given) the FID of `--num_fake` generated samples
against those real statistics through the run's own task (`task.evaluate`), and saves the
task's 8×8 sample grid as `<grid_dir>/<config name>_step<N>.png`. `--generator` picks the
parameters that generate: 'ema' (the EMA generator, the library's default), 'raw' (the
trained G's own parameters, swapped into the EMA slot) or 'both' (two FIDs; grids of both,
the raw one as `..._step<N>_raw.png`). Prints one JSON object (and writes it to `--json_out`).
"""

import argparse
import json
import os
import platform
import time

import jax

from genattn_jax import models
from genattn_jax.training import evaluation, sampling
from genattn_jax.training import tasks as tasks_lib


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--workdirs", nargs="+", required=True)
  parser.add_argument("--real_stats", default="",
                      help="real FID statistics (.npz); empty: grids only, no FID")
  parser.add_argument("--num_fake", type=int, default=2000)
  parser.add_argument("--step", type=int, default=None, help="checkpoint step (default newest)")
  parser.add_argument("--generator", choices=("ema", "raw", "both"), default="ema")
  parser.add_argument("--json_out", default="")
  parser.add_argument("--grid_dir", default="docs/samples")
  args = parser.parse_args()
  out = {"platform": jax.devices()[0].platform, "cpu_count": os.cpu_count(),
         "machine": platform.machine(), "num_fake": args.num_fake,
         "real_stats": os.path.basename(args.real_stats), "runs": []}
  for wd in args.workdirs:
    config, state, step = sampling.load_run(wd, args.step)
    with config.unlocked():
      config.eval.num_fake = args.num_fake
      config.eval.real_stats = os.path.abspath(args.real_stats) if args.real_stats else ""
    generator, discriminator = models.build_gan(config.model)
    task = tasks_lib.get_task(config, generator, discriminator)
    kinds = ("ema", "raw") if args.generator == "both" else (args.generator,)
    row = {"workdir": wd, "config": config.name, "step": step,
           "g_params": int(sum(x.size for x in jax.tree_util.tree_leaves(state.g_params)))}
    for kind in kinds:
      st = state if kind == "ema" else state.replace(ema_params=state.g_params)
      t0 = time.time()
      scores = task.evaluate(st, wd) if args.real_stats else {"fid": None}
      suffix = "" if kind == "ema" else "_raw"
      grid_path = evaluation.save_png(
          os.path.join(args.grid_dir, f"{config.name}_step{step}{suffix}.png"),
          task.sample_grid(st, rows=8))
      row.update({f"fid{suffix}": scores["fid"],
                  f"eval_seconds{suffix}": round(time.time() - t0, 1), f"grid{suffix}": grid_path})
    out["runs"].append(row)
    print(json.dumps(out["runs"][-1]), flush=True)
  if args.json_out:
    os.makedirs(os.path.dirname(args.json_out) or ".", exist_ok=True)
    with open(args.json_out, "w") as f:
      json.dump(out, f, indent=2)
  print(json.dumps(out))


if __name__ == "__main__":
  main()
