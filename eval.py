r"""FID / KID / Inception Score between two image sets.

  python eval.py --real=PATH --fake=PATH [--json] [--save_stats=OUT.npz]

Each PATH is an image folder (.png/.jpg/.jpeg, recursive), an .npz of images (array
`images` or a single array; NHWC or NCHW; uint8 or float in [-1, 1]) or an .npz of
statistics (`mu`, `sigma`, pytorch-fid layout). FID is always printed; KID when both
sides are images; the Inception Score of the fake side when it is images and the
Inception weights carry the classifier. `--save_stats` writes the statistics of the
real side (e.g. to reuse a dataset's statistics), `--save_fake_stats` those of the fake
side. `--json` prints a single JSON object instead of text. The logic lives in
`genattn_jax.metrics.evaluate.evaluate_paths`.

  python eval.py --real=PATH --workdir=runs/x [--num_images=10000]

samples the fake side from the EMA generator of a `train.py` run's newest verified checkpoint.

  python eval.py --real=PATH --fake=PATH --distributed [--coordinator_address=HOST:PORT
      --num_processes=N --process_id=I]

runs the Inception over the devices of N processes (`jax.distributed`; the addresses are
detected on TPU pods and SLURM when left out): each process reads both sides, feeds its
share of every batch, and all print the same result.
Exit status 1 with a one-line error (no traceback) when an image file cannot be decoded
(the file is named) or the generator of `--workdir` produces NaN/inf pixels (a diverged
checkpoint: no FID is reported for it). Third-party INFO logs are hidden unless `--verbose`.
  python eval.py --workdir=runs/pairs_demo

for a semantic-synthesis run (config task 'semantic'): synthesises its evaluation split from
the label maps and prints FID vs the real photos, PSNR, SSIM and LPIPS (and mIoU / accuracy
with `eval.segmenter`) as JSON (`genattn_jax.training.semantic_eval.evaluate_workdir`).
"""

import json
import sys

from absl import app
from absl import flags

from genattn_jax import _checks
from genattn_jax.metrics import evaluate
from genattn_jax.training import parallel
from genattn_jax.training import cli
from genattn_jax.training import evaluation
from genattn_jax.training import sampling
from genattn_jax.training import semantic_eval

_REAL = flags.DEFINE_string("real", None, "Real images: folder, .npz of images or of stats.")
_FAKE = flags.DEFINE_string("fake", None, "Generated images: folder, .npz of images or of "
                            "stats. Exclusive with --workdir.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Training workdir: sample the fake images "
                               "from its latest checkpoint instead of --fake.")
_JSON = flags.DEFINE_bool("json", False, "Print one JSON object instead of text.")
_SAVE_STATS = flags.DEFINE_string("save_stats", None, "Write the real side's statistics "
                                  "(mu, sigma) to this .npz.")
_SAVE_FAKE_STATS = flags.DEFINE_string("save_fake_stats", None, "Write the fake side's "
                                       "statistics to this .npz.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 64, "Images per Inception forward pass.")
_NUM_IMAGES = flags.DEFINE_integer("num_images", None, "Use at most this many images per "
                                   "side (default: all).")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", None, "Resize folder images to this square "
                                   "size (needed when a folder mixes sizes).")
_WEIGHTS = flags.DEFINE_string("weights", None, "InceptionV3 FID weights (default: see "
                               "genattn_jax.metrics.features.load_inception).")
_KID = flags.DEFINE_bool("kid", True, "Compute KID when both sides are images.")
_IS = flags.DEFINE_bool("inception_score", True, "Compute the Inception Score when possible.")
_KID_SUBSETS = flags.DEFINE_integer("kid_subsets", 100, "KID: number of random subsets.")
_KID_SUBSET_SIZE = flags.DEFINE_integer("kid_subset_size", 1000, "KID: samples per subset.")
_IS_SPLITS = flags.DEFINE_integer("is_splits", 10, "Inception Score: number of splits.")
_INTRA_FID = flags.DEFINE_integer("intra_fid_classes", 0, "With --workdir of a class-"
                                  "conditional run: also report intra-FID over this many "
                                  "classes (metrics/intra_fid.py; real per-class statistics "
                                  "cached in the workdir).")
_GENERATOR = flags.DEFINE_enum("generator", "config", list(sampling.GENERATOR_CHOICES),
                               "With --workdir: score the EMA generator, the raw one, both "
                               "(keys get an _ema / _raw suffix; the real side is read for "
                               "each, so pass it as a statistics .npz), or what the run's "
                               "config says (eval.fid_both, eval.fid_params).")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the KID subsets (and of --workdir sampling).")
_PROGRESS = flags.DEFINE_bool("progress", True, "Show progress bars (on stderr).")
_DISTRIBUTED = flags.DEFINE_bool("distributed", False, "Start jax.distributed (multi-process "
                                 "feature extraction).")
_COORDINATOR = flags.DEFINE_string("coordinator_address", "", "With --distributed: process "
                                   "0's HOST:PORT ('' = detected).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", 0, "With --distributed: process count "
                                      "(0 = detected).")
_PROCESS_ID = flags.DEFINE_integer("process_id", -1, "With --distributed: this process's "
                                   "index (-1 = detected).")
_CPU_COLLECTIVES = flags.DEFINE_string("cpu_collectives", "gloo", "With --distributed: "
                                       "collectives of CPU devices across processes.")
_VERBOSE = flags.DEFINE_bool("verbose", False, "Show INFO logs of third-party libraries.")


def _fake_from_workdir(workdir: str, generator: str):
  return sampling.sample_images_from_workdir(workdir, num_images=_NUM_IMAGES.value,
                                             batch_size=_BATCH_SIZE.value, seed=_SEED.value,
                                             generator=generator)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if _WORKDIR.value and semantic_eval.is_semantic_workdir(_WORKDIR.value):
    print(json.dumps(semantic_eval.evaluate_workdir(_WORKDIR.value), sort_keys=True))
    return
  if not _REAL.value:
    raise app.UsageError("--real is required (image folder, .npz of images or of stats).")
  if bool(_FAKE.value) == bool(_WORKDIR.value):
    raise app.UsageError("give exactly one of --fake and --workdir.")
  parallel.initialize_distributed({
      "distributed": _DISTRIBUTED.value, "coordinator_address": _COORDINATOR.value,
      "num_processes": _NUM_PROCESSES.value, "process_id": _PROCESS_ID.value,
      "cpu_collectives": _CPU_COLLECTIVES.value})
  cli.configure_logging(_VERBOSE.value)
  try:
    result = _evaluate()
  except evaluation.NonFiniteOutputError as e:
    print(f"eval.py: refusing to score --workdir={_WORKDIR.value}: {e}", file=sys.stderr)
    sys.exit(1)
  except _checks.UnreadableImageError as e:
    print(f"eval.py: {e}", file=sys.stderr)
    sys.exit(1)
  if _INTRA_FID.value:
    if not _WORKDIR.value:
      raise app.UsageError("--intra_fid_classes needs --workdir (a class-conditional run).")
    from genattn_jax.metrics import intra_fid  # pylint: disable=g-import-not-at-top
    result.update(intra_fid.intra_fid_for_run(_WORKDIR.value, _INTRA_FID.value))
  if _JSON.value:
    print(json.dumps(result, sort_keys=True))
  elif "fid" in result:
    print(evaluate.format_result(result))
  else:  # both generators: one summary each
    for name in ("ema", "raw"):
      print(f"{name} generator:")
      print(evaluate.format_result({key[:-len(name) - 1]: value for key, value in result.items()
                                    if key.endswith(f"_{name}")}))
    if "intra_fid" in result:
      print(f"intra-FID: {result['intra_fid']:.4f}")


def _evaluate():
  if _FAKE.value:
    return _evaluate_fake(_FAKE.value)
  names = sampling.generators_to_score(sampling.load_run_config(_WORKDIR.value),
                                       _GENERATOR.value)
  if len(names) == 1:
    return _evaluate_fake(_fake_from_workdir(_WORKDIR.value, names[0]))
  result = {}
  for name in names:
    one = _evaluate_fake(_fake_from_workdir(_WORKDIR.value, name))
    result.update({f"{key}_{name}": value for key, value in one.items()})
  return result


def _evaluate_fake(fake):
  size = _IMAGE_SIZE.value
  return evaluate.evaluate_paths(
      _REAL.value, fake, weights_path=_WEIGHTS.value, batch_size=_BATCH_SIZE.value,
      num_images=_NUM_IMAGES.value, image_size=(size, size) if size else None,
      compute_kid=_KID.value, compute_is=_IS.value, kid_subsets=_KID_SUBSETS.value,
      kid_subset_size=_KID_SUBSET_SIZE.value, is_splits=_IS_SPLITS.value,
      seed=_SEED.value, save_real_stats=_SAVE_STATS.value,
      save_fake_stats=_SAVE_FAKE_STATS.value, progress=_PROGRESS.value and not _JSON.value)


if __name__ == "__main__":
  app.run(main)
