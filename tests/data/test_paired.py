"""Paired data: aligned augmentation, label handling, edges and each bad input's error."""

import os
import pathlib

import chex
import ml_collections
import numpy as np
from PIL import Image
import pytest

from genattn_jax.data import paired

SHARED = os.environ.get("GENATTN_SHARED_DATA", os.path.join(
    os.path.dirname(__file__), "..", "..", "..", "shared", "data"))


def _write_triplet(root, split, key, label, image=None, inst=None, ext=".jpg"):
  for sub in ("img", "label", "inst"):
    (root / f"{split}_{sub}").mkdir(parents=True, exist_ok=True)
  Image.fromarray(label.astype(np.uint8)).save(root / f"{split}_label" / f"{key}.png")
  if image is not None:
    Image.fromarray(image).save(root / f"{split}_img" / f"{key}{ext}")
  if inst is not None:
    Image.fromarray(inst.astype(np.uint8)).save(root / f"{split}_inst" / f"{key}.png")


def _folder_config(root, tmp_path, **kw):
  c = ml_collections.ConfigDict(dict(
      source=str(root), layout="folder", data_dir=str(tmp_path / "tfds"), split="train",
      load_size=[8, 12], crop_size=[6, 10], random_flip=True, label_nc=6,
      contain_dontcare_label=True, use_instance=True))
  c.update(kw)
  return c


def _coded_example(h=8, w=12, seed=0):
  """Photo, label and instance map whose pixel values encode their own (row, col)."""
  rng = np.random.default_rng(seed)
  rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
  image = np.stack([rows * 20, cols * 20, rng.integers(0, 255, (h, w))], -1).astype(np.uint8)
  label = (rows + cols) % 6
  inst = rows * w + cols  # unique per pixel: edges everywhere
  return image, label, inst


def test_crops_and_flips_stay_aligned(tmp_path):
  root = tmp_path / "pairs"
  image, label, inst = _coded_example()
  # PNG photo so the pixel codes survive exactly.
  _write_triplet(root, "train", "a", label, image, inst, ext=".png")
  cfg = _folder_config(root, tmp_path)
  loader = paired.create_paired_loader(cfg, global_batch_size=1, seed=3, num_epochs=40)
  flips = set()
  for batch in loader:
    img = np.round((batch["image"][0] + 1) * 127.5).astype(np.int64)
    lab = batch["label"][0]
    chex.assert_shape(img, (6, 10, 3))
    r, c = img[..., 0] // 20, img[..., 1] // 20  # where each output pixel came from
    np.testing.assert_array_equal(lab, label[r, c])
    flips.add(bool(c[0, 0] > c[0, -1]))
    # Edge channel = SPADE's get_edges of the cropped/flipped instance map.
    np.testing.assert_array_equal(batch["edge"][0], paired.instance_edges(inst[r, c]))
  assert flips == {True, False}


def test_instance_edges_against_loop():
  inst = np.array([[1, 1, 2], [1, 1, 2], [3, 3, 3]])
  want = np.zeros((3, 3))
  for i in range(3):
    for j in range(3):
      for di, dj in ((0, 1), (0, -1), (1, 0), (-1, 0)):
        a, b = i + di, j + dj
        if 0 <= a < 3 and 0 <= b < 3 and inst[a, b] != inst[i, j]:
          want[i, j] = 1
  np.testing.assert_array_equal(paired.instance_edges(inst), want)


def test_dontcare_mapping(tmp_path):
  lab = np.array([[0, 5, 255]] * 11, np.uint8)
  p = tmp_path / "l.png"
  Image.fromarray(lab).save(p)
  out = paired.read_label_ids(str(p), "coco_stuff", 6, True)
  np.testing.assert_array_equal(out[0], [0, 5, 6])
  ade = paired.read_label_ids(str(p).replace("l.png", "l.png"), "ade20k", 300, True)
  np.testing.assert_array_equal(ade[0], [300, 4, 254])


def test_label_id_out_of_range_names_the_file(tmp_path):
  root = tmp_path / "pairs"
  image, label, inst = _coded_example()
  label[2, 3] = 9  # ≥ label_nc = 6, not 255
  _write_triplet(root, "train", "bad", label, image, inst)
  with pytest.raises(paired.PairedDataError, match=r"bad\.png.*id 9"):
    paired.create_paired_loader(_folder_config(root, tmp_path), global_batch_size=1, seed=0)


def test_missing_partner_and_size_mismatch_and_empty(tmp_path):
  image, label, inst = _coded_example()
  root = tmp_path / "a"
  _write_triplet(root, "train", "x", label, None, inst)
  with pytest.raises(paired.PairedDataError, match=r"x\.png.*has no photo"):
    paired.find_pairs(str(root), "folder", "train", use_instance=True)
  root = tmp_path / "b"
  _write_triplet(root, "train", "x", label, image, inst)
  os.remove(root / "train_label" / "x.png")
  Image.fromarray(label.astype(np.uint8)).save(root / "train_label" / "y.png")
  with pytest.raises(paired.PairedDataError, match=r"x\.jpg.*has no label map"):
    paired.find_pairs(str(root), "folder", "train", use_instance=True)
  root = tmp_path / "c"
  _write_triplet(root, "train", "x", label, image[:7], inst)
  files = paired.find_pairs(str(root), "folder", "train", use_instance=True)
  with pytest.raises(paired.PairedDataError, match=r"photo .*x\.jpg.* is 12x7 but label"):
    paired.load_example(files[0], layout="folder", label_nc=6, contain_dontcare_label=True,
                        load_size=None)
  root = tmp_path / "d"
  for sub in ("img", "label", "inst"):
    (root / f"train_{sub}").mkdir(parents=True)
  with pytest.raises(paired.PairedDataError, match="no label maps"):
    paired.find_pairs(str(root), "folder", "train", use_instance=True)
  with pytest.raises(FileNotFoundError, match="does not exist"):
    paired.find_pairs(str(tmp_path / "nowhere"), "folder", "train", use_instance=True)


def test_shared_layouts_read():
  city = pathlib.Path(SHARED) / "pairs" / "cityscapes"
  assert city.is_dir(), f"shared data missing at {city} (set GENATTN_SHARED_DATA)"
  files = paired.find_pairs(str(city), "cityscapes", "train", use_instance=True)
  assert len(files) == 8
  ex = paired.load_example(files[0], layout="cityscapes", label_nc=35,
                           contain_dontcare_label=False, load_size=(16, 32))
  chex.assert_shape(ex["image"], (16, 32, 3))
  assert 0 <= ex["label"].min() and ex["label"].max() < 35
  tests = paired.find_pairs(str(city), "cityscapes", "test", use_instance=True,
                            require_image=False)
  assert len(tests) == 15
  coco = paired.find_pairs(str(pathlib.Path(SHARED) / "pairs" / "coco_stuff"), "coco_stuff",
                           "val", use_instance=True)
  lab = paired.read_label_ids(coco[0].label, "coco_stuff", 182, True)
  assert lab.max() <= 182
