"""FID / KID / IS between two image sets given as paths (the logic behind `eval.py`).

Each side is an image folder, an `.npz` of images, an `.npz` of statistics (`mu`,
`sigma`; see `genattn_jax.metrics.image_io`) or, from Python, any iterable of
[b, H, W, 3] image batches (uint8 [0, 255] or float [-1, 1]). Images go through the
FID InceptionV3 (`genattn_jax.metrics.features`), loaded once and only when a side has
images. What is reported:
  * FID (Heusel et al. 2017; LAP paper Eq. 9), always;
  * KID (Binkowski et al. 2018) when both sides have images (it needs the features
    themselves, not only their statistics);
  * Inception Score (Salimans et al. 2016) of the fake side when it has images and the
    Inception weights include the 1008-way classifier (`has_logits`).
Skipped metrics are explained under `notes` in the result.
"""

import functools
import os
import pathlib
from typing import Callable, Dict, Iterable, Optional, Tuple, Union

import numpy as np

from genattn_jax import _checks
from genattn_jax.metrics import fid as fid_lib
from genattn_jax.metrics import image_io
from genattn_jax.metrics import inception_score as is_lib
from genattn_jax.metrics import kid as kid_lib

PathLike = Union[str, os.PathLike]
Side = Union[PathLike, Iterable[np.ndarray]]


def _side_batches(side: Side, name: str, batch_size: int, num_images: Optional[int],
                  image_size: Optional[Tuple[int, int]]):
  """-> (kind, stats or None, batch iterator or None)."""
  if isinstance(side, (str, os.PathLike)):
    source = image_io.detect_source(side)
    if source.kind == "stats_npz":
      return source.kind, fid_lib.load_statistics(source.path), None
    return source.kind, None, image_io.iter_image_batches(source, batch_size, num_images,
                                                          image_size)
  if side is None:
    raise ValueError(f"`{name}` must be a path or an iterable of image batches, got None.")

  def limited():
    seen = 0
    for batch in side:
      if num_images is not None and seen >= num_images:
        return
      batch = np.asarray(batch)
      _checks.check_nhwc(batch, name)
      if num_images is not None:
        batch = batch[:num_images - seen]
      seen += len(batch)
      yield batch
  return "batches", None, limited()


def evaluate_paths(real: Side, fake: Side, *, weights_path: Optional[PathLike] = None,
                   batch_size: int = 64, num_images: Optional[int] = None,
                   image_size: Optional[Tuple[int, int]] = None,
                   compute_kid: bool = True, compute_is: bool = True,
                   kid_subsets: int = 100, kid_subset_size: int = 1000,
                   is_splits: int = 10, seed: int = 0,
                   save_real_stats: Optional[PathLike] = None,
                   save_fake_stats: Optional[PathLike] = None, mesh=None,
                   progress: bool = True,
                   extract_fn: Optional[Callable[..., dict]] = None) -> Dict:
  """Computes FID (and KID / IS where possible) between a real and a fake image set.

  Args:
    real: path (image folder, `.npz` of images or of statistics) or iterable of image
      batches [b, H, W, 3] (uint8 [0, 255] or float [-1, 1]) for the reference set.
    fake: the same for the generated set.
    weights_path: Inception weights for `features.load_inception` (None: its default).
    batch_size: images per Inception forward pass (> 0).
    num_images: use at most this many images per side (None: all). Ignored for
      statistics files.
    image_size: (H, W) to resize folder images to (needed when a folder mixes sizes).
    compute_kid: compute KID when both sides have images.
    compute_is: compute the Inception Score of the fake side when possible.
    kid_subsets: KID `num_subsets`.
    kid_subset_size: KID `subset_size` (clamped to the set sizes).
    is_splits: Inception Score `num_splits` (reduced to the number of fake images when
      there are fewer).
    seed: seed of the KID subset sampling.
    save_real_stats: if set, write the real side's (mu, sigma) there (pytorch-fid `.npz`).
    save_fake_stats: if set, write the fake side's (mu, sigma) there.
    mesh: passed to `features.extract_features` (data-parallel feature extraction).
    progress: show a progress bar while extracting features.
    extract_fn: feature extractor with the signature of `features.extract_features`
      (called with `batch_size`, `with_logits`, `progress`); None uses the FID
      InceptionV3 with weights from `weights_path`.

  Returns:
    dict with 'fid' (float), 'real_kind' / 'fake_kind' ('folder', 'images_npz',
    'stats_npz' or 'batches'), 'num_real' / 'num_fake' (images used; absent for
    statistics), 'kid_mean' / 'kid_std', 'is_mean' / 'is_std' when computed, the paths
    written under 'saved_real_stats' / 'saved_fake_stats', and 'notes' (list of str)
    saying why a metric was skipped.

  Raises:
    FileNotFoundError: a path does not exist or holds no images.
    ValueError: unreadable inputs, bad arguments, or feature dimensions that differ.
  """
  _checks.check_positive(batch_size, "batch_size")
  if num_images is not None:
    _checks.check_positive(num_images, "num_images")
  real_kind, real_stats, real_batches = _side_batches(real, "real", batch_size, num_images,
                                                      image_size)
  fake_kind, fake_stats, fake_batches = _side_batches(fake, "fake", batch_size, num_images,
                                                      image_size)
  notes = []
  has_logits = True
  if extract_fn is None and (real_batches is not None or fake_batches is not None):
    from genattn_jax.metrics import features  # pylint: disable=g-import-not-at-top
    _, variables, has_logits = features.load_inception(weights_path)
    extract_fn = functools.partial(features.extract_features, variables=variables,
                                   mesh=mesh)
  result: Dict = {"real_kind": real_kind, "fake_kind": fake_kind}

  def extract(batches, with_logits):
    out = extract_fn(batches, batch_size=batch_size, with_logits=with_logits,
                     progress=progress)
    return np.asarray(out["pool"]), out.get("logits")

  real_feats = fake_feats = fake_logits = None
  if real_batches is not None:
    real_feats, _ = extract(real_batches, False)
    real_stats = fid_lib.feature_statistics(real_feats)
    result["num_real"] = int(real_feats.shape[0])
  if fake_batches is not None:
    want_logits = compute_is and has_logits
    fake_feats, fake_logits = extract(fake_batches, want_logits)
    fake_stats = fid_lib.feature_statistics(fake_feats)
    result["num_fake"] = int(fake_feats.shape[0])

  result["fid"] = fid_lib.frechet_distance(*real_stats, *fake_stats)

  if compute_kid:
    if real_feats is not None and fake_feats is not None:
      result["kid_mean"], result["kid_std"] = kid_lib.kernel_inception_distance(
          real_feats, fake_feats, num_subsets=kid_subsets, subset_size=kid_subset_size,
          seed=seed)
      if not np.isfinite(result["kid_std"]):
        result["kid_std"] = None  # JSON null: undefined, see kid.kernel_inception_distance
        notes.append("KID spread undefined: every subset is the whole of both sets (use more "
                     "images than --kid_subset_size, or a smaller subset size).")
    else:
      notes.append("KID skipped: it needs image features on both sides, and a "
                   "statistics file holds only mu and sigma.")
  if compute_is:
    if fake_feats is None:
      notes.append("IS skipped: the fake side is a statistics file, not images.")
    elif fake_logits is None:
      notes.append("IS skipped: the Inception weights have no 1008-way classifier.")
    else:
      logits = np.asarray(fake_logits)
      result["is_mean"], result["is_std"] = is_lib.inception_score(
          logits, num_splits=min(is_splits, logits.shape[0]))

  for path, stats, key in ((save_real_stats, real_stats, "saved_real_stats"),
                           (save_fake_stats, fake_stats, "saved_fake_stats")):
    if path is not None:
      result[key] = str(fid_lib.save_statistics(pathlib.Path(path), *stats))
  result["notes"] = notes
  return result


def format_result(result: Dict) -> str:
  """Human-readable multi-line summary of an `evaluate_paths` result."""
  lines = []
  for side in ("real", "fake"):
    count = result.get(f"num_{side}")
    what = f"{count} images" if count is not None else "statistics"
    lines.append(f"{side}: {result[f'{side}_kind']} ({what})")
  lines.append(f"FID: {result['fid']:.4f}")
  if "kid_mean" in result:
    spread = ("(spread undefined: each subset is the whole set)" if result["kid_std"] is None
              else f"+- {result['kid_std']:.6f}")
    lines.append(f"KID: {result['kid_mean']:.6f} {spread}")
  if "is_mean" in result:
    lines.append(f"IS: {result['is_mean']:.4f} +- {result['is_std']:.4f}")
  if "intra_fid" in result:
    lines.append(f"intra-FID: {result['intra_fid']:.4f}")
  for key in ("saved_real_stats", "saved_fake_stats"):
    if key in result:
      lines.append(f"{key.replace('_', ' ')}: {result[key]}")
  lines.extend(f"note: {n}" for n in result.get("notes", ()))
  return "\n".join(lines)
