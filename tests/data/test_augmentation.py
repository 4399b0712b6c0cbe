"""Data augmentation: the flip axis and probability, paired maps, and flip-free real statistics."""

import ml_collections
import numpy as np
from PIL import Image
import pytest

from genattn_jax.data import pipeline
from genattn_jax.metrics import features as features_lib
from genattn_jax.metrics import fid
from genattn_jax.training import config as config_lib
from genattn_jax.training import evaluation

SIZE = 8


def _asymmetric_images(n):
  """uint8 [n, 8, 8, 3]: every pixel distinct, no image equal to any flip of another."""
  r, c = np.meshgrid(np.arange(SIZE), np.arange(SIZE), indexing="ij")
  base = np.stack([r * 30 + c, c * 29 + 3, (r + 2 * c) * 9], axis=-1) % 251
  return np.stack([(base + 13 * i) % 251 for i in range(n)]).astype(np.uint8)


def _folder(tmp_path, images):
  root = tmp_path / "src"
  for i, img in enumerate(images):
    d = root / "train" / f"class{i % 2}"
    d.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(d / f"{i}.png")
  return root


def _data_config(source, data_dir, random_flip):
  return ml_collections.ConfigDict(dict(source=str(source), data_dir=str(data_dir), split="train",
                                        image_size=SIZE, random_flip=random_flip, channels=3))


@pytest.mark.parametrize("random_flip", [True, False])
def test_flip_is_horizontal_with_probability_half(tmp_path, random_flip):
  images = _asymmetric_images(4)
  originals = images.astype(np.float32) / 127.5 - 1.0
  config = _data_config(_folder(tmp_path, images), tmp_path / "tfds", random_flip)
  loader = pipeline.create_data_loader(config, global_batch_size=4, seed=0, num_epochs=50)
  flipped = total = 0
  for batch in loader:
    for img in batch["image"]:
      same = [np.array_equal(img, o) for o in originals]
      mirrored = [np.array_equal(img, o[:, ::-1]) for o in originals]
      assert not any(np.array_equal(img, o[::-1]) for o in originals)   # never vertical
      assert sum(same) + sum(mirrored) == 1, "neither an original nor its horizontal flip"
      flipped += sum(mirrored)
      total += 1
  assert total == 200
  if random_flip:
    # Binomial(200, 1/2): std 7.1; 4 std either side.
    assert 72 <= flipped <= 128, flipped
  else:
    assert flipped == 0


def test_paired_maps_get_the_same_flip():
  rng = np.random.default_rng(0)
  image = rng.uniform(-1, 1, (4, 6, 3)).astype(np.float32)
  label_map = rng.integers(0, 5, (4, 6)).astype(np.int32)
  instance_map = rng.integers(0, 9, (4, 6, 1)).astype(np.int32)
  example = {"image": image, "label_map": label_map, "instance_map": instance_map,
             "label": np.int32(3), "embedding": np.arange(4.0 * 2).reshape(4, 2)}
  flip = pipeline.RandomFlip()
  outcomes = []
  for seed in range(64):
    out = flip.random_map(dict(example), np.random.default_rng(seed))
    was_flipped = not np.array_equal(out["image"], image)
    outcomes.append(was_flipped)
    want = (lambda a: a[:, ::-1]) if was_flipped else (lambda a: a)
    np.testing.assert_array_equal(out["image"], want(image))
    np.testing.assert_array_equal(out["label_map"], want(label_map))
    np.testing.assert_array_equal(out["instance_map"], want(instance_map))
    assert out["label"] == 3
    np.testing.assert_array_equal(out["embedding"], example["embedding"])  # [4, 2] != H, W
  assert 16 <= sum(outcomes) <= 48


def test_real_statistics_use_the_eval_split_without_flips(tmp_path, monkeypatch):
  config = config_lib.shrink_for_tests(config_lib.base_config("sndcgan", 32))
  config.data.data_dir = str(tmp_path / "tfds")
  config.data.random_flip = True          # training augmentation on: must not reach FID
  config.eval.real_split = "test"
  config.eval.num_real = 20               # the whole test split of the fixture
  config.eval.batch_size = 8
  seen = []

  def fake_extract(batches, **_):
    imgs = np.concatenate(list(batches))
    seen.append(imgs)
    # Features: per-image channel means and a checksum, so the statistics depend on them.
    feats = np.concatenate([imgs.reshape(len(imgs), -1, 3).mean(1),
                            imgs.reshape(len(imgs), -1)[:, :5].astype(np.float64)], axis=1)
    return {"pool": feats}

  monkeypatch.setattr(features_lib, "extract_features", fake_extract)
  mu, sigma = evaluation.real_statistics(str(tmp_path / "work"), config)
  (imgs,) = seen
  source, _ = pipeline.get_data_source(config.data, "test")
  test_images = [np.asarray(source[i]["image"]) for i in range(len(source))]
  train_source, _ = pipeline.get_data_source(config.data, "train")
  train_images = {np.asarray(train_source[i]["image"]).tobytes() for i in range(len(train_source))}
  assert imgs.dtype == np.uint8 and imgs.shape == (20, 32, 32, 3)
  # Exactly the test images, each once, none flipped, none from the training split.
  assert sorted(i.tobytes() for i in imgs) == sorted(t.tobytes() for t in test_images)
  assert not train_images & {i.tobytes() for i in imgs}
  want_mu, want_sigma = fid.feature_statistics(fake_extract([imgs])["pool"])
  np.testing.assert_allclose(mu, want_mu, rtol=1e-12)
  np.testing.assert_allclose(sigma, want_sigma, rtol=1e-12)
