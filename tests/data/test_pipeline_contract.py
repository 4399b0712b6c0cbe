"""`data/pipeline.py` piece by piece: source names, slices, the multi-process conversion
order, `_Preprocess` against PIL, the flip's threshold, and `create_data_loader`'s defaults.

The loader tests read the committed CIFAR-10 fixture (`TEST_FIXTURE_IMAGES`, 20 test images);
the rest run on fakes, so every message and branch is pinned without a tfds download.
"""

import dataclasses
import os

import ml_collections
import numpy as np
from PIL import Image
import pytest

from genattn_jax.data import pipeline
from genattn_jax.training.config import TEST_FIXTURE_IMAGES


# ------------------------------------------------------------------------- source names

@pytest.mark.parametrize("source,local", [
    ("cifar10", False), ("celeb_a_hq/128", False), ("imagenet_resized/64x64", False),
    ("lsun/bedroom:3.1.0", False), ("/data/images", True), ("./images", True),
    (".hidden", True), ("~data", True), ("~/data", True), ("runs/mini.tar.gz", True),
    ("runs/mini.tgz", True), ("runs/mini.tar", True), ("images/", True), ("My Photos", True)])
def test_local_sources_and_tfds_names(source, local):
  assert pipeline._is_local(source) == local


def test_an_existing_bare_name_is_local(tmp_path, monkeypatch):
  (tmp_path / "mydata").mkdir()
  monkeypatch.chdir(tmp_path)
  assert pipeline._is_local("mydata") and not pipeline._is_local("otherdata")


def test_sliced_source_maps_indices_and_bounds():
  sliced = pipeline._Sliced(list(range(100, 110)), 3, 7)
  assert len(sliced) == 4
  assert [sliced[i] for i in range(4)] == [103, 104, 105, 106]
  for bad in (4, -1):
    with pytest.raises(IndexError):
      sliced[bad]  # pylint: disable=pointless-statement


# ------------------------------------------------------- conversion order over processes

def _conversion_calls(monkeypatch, count, index):
  calls = []
  monkeypatch.setattr(pipeline.jax, "process_count", lambda: count)
  monkeypatch.setattr(pipeline.jax, "process_index", lambda: index)
  monkeypatch.setattr(pipeline, "wait_for_processes", lambda name: calls.append(("wait", name)))
  monkeypatch.setattr(pipeline.local_images, "prepare_local_images",
                      lambda *a, **k: calls.append(("prepare", a, k)) or "builder")
  assert pipeline._prepare_local_once("/src", "/dir", 32) == "builder"
  return calls


def test_one_process_converts_without_a_barrier(monkeypatch):
  calls = _conversion_calls(monkeypatch, 1, 0)
  assert calls == [("prepare", ("/src", "/dir", 32), {"skip_unreadable": False})]


@pytest.mark.parametrize("count", [2, 3])
def test_process_zero_converts_before_the_barrier_the_others_after(monkeypatch, count):
  prepare = ("prepare", ("/src", "/dir", 32), {"skip_unreadable": False})
  wait = ("wait", "prepare_local_images")
  assert _conversion_calls(monkeypatch, count, 0) == [prepare, wait]
  for index in range(1, count):
    assert _conversion_calls(monkeypatch, count, index) == [wait, prepare]


# --------------------------------------------------------------- get_data_source errors

class _FakeBuilder:
  """What `get_data_source` reads of a tfds builder."""

  def __init__(self, prepared=True, label_classes=7, splits=("train",), n=12):
    self.prepared, self.n = prepared, n
    features = {"image": None}
    if label_classes:
      features["label"] = type("L", (), {"num_classes": label_classes})()
    self.info = type("Info", (), {"splits": {s: None for s in splits},
                                  "features": features})()

  def is_prepared(self):
    return self.prepared

  def as_data_source(self, split):
    del split
    return list(range(self.n))


def _tfds_config(**kw):
  c = ml_collections.ConfigDict(dict(source="cifar10", split="train", image_size=32))
  c.update(kw)
  return c


def _fake_tfds(monkeypatch, builder, seen=None):
  def fake(name, data_dir, file_format):
    if seen is not None:
      seen.append((name, data_dir, file_format))
    if isinstance(builder, Exception):
      raise builder
    return builder
  monkeypatch.setattr(pipeline.tfds, "builder", fake)


def test_tfds_source_defaults_and_label_count(monkeypatch):
  seen = []
  _fake_tfds(monkeypatch, _FakeBuilder(), seen)
  ds, classes = pipeline.get_data_source(_tfds_config())
  assert seen == [("cifar10", os.path.expanduser("~/tensorflow_datasets"), "array_record")]
  assert len(ds) == 12 and classes == 7
  ds, _ = pipeline.get_data_source(_tfds_config(data_dir="/data/tfds"), "train[2:5]")
  assert seen[-1][1] == "/data/tfds" and [ds[i] for i in range(len(ds))] == [2, 3, 4]
  _fake_tfds(monkeypatch, _FakeBuilder(label_classes=0))
  assert pipeline.get_data_source(_tfds_config())[1] == 0  # no label feature: unconditional


def test_get_data_source_messages(monkeypatch):
  home = os.path.expanduser("~/tensorflow_datasets")
  with pytest.raises(ValueError) as err:
    pipeline.get_data_source(_tfds_config(), "train[a:b]")
  assert str(err.value) == ("`config.data.split` must look like 'train' or 'train[:5000]', "
                            "got 'train[a:b]'.")
  _fake_tfds(monkeypatch, KeyError("no such dataset"))
  with pytest.raises(FileNotFoundError) as err:
    pipeline.get_data_source(_tfds_config(source="nosuch"))
  assert str(err.value) == (f"tfds dataset `nosuch` could not be opened under {home}: "
                            "'no such dataset'. Set `config.data.source` to a local image "
                            "folder instead.")
  _fake_tfds(monkeypatch, _FakeBuilder(prepared=False))
  with pytest.raises(FileNotFoundError) as err:
    pipeline.get_data_source(_tfds_config())
  assert str(err.value) == (
      f"tfds dataset `cifar10` is not prepared in ArrayRecord format under {home}. Prepare it "
      f"online with `tfds build cifar10 --file_format=array_record --data_dir={home}`, or set "
      "`config.data.source` to a local image folder (class sub-folders) or a .tar.gz of one.")
  _fake_tfds(monkeypatch, _FakeBuilder())
  with pytest.raises(FileNotFoundError) as err:
    pipeline.get_data_source(_tfds_config(), "test")
  assert str(err.value) == "split `test` not in `cifar10` (has ['train'])."
  for empty in ("train[3:3]", "train[5:2]", "train[12:]"):
    with pytest.raises(ValueError) as err:
      pipeline.get_data_source(_tfds_config(), empty)
    assert str(err.value) == (f"`config.data.split` {empty!r} selects no examples "
                              "(split has 12).")
  assert len(pipeline.get_data_source(_tfds_config(), "train[11:12]")[0]) == 1


def test_local_source_gets_image_size_and_skip_flag(monkeypatch):
  seen = []
  monkeypatch.setattr(pipeline, "_prepare_local_once",
                      lambda *a, **k: seen.append((a, k)) or _FakeBuilder())
  pipeline.get_data_source(_tfds_config(source="/imgs", image_size=48, data_dir="/d"))
  pipeline.get_data_source(_tfds_config(source="/imgs", image_size=48, data_dir="/d",
                                        skip_unreadable=True))
  assert seen == [(("/imgs", "/d", 48), {"skip_unreadable": False}),
                  (("/imgs", "/d", 48), {"skip_unreadable": True})]


# ---------------------------------------------------------------------------- _Preprocess

def _pil_resize(img, size):
  mode = "L" if img.shape[-1] == 1 else "RGB"
  pil = Image.fromarray(img[..., 0] if mode == "L" else img, mode)
  return np.asarray(pil.resize((size, size), Image.BICUBIC)).reshape(size, size, -1)


def _scaled(uint8):
  return uint8.astype(np.float32) / 127.5 - 1.0


@pytest.mark.parametrize("shape", [(40, 48, 3), (64, 64, 3), (30, 26, 1), (28, 28, 3)])
def test_preprocess_resizes_with_pil_bicubic(shape):
  rng = np.random.default_rng(sum(shape))
  img = rng.integers(0, 256, shape, dtype=np.uint8)
  out = pipeline._Preprocess(32, 3).map({"image": img, "label": 4})
  want = _pil_resize(img, 32)
  if want.shape[-1] == 1:
    want = np.repeat(want, 3, axis=-1)
  if shape == (28, 28, 3):  # square and 4 short: zero-padded, not resized
    want = np.pad(img, ((2, 2), (2, 2), (0, 0)))
  np.testing.assert_array_equal(out["image"], _scaled(want))
  assert out["image"].dtype == np.float32 and out["label"] == 4


def test_preprocess_two_dimensional_gray_and_one_channel_output():
  img = np.arange(30 * 30, dtype=np.uint32).reshape(30, 30).astype(np.uint8)
  padded = np.pad(img, 1)[..., None]   # 30 -> 32: 1 zero row / column each side
  out = pipeline._Preprocess(32, 1).map({"image": img})
  np.testing.assert_array_equal(out["image"], _scaled(padded))
  assert out["label"] == 0 and out["label"].dtype == np.int32  # no label: class 0
  out3 = pipeline._Preprocess(32, 3).map({"image": img})
  np.testing.assert_array_equal(out3["image"], np.repeat(_scaled(padded), 3, axis=-1))


def test_preprocess_keeps_a_right_sized_image_and_names_a_channel_mismatch():
  img = np.full((32, 32, 3), 255, np.uint8)
  np.testing.assert_array_equal(pipeline._Preprocess(32, 3).map({"image": img})["image"], 1.0)
  with pytest.raises(ValueError) as err:
    pipeline._Preprocess(32, 3).map({"image": np.zeros((32, 32, 4), np.uint8)})
  assert str(err.value) == "images have 4 channels; `config.data.channels` is 3."


def test_transforms_are_frozen():
  with pytest.raises(dataclasses.FrozenInstanceError):
    pipeline._Preprocess(32, 3).image_size = 64
  with pytest.raises(dataclasses.FrozenInstanceError):
    pipeline.RandomFlip().p = 1.0


class _FixedDraw:
  def __init__(self, u):
    self.u = u

  def random(self):
    return self.u


def test_flip_threshold_is_one_half():
  img = np.arange(12, dtype=np.float32).reshape(2, 2, 3)
  flipped = pipeline.RandomFlip().random_map({"image": img}, _FixedDraw(0.4999))["image"]
  np.testing.assert_array_equal(flipped, img[:, ::-1])
  for u in (0.5, 0.9):
    kept = pipeline.RandomFlip().random_map({"image": img}, _FixedDraw(u))["image"]
    np.testing.assert_array_equal(kept, img)


# ----------------------------------------------------------------- create_data_loader

def _fixture_config(tmp_path, **kw):
  c = ml_collections.ConfigDict(dict(source=TEST_FIXTURE_IMAGES, data_dir=str(tmp_path),
                                     split="test", image_size=32))
  c.update(kw)
  return c


def test_loader_defaults_shuffle_no_flip_three_channels_drop_remainder(tmp_path):
  config = _fixture_config(tmp_path)   # no random_flip, no channels field
  ds, _ = pipeline.get_data_source(config)
  in_order = [int(ds[i]["label"]) for i in range(len(ds))]
  loader = pipeline.create_data_loader(config, global_batch_size=20, seed=0, num_epochs=1)
  batch = next(iter(loader))
  assert batch["image"].shape == (20, 32, 32, 3)
  assert sorted(batch["label"].tolist()) == sorted(in_order)
  assert batch["label"].tolist() != in_order  # shuffled by default
  plain = pipeline.create_data_loader(config, global_batch_size=20, seed=0, num_epochs=1,
                                      shuffle=False)
  assert next(iter(plain))["label"].tolist() == in_order
  # Not flipped by default: the loader's images are the preprocessed source images.
  first = next(iter(plain))["image"][0]
  np.testing.assert_array_equal(first, _scaled(np.asarray(ds[0]["image"])))
  # 20 images in batches of 8, one epoch: the last partial batch is dropped by default.
  sizes = [len(b["label"]) for b in pipeline.create_data_loader(
      config, global_batch_size=8, seed=0, num_epochs=1)]
  assert sizes == [8, 8]


def test_shards_are_equal_and_contiguous_when_records_do_not_divide(tmp_path, monkeypatch):
  config = _fixture_config(tmp_path, split="test[:19]")
  ds, _ = pipeline.get_data_source(config)
  monkeypatch.setattr(pipeline.jax, "process_count", lambda: 2)
  for index, rows in ((0, range(0, 9)), (1, range(9, 18))):
    monkeypatch.setattr(pipeline.jax, "process_index", lambda index=index: index)
    loader = pipeline.create_data_loader(config, global_batch_size=2, seed=0, num_epochs=1,
                                         shuffle=False)
    got = np.concatenate([b["image"] for b in loader])
    # 19 records over 2 processes: 9 each, records 0-8 and 9-17; the last one is left out.
    want = np.stack([_scaled(np.asarray(ds[i]["image"])) for i in rows])
    np.testing.assert_array_equal(got, want)
  with pytest.raises(ValueError) as err:
    pipeline.create_data_loader(config, global_batch_size=3, seed=0)
  assert str(err.value) == ("`global_batch_size` (3) must be divisible by the process count "
                            "(2).")


def test_loader_reads_the_channels_field(tmp_path):
  loader = pipeline.create_data_loader(_fixture_config(tmp_path, channels=1),
                                       global_batch_size=4, seed=0, num_epochs=1)
  with pytest.raises(ValueError, match=r"^images have 3 channels; `config.data.channels` is 1"):
    next(iter(loader))
