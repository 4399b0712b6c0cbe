"""Real-statistics resolution of the training-time FID (genattn_jax.training.evaluation)."""

import numpy as np
import pytest

from configs import demo
from genattn_jax.metrics import fid
from genattn_jax.training import evaluation


def test_precomputed_real_stats_are_used_as_given(tmp_path):
  rng = np.random.default_rng(0)
  mu = rng.normal(size=8)
  a = rng.normal(size=(8, 8))
  sigma = a @ a.T
  path = str(tmp_path / "stats.npz")
  fid.save_statistics(path, mu, sigma)
  config = demo.get_test_config()
  config.eval.real_stats = path
  got_mu, got_sigma = evaluation.real_statistics(str(tmp_path / "work"), config)
  np.testing.assert_array_equal(got_mu, mu)
  np.testing.assert_array_equal(got_sigma, sigma)
  assert not (tmp_path / "work").exists()  # nothing computed, nothing cached


def test_missing_real_stats_file_names_the_field(tmp_path):
  config = demo.get_test_config()
  config.eval.real_stats = str(tmp_path / "absent.npz")
  with pytest.raises(FileNotFoundError, match="config.eval.real_stats"):
    evaluation.real_statistics(str(tmp_path / "work"), config)
