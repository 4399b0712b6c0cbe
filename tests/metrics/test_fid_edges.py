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


def _warnings_of(fn):
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    fn()
  return [w for w in caught if issubclass(w.category, fid.RankDeficientCovarianceWarning)]


def test_rank_and_sign_thresholds_are_relative_to_the_largest_eigenvalue():
  big_small = np.diag([1e6, 1e-6])
  # sigma1 badly conditioned (1e-12 relative), the product well conditioned: still reported.
  caught = _warnings_of(lambda: fid.frechet_distance(np.zeros(2), big_small, np.zeros(2),
                                                     np.diag([1e-6, 1e6])))
  assert any("rank deficient" in str(w.message) for w in caught)
  # sigma1 fine, the product badly conditioned: reported.
  caught = _warnings_of(lambda: fid.frechet_distance(np.zeros(2), np.eye(2), np.zeros(2),
                                                     big_small))
  assert any("rank deficient" in str(w.message) for w in caught)
  # Small but clearly positive eigenvalues (1e-8 relative): neither singular nor negative.
  assert not _warnings_of(lambda: fid.frechet_distance(np.zeros(2), np.diag([1.0, 1e-8]),
                                                       np.zeros(2), np.eye(2)))
  # A negative eigenvalue of round-off size relative to a large one is not reported as such.
  caught = _warnings_of(lambda: fid.frechet_distance(np.zeros(2), np.diag([1e6, -1e-3]),
                                                     np.zeros(2), np.eye(2)))
  assert not any("negative eigenvalue" in str(w.message) for w in caught)


def test_warnings_name_the_value_and_point_at_the_caller():
  caught = _warnings_of(lambda: fid.frechet_distance(np.zeros(3), np.diag([1.0, 2.0, -0.5]),
                                                     np.zeros(3), np.eye(3)))
  negative = [w for w in caught if "negative eigenvalue" in str(w.message)]
  assert negative and "negative eigenvalue -0.5" in str(negative[0].message)
  # Called directly from this function (not through a helper in this file), so a warning
  # attributed one frame too far up would point into pytest, not here.
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    fid.frechet_distance(np.zeros(3), np.diag([1.0, 2.0, -0.5]), np.zeros(3), np.eye(3))
    fid.trace_sqrt_product(np.diag([1.0, -0.5]), np.eye(2))
  assert len(caught) >= 3 and all(w.filename == __file__ for w in caught)


def test_symmetry_check_is_relative_to_scale():
  s = np.array([[2e6, 1e6], [1e6 + 1e-3, 3e6]])   # asymmetric by 1e-9 relative: accepted
  assert fid.frechet_distance(np.zeros(2), s, np.zeros(2), s) < 1e-6
  with pytest.raises(ValueError, match="symmetric"):
    fid.frechet_distance(np.zeros(2), np.array([[2.0, 1.0], [1.1, 3.0]]), np.zeros(2),
                         np.eye(2))


def test_classwise_missing_lists_the_classes_and_skip_keeps_later_ones():
  rng = np.random.default_rng(12)
  feats = lambda: rng.standard_normal((6, 2))
  real, fake = {0: feats(), 1: feats(), 2: feats()}, {0: feats(), 2: feats(), 5: feats()}
  with pytest.raises(ValueError, match=r"classes \[1\] appear only in `real_by_class` and "
                                       r"\[5\] only in `fake_by_class`"):
    fid.classwise_fid(real, fake)
  out = fid.classwise_fid(real, fake, on_missing="skip")
  assert list(out) == [0, 2]
  assert out[2] == pytest.approx(fid.fid_from_features(real[2], fake[2]))


def test_statistics_files(tmp_path):
  mu, sigma = np.arange(3.0), np.eye(3)
  nested = tmp_path / "a" / "b" / "stats"          # parents created, ".npz" appended
  path = fid.save_statistics(nested, mu, sigma)
  assert path.name == "stats.npz" and fid.is_statistics_file(path)
  fid.save_statistics(tmp_path / "a" / "b" / "other.npz", mu, sigma)  # folder exists: fine
  got_mu, got_sigma = fid.load_statistics(path)
  np.testing.assert_array_equal(got_mu, mu)
  np.testing.assert_array_equal(got_sigma, sigma)
  assert not fid.is_statistics_file(tmp_path / "missing.npz")
  assert not fid.is_statistics_file(tmp_path / "a")          # a folder
  garbage = tmp_path / "garbage.npz"
  garbage.write_bytes(b"not an archive")
  assert not fid.is_statistics_file(garbage)
  np.savez(tmp_path / "images.npz", images=np.zeros(2))
  assert not fid.is_statistics_file(tmp_path / "images.npz")
  # Object arrays (pickles) are refused, not unpickled.
  np.savez(tmp_path / "pickled.npz", mu=np.array([1.0, 2.0], dtype=object), sigma=np.eye(2))
  with pytest.raises(ValueError, match="allow_pickle"):
    fid.load_statistics(tmp_path / "pickled.npz")
