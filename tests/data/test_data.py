"""Tests of the local-images tfds builder and the grain pipeline (real CIFAR-10 JPEGs)."""

import gzip
import os
import pathlib
import tarfile

import ml_collections
import numpy as np
from PIL import Image
import pytest

from genattn_jax.data import local_images, pipeline
from genattn_jax.training.config import TEST_FIXTURE_IMAGES


def _config(source, data_dir, split="train", **kw):
  c = ml_collections.ConfigDict(dict(source=str(source), data_dir=str(data_dir), split=split,
                                     image_size=32, random_flip=False, channels=3))
  c.update(kw)
  return c


def _decode_all(folder, split):
  out = {}
  for p in sorted(pathlib.Path(folder, split).rglob("*.jpg")):
    out[p.parent.name, np.asarray(Image.open(p).convert("RGB")).tobytes()] = True
  return out


def test_folder_source_holds_every_image_with_its_class(tmp_path):
  ds, num_classes = pipeline.get_data_source(_config(TEST_FIXTURE_IMAGES, tmp_path), "test")
  assert num_classes == 10 and len(ds) == 20
  builder = local_images.prepare_local_images(TEST_FIXTURE_IMAGES, str(tmp_path), 32)
  names = builder.info.features["label"].names
  got = {(names[int(ex["label"])], np.asarray(ex["image"]).tobytes()) for ex in
         (ds[i] for i in range(len(ds)))}
  assert got == set(_decode_all(TEST_FIXTURE_IMAGES, "test"))


def test_tar_source_equals_folder_source(tmp_path):
  archive = tmp_path / "mini.tar.gz"
  with tarfile.open(archive, "w:gz") as tar:
    tar.add(TEST_FIXTURE_IMAGES, arcname=".")
  a, _ = pipeline.get_data_source(_config(archive, tmp_path / "a"), "train")
  b, _ = pipeline.get_data_source(_config(TEST_FIXTURE_IMAGES, tmp_path / "b"), "train")
  key = lambda ex: (int(ex["label"]), np.asarray(ex["image"]).tobytes())
  assert sorted(map(key, (a[i] for i in range(len(a))))) == sorted(
      map(key, (b[i] for i in range(len(b)))))


def _write_idx(path, array):
  header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
  with gzip.open(path, "wb") as f:
    f.write(header + array.astype(np.uint8).tobytes())


def test_idx_source_pads_to_32_and_replicates_gray(tmp_path):
  folder = tmp_path / "fashion-mnist"
  folder.mkdir()
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (12, 28, 28), dtype=np.uint8)
  labels = np.arange(12) % 10
  _write_idx(folder / "train-images-idx3-ubyte.gz", images)
  _write_idx(folder / "train-labels-idx1-ubyte.gz", labels)
  loader = pipeline.create_data_loader(_config(folder, tmp_path / "tfds"), global_batch_size=12,
                                       seed=0, shuffle=False, num_epochs=1)
  batch = next(iter(loader))
  assert batch["image"].shape == (12, 32, 32, 3)
  order = [int(np.argmin([np.abs(batch["image"][i, 2:30, 2:30, 0] - (im / 127.5 - 1)).max()
                          for im in images])) for i in range(12)]
  for i, j in enumerate(order):
    np.testing.assert_allclose(batch["image"][i, 2:30, 2:30, 0], images[j] / 127.5 - 1, atol=1e-6)
    np.testing.assert_array_equal(batch["image"][i, ..., 0], batch["image"][i, ..., 2])
    assert batch["label"][i] == labels[j]
  assert np.all(batch["image"][:, :2] == -1.0)  # padding is black


def test_loader_is_deterministic_resumable_and_in_range(tmp_path):
  cfg = _config(TEST_FIXTURE_IMAGES, tmp_path, random_flip=True)
  make = lambda: pipeline.create_data_loader(cfg, global_batch_size=8, seed=3)
  it = iter(make())
  first = [next(it) for _ in range(3)]
  state = it.get_state()
  after = [next(it) for _ in range(4)]
  again = iter(make())
  for a, b in zip(first, [next(again) for _ in range(3)]):
    np.testing.assert_array_equal(a["image"], b["image"])
  resumed = iter(make())
  resumed.set_state(state)
  for a, b in zip(after, [next(resumed) for _ in range(4)]):
    np.testing.assert_array_equal(a["image"], b["image"])
    np.testing.assert_array_equal(a["label"], b["label"])
  assert first[0]["image"].dtype == np.float32
  assert first[0]["image"].min() >= -1 and first[0]["image"].max() <= 1
  other = next(iter(pipeline.create_data_loader(cfg, global_batch_size=8, seed=4)))
  assert not np.array_equal(other["image"], first[0]["image"])


def test_split_slicing(tmp_path):
  cfg = _config(TEST_FIXTURE_IMAGES, tmp_path, split="train[5:15]")
  ds, _ = pipeline.get_data_source(cfg)
  full, _ = pipeline.get_data_source(cfg, "train")
  assert len(ds) == 10
  np.testing.assert_array_equal(ds[0]["image"], full[5]["image"])
  with pytest.raises(ValueError, match="config.data.split"):
    pipeline.get_data_source(cfg, "train[9:3]")


def test_missing_and_empty_sources_say_where_they_looked(tmp_path):
  with pytest.raises(FileNotFoundError, match="does not exist"):
    pipeline.get_data_source(_config(tmp_path / "nope", tmp_path))
  (tmp_path / "empty" / "cls").mkdir(parents=True)
  with pytest.raises(ValueError, match="no images"):
    pipeline.get_data_source(_config(tmp_path / "empty", tmp_path))
  with pytest.raises(FileNotFoundError, match="not prepared in ArrayRecord format"):
    pipeline.get_data_source(_config("cifar10", tmp_path / "tfds"))


def test_global_batch_must_divide_over_processes(tmp_path, monkeypatch):
  monkeypatch.setattr(pipeline.jax, "process_count", lambda: 3)
  with pytest.raises(ValueError, match="global_batch_size"):
    pipeline.create_data_loader(_config(TEST_FIXTURE_IMAGES, tmp_path), global_batch_size=8,
                                seed=0)


def test_processes_read_disjoint_shards(tmp_path, monkeypatch):
  cfg = _config(TEST_FIXTURE_IMAGES, tmp_path)
  seen = []
  for index in range(2):
    monkeypatch.setattr(pipeline.jax, "process_count", lambda: 2)
    monkeypatch.setattr(pipeline.jax, "process_index", lambda i=index: i)
    loader = pipeline.create_data_loader(cfg, global_batch_size=40, seed=0, shuffle=False,
                                         num_epochs=1)
    batch = next(iter(loader))
    assert batch["image"].shape[0] == 20
    seen.append({x.tobytes() for x in batch["image"]})
  assert not seen[0] & seen[1] and len(seen[0] | seen[1]) == 40


# ----------------------------------------------------------------- reliability (issue 9)


def _small_folder(root: pathlib.Path, n: int, start: int = 0, size: int = 8):
  rng = np.random.default_rng(start)
  for i in range(start, start + n):
    cls = root / "train" / ("a" if i % 2 else "b")
    cls.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(
        cls / f"{i:03d}.png")


def test_adding_files_to_a_class_folder_reconverts(tmp_path, capsys):
  source = tmp_path / "imgs"
  _small_folder(source, 20)
  cfg = _config(source, tmp_path / "tfds", image_size=8)
  ds, _ = pipeline.get_data_source(cfg, "train")
  assert len(ds) == 20
  assert "(first conversion)" in capsys.readouterr().out
  ds, _ = pipeline.get_data_source(cfg, "train")
  assert len(ds) == 20 and "reusing the conversion" in capsys.readouterr().out
  # The top-level folder's own size/mtime need not change when a sub-folder gains files.
  top = os.stat(source)
  _small_folder(source, 20, start=20)
  os.utime(source, ns=(top.st_atime_ns, top.st_mtime_ns))
  ds, _ = pipeline.get_data_source(cfg, "train")
  assert len(ds) == 40
  assert "the file listing changed since the conversion" in capsys.readouterr().out
  # Removing one file reconverts too.
  next(source.rglob("*.png")).unlink()
  ds, _ = pipeline.get_data_source(cfg, "train")
  assert len(ds) == 39


def _truncated_jpeg(path: pathlib.Path):
  rng = np.random.default_rng(5)
  Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(path, quality=95)
  data = path.read_bytes()
  path.write_bytes(data[: len(data) // 2])


def test_truncated_jpeg_is_named_or_skipped_with_a_count(tmp_path, capsys):
  source = tmp_path / "imgs"
  _small_folder(source, 6)
  bad = source / "train" / "a" / "zz_broken.jpg"
  _truncated_jpeg(bad)
  with pytest.raises(ValueError, match=r"cannot decode image `.*zz_broken\.jpg`.*"
                                       r"skip_unreadable"):
    pipeline.get_data_source(_config(source, tmp_path / "tfds", image_size=8), "train")
  capsys.readouterr()
  ds, _ = pipeline.get_data_source(
      _config(source, tmp_path / "tfds", image_size=8, skip_unreadable=True), "train")
  assert len(ds) == 6
  out = capsys.readouterr().out
  assert "skipped 1 unreadable image(s)" in out and "zz_broken.jpg" in out


def test_eval_image_folder_names_a_truncated_file(tmp_path):
  from genattn_jax import _checks  # pylint: disable=g-import-not-at-top
  from genattn_jax.metrics import image_io  # pylint: disable=g-import-not-at-top
  _small_folder(tmp_path, 3)
  bad = tmp_path / "train" / "a" / "broken.jpg"
  _truncated_jpeg(bad)
  files = image_io.list_image_files(tmp_path)
  with pytest.raises(_checks.UnreadableImageError, match=r"`.*broken\.jpg`"):
    list(image_io.iter_image_folder(files, batch_size=2))


def test_two_processes_converting_one_source_both_succeed(tmp_path):
  """Two runs started together on a fresh data_dir: one converts, the other waits and reuses.

  Without the conversion lock the second process's final rename of tfds' temporary
  directory fails with FileExistsError. The test holds the lock itself while both start, so
  that they are certainly both waiting at the same time, then lets them go.
  """
  import subprocess
  import sys
  import time

  import filelock

  from genattn_jax.data import conversion_lock
  from tests.conftest import REPO_ROOT

  data_dir = tmp_path / "tfds"
  config = local_images.local_images_config(TEST_FIXTURE_IMAGES, 32, False)
  probe = local_images.LocalImages(config=config, data_dir=str(data_dir),
                                   file_format="array_record")
  assert not probe.is_prepared()
  code = ("import sys; from genattn_jax.data import local_images; "
          "b = local_images.prepare_local_images(sys.argv[1], sys.argv[2], 32); "
          "print('N', len(b.as_data_source()['train']))")
  env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
  logs = [tmp_path / f"proc{i}.log" for i in range(2)]
  read = lambda: "".join(log.read_text() for log in logs)
  procs = []
  try:
    with filelock.FileLock(conversion_lock.lock_path(str(data_dir), probe)):
      for log in logs:
        with open(log, "w") as f:
          procs.append(subprocess.Popen(
              [sys.executable, "-u", "-c", code, str(TEST_FIXTURE_IMAGES), str(data_dir)],
              stdout=f, stderr=subprocess.STDOUT, env=env))
      deadline = time.time() + 180
      while read().count("waiting for another process") < 2:
        assert time.time() < deadline, read()
        assert all(p.poll() is None for p in procs), read()   # nobody got past the lock
        time.sleep(0.5)
    for p in procs:
      p.wait(timeout=300)
  finally:
    for p in procs:
      p.kill()
  text = read()
  assert [p.returncode for p in procs] == [0, 0], text
  assert text.count("[data] converting ") == 1, text
  assert text.count("[data] reusing the conversion") == 1, text
  counts = [line for line in text.splitlines() if line.startswith("N ")]
  assert len(counts) == 2 and counts[0] == counts[1] and int(counts[0][2:]) > 0, text
