"""Trains a GAN from an ml_collections config.

  python train.py --config=configs/cifar10_sngan.py --workdir=runs/x [--config.field=value ...]
      [--config.model.g_blocks='[{"block": "lap", "resolutions": [8, 16]}]'] [--verbose]

List and dict fields (block placements) take JSON. Third-party INFO logs (orbax, tfds, ...)
are hidden unless `--verbose`. All logic lives in
`genattn_jax.training.trainer.train_and_evaluate`.
"""

import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from genattn_jax.training import cli
from genattn_jax.training import trainer

# JSON-valued overrides (list fields such as block placements) are taken out of the command
# line before ml_collections reads it (it refuses list overrides) and applied in `main`.
sys.argv[:], _JSON_OVERRIDES = cli.split_json_overrides(sys.argv)

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (checkpoints, samples, logs).")
_VERBOSE = flags.DEFINE_bool("verbose", False, "Show INFO logs of third-party libraries "
                             "(orbax, tfds, grain); by default only their warnings.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  cli.configure_logging(_VERBOSE.value)
  config = _CONFIG.value
  try:
    cli.apply_json_overrides(config, _JSON_OVERRIDES)
  except ValueError as e:
    raise app.UsageError(str(e)) from e
  try:
    result = trainer.train_and_evaluate(config, _WORKDIR.value)
  except trainer.RUN_ERRORS as e:
    # Expected failures with a message that says what to do: no traceback, exit code 1.
    print(f"[train] error: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
    sys.exit(1)
  logging.info("finished: %s", {k: v for k, v in result.items() if k != "final_state"})
  print(f"[train] done. workdir: {result['workdir']}", flush=True)
  if "sample_grid" in result:
    print(f"[train] sample grid: {result['sample_grid']}", flush=True)
  if "fid" in result:
    print(f"[train] FID: {result['fid']:.3f}", flush=True)


if __name__ == "__main__":
  app.run(main)
