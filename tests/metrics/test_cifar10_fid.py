"""Real end-to-end FID on CIFAR-10 from ../shared/data, at a CI-affordable size.

The full-size run (5,000 test vs 5,000 train) is `benchmarks/cifar10_fid.py`; this runs the
same code path on 100 + 100 real images with the real FID Inception weights.
"""

import importlib.util
import json
import pathlib
import sys

import chex
import numpy as np
import pytest

from genattn_jax.metrics import features, fid

REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
  spec = importlib.util.spec_from_file_location("cifar10_fid", REPO / "benchmarks" /
                                                "cifar10_fid.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.fixture(scope="module")
def cifar_features(bench, shared_data_dir, inception_weights_fetched_with_pip):
  splits = bench.load_splits(str(shared_data_dir / "cifar10-jpeg.tar.gz"), 100)
  return {name: features.extract_features(images, batch_size=50, progress=False)["pool"]
          for name, images in splits.items()}, splits


def test_splits_are_class_balanced_uint8(bench, cifar_features):
  _, splits = cifar_features
  for images in splits.values():
    chex.assert_shape(images, (100, 32, 32, 3))
    assert images.dtype == np.uint8 and images.std() > 20
  with pytest.raises(ValueError, match="num_images"):
    bench.load_splits("unused.tar.gz", 55)


def test_fid_of_disjoint_test_halves_is_small_and_positive(cifar_features):
  feats, _ = cifar_features
  test, train = feats["test"], feats["train"]  # rows: 10 images of class 0, then class 1, ...
  halves = fid.fid_from_features(test[0::2], test[1::2])  # 5 per class each, disjoint
  balanced = fid.fid_from_features(test[0::2], train[0::2])
  five_classes = fid.fid_from_features(test[0::2], train[:50])  # classes 0-4 only
  assert 0 < halves < five_classes, (halves, five_classes)
  assert 0 < balanced < five_classes, (balanced, five_classes)


def test_benchmark_script_end_to_end(bench, tmp_path, monkeypatch, capsys, shared_data_dir):
  out = tmp_path / "fid.json"
  stats = tmp_path / "test_stats.npz"
  monkeypatch.setattr(sys, "argv", ["cifar10_fid.py", "--num_images=20", "--batch_size=20",
                                    f"--tar={shared_data_dir / 'cifar10-jpeg.tar.gz'}",
                                    f"--json_out={out}", f"--save_test_stats={stats}"])
  bench.main()
  result = json.loads(out.read_text())
  assert json.loads(capsys.readouterr().out) == result
  assert result["n_real_test"] == result["n_fake_train"] == 20
  assert np.isfinite(result["fid"]) and result["fid"] > 0
  mu, sigma = fid.load_statistics(stats)
  chex.assert_shape((mu, sigma), ((2048,), (2048, 2048)))
