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


def _write_stats(path, seed):
  rng = np.random.default_rng(seed)
  a = rng.normal(size=(4, 4))
  fid.save_statistics(str(path), rng.normal(size=4), a @ a.T)
  return fid.load_statistics(str(path))


def _config_without_data(tmp_path):
  """Test config whose data source does not exist (any computation would fail), and its split."""
  config = demo.get_test_config()
  config.data.source = str(tmp_path / "no_such_dataset")
  return config, config.eval.get("real_split") or config.data.split


def test_cached_real_stats_are_reused_and_keyed_by_subset(tmp_path):
  config, split = _config_without_data(tmp_path)
  path = evaluation._real_stats_path(str(tmp_path), config.data, split, config.eval.num_real)
  (tmp_path / "fid_stats").mkdir()
  mu, sigma = _write_stats(path, 0)
  got_mu, got_sigma = evaluation.real_statistics(str(tmp_path), config)
  np.testing.assert_array_equal(got_mu, mu)
  np.testing.assert_array_equal(got_sigma, sigma)
  n = config.eval.num_real
  other = {evaluation._real_stats_path(str(tmp_path), config.data, split, n + 1),
           evaluation._real_stats_path(str(tmp_path), config.data, split + "_other", n)}
  assert path not in other and len(other) == 2


def test_stats_cached_without_sampling_order_are_not_reused(tmp_path):
  # Caches written before real images were drawn in shuffled order have a key without "order";
  # they came from the first N examples and must be recomputed, not reused.
  import hashlib  # pylint: disable=g-import-not-at-top
  import json  # pylint: disable=g-import-not-at-top
  config, split = _config_without_data(tmp_path)
  old_key = json.dumps({"source": str(config.data.source), "split": split,
                        "n": int(config.eval.num_real), "size": int(config.data.image_size)},
                       sort_keys=True)
  old = tmp_path / "fid_stats" / f"real_{hashlib.sha1(old_key.encode()).hexdigest()[:12]}.npz"
  old.parent.mkdir()
  _write_stats(old, 1)
  with pytest.raises(FileNotFoundError, match="no_such_dataset"):
    evaluation.real_statistics(str(tmp_path), config)


def test_non_finite_generator_output_is_refused_not_turned_black():
  def sample_fn(params, g_state, z, y):
    del g_state, y
    return np.full((z.shape[0], 4, 4, 3), params, np.float32)

  ok = list(evaluation.sample_batches(sample_fn, 0.5, {}, num_images=3, batch_size=2, z_dim=2,
                                      num_classes=0, seed=0))
  assert [b.shape for b in ok] == [(2, 4, 4, 3), (1, 4, 4, 3)]
  with pytest.raises(evaluation.NonFiniteOutputError, match="non-finite pixels in 2 of 2"):
    list(evaluation.sample_batches(sample_fn, np.nan, {}, num_images=3, batch_size=2, z_dim=2,
                                   num_classes=0, seed=0))
