"""FID edge cases: the `eps` regulariser on singular covariances, tiny exact examples.

The reference is the textbook formula evaluated with `scipy.linalg.sqrtm`, with pytorch-fid's
fallback placement of `eps` (added to both covariances inside the square-root term only).
"""

import warnings

import numpy as np
import pytest
import scipy.linalg

from genattn_jax.metrics import fid


def _scipy_fid(mu1, s1, mu2, s2, eps=0.0):
  offset = eps * np.eye(len(mu1))
  covmean = np.real(scipy.linalg.sqrtm((s1 + offset) @ (s2 + offset)))
  return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def _singular_pair(seed=0, d=8):
  rng = np.random.default_rng(seed)
  a = rng.standard_normal((d, 2))             # rank 2
  b = rng.standard_normal((d, 3))             # rank 3
  return (rng.standard_normal(d), a @ a.T, rng.standard_normal(d) * 0.5, b @ b.T)


@pytest.mark.parametrize("eps", [1e-2, 0.3])
def test_eps_changes_result_for_singular_covariances(eps):
  mu1, s1, mu2, s2 = _singular_pair()
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", fid.RankDeficientCovarianceWarning)
    plain = fid.frechet_distance(mu1, s1, mu2, s2)
  reg = fid.frechet_distance(mu1, s1, mu2, s2, eps=eps)
  np.testing.assert_allclose(reg, _scipy_fid(mu1, s1, mu2, s2, eps), rtol=1e-7)
  # eps only enters the square-root term, which grows with it: the distance drops by a
  # clearly measurable amount (not round-off).
  assert plain - reg > 0.05 * eps * len(mu1)
  np.testing.assert_allclose(
      fid.trace_sqrt_product(s1, s2, eps=eps),
      np.trace(np.real(scipy.linalg.sqrtm((s1 + eps * np.eye(8)) @ (s2 + eps * np.eye(8))))),
      rtol=1e-7)


def test_singular_without_eps_warns_and_matches_nuclear_norm():
  mu1, s1, mu2, s2 = _singular_pair(1)
  with pytest.warns(fid.RankDeficientCovarianceWarning, match="rank deficient"):
    value = fid.frechet_distance(mu1, s1, mu2, s2)
  # Tr sqrt(A A^T B B^T) = ||A^T B||_* (nuclear norm) for the factors of _singular_pair.
  rng = np.random.default_rng(1)
  a, b = rng.standard_normal((8, 2)), rng.standard_normal((8, 3))
  nuclear = np.linalg.svd(a.T @ b, compute_uv=False).sum()
  want = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * nuclear
  np.testing.assert_allclose(value, want, rtol=1e-8)
  # Full-rank inputs raise no warning.
  with warnings.catch_warnings():
    warnings.simplefilter("error", fid.RankDeficientCovarianceWarning)
    fid.frechet_distance(mu1, s1 + np.eye(8), mu2, s2 + np.eye(8))


def test_one_dimensional_closed_form():
  # d = 1: (m1 - m2)^2 + (sqrt(v1) - sqrt(v2))^2.
  got = fid.frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([-2.0]),
                             np.array([[9.0]]))
  assert got == pytest.approx(9.0 + 1.0, rel=1e-12)
  got_eps = fid.frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([-2.0]),
                                 np.array([[9.0]]), eps=1.0)
  assert got_eps == pytest.approx(9.0 + 4.0 + 9.0 - 2.0 * np.sqrt(5.0 * 10.0), rel=1e-12)


def test_feature_statistics_unbiased_and_chunked():
  rng = np.random.default_rng(2)
  feats = rng.standard_normal((4100, 3)).astype(np.float32) * [1.0, 2.0, 0.5] + [3.0, -1.0, 0]
  mu, sigma = fid.feature_statistics(feats)
  f64 = feats.astype(np.float64)
  np.testing.assert_allclose(mu, f64.mean(0), rtol=1e-12, atol=1e-12)
  np.testing.assert_allclose(sigma, np.cov(f64, rowvar=False), rtol=1e-10, atol=1e-12)
  assert mu.dtype == np.float64 and sigma.dtype == np.float64
  # Two rows: the 1 / (N - 1) normalisation is visible.
  mu2, s2 = fid.feature_statistics(np.array([[0.0], [2.0]]))
  np.testing.assert_allclose(mu2, [1.0])
  np.testing.assert_allclose(s2, [[2.0]])


def test_negative_eps_raises():
  mu1, s1, mu2, s2 = _singular_pair()
  with pytest.raises(ValueError, match="eps"):
    fid.frechet_distance(mu1, s1, mu2, s2, eps=-1e-3)
  with pytest.raises(ValueError, match="eps"):
    fid.trace_sqrt_product(s1, s2, eps=-1e-3)


def test_not_finite_features_raise():
  feats = np.ones((4, 2))
  feats[1, 1] = np.inf
  with pytest.raises(ValueError, match="NaN or infinite"):
    fid.feature_statistics(feats)
