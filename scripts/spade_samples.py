r"""Sample grids and synthesised test images of a semantic-synthesis (SPADE) run.

  python scripts/spade_samples.py --workdir=runs/pairs_demo --out=docs/samples/pairs_demo \
      [--test_split=test] [--rows=8]

Writes `<out>/label_generated_real.png` (label colours | synthesised | real photo for the
evaluation split), `<out>/<test_split>/<key>.png` for every label map of the photo-less split
and `<out>/<test_split>/grid.png`, and prints the evaluation metrics as JSON.
"""

import json
import os

from absl import app
from absl import flags

from genattn_jax.training import evaluation, sampling, semantic_eval

_WORKDIR = flags.DEFINE_string("workdir", None, "train.py run directory.")
_OUT = flags.DEFINE_string("out", None, "Output folder.")
_TEST_SPLIT = flags.DEFINE_string("test_split", "test", "Split of label maps without photos "
                                  "('' = none).")
_ROWS = flags.DEFINE_integer("rows", 8, "Rows of the label | generated | real grid.")
flags.mark_flags_as_required(["workdir", "out"])


def main(argv):
  del argv
  from genattn_jax import models  # pylint: disable=g-import-not-at-top
  from genattn_jax.training import tasks  # pylint: disable=g-import-not-at-top
  config, state, step = sampling.load_run(_WORKDIR.value)
  gen, disc = models.build_gan(config.model)
  task = tasks.get_task(config, gen, disc)
  grid = task.sample_grid(state, rows=_ROWS.value)
  os.makedirs(_OUT.value, exist_ok=True)
  evaluation.save_png(os.path.join(_OUT.value, "label_generated_real.png"), grid)
  if _TEST_SPLIT.value:
    semantic_eval.synthesize_split(_WORKDIR.value, _TEST_SPLIT.value,
                                   os.path.join(_OUT.value, _TEST_SPLIT.value))
  print(json.dumps({"step": step}))


if __name__ == "__main__":
  app.run(main)
