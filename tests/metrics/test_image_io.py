"""Tests of genattn_jax.metrics.image_io (folders, .npz of images, .npz of statistics)."""

import pathlib
import tarfile

import chex
import numpy as np
from PIL import Image
import pytest

from genattn_jax.metrics import fid
from genattn_jax.metrics import image_io


def _write(path: pathlib.Path, array: np.ndarray, mode=None) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(array, mode=mode).save(path)


@pytest.fixture
def folder(tmp_path):
  """Nested folder: 3 PNGs (one grayscale, one RGBA), 1 JPEG, and files to ignore."""
  rng = np.random.default_rng(0)
  images = {}
  images["b/2.png"] = rng.integers(0, 256, (8, 12, 3), dtype=np.uint8)
  images["a.png"] = rng.integers(0, 256, (8, 12, 3), dtype=np.uint8)
  gray = rng.integers(0, 256, (8, 12), dtype=np.uint8)
  rgba = rng.integers(0, 256, (8, 12, 4), dtype=np.uint8)
  for name, array in images.items():
    _write(tmp_path / name, array)
  _write(tmp_path / "b/1_gray.PNG", gray)
  _write(tmp_path / "c/d/rgba.png", rgba)
  _write(tmp_path / "b/3.jpg", images["a.png"])
  (tmp_path / "notes.txt").write_text("not an image")
  (tmp_path / "b/x.gif").write_bytes(b"GIF89a")
  expected = [
      images["a.png"],                                       # a.png
      np.repeat(gray[..., None], 3, axis=-1),                # b/1_gray.PNG
      images["b/2.png"],                                     # b/2.png
      None,                                                  # b/3.jpg (lossy)
      rgba[..., :3],                                         # c/d/rgba.png
  ]
  return tmp_path, expected


def test_folder_is_recursive_sorted_rgb_uint8(folder):
  path, expected = folder
  files = image_io.list_image_files(path)
  assert [f.relative_to(path).as_posix() for f in files] == [
      "a.png", "b/1_gray.PNG", "b/2.png", "b/3.jpg", "c/d/rgba.png"]
  source = image_io.detect_source(path)
  assert source.kind == "folder" and source.num_images == 5
  batches = list(image_io.iter_image_batches(path, batch_size=2))
  assert [len(b) for b in batches] == [2, 2, 1]
  images = np.concatenate(batches)
  chex.assert_shape(images, (5, 8, 12, 3))
  assert images.dtype == np.uint8
  for got, want in zip(images, expected):
    if want is not None:
      np.testing.assert_array_equal(got, want)
  # The JPEG (lossy) equals PIL's own RGB decode of it.
  with Image.open(path / "b/3.jpg") as ref:
    np.testing.assert_array_equal(images[3], np.asarray(ref.convert("RGB")))
  limited = image_io.load_images(path, num_images=2)
  np.testing.assert_array_equal(limited, images[:2])


def test_folder_mixed_sizes(tmp_path):
  _write(tmp_path / "a.png", np.zeros((8, 8, 3), np.uint8))
  _write(tmp_path / "b.png", np.full((6, 10, 3), 200, np.uint8))
  with pytest.raises(ValueError, match="b.png.*image_size"):
    image_io.load_images(tmp_path)
  images = image_io.load_images(tmp_path, image_size=(8, 12))
  chex.assert_shape(images, (2, 8, 12, 3))
  np.testing.assert_array_equal(images[1], 200)


def test_missing_and_empty_paths(tmp_path):
  with pytest.raises(FileNotFoundError, match="does not exist.*image folder.*mu"):
    image_io.detect_source(tmp_path / "nope")
  (tmp_path / "empty" / "sub").mkdir(parents=True)
  (tmp_path / "empty" / "sub" / "readme.txt").write_text("x")
  with pytest.raises(FileNotFoundError, match="no images found.*png"):
    image_io.detect_source(tmp_path / "empty")
  (tmp_path / "plain.txt").write_text("x")
  with pytest.raises(ValueError, match="neither a folder nor an .npz"):
    image_io.detect_source(tmp_path / "plain.txt")


@pytest.mark.parametrize("layout", ["NHWC", "NCHW", "NHW", "NHW1"])
@pytest.mark.parametrize("compressed", [False, True])
def test_npz_uint8_layouts_stream(tmp_path, layout, compressed):
  rng = np.random.default_rng(1)
  nhwc = rng.integers(0, 256, (7, 8, 12, 3), dtype=np.uint8)
  if layout == "NCHW":
    stored = np.ascontiguousarray(nhwc.transpose(0, 3, 1, 2))
  elif layout == "NHW":
    nhwc = np.repeat(nhwc[..., :1], 3, axis=-1)
    stored = nhwc[..., 0].copy()
  elif layout == "NHW1":
    nhwc = np.repeat(nhwc[..., :1], 3, axis=-1)
    stored = nhwc[..., :1].copy()
  else:
    stored = nhwc
  save = np.savez_compressed if compressed else np.savez
  save(tmp_path / "imgs.npz", images=stored, labels=np.arange(7))
  source = image_io.detect_source(tmp_path / "imgs.npz")
  assert source.kind == "images_npz" and source.key == "images" and source.num_images == 7
  assert source.layout == {"NHW1": "NHWC"}.get(layout, layout)
  batches = list(image_io.iter_image_batches(source, batch_size=3))
  assert [b.shape for b in batches] == [(3, 8, 12, 3), (3, 8, 12, 3), (1, 8, 12, 3)]
  assert all(b.dtype == np.uint8 for b in batches)
  np.testing.assert_array_equal(np.concatenate(batches), nhwc)
  limited = list(image_io.iter_image_batches(source, batch_size=4, num_images=5))
  np.testing.assert_array_equal(np.concatenate(limited), nhwc[:5])


def test_npz_float_single_array_and_fortran(tmp_path):
  rng = np.random.default_rng(2)
  images = rng.uniform(-1, 1, (5, 4, 6, 3)).astype(np.float64)
  np.savez(tmp_path / "f.npz", np.asfortranarray(images))  # Single array `arr_0`.
  source = image_io.detect_source(tmp_path / "f.npz")
  assert source.key == "arr_0"
  out = image_io.load_images(tmp_path / "f.npz")
  assert out.dtype == np.float32
  np.testing.assert_allclose(out, images, rtol=1e-6)
  np.savez(tmp_path / "big.npz", images=images * 3)
  with pytest.raises(ValueError, match=r"\[-1, 1\]"):
    image_io.load_images(tmp_path / "big.npz")
  np.savez(tmp_path / "unit.npz", images=np.abs(images))
  with pytest.warns(UserWarning, match=r"\[0, 1\]"):
    image_io.load_images(tmp_path / "unit.npz")
  np.savez(tmp_path / "ints.npz", images=(images * 100 + 100).astype(np.int64))
  assert image_io.load_images(tmp_path / "ints.npz").dtype == np.uint8


def test_npz_errors_and_statistics(tmp_path):
  np.savez(tmp_path / "two.npz", a=np.zeros((2, 4, 4, 3)), b=np.zeros(3))
  with pytest.raises(ValueError, match="`images`"):
    image_io.detect_source(tmp_path / "two.npz")
  np.savez(tmp_path / "shape.npz", images=np.zeros((2, 4, 4, 5), np.uint8))
  with pytest.raises(ValueError, match="shape"):
    image_io.detect_source(tmp_path / "shape.npz")
  written = fid.save_statistics(tmp_path / "stats.npz", np.zeros(4), np.eye(4))
  source = image_io.detect_source(written)
  assert source.kind == "stats_npz" and source.num_images is None
  with pytest.raises(ValueError, match="statistics"):
    next(image_io.iter_image_batches(written))


def test_real_cifar10_jpegs(shared_data_dir, tmp_path):
  members = []
  with tarfile.open(shared_data_dir / "cifar10-jpeg.tar.gz") as tar:
    for member in tar:
      if member.isfile() and member.name.endswith(".jpg"):
        tar.extract(member, tmp_path, filter="data")
        members.append(member.name)
        if len(members) == 6:
          break
  images = image_io.load_images(tmp_path)
  chex.assert_shape(images, (6, 32, 32, 3))
  assert images.dtype == np.uint8
  assert images.std() > 10  # Real photographs, not blank.
  for image, name in zip(images, sorted(members)):
    with Image.open(tmp_path / name) as ref:
      np.testing.assert_array_equal(image, np.asarray(ref.convert("RGB")))
