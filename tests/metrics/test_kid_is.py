"""Tests of KID and Inception Score against straightforward loop re-implementations."""

import math
import warnings

from absl.testing import parameterized
import numpy as np
import pytest

from genattn_jax.metrics import inception_score as is_lib
from genattn_jax.metrics import kid as kid_lib


def _loop_kernel(a, b) -> float:
  d = len(a)
  return (sum(float(a[k]) * float(b[k]) for k in range(d)) / d + 1.0) ** 3


def _loop_mmd2(x, y) -> float:
  """Unbiased MMD^2 with explicit double loops over sample pairs."""
  n, m = len(x), len(y)
  xx = sum(_loop_kernel(x[i], x[j]) for i in range(n) for j in range(n) if i != j)
  yy = sum(_loop_kernel(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
  xy = sum(_loop_kernel(x[i], y[j]) for i in range(n) for j in range(m))
  return xx / (n * (n - 1)) + yy / (m * (m - 1)) - 2.0 * xy / (n * m)


def _loop_inception_score(logits, splits):
  """IS with plain loops: softmax per row, marginal per split, KL per row."""
  n = len(logits)
  probs = []
  for row in logits:
    top = max(row)
    exps = [math.exp(v - top) for v in row]
    total = sum(exps)
    probs.append([e / total for e in exps])
  scores = []
  for s in range(splits):
    part = probs[s * n // splits:(s + 1) * n // splits]
    k = len(part[0])
    marginal = [sum(p[c] for p in part) / len(part) for c in range(k)]
    kls = []
    for p in part:
      kls.append(sum(p[c] * (math.log(p[c]) - math.log(marginal[c]))
                     for c in range(k) if p[c] > 0))
    scores.append(math.exp(sum(kls) / len(kls)))
  mean = sum(scores) / splits
  std = math.sqrt(sum((v - mean) ** 2 for v in scores) / splits)
  return mean, std


class KidTest(parameterized.TestCase):

  def test_full_set_matches_loop_reference(self):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((9, 5))
    y = rng.standard_normal((7, 5)) * 1.3 + 0.4
    want = _loop_mmd2(x, y)
    np.testing.assert_allclose(kid_lib.mmd2_unbiased(x, y), want, rtol=1e-10)
    # One subset of all samples: the order of the drawn rows does not change MMD^2.
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")
      mean, std = kid_lib.kernel_inception_distance(x, y, num_subsets=1, subset_size=7)
    np.testing.assert_allclose(mean, _loop_mmd2(x[np.random.default_rng(0).choice(
        9, 7, replace=False)], y), rtol=1e-10)
    self.assertEqual(std, 0.0)

  def test_subsets_follow_documented_protocol(self):
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((12, 4)), rng.standard_normal((10, 4)) + 0.5
    mean, std = kid_lib.kernel_inception_distance(x, y, num_subsets=4, subset_size=6, seed=3)
    draw = np.random.default_rng(3)
    values = []
    for _ in range(4):
      ix = draw.choice(12, 6, replace=False)
      iy = draw.choice(10, 6, replace=False)
      values.append(_loop_mmd2(x[ix], y[iy]))
    np.testing.assert_allclose(mean, np.mean(values), rtol=1e-10)
    np.testing.assert_allclose(std, np.std(values), rtol=1e-8)
    self.assertGreater(std, 0.0)

  def test_same_distribution_near_zero_and_shift_positive(self):
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((400, 16)), rng.standard_normal((400, 16))
    same, _ = kid_lib.kernel_inception_distance(x, y, num_subsets=10, subset_size=200)
    shifted, _ = kid_lib.kernel_inception_distance(x, y + 1.0, num_subsets=10,
                                                   subset_size=200)
    self.assertLess(abs(same), 0.01)
    self.assertGreater(shifted, 20 * abs(same))
    # Reproducible for a seed.
    again = kid_lib.kernel_inception_distance(x, y, num_subsets=10, subset_size=200)
    self.assertEqual(again[0], same)

  def test_clamps_subset_size_with_warning_and_validates(self):
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((8, 3)), rng.standard_normal((6, 3))
    with pytest.warns(UserWarning, match="subsets of 6"):
      kid_lib.kernel_inception_distance(x, y, num_subsets=2, subset_size=1000)
    with pytest.raises(ValueError, match="feature dimension"):
      kid_lib.kernel_inception_distance(x, rng.standard_normal((6, 4)))
    with pytest.raises(ValueError, match="features1"):
      kid_lib.kernel_inception_distance(np.zeros((1, 3)), y)
    with pytest.raises(ValueError, match="num_subsets"):
      kid_lib.kernel_inception_distance(x, y, num_subsets=0)
    with pytest.raises(ValueError, match="subset_size"):
      kid_lib.kernel_inception_distance(x, y, subset_size=1)


  def test_subsets_covering_both_sets_report_an_undefined_spread(self):
    rng = np.random.default_rng(6)
    x, y = rng.standard_normal((64, 5)), rng.standard_normal((64, 5)) + 0.3
    with pytest.warns(kid_lib.KIDSpreadUndefinedWarning, match="spread over subsets is "
                      "undefined"):
      mean, std = kid_lib.kernel_inception_distance(x, y, num_subsets=10, subset_size=1000)
    self.assertTrue(math.isnan(std))  # not the "± 0" of ten identical full-set values
    np.testing.assert_allclose(mean, _loop_mmd2(x, y), rtol=1e-10)
    # One set larger than the subsets: its draws vary, so the spread is defined.
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")
      _, std = kid_lib.kernel_inception_distance(np.concatenate([x, x + 0.1]), y,
                                                 num_subsets=10, subset_size=1000)
    self.assertGreater(std, 0.0)


class InceptionScoreTest(parameterized.TestCase):

  @parameterized.parameters((1,), (3,), (5,))
  def test_matches_loop_reference(self, splits):
    rng = np.random.default_rng(4)
    logits = rng.standard_normal((23, 11)) * 3.0
    got = is_lib.inception_score(logits, num_splits=splits)
    want = _loop_inception_score(logits.tolist(), splits)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)

  def test_known_values(self):
    # Identical posteriors: p(y|x) = p(y), KL = 0, IS = 1.
    mean, std = is_lib.inception_score(np.tile(np.arange(5.0), (20, 1)), num_splits=2)
    np.testing.assert_allclose((mean, std), (1.0, 0.0), atol=1e-12)
    # Confident and evenly spread over K classes: IS = K.
    logits = np.full((40, 8), -1e4)
    logits[np.arange(40), np.arange(40) % 8] = 1e4
    mean, std = is_lib.inception_score(logits, num_splits=5)
    np.testing.assert_allclose((mean, std), (8.0, 0.0), atol=1e-9)
    self.assertTrue(np.isfinite(mean))

  def test_imagenet_classes_drop_background_and_padding(self):
    rng = np.random.default_rng(5)
    logits = rng.standard_normal((12, 1008)) * 4
    logits[:, 0] += 5.0  # A strong background class changes the 'all' score.
    got = is_lib.inception_score(logits, num_splits=2, classes="imagenet")
    want = is_lib.inception_score(logits[:, 1:1001], num_splits=2)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    self.assertNotAlmostEqual(is_lib.inception_score(logits, num_splits=2)[0], got[0], 3)
    with pytest.raises(ValueError, match="1008"):
      is_lib.inception_score(logits[:, :1000], classes="imagenet")

  def test_bad_inputs(self):
    with pytest.raises(ValueError, match="logits"):
      is_lib.inception_score(np.zeros((10,)))
    with pytest.raises(ValueError, match="num_splits"):
      is_lib.inception_score(np.zeros((5, 3)), num_splits=10)
    with pytest.raises(ValueError, match="classes"):
      is_lib.inception_score(np.zeros((5, 3)), num_splits=1, classes="tf")
    with pytest.raises(ValueError, match="NaN"):
      is_lib.inception_score(np.full((5, 3), np.nan), num_splits=1)


class KidEdgeTest(parameterized.TestCase):
  """Smallest accepted inputs, the documented defaults, and the clamp warning's details."""

  def test_smallest_inputs_accepted(self):
    rng = np.random.default_rng(7)
    x, y = rng.standard_normal((2, 1)), rng.standard_normal((2, 1)) + 1.0   # N = 2, D = 1
    np.testing.assert_allclose(kid_lib.mmd2_unbiased(x, y), _loop_mmd2(x, y), rtol=1e-12)
    # Subsets of 2 cover both sets: the value is defined, its spread is not (NaN, warned).
    with self.assertWarns(kid_lib.KIDSpreadUndefinedWarning):
      mean, spread = kid_lib.kernel_inception_distance(x, y, num_subsets=1, subset_size=2)
    np.testing.assert_allclose(mean, _loop_mmd2(x, y), rtol=1e-12)
    self.assertTrue(np.isnan(spread))

  def test_defaults_are_the_papers_protocol(self):
    import inspect  # pylint: disable=g-import-not-at-top
    params = inspect.signature(kid_lib.kernel_inception_distance).parameters
    self.assertEqual(params["num_subsets"].default, 100)
    self.assertEqual(params["subset_size"].default, 1000)

  def test_no_warning_when_sets_equal_subset_size_and_details_otherwise(self):
    rng = np.random.default_rng(8)
    x, y = rng.standard_normal((8, 3)), rng.standard_normal((6, 3))
    with warnings.catch_warnings():
      warnings.simplefilter("error")
      kid_lib.kernel_inception_distance(x, y, num_subsets=2, subset_size=6)
    with warnings.catch_warnings(record=True) as caught:
      warnings.simplefilter("always")
      kid_lib.kernel_inception_distance(x, y, num_subsets=2, subset_size=7)
    self.assertLen(caught, 1)
    self.assertIn("(8, 6); using subsets of 6", str(caught[0].message))
    self.assertEqual(caught[0].filename, __file__)
    with pytest.raises(ValueError, match="got 3 and 4"):
      kid_lib.mmd2_unbiased(x, rng.standard_normal((6, 4)))
