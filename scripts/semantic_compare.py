r"""Scores several semantic-synthesis runs at the same step and draws one comparison grid.

  python scripts/semantic_compare.py --runs=SPADE=runs/a,DAGAN=runs/b,LGGAN=runs/c \
      --step=60 --out_json=benchmarks/results/x.json --out_png=docs/samples/x.png [--rows=4]

For every run: restores checkpoint `--step` (newest when 0), evaluates it as `eval.py` does
(`SemanticEvaluator.evaluate`: FID / PSNR / SSIM / LPIPS on the run's `eval.split`), and
synthesises the first `--rows` evaluation label maps. The grid has one row per example:
label colours | each run's image (in `--runs` order) | real photo. The JSON holds each run's
metrics, step and config name, plus `--note` / `--machine` strings.
"""

import json
import os
import time

from absl import app
from absl import flags
import numpy as np

from genattn_jax.data import paired
from genattn_jax.training import evaluation, sampling

_RUNS = flags.DEFINE_list("runs", None, "NAME=workdir pairs, in grid order.")
_STEP = flags.DEFINE_integer("step", 0, "Checkpoint step of every run (0 = newest).")
_ROWS = flags.DEFINE_integer("rows", 4, "Examples in the grid.")
_OUT_JSON = flags.DEFINE_string("out_json", None, "Metrics JSON path.")
_OUT_PNG = flags.DEFINE_string("out_png", None, "Grid PNG path.")
_NOTE = flags.DEFINE_string("note", "", "Free text stored in the JSON.")
_MACHINE = flags.DEFINE_string("machine", "", "Machine description stored in the JSON.")
flags.mark_flags_as_required(["runs", "out_json", "out_png"])


def main(argv):
  del argv
  from genattn_jax import models  # pylint: disable=g-import-not-at-top
  from genattn_jax.training import tasks  # pylint: disable=g-import-not-at-top
  results, columns, data, num_labels = {}, [], None, None
  for spec in _RUNS.value:
    name, _, workdir = spec.partition("=")
    if not workdir:
      raise app.UsageError(f"--runs entries must be NAME=workdir, got {spec!r}.")
    t0 = time.time()
    config, state, step = sampling.load_run(workdir, _STEP.value or None)
    gen, disc = models.build_gan(config.model)
    task = tasks.get_task(config, gen, disc)
    params = task.eval_params(state)
    metrics = task.evaluator.evaluate(params, state.g_state)
    data, num_labels = task.evaluator.data, task.num_labels
    n = min(_ROWS.value, len(data["label"]))
    columns.append(task.evaluator.generate(params, state.g_state, data["label"][:n],
                                           data["edge"][:n]))
    results[name] = dict(metrics, step=step, config=config.name, workdir=workdir,
                         eval_seconds=round(time.time() - t0, 1))
    print(json.dumps({name: results[name]}), flush=True)
  n = columns[0].shape[0]
  colours = paired.colorize_labels(data["label"][:n], num_labels)
  real = evaluation.to_uint8(data["image"][:n])
  grid = np.concatenate([np.concatenate([colours[i]] + [c[i] for c in columns] + [real[i]],
                                        axis=1) for i in range(n)], axis=0)
  os.makedirs(os.path.dirname(os.path.abspath(_OUT_PNG.value)), exist_ok=True)
  evaluation.save_png(_OUT_PNG.value, grid)
  out = {"runs": results, "grid": _OUT_PNG.value,
         "grid_columns": ["label"] + [s.partition("=")[0] for s in _RUNS.value] + ["real"],
         "note": _NOTE.value, "machine": _MACHINE.value}
  os.makedirs(os.path.dirname(os.path.abspath(_OUT_JSON.value)), exist_ok=True)
  with open(_OUT_JSON.value, "w") as f:
    json.dump(out, f, indent=2, sort_keys=True)


if __name__ == "__main__":
  app.run(main)
