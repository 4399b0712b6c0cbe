"""grain input pipeline over tfds data sources (ArrayRecord; TensorFlow not needed).

`config.data` fields (ml_collections):
  source:      a tfds dataset name (`'cifar10'`, `'celeb_a_hq/128'`, `'lsun/bedroom'`,
               `'imagenet_resized/64x64'`, ...), already prepared in ArrayRecord format under
               `data_dir`, or a local path (image folder with class sub-folders, a .tar.gz of
               one, or a folder of IDX files) converted once by `local_images.py`.
  data_dir:    tfds data directory (default `~/tensorflow_datasets`).
  split:       e.g. `'train'` (tfds slicing syntax such as `'train[:5000]'` is accepted for
               tfds names; for local sources `'train'`/`'test'` plus an optional `[:N]`).
  image_size:  output resolution R (images are resized with PIL bicubic when they differ;
               28x28 IDX digits are padded to 32 when R == 32).
  random_flip: horizontal flip with probability 0.5 (`RandomFlip`).
  channels:    3 (grayscale replicated) or 1.
  skip_unreadable: local sources only: leave images that fail to decode out of the
               conversion (counted and named in the log) instead of stopping with
               `UnreadableImageError` (default False).

Batches are dicts `{'image': [b, R, R, C] float32 in [-1, 1], 'label': [b] int32}` where
`b = global_batch_size // jax.process_count()`; each process reads its own shard
(`jax.process_index()`). The order is a deterministic function of `seed`, and the iterator's
position can be saved and restored (`iterator.get_state()` / `set_state()`), which the
trainer checkpoints.
"""

import dataclasses
import os
import re
from typing import Optional

import grain
import jax
import numpy as np
from PIL import Image
import tensorflow_datasets as tfds

from genattn_jax._parallel import wait_for_processes
from genattn_jax.data import local_images

_SLICE = re.compile(r"^(?P<split>\w+)(\[(?P<start>\d*):(?P<stop>\d*)\])?$")


# A tfds name, optionally with a config and a version: 'cifar10', 'celeb_a_hq/128',
# 'imagenet_resized/64x64', 'lsun/bedroom:3.1.0'.
_TFDS_NAME = re.compile(r"^[a-z][a-z0-9_]*(/[\w.\-]+)?(:[\d.*]+)?$")
_ARCHIVES = (".tar.gz", ".tgz", ".tar")


def _is_local(source: str) -> bool:
  """True for a local path: an archive name, anything that exists on disk, or anything not
  shaped like a tfds name (absolute, './', '~/' paths included); False for tfds names (a
  config after '/' included, so 'celeb_a_hq/128' is read with tfds, not as a folder)."""
  return (source.endswith(_ARCHIVES) or os.path.exists(source)
          or not _TFDS_NAME.match(source))


class _Sliced:
  """A contiguous slice [start, stop) of a random-access data source."""

  def __init__(self, source, start: int, stop: int):
    self._source, self._start, self._stop = source, start, stop

  def __len__(self):
    return self._stop - self._start

  def __getitem__(self, index):
    if not 0 <= index < len(self):
      raise IndexError(index)
    return self._source[self._start + index]


def _prepare_local_once(source: str, data_dir: str, image_size: Optional[int],
                        skip_unreadable: bool = False):
  """`local_images.prepare_local_images`, converted by process 0 first when multi-process.

  Several processes converting into one `data_dir` at once would race on the final rename;
  the others wait at a barrier and then reuse the prepared files (or, on hosts that do not
  share `data_dir`, convert their own copy).
  """
  if jax.process_count() == 1:
    return local_images.prepare_local_images(source, data_dir, image_size,
                                                 skip_unreadable=skip_unreadable)
  builder = None
  if jax.process_index() == 0:
    builder = local_images.prepare_local_images(source, data_dir, image_size,
                                                 skip_unreadable=skip_unreadable)
  wait_for_processes("prepare_local_images")
  if builder is None:
    builder = local_images.prepare_local_images(source, data_dir, image_size,
                                                 skip_unreadable=skip_unreadable)
  return builder


def get_data_source(data_config, split: Optional[str] = None):
  """Returns `(random_access_source, num_classes)` for `data_config.source`/`split`.

  Raises:
    FileNotFoundError: the dataset is not prepared / the local path does not exist; the
      message says where it looked and how to point the config at local files.
  """
  split = split or data_config.split
  match = _SLICE.match(split)
  if not match:
    raise ValueError(f"`config.data.split` must look like 'train' or 'train[:5000]', got {split!r}.")
  data_dir = os.path.expanduser(data_config.get("data_dir") or "~/tensorflow_datasets")
  source = data_config.source
  if _is_local(source):
    builder = _prepare_local_once(
        source, data_dir, data_config.get("image_size"),
        skip_unreadable=bool(data_config.get("skip_unreadable", False)))
  else:
    try:
      builder = tfds.builder(source, data_dir=data_dir, file_format="array_record")
    except Exception as e:  # unknown name or version
      raise FileNotFoundError(f"tfds dataset `{source}` could not be opened under {data_dir}: {e}."
                              " Set `config.data.source` to a local image folder instead.") from e
    if not builder.is_prepared():
      raise FileNotFoundError(
          f"tfds dataset `{source}` is not prepared in ArrayRecord format under {data_dir}. "
          f"Prepare it online with `tfds build {source} --file_format=array_record "
          f"--data_dir={data_dir}`, or set `config.data.source` to a local image folder "
          "(class sub-folders) or a .tar.gz of one.")
  base = match.group("split")
  if base not in builder.info.splits:
    raise FileNotFoundError(f"split `{base}` not in `{source}` (has {list(builder.info.splits)}).")
  ds = builder.as_data_source(split=base)
  start = int(match.group("start") or 0)
  stop = min(int(match.group("stop") or len(ds)), len(ds))
  if stop <= start:
    raise ValueError(f"`config.data.split` {split!r} selects no examples (split has {len(ds)}).")
  if (start, stop) != (0, len(ds)):
    ds = _Sliced(ds, start, stop)
  names = builder.info.features["label"].num_classes if "label" in builder.info.features else 0
  return ds, names


@dataclasses.dataclass(frozen=True)
class _Preprocess(grain.transforms.Map):
  """uint8 [h, w, c] → float32 [R, R, channels] in [-1, 1]."""
  image_size: int
  channels: int

  def map(self, example):
    img = np.asarray(example["image"])
    if img.ndim == 2:
      img = img[..., None]
    h, w = img.shape[:2]
    if (h, w) != (self.image_size, self.image_size):
      pad = self.image_size - h
      if h == w and 0 < pad <= 4 and pad % 2 == 0:  # 28 → 32 for MNIST-style digits
        img = np.pad(img, ((pad // 2,) * 2, (pad // 2,) * 2, (0, 0)))
      else:
        mode = "L" if img.shape[-1] == 1 else "RGB"
        pil = Image.fromarray(img.squeeze(-1) if mode == "L" else img, mode)
        img = np.asarray(pil.resize((self.image_size,) * 2, Image.BICUBIC)).reshape(
            self.image_size, self.image_size, -1)
    if img.shape[-1] == 1 and self.channels == 3:
      img = np.repeat(img, 3, axis=-1)
    elif img.shape[-1] != self.channels:
      raise ValueError(f"images have {img.shape[-1]} channels; `config.data.channels` is "
                       f"{self.channels}.")
    image = img.astype(np.float32) / 127.5 - 1.0
    return {"image": image, "label": np.int32(example.get("label", 0))}


@dataclasses.dataclass(frozen=True)
class RandomFlip(grain.transforms.RandomMap):
  """Horizontal flip (the W axis of [H, W, C]) with probability 0.5.

  Every paired spatial map of the example (any other array whose first two dimensions
  equal the image's H, W, e.g. a semantic label map or an instance map) gets the same flip,
  so image and maps stay aligned; scalars such as the class label are left alone.
  """

  def random_map(self, example, rng: np.random.Generator):
    if rng.random() < 0.5:
      hw = np.shape(example["image"])[:2]
      example = {k: (np.asarray(v)[:, ::-1] if np.ndim(v) >= 2 and np.shape(v)[:2] == hw
                     else v) for k, v in example.items()}
    return example


def create_data_loader(data_config, *, global_batch_size: int, seed: int,
                       split: Optional[str] = None, shuffle: bool = True,
                       num_epochs: Optional[int] = None, random_flip: Optional[bool] = None,
                       drop_remainder: bool = True, worker_count: int = 0) -> grain.DataLoader:
  """Builds the per-process grain `DataLoader` (see module doc for the batch layout).

  Args:
    data_config: `config.data`.
    global_batch_size: batch over all processes; must divide by `jax.process_count()`.
    seed: shuffling and augmentation seed (same seed → same order on every run).
    split: overrides `data_config.split`.
    shuffle: shuffle each epoch; `num_epochs=None` repeats forever.
    random_flip: overrides `data_config.random_flip`.
    drop_remainder: drop the last partial batch.
    worker_count: grain worker processes (0 = in-process, fully deterministic).

  Raises:
    ValueError: the global batch does not divide over the processes.
  """
  n_proc = jax.process_count()
  if global_batch_size % n_proc:
    raise ValueError(f"`global_batch_size` ({global_batch_size}) must be divisible by the "
                     f"process count ({n_proc}).")
  source, _ = get_data_source(data_config, split)
  sampler = grain.samplers.IndexSampler(
      num_records=len(source),
      shard_options=grain.sharding.ShardOptions(
          shard_index=jax.process_index(), shard_count=n_proc, drop_remainder=True),
      shuffle=shuffle, num_epochs=num_epochs, seed=seed)
  ops = [_Preprocess(int(data_config.image_size), int(data_config.get("channels", 3)))]
  flip = data_config.get("random_flip", False) if random_flip is None else random_flip
  if flip:
    ops.append(RandomFlip())
  ops.append(grain.transforms.Batch(global_batch_size // n_proc, drop_remainder=drop_remainder))
  return grain.DataLoader(data_source=source, sampler=sampler, operations=ops,
                          worker_count=worker_count)
