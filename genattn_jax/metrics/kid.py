"""Kernel Inception Distance (Binkowski et al., "Demystifying MMD GANs", ICLR 2018, Sec. 5).

KID is the squared maximum mean discrepancy (MMD^2) between Inception pool features of
real and generated images under the cubic polynomial kernel

  k(x, y) = (x^T y / d + 1)^3,   d = feature dimension,

estimated without bias. Like the authors' reference code, the estimate is averaged over
`num_subsets` random subsets of `subset_size` samples drawn without replacement from
each set, and the spread over subsets is reported too. Unlike FID, KID has an unbiased
estimator, so values from different sample sizes are comparable; it can be slightly
negative when the two distributions are close. Computed in float64 NumPy.
"""

from typing import Optional, Tuple
import warnings

import numpy as np

from genattn_jax import _checks


class KIDSpreadUndefinedWarning(UserWarning):
  """Every KID subset is the whole of both sets: the spread over subsets is undefined."""


def polynomial_kernel(x, y, *, degree: int = 3, gamma: Optional[float] = None,
                      coef0: float = 1.0) -> np.ndarray:
  """Gram matrix (gamma x^T y + coef0)^degree, gamma defaulting to 1 / d.

  Args:
    x: [N, D] feature vectors.
    y: [M, D] feature vectors.
    degree: polynomial degree (3 for KID).
    gamma: scale of the inner product; None means 1 / D.
    coef0: additive constant (1 for KID).

  Returns:
    [N, M] float64 kernel matrix.
  """
  x = np.asarray(x, dtype=np.float64)
  y = np.asarray(y, dtype=np.float64)
  gamma = 1.0 / x.shape[1] if gamma is None else gamma
  return (gamma * (x @ y.T) + coef0) ** degree


def mmd2_unbiased(x, y, *, degree: int = 3, gamma: Optional[float] = None,
                  coef0: float = 1.0) -> float:
  """Unbiased MMD^2 estimate between samples x [N, D] and y [M, D] (N, M >= 2).

  MMD^2_u = sum_{i != j} k(x_i, x_j) / (N (N - 1)) + sum_{i != j} k(y_i, y_j) / (M (M - 1))
            - 2 sum_{i, j} k(x_i, y_j) / (N M)      (Gretton et al. 2012, Lemma 6).

  Returns:
    MMD^2 as a Python float (may be slightly negative).

  Raises:
    ValueError: inputs are not rank 2 with >= 2 rows each and the same D.
  """
  x = np.asarray(x, dtype=np.float64)
  y = np.asarray(y, dtype=np.float64)
  _check_features(x, "x")
  _check_features(y, "y")
  if x.shape[1] != y.shape[1]:
    raise ValueError(f"`x` and `y` must have the same feature dimension, got "
                     f"{x.shape[1]} and {y.shape[1]}.")
  return _mmd2_unbiased(x, y, degree=degree, gamma=gamma, coef0=coef0)


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray, **kw) -> float:
  n, m = x.shape[0], y.shape[0]
  k_xx = polynomial_kernel(x, x, **kw)
  k_yy = polynomial_kernel(y, y, **kw)
  k_xy = polynomial_kernel(x, y, **kw)
  term_xx = (k_xx.sum() - np.trace(k_xx)) / (n * (n - 1))
  term_yy = (k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
  return float(term_xx + term_yy - 2.0 * k_xy.mean())


def _check_features(f: np.ndarray, name: str) -> None:
  _checks.check_rank(f, 2, name, "[N, D]")
  if f.shape[0] < 2 or f.shape[1] < 1:
    raise ValueError(f"`{name}` needs at least 2 rows and 1 column, got shape {f.shape}.")
  if not np.all(np.isfinite(f)):
    raise ValueError(f"`{name}` contains NaN or infinite values.")


def kernel_inception_distance(features1, features2, *, num_subsets: int = 100,
                              subset_size: int = 1000,
                              seed: int = 0) -> Tuple[float, float]:
  """KID between two feature sets: mean and standard deviation over random subsets.

  Sampling protocol (fixed, so results are reproducible): with
  `rng = np.random.default_rng(seed)`, each of the `num_subsets` rounds draws
  `rng.choice(N1, m, replace=False)` rows of `features1`, then
  `rng.choice(N2, m, replace=False)` rows of `features2`, and evaluates
  `mmd2_unbiased` with the cubic kernel k(x, y) = (x^T y / D + 1)^3, where
  m = min(subset_size, N1, N2) (a warning is issued when the sets are smaller than
  `subset_size`; the reference code instead requires N >= subset_size). Binkowski et
  al. 2018, Sec. 5 and App. D; the common KID settings are 100 subsets of 1000.

  When m >= N1 and m >= N2, every "subset" is the whole of both sets: the estimate is the
  single full-set MMD^2 and its spread over subsets is undefined, so `kid_std` is NaN (not
  a misleading 0) and a `KIDSpreadUndefinedWarning` says so.

  Args:
    features1: [N1, D] features (e.g. real), N1 >= 2, any real dtype.
    features2: [N2, D] features (e.g. generated), N2 >= 2.
    num_subsets: number of random subsets (> 0).
    subset_size: samples per subset from each set (>= 2).
    seed: seed of the NumPy generator drawing the subsets.

  Returns:
    (kid_mean, kid_std): mean and population standard deviation (ddof=0) of the
    subset MMD^2 values, Python floats (`kid_std` NaN when the spread is undefined, see
    above). Multiply by 1e3 for the customary "x 10^3" scale.

  Raises:
    ValueError: inputs are not [N, D] with N >= 2 and the same D, or
      `num_subsets` / `subset_size` are out of range.
  """
  f1 = np.asarray(features1, dtype=np.float64)
  f2 = np.asarray(features2, dtype=np.float64)
  _check_features(f1, "features1")
  _check_features(f2, "features2")
  if f1.shape[1] != f2.shape[1]:
    raise ValueError(f"`features1` and `features2` must have the same feature dimension, "
                     f"got {f1.shape[1]} and {f2.shape[1]}.")
  _checks.check_positive(num_subsets, "num_subsets")
  if subset_size < 2:
    raise ValueError(f"`subset_size` must be >= 2, got {subset_size!r}.")
  m = min(subset_size, f1.shape[0], f2.shape[0])
  if m < subset_size:
    warnings.warn(f"KID subset_size {subset_size} is larger than the sets "
                  f"({f1.shape[0]}, {f2.shape[0]}); using subsets of {m}.", stacklevel=2)
  if m >= f1.shape[0] and m >= f2.shape[0]:
    warnings.warn(f"KID: subsets of {m} cover both sets ({f1.shape[0]}, {f2.shape[0]}) "
                  "entirely, so every subset gives the same value and the spread over "
                  "subsets is undefined (reported as NaN). Use more images than the subset "
                  "size, or a smaller subset size, to get a spread.",
                  KIDSpreadUndefinedWarning, stacklevel=2)
    return _mmd2_unbiased(f1, f2), float("nan")
  rng = np.random.default_rng(seed)
  values = np.empty(num_subsets, dtype=np.float64)
  for i in range(num_subsets):
    x = f1[rng.choice(f1.shape[0], m, replace=False)]
    y = f2[rng.choice(f2.shape[0], m, replace=False)]
    values[i] = _mmd2_unbiased(x, y)
  return float(values.mean()), float(values.std())
