"""Trains a GAN from an ml_collections config.

  python train.py --config=configs/cifar10_sngan.py --workdir=runs/x [--config.field=value ...]

All logic lives in `genattn_jax.training.trainer.train_and_evaluate`.
"""

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from genattn_jax.training import trainer

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (checkpoints, samples, logs).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  result = trainer.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  logging.info("finished: %s", {k: v for k, v in result.items() if k != "final_state"})
  print(f"[train] done. workdir: {result['workdir']}", flush=True)
  if "sample_grid" in result:
    print(f"[train] sample grid: {result['sample_grid']}", flush=True)
  if "fid" in result:
    print(f"[train] FID: {result['fid']:.3f}", flush=True)


if __name__ == "__main__":
  app.run(main)
