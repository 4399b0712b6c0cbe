"""Frechet Inception Distance: Gaussian statistics of features and their Frechet distance.

FID (Heusel et al., "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash
Equilibrium", NeurIPS 2017) fits a Gaussian (mu, Sigma) to the 2048-d pool features of
InceptionV3 for the real and the generated images and reports the squared Frechet
(2-Wasserstein) distance between the two Gaussians, as restated in Eq. 9 of the LAP paper
(Kim et al., "Local Attention Pyramid for Scene Image Generation", Sec. 5.3):

  d^2 = ||mu_r - mu_f||^2 + Tr(Sigma_r + Sigma_f - 2 (Sigma_r Sigma_f)^{1/2}).

Everything is computed in float64 NumPy. The matrix square root is never formed: the
trace term only needs the eigenvalues of Sigma_1 Sigma_2, which equal those of the
symmetric positive semi-definite matrix Sigma_1^{1/2} Sigma_2 Sigma_1^{1/2}; both steps use
the symmetric eigensolver (`eigh`), which is about ten times faster than
`scipy.linalg.sqrtm` at 2048-d and never returns complex values.

The class-wise FID of the LAP paper (Sec. 5.3, Table 3) is the same distance computed per
semantic class on features of class-wise cropped patches: see `classwise_fid`.

Statistics files are `.npz` archives with the keys `mu` and `sigma`, the layout pytorch-fid
reads and writes, so statistics can be exchanged with it.
"""

import os
import pathlib
from typing import Hashable, Mapping, Tuple, Union
import warnings

import numpy as np

from genattn_jax import _checks

PathLike = Union[str, os.PathLike]

# Relative size (w.r.t. the largest eigenvalue) below which a covariance eigenvalue
# counts as zero, i.e. the covariance is treated as rank deficient.
_RANK_RTOL = 1e-10
# Negative eigenvalues larger than this (relative) are reported: they are more than
# round-off, e.g. a covariance stored in low precision or not a covariance at all.
_NEGATIVE_RTOL = 1e-6


class RankDeficientCovarianceWarning(UserWarning):
  """A covariance is singular (typically fewer samples than feature dimensions)."""


def feature_statistics(features) -> Tuple[np.ndarray, np.ndarray]:
  """Mean and covariance of a set of feature vectors.

  Args:
    features: [N, D] array (any real dtype), one feature vector per row, N >= 2.

  Returns:
    (mu, sigma): mu [D] float64 and sigma [D, D] float64, the sample covariance with
    the unbiased 1 / (N - 1) normalisation (as `np.cov(features, rowvar=False)`, the
    convention of pytorch-fid and of the TTUR reference code).

  Raises:
    ValueError: `features` is not rank 2, has fewer than 2 rows, or is not finite.
  """
  features = np.asarray(features)
  _checks.check_rank(features, 2, "features", "[N, D]")
  n, d = features.shape
  if n < 2 or d < 1:
    raise ValueError(f"`features` needs at least 2 rows and 1 column, got shape {(n, d)}.")
  if not np.all(np.isfinite(features)):
    raise ValueError("`features` contains NaN or infinite values.")
  # Two passes over row chunks in float64: no full float64 copy of a 50K x 2048 set.
  chunk = 4096
  mu = np.zeros(d, np.float64)
  for start in range(0, n, chunk):
    mu += features[start:start + chunk].sum(axis=0, dtype=np.float64)
  mu /= n
  sigma = np.zeros((d, d), np.float64)
  for start in range(0, n, chunk):
    centred = features[start:start + chunk].astype(np.float64) - mu
    sigma += centred.T @ centred
  sigma /= n - 1
  return mu, 0.5 * (sigma + sigma.T)


def _check_gaussian(mu, sigma, mu_name: str, sigma_name: str) -> Tuple[np.ndarray, np.ndarray]:
  mu = np.asarray(mu, dtype=np.float64)
  sigma = np.asarray(sigma, dtype=np.float64)
  _checks.check_rank(mu, 1, mu_name, "[D]")
  _checks.check_rank(sigma, 2, sigma_name, "[D, D]")
  d = mu.shape[0]
  if sigma.shape != (d, d):
    raise ValueError(f"`{sigma_name}` must have shape [D, D] = {(d, d)} to match "
                     f"`{mu_name}` [D] = {(d,)}, got {sigma.shape}.")
  if not (np.all(np.isfinite(mu)) and np.all(np.isfinite(sigma))):
    raise ValueError(f"`{mu_name}` / `{sigma_name}` contain NaN or infinite values.")
  scale = max(float(np.max(np.abs(sigma))), np.finfo(np.float64).tiny)
  if np.max(np.abs(sigma - sigma.T)) > 1e-5 * scale:
    raise ValueError(f"`{sigma_name}` must be a symmetric covariance matrix.")
  return mu, 0.5 * (sigma + sigma.T)


def _trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray,
                        eps: float) -> Tuple[float, bool]:
  """Returns (Tr((sigma1 sigma2)^{1/2}), whether either matrix is rank deficient)."""
  if eps:
    offset = eps * np.eye(sigma1.shape[0])
    sigma1, sigma2 = sigma1 + offset, sigma2 + offset
  tiny = np.finfo(np.float64).tiny
  evals, evecs = np.linalg.eigh(sigma1)
  sqrt1 = (evecs * np.sqrt(np.clip(evals, 0.0, None))) @ evecs.T
  inner = sqrt1 @ sigma2 @ sqrt1
  inner_evals = np.linalg.eigvalsh(0.5 * (inner + inner.T))
  for values, what in ((evals, "sigma1"), (inner_evals, "sigma1^1/2 sigma2 sigma1^1/2")):
    top = max(float(values[-1]), tiny)
    if values[0] < -_NEGATIVE_RTOL * top:
      warnings.warn(
          f"{what} has a negative eigenvalue {values[0]:.3g} (largest {top:.3g}): a "
          "covariance is not positive semi-definite beyond round-off (low-precision "
          "statistics?). Negative eigenvalues are clipped to 0.",
          RankDeficientCovarianceWarning, stacklevel=3)
  # rank(inner) = min-ish(rank(sigma1), rank(sigma2)): singular iff either one is.
  deficient = bool(evals[0] <= _RANK_RTOL * max(evals[-1], tiny)
                   or inner_evals[0] <= _RANK_RTOL * max(inner_evals[-1], tiny))
  trace = float(np.sum(np.sqrt(np.clip(inner_evals, 0.0, None))))
  return trace, deficient


def trace_sqrt_product(sigma1, sigma2, *, eps: float = 0.0) -> float:
  """Tr((Sigma_1 Sigma_2)^{1/2}) of two covariance matrices via two symmetric eigensolves.

  Sigma_1 = U diag(l) U^T gives S = U diag(sqrt(l)) U^T = Sigma_1^{1/2}; the product
  Sigma_1 Sigma_2 is similar to (or, when Sigma_1 is singular, shares its non-zero
  eigenvalues with) M = S Sigma_2 S, which is symmetric positive semi-definite, so the
  trace of the principal square root is sum_i sqrt(max(eig_i(M), 0)).

  Regularisation: eigenvalues of Sigma_1 and of M that are negative through round-off
  are clipped to 0 (this is what keeps the result real and finite for singular
  covariances; clipping beyond round-off emits a `RankDeficientCovarianceWarning`).
  With `eps` > 0, `eps * I` is added to both matrices first (what pytorch-fid does
  when `sqrtm` fails); the default 0 adds nothing.

  Args:
    sigma1: [D, D] symmetric positive semi-definite matrix (float64 internally).
    sigma2: [D, D] symmetric positive semi-definite matrix.
    eps: non-negative diagonal offset added to both matrices.

  Returns:
    The trace as a Python float >= 0.

  Raises:
    ValueError: the matrices are not [D, D] of the same D, not symmetric or not finite.
  """
  d = np.shape(sigma1)[0] if np.ndim(sigma1) else 0
  _, sigma1 = _check_gaussian(np.zeros(d), sigma1, "mu", "sigma1")
  _, sigma2 = _check_gaussian(np.zeros(d), sigma2, "mu", "sigma2")
  if eps < 0:
    raise ValueError(f"`eps` must be >= 0, got {eps!r}.")
  return _trace_sqrt_product(sigma1, sigma2, eps)[0]


def frechet_distance(mu1, sigma1, mu2, sigma2, *, eps: float = 0.0) -> float:
  """Squared Frechet distance between N(mu1, sigma1) and N(mu2, sigma2) (FID).

  d^2 = ||mu1 - mu2||^2 + Tr(sigma1) + Tr(sigma2) - 2 Tr((sigma1 sigma2)^{1/2}),
  Heusel et al. 2017, restated as Eq. 9 of the LAP paper (Sec. 5.3). The trace of the
  square root comes from `trace_sqrt_product` (symmetric eigendecompositions, float64),
  which agrees with `scipy.linalg.sqrtm` to ~1e-9 relative on well-conditioned inputs.

  Near-singular covariances (fewer samples than dimensions, N < D): the distance stays
  well defined and is computed exactly as above with round-off negative eigenvalues
  clipped to 0, and a `RankDeficientCovarianceWarning` is emitted because the estimate
  from so few samples is strongly biased. `eps` > 0 additionally adds `eps * I` to both
  covariances inside the square-root term only (the pytorch-fid fallback); the default 0
  leaves the inputs unchanged. A result that is negative by round-off (identical
  inputs) is returned as 0.0, so the result is always a finite float >= 0.

  Args:
    mu1: [D] mean of the first set (e.g. real features), any real dtype.
    sigma1: [D, D] symmetric covariance of the first set.
    mu2: [D] mean of the second set (e.g. generated features).
    sigma2: [D, D] symmetric covariance of the second set.
    eps: non-negative diagonal offset for the square-root term.

  Returns:
    The squared Frechet distance (the FID value when the inputs are Inception pool
    statistics) as a Python float >= 0.

  Raises:
    ValueError: a mean is not [D], a covariance is not [D, D] with the same D, an input
      is non-finite or a covariance is not symmetric, or `eps` < 0.
  """
  mu1, sigma1 = _check_gaussian(mu1, sigma1, "mu1", "sigma1")
  mu2, sigma2 = _check_gaussian(mu2, sigma2, "mu2", "sigma2")
  if mu1.shape != mu2.shape:
    raise ValueError(f"`mu1` {mu1.shape} and `mu2` {mu2.shape} must have the same "
                     "dimension D.")
  if eps < 0:
    raise ValueError(f"`eps` must be >= 0, got {eps!r}.")
  trace_sqrt, deficient = _trace_sqrt_product(sigma1, sigma2, eps)
  if deficient:
    warnings.warn(
        f"a covariance is rank deficient or nearly so (e.g. fewer samples than the "
        f"{mu1.shape[0]} feature dimensions): the FID is finite but strongly biased; "
        "use more samples.", RankDeficientCovarianceWarning, stacklevel=2)
  mean_term = float(np.sum((mu1 - mu2) ** 2))
  value = mean_term + float(np.trace(sigma1) + np.trace(sigma2)) - 2.0 * trace_sqrt
  return max(value, 0.0)


def fid_from_features(features1, features2, *, eps: float = 0.0) -> float:
  """FID between two sets of feature vectors ([N1, D] and [N2, D]).

  Same as `frechet_distance(*feature_statistics(features1),
  *feature_statistics(features2))`.

  Raises:
    ValueError: as `feature_statistics` and `frechet_distance`, or D differs.
  """
  mu1, sigma1 = feature_statistics(features1)
  mu2, sigma2 = feature_statistics(features2)
  if mu1.shape != mu2.shape:
    raise ValueError(f"`features1` and `features2` must have the same feature dimension, "
                     f"got {mu1.shape[0]} and {mu2.shape[0]}.")
  return frechet_distance(mu1, sigma1, mu2, sigma2, eps=eps)


def classwise_fid(real_by_class: Mapping[Hashable, np.ndarray],
                  fake_by_class: Mapping[Hashable, np.ndarray], *,
                  on_missing: str = "error", eps: float = 0.0) -> dict:
  """Class-wise FID (LAP paper, Sec. 5.3 and Table 3).

  The paper segments real and generated scene images with a pretrained segmentation
  network, crops a patch per detected class, extracts Inception features of the
  patches and reports Eq. 9 per class (5K real and 5K fake patches per class). This
  helper does the last step: given the patch features grouped by class label it
  returns the FID of every class; segmentation and cropping are up to the caller.

  Args:
    real_by_class: label -> [N_c, D] features of real patches of that class (N_c >= 2).
    fake_by_class: label -> [M_c, D] features of generated patches (M_c >= 2).
    on_missing: what to do with a label present on one side only: 'error' raises,
      'skip' leaves it out of the result.
    eps: passed to `frechet_distance`.

  Returns:
    dict label -> FID (float >= 0), in the order of `real_by_class`.

  Raises:
    ValueError: a label is missing from one side (with on_missing='error'), a class has
      fewer than 2 feature vectors, or the feature dimensions differ.
  """
  _checks.check_in(on_missing, ("error", "skip"), "on_missing")
  real_labels, fake_labels = set(real_by_class), set(fake_by_class)
  missing = (real_labels ^ fake_labels)
  if missing and on_missing == "error":
    only_real = [k for k in real_by_class if k not in fake_labels]
    only_fake = [k for k in fake_by_class if k not in real_labels]
    raise ValueError(f"classes {only_real} appear only in `real_by_class` and "
                     f"{only_fake} only in `fake_by_class`; pass on_missing='skip' to "
                     "ignore them.")
  result = {}
  for label, real in real_by_class.items():
    if label not in fake_labels:
      continue
    try:
      result[label] = fid_from_features(real, fake_by_class[label], eps=eps)
    except ValueError as e:
      raise ValueError(f"class {label!r}: {e}") from e
  return result


def save_statistics(path: PathLike, mu, sigma) -> pathlib.Path:
  """Writes (mu, sigma) as an uncompressed `.npz` with keys `mu` and `sigma` (float64).

  This is the file layout of pytorch-fid (`np.load(path)['mu']`, `['sigma']`). NumPy
  appends `.npz` to a path without that suffix; the path actually written is returned.

  Raises:
    ValueError: mu is not [D] or sigma not [D, D].
  """
  mu, sigma = _check_gaussian(mu, sigma, "mu", "sigma")
  path = pathlib.Path(path)
  if path.suffix != ".npz":
    path = path.with_name(path.name + ".npz")
  path.parent.mkdir(parents=True, exist_ok=True)
  np.savez(path, mu=mu, sigma=sigma)
  return path


def is_statistics_file(path: PathLike) -> bool:
  """True when `path` is an `.npz` archive holding the arrays `mu` and `sigma`."""
  path = pathlib.Path(path)
  if not path.is_file():
    return False
  try:
    with np.load(path, allow_pickle=False) as data:
      return {"mu", "sigma"}.issubset(data.files)
  except (OSError, ValueError):
    return False


def load_statistics(path: PathLike) -> Tuple[np.ndarray, np.ndarray]:
  """Reads (mu [D] float64, sigma [D, D] float64) from an `.npz` with keys mu, sigma.

  Reads files written by `save_statistics` and by pytorch-fid (`--save-stats`).

  Raises:
    FileNotFoundError: `path` does not exist.
    ValueError: the archive lacks `mu` or `sigma`, or their shapes do not match.
  """
  path = pathlib.Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"statistics file `{path}` not found (expected an .npz with "
                            "arrays `mu` and `sigma`).")
  with np.load(path, allow_pickle=False) as data:
    if not {"mu", "sigma"}.issubset(data.files):
      raise ValueError(f"`{path}` holds {sorted(data.files)}; a statistics file needs the "
                       "keys `mu` and `sigma`.")
    mu, sigma = data["mu"], data["sigma"]
  return _check_gaussian(mu, sigma, "mu", "sigma")
