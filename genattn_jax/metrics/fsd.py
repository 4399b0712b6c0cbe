"""Fréchet Segmentation Distance (FSD), the LAP paper's second metric (Tables 1, 4, 5).

Bau et al., "Seeing What a GAN Cannot Generate" (ICCV 2019), Sec. 3.1: segment every real and
every generated image with the same scene parser; summarise each image by its class
statistics, the fraction of its pixels assigned to each of the K classes (a K-vector that
sums to 1 over the counted pixels); fit a Gaussian (mean, covariance) to those vectors for
each set; FSD is the Fréchet distance between the two Gaussians, exactly as FID does with
Inception features:

  FSD = ||mu_r - mu_g||² + Tr(S_r + S_g - 2 (S_r S_g)^{1/2}).

What a user must supply: the scene parser. Bau et al. (and so the LAP paper, Sec. 5.1
"pre-trained segmentation model [25]") use the unified perceptual parser (UPerNet) trained on
ADE20K, whose weights cannot be fetched here. Pass any `segment_fn(images uint8 [B, H, W, 3])
-> int [B, H, W]` (see `metrics.segmentation`, whose `make_segment_fn` wraps a Flax network),
with its number of classes K. `scale` multiplies the class fractions before the statistics
(FSD scales with its square); the default 1.0 works in fractions. Numbers are comparable only
between runs that use the same parser, class set and scale; the paper's values (e.g. 38.4 for
StyleGAN on LSUN Bedroom) need UPerNet/ADE20K and Bau et al.'s units, which we could not check.
"""

from typing import Iterable, Optional

import numpy as np

from genattn_jax.metrics import fid as fid_lib
from genattn_jax.metrics.segmentation import SegmentFn


def class_fractions(labels: np.ndarray, num_classes: int,
                    ignore_index: Optional[int] = None) -> np.ndarray:
  """Per-image fraction of pixels in each class.

  Args:
    labels: int [B, H, W] class ids in [0, K) (or `ignore_index`).
    num_classes: K.
    ignore_index: label left out of the counts (None: none). An image with no counted
      pixel gets an all-zero row.

  Returns:
    float64 [B, K], rows summing to 1 (or 0).

  Raises:
    ValueError: not rank 3, or an id outside [0, K) other than `ignore_index`.
  """
  labels = np.asarray(labels)
  if labels.ndim != 3:
    raise ValueError(f"`labels` must be int [B, H, W], got shape {labels.shape}.")
  flat = labels.reshape(labels.shape[0], -1).astype(np.int64)
  keep = np.ones_like(flat, bool) if ignore_index is None else flat != ignore_index
  bad = keep & ((flat < 0) | (flat >= num_classes))
  if bad.any():
    raise ValueError(f"`labels` holds class id {flat[bad][0]}, outside [0, num_classes="
                     f"{num_classes}) (ignore_index={ignore_index}).")
  out = np.zeros((flat.shape[0], num_classes), np.float64)
  for i in range(flat.shape[0]):
    counts = np.bincount(flat[i][keep[i]], minlength=num_classes).astype(np.float64)
    total = counts.sum()
    out[i] = counts / total if total else counts
  return out


def segmentation_statistics(segment_fn: SegmentFn, batches: Iterable[np.ndarray],
                            num_classes: int, ignore_index: Optional[int] = None,
                            scale: float = 1.0):
  """(mu [K], sigma [K, K]) of the class fractions of all images in `batches`.

  Args:
    segment_fn: uint8 [B, H, W, 3] → int [B, H, W].
    batches: iterable of uint8 [B, H, W, 3] image batches.
    num_classes: K.
    ignore_index: label not counted.
    scale: factor on the fractions.

  Raises:
    ValueError: fewer than 2 images, or a bad label (see `class_fractions`).
  """
  rows = [class_fractions(segment_fn(np.asarray(b)), num_classes, ignore_index)
          for b in batches]
  if not rows:
    raise ValueError("`batches` yielded no images.")
  return fid_lib.feature_statistics(np.concatenate(rows) * scale)


def frechet_segmentation_distance(segment_fn: SegmentFn, real_batches: Iterable[np.ndarray],
                                  fake_batches: Iterable[np.ndarray], num_classes: int,
                                  ignore_index: Optional[int] = None,
                                  scale: float = 1.0) -> float:
  """FSD between real and generated images (see the module doc).

  Args:
    segment_fn: the user's scene parser, uint8 [B, H, W, 3] → int [B, H, W].
    real_batches, fake_batches: iterables of uint8 [B, H, W, 3] batches (≥ 2 images each).
    num_classes: K, the parser's number of classes.
    ignore_index: label not counted (None: every pixel counts).
    scale: factor on the class fractions.

  Returns:
    FSD ≥ 0 (float).
  """
  mu_r, s_r = segmentation_statistics(segment_fn, real_batches, num_classes, ignore_index, scale)
  mu_g, s_g = segmentation_statistics(segment_fn, fake_batches, num_classes, ignore_index, scale)
  return fid_lib.frechet_distance(mu_r, s_r, mu_g, s_g)
