"""FSD on the segmentation interface, with a small Flax network as the scene parser."""

import flax.linen as nn
import jax
import numpy as np
import pytest
import scipy.linalg

from genattn_jax.metrics import fsd
from genattn_jax.metrics.segmentation import make_segment_fn


class TinyParser(nn.Module):
  """1×1 conv to 4 class logits: a scene parser small enough for a test."""

  @nn.compact
  def __call__(self, x):
    return nn.Conv(4, (1, 1))(x)


def _images(seed, n, bias):
  rng = np.random.default_rng(seed)
  x = rng.integers(0, 256, (n, 8, 8, 3)).astype(np.float64)
  return np.clip(x * 0.5 + bias, 0, 255).astype(np.uint8)


def test_class_fractions_and_errors():
  labels = np.array([[[0, 0], [1, 3]], [[2, 2], [2, 255]]])
  frac = fsd.class_fractions(labels, 4, ignore_index=255)
  np.testing.assert_allclose(frac, [[0.5, 0.25, 0, 0.25], [0, 0, 1, 0]])
  with pytest.raises(ValueError, match="class id 255"):
    fsd.class_fractions(labels, 4)
  with pytest.raises(ValueError, match=r"\[B, H, W\]"):
    fsd.class_fractions(labels[0], 4)


def test_fsd_with_small_network_matches_numpy():
  module = TinyParser()
  variables = module.init(jax.random.PRNGKey(0), np.zeros((1, 8, 8, 3), np.float32))
  segment_fn = make_segment_fn(module, variables)
  real, fake = _images(0, 24, 0.0), _images(1, 24, 120.0)
  batches = lambda x: (x[i:i + 8] for i in range(0, len(x), 8))
  got = fsd.frechet_segmentation_distance(segment_fn, batches(real), batches(fake), 4)
  # Reference: fractions by pixel loops, statistics and Fréchet distance in NumPy / SciPy.
  def fractions(images):
    labels = segment_fn(images)
    return np.array([[np.mean(l == k) for k in range(4)] for l in labels])
  fr, fg = fractions(real), fractions(fake)
  mu1, mu2 = fr.mean(0), fg.mean(0)
  s1, s2 = np.cov(fr, rowvar=False), np.cov(fg, rowvar=False)
  covmean = scipy.linalg.sqrtm(s1 @ s2).real
  ref = float(np.sum((mu1 - mu2)**2) + np.trace(s1 + s2 - 2 * covmean))
  assert ref > 1e-3  # the two sets are segmented differently
  np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-6)
  same = fsd.frechet_segmentation_distance(segment_fn, batches(real), batches(real), 4)
  assert abs(same) < 1e-6
  scaled = fsd.frechet_segmentation_distance(segment_fn, batches(real), batches(fake), 4,
                                             scale=10.0)
  np.testing.assert_allclose(scaled, 100 * got, rtol=1e-4)
