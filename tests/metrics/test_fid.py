"""Tests of genattn_jax.metrics.fid (Frechet distance, statistics files, class-wise FID)."""

import tempfile
import warnings

from absl.testing import parameterized
import chex
import numpy as np
import pytest
import scipy.linalg

from genattn_jax.metrics import fid


def _random_spd(rng: np.random.Generator, d: int, n_extra: int = 50) -> np.ndarray:
  a = rng.standard_normal((d, d + n_extra))
  return a @ a.T / (d + n_extra) + 0.05 * np.eye(d)


def _tmpdir(test) -> str:
  tmp = tempfile.TemporaryDirectory()
  test.addCleanup(tmp.cleanup)
  return tmp.name


def _scipy_fid(mu1, s1, mu2, s2, trace_sqrt=None) -> float:
  """The textbook formula; Tr((s1 s2)^{1/2}) from scipy's general matrix square root
  (pytorch-fid style) unless `trace_sqrt` is given."""
  if trace_sqrt is None:
    trace_sqrt = np.trace(np.real(scipy.linalg.sqrtm(s1 @ s2)))
  return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * trace_sqrt)


class FrechetDistanceTest(parameterized.TestCase):

  @parameterized.parameters(0, 1, 2)
  def test_matches_scipy_sqrtm_64d(self, seed):
    rng = np.random.default_rng(seed)
    d = 64
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d) * 0.3
    s1, s2 = _random_spd(rng, d), 2.0 * _random_spd(rng, d)
    got = fid.frechet_distance(mu1, s1, mu2, s2)
    want = _scipy_fid(mu1, s1, mu2, s2)
    self.assertIsInstance(got, float)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    # The trace term alone too (it is the part that needs the square root).
    np.testing.assert_allclose(fid.trace_sqrt_product(s1, s2),
                               np.trace(np.real(scipy.linalg.sqrtm(s1 @ s2))), rtol=1e-6)

  def test_symmetric_in_its_arguments_and_float32_inputs(self):
    rng = np.random.default_rng(3)
    d = 32
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    s1, s2 = _random_spd(rng, d), _random_spd(rng, d)
    ab = fid.frechet_distance(mu1, s1, mu2, s2)
    ba = fid.frechet_distance(mu2, s2, mu1, s1)
    np.testing.assert_allclose(ab, ba, rtol=1e-9)
    f32 = fid.frechet_distance(mu1.astype(np.float32), s1.astype(np.float32),
                               mu2.astype(np.float32), s2.astype(np.float32))
    np.testing.assert_allclose(f32, ab, rtol=1e-4)

  def test_commuting_covariances_closed_form(self):
    # Diagonal covariances: Tr sqrt(S1 S2) = sum sqrt(a_i b_i), an independent answer.
    rng = np.random.default_rng(4)
    a, b = rng.uniform(0.1, 2.0, 16), rng.uniform(0.1, 2.0, 16)
    mu1, mu2 = rng.standard_normal(16), rng.standard_normal(16)
    want = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    np.testing.assert_allclose(fid.frechet_distance(mu1, np.diag(a), mu2, np.diag(b)), want,
                               rtol=1e-10)

  def test_same_set_is_zero(self):
    rng = np.random.default_rng(5)
    feats = rng.standard_normal((300, 48)) @ rng.standard_normal((48, 48))
    self.assertLess(abs(fid.fid_from_features(feats, feats)), 1e-6)
    self.assertGreater(fid.fid_from_features(feats, feats + 0.5), 0.1)

  def test_near_singular_few_samples_is_finite_with_warning(self):
    rng = np.random.default_rng(6)
    x, y = rng.standard_normal((20, 64)), rng.standard_normal((30, 64)) * 1.5 + 0.2
    with pytest.warns(fid.RankDeficientCovarianceWarning, match="rank deficient"):
      value = fid.fid_from_features(x, y)
    self.assertTrue(np.isfinite(value))
    self.assertIsInstance(value, float)
    self.assertGreaterEqual(value, 0.0)
    # Exact answer for factored covariances: Tr sqrt(A A^T B B^T) = ||A^T B||_* .
    xc, yc = (x - x.mean(0)) / np.sqrt(19), (y - y.mean(0)) / np.sqrt(29)
    nuclear = np.linalg.svd(xc @ yc.T, compute_uv=False).sum()
    want = (np.sum((x.mean(0) - y.mean(0)) ** 2) + np.sum(xc ** 2) + np.sum(yc ** 2)
            - 2 * nuclear)
    np.testing.assert_allclose(value, want, rtol=1e-6)
    # Same set, singular: zero, never negative or NaN.
    with pytest.warns(fid.RankDeficientCovarianceWarning):
      self.assertLess(fid.fid_from_features(x, x), 1e-6)

  def test_eps_regulariser_is_small_and_finite(self):
    rng = np.random.default_rng(7)
    x, y = rng.standard_normal((10, 32)), rng.standard_normal((10, 32))
    with warnings.catch_warnings():
      warnings.simplefilter("ignore", fid.RankDeficientCovarianceWarning)
      plain = fid.fid_from_features(x, y)
      reg = fid.fid_from_features(x, y, eps=1e-6)
    self.assertTrue(np.isfinite(reg))
    self.assertLess(abs(reg - plain), 1e-2 * plain)

  def test_not_psd_warns_and_clips(self):
    s = np.diag([1.0, 2.0, -0.5])
    with pytest.warns(fid.RankDeficientCovarianceWarning, match="negative eigenvalue"):
      value = fid.frechet_distance(np.zeros(3), s, np.zeros(3), np.eye(3))
    self.assertTrue(np.isfinite(value))

  @parameterized.named_parameters(
      ("mu1_rank", (np.zeros((2, 3)), np.eye(3), np.zeros(3), np.eye(3)), "mu1"),
      ("sigma1_shape", (np.zeros(3), np.eye(4), np.zeros(3), np.eye(3)), "sigma1"),
      ("sigma2_rank", (np.zeros(3), np.eye(3), np.zeros(3), np.ones(3)), "sigma2"),
      ("dims_differ", (np.zeros(3), np.eye(3), np.zeros(4), np.eye(4)), "mu2"),
      ("asymmetric", (np.zeros(2), np.array([[1.0, 0.5], [0.0, 1.0]]), np.zeros(2),
                      np.eye(2)), "sigma1"),
      ("nan", (np.array([np.nan, 0.0]), np.eye(2), np.zeros(2), np.eye(2)), "mu1"),
  )
  def test_bad_inputs_raise(self, args, name):
    with pytest.raises(ValueError, match=name):
      fid.frechet_distance(*args)

  def test_bad_features_raise(self):
    with pytest.raises(ValueError, match="features"):
      fid.feature_statistics(np.zeros((5,)))
    with pytest.raises(ValueError, match="at least 2 rows"):
      fid.feature_statistics(np.zeros((1, 4)))
    with pytest.raises(ValueError, match="feature dimension"):
      fid.fid_from_features(np.zeros((5, 4)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="eps"):
      fid.frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.eye(2), eps=-1.0)


class StatisticsTest(parameterized.TestCase):

  def test_statistics_match_numpy(self):
    rng = np.random.default_rng(8)
    feats = rng.standard_normal((40, 6)).astype(np.float32)
    mu, sigma = fid.feature_statistics(feats)
    self.assertEqual(mu.dtype, np.float64)
    self.assertEqual(sigma.dtype, np.float64)
    chex.assert_shape((mu, sigma), ((6,), (6, 6)))
    np.testing.assert_allclose(mu, feats.astype(np.float64).mean(0), rtol=1e-12)
    np.testing.assert_allclose(sigma, np.cov(feats.astype(np.float64), rowvar=False),
                               rtol=1e-10, atol=1e-12)
    # More rows than one internal chunk (4096), offset far from 0.
    many = rng.standard_normal((9000, 3)) * [1.0, 2.0, 0.5] + 100.0
    mu, sigma = fid.feature_statistics(many)
    np.testing.assert_allclose(mu, many.mean(0), rtol=1e-12)
    np.testing.assert_allclose(sigma, np.cov(many, rowvar=False), rtol=1e-9)

  def test_npz_round_trip_and_pytorch_fid_layout(self):
    tmp = _tmpdir(self)
    rng = np.random.default_rng(9)
    mu, sigma = fid.feature_statistics(rng.standard_normal((30, 5)))
    written = fid.save_statistics(f"{tmp}/sub/stats", mu, sigma)
    self.assertEqual(written.name, "stats.npz")
    # pytorch-fid reads exactly these keys this way.
    with np.load(written) as f:
      self.assertEqual(sorted(f.files), ["mu", "sigma"])
      m, s = f["mu"][:], f["sigma"][:]
    np.testing.assert_array_equal(m, mu)
    np.testing.assert_array_equal(s, sigma)
    mu2, sigma2 = fid.load_statistics(written)
    chex.assert_trees_all_close((mu2, sigma2), (mu, sigma), rtol=0, atol=0)
    self.assertTrue(fid.is_statistics_file(written))
    # A file written by pytorch-fid (`np.savez(path, mu=mu, sigma=sigma)`, float32 here).
    np.savez(f"{tmp}/theirs.npz", mu=mu.astype(np.float32), sigma=sigma.astype(np.float32))
    mu3, sigma3 = fid.load_statistics(f"{tmp}/theirs.npz")
    self.assertEqual(mu3.dtype, np.float64)
    np.testing.assert_allclose(sigma3, sigma, rtol=1e-6, atol=1e-7)

  def test_load_errors(self):
    tmp = _tmpdir(self)
    with pytest.raises(FileNotFoundError, match="mu"):
      fid.load_statistics(f"{tmp}/missing.npz")
    np.savez(f"{tmp}/images.npz", images=np.zeros((2, 4, 4, 3), np.uint8))
    self.assertFalse(fid.is_statistics_file(f"{tmp}/images.npz"))
    with pytest.raises(ValueError, match="keys `mu` and `sigma`"):
      fid.load_statistics(f"{tmp}/images.npz")
    np.savez(f"{tmp}/bad.npz", mu=np.zeros(3), sigma=np.eye(4))
    with pytest.raises(ValueError, match="sigma"):
      fid.load_statistics(f"{tmp}/bad.npz")


class ClasswiseFidTest(parameterized.TestCase):

  def test_per_class_values(self):
    rng = np.random.default_rng(10)
    real = {"wall": rng.standard_normal((50, 8)), "bed": rng.standard_normal((40, 8)) + 1}
    fake = {"bed": rng.standard_normal((45, 8)) + 1.5, "wall": rng.standard_normal((60, 8))}
    out = fid.classwise_fid(real, fake)
    self.assertEqual(list(out), ["wall", "bed"])
    for label in real:
      self.assertAlmostEqual(out[label], fid.fid_from_features(real[label], fake[label]))
    self.assertGreater(out["bed"], out["wall"])

  def test_missing_classes(self):
    rng = np.random.default_rng(11)
    real = {0: rng.standard_normal((10, 4)), 1: rng.standard_normal((10, 4))}
    fake = {0: rng.standard_normal((10, 4)), 2: rng.standard_normal((10, 4))}
    with pytest.raises(ValueError, match="only in"):
      fid.classwise_fid(real, fake)
    self.assertEqual(list(fid.classwise_fid(real, fake, on_missing="skip")), [0])
    with pytest.raises(ValueError, match="class 0"):
      fid.classwise_fid({0: np.zeros((1, 4))}, {0: np.zeros((5, 4))})


def _cholesky_trace_sqrt(s1, s2) -> float:
  """Tr((s1 s2)^{1/2}) by a route independent of `fid`'s: with s1 = L L^T (Cholesky), s1 s2
  is similar to the symmetric L^T s2 L, whose eigenvalues (eigvalsh, float64) are the
  eigenvalues of s1 s2. Seconds at D = 2048, where scipy's sqrtm takes minutes on this CPU."""
  chol = np.linalg.cholesky(s1)
  return float(np.sqrt(np.clip(np.linalg.eigvalsh(chol.T @ s2 @ chol), 0, None)).sum())


def test_cholesky_reference_is_scipy_at_64d():
  rng = np.random.default_rng(5)
  s1, s2 = _random_spd(rng, 64), 3.0 * _random_spd(rng, 64)
  np.testing.assert_allclose(_cholesky_trace_sqrt(s1, s2),
                             np.trace(np.real(scipy.linalg.sqrtm(s1 @ s2))), rtol=1e-9)


def test_2048d_matches_independent_reference():
  """Numerical agreement at Inception's D = 2048 (speed: benchmarks/fid_throughput.py). The
  reference is `_cholesky_trace_sqrt`, itself checked against scipy's sqrtm at 64-d."""
  rng = np.random.default_rng(12)
  d = 2048
  mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
  s1, s2 = _random_spd(rng, d, 100), _random_spd(rng, d, 100)
  got = fid.frechet_distance(mu1, s1, mu2, s2)
  want = _scipy_fid(mu1, s1, mu2, s2, trace_sqrt=_cholesky_trace_sqrt(s1, s2))
  np.testing.assert_allclose(got, want, rtol=1e-6)
