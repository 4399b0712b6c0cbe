"""Intra-FID equals the mean of per-class FIDs computed separately."""

import numpy as np
import pytest

from genattn_jax.metrics import fid, intra_fid


def test_intra_fid_is_mean_of_per_class_fids():
  rng = np.random.default_rng(0)
  real = {c: rng.normal(c, 1.0, (40, 6)) for c in range(3)}
  fake = {c: rng.normal(c + 0.3 * c, 1.0 + 0.1 * c, (40, 6)) for c in range(3)}
  separate = [fid.fid_from_features(real[c], fake[c]) for c in range(3)]
  mean, per_class = intra_fid.intra_fid(
      {c: fid.feature_statistics(real[c]) for c in real},
      {c: fid.feature_statistics(fake[c]) for c in fake})
  np.testing.assert_allclose([per_class[c] for c in range(3)], separate, rtol=1e-6)
  np.testing.assert_allclose(mean, np.mean(separate), rtol=1e-6)
  # Not the FID of the pooled classes.
  pooled = fid.fid_from_features(np.concatenate(list(real.values())),
                                 np.concatenate(list(fake.values())))
  assert abs(pooled - mean) > 1e-3
  with pytest.raises(ValueError, match="same non-empty classes"):
    intra_fid.intra_fid({0: fid.feature_statistics(real[0])}, {})
