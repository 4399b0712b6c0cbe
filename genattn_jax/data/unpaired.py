"""grain pipeline for unpaired image-to-image data in the CycleGAN layout.

`root/trainA`, `root/trainB`, `root/testA`, `root/testB`: folders of images (png / jpg) of
domain A and domain B. One record per A image of the split (sorted by file name); its B
partner is drawn uniformly by grain's per-record random generator, as in CycleGAN's
unaligned loader, so the pairing changes every epoch and is reproducible from the seed.

Preprocessing (CycleGAN's `resize_and_crop`): resize to `load_size` (bicubic), random crop
to `image_size` and random horizontal flip (both per domain, independently) when training;
resize straight to `image_size` when `load_size` is 0 or in evaluation. Batches:
{'image_a': [b, R, R, 3], 'image_b': [b, R, R, 3]} float32 in [-1, 1].

`config.data` fields: source (root), image_size, load_size (0 = no crop), random_flip.
"""

import dataclasses
import pathlib
from typing import List, Optional, Tuple

import grain
import jax
import numpy as np
from PIL import Image

_EXTS = (".png", ".jpg", ".jpeg", ".bmp")


def list_images(root: str, folder: str) -> List[pathlib.Path]:
  """Sorted image files of `root/folder`.

  Raises:
    FileNotFoundError: the folder is missing or holds no images (naming it).
  """
  path = pathlib.Path(root).expanduser() / folder
  files = sorted(p for p in path.glob("*") if p.suffix.lower() in _EXTS) if path.is_dir() else []
  if not files:
    raise FileNotFoundError(f"no images in {path}: an unpaired dataset needs the CycleGAN "
                            "layout trainA/, trainB/, testA/, testB/ under `config.data.source`.")
  return files


def load_rgb(path: pathlib.Path, size: int) -> np.ndarray:
  """uint8 [size, size, 3] (bicubic resize, grayscale → RGB)."""
  img = Image.open(path).convert("RGB")
  if img.size != (size, size):
    img = img.resize((size, size), Image.BICUBIC)
  return np.asarray(img)


class UnpairedSource:
  """Random-access source: record i = (index of A image i, number of B images)."""

  def __init__(self, root: str, split: str):
    self.files_a = list_images(root, f"{split}A")
    self.files_b = list_images(root, f"{split}B")

  def __len__(self):
    return len(self.files_a)

  def __getitem__(self, index):
    return {"a": np.int32(index)}


@dataclasses.dataclass(frozen=True)
class _Load(grain.transforms.RandomMap):
  """Loads A and a random B, resizes, crops and flips, scales to [-1, 1]."""
  files_a: Tuple[str, ...]
  files_b: Tuple[str, ...]
  image_size: int
  load_size: int
  flip: bool

  def _prep(self, path, rng):
    size = self.load_size or self.image_size
    img = load_rgb(pathlib.Path(path), size)
    if size > self.image_size:
      y, x = rng.integers(0, size - self.image_size + 1, size=2)
      img = img[y:y + self.image_size, x:x + self.image_size]
    if self.flip and rng.random() < 0.5:
      img = img[:, ::-1]
    return img.astype(np.float32) / 127.5 - 1.0

  def random_map(self, example, rng: np.random.Generator):
    b = int(rng.integers(0, len(self.files_b)))
    return {"image_a": self._prep(self.files_a[int(example["a"])], rng),
            "image_b": self._prep(self.files_b[b], rng)}


def create_data_loader(data_config, *, global_batch_size: int, seed: int,
                       split: str = "train", shuffle: bool = True,
                       num_epochs: Optional[int] = None) -> grain.DataLoader:
  """Per-process grain loader of unpaired batches (see module doc).

  Raises:
    ValueError: the global batch does not divide over the processes, or `load_size` is
      smaller than `image_size`.
    FileNotFoundError: a domain folder is missing or empty.
  """
  n_proc = jax.process_count()
  if global_batch_size % n_proc:
    raise ValueError(f"`global_batch_size` ({global_batch_size}) must be divisible by the "
                     f"process count ({n_proc}).")
  size = int(data_config.image_size)
  load = int(data_config.get("load_size", 0))
  if load and load < size:
    raise ValueError(f"`config.data.load_size` ({load}) must be 0 or >= `image_size` ({size}).")
  train = split == "train"
  source = UnpairedSource(data_config.source, split)
  sampler = grain.samplers.IndexSampler(
      num_records=len(source),
      shard_options=grain.sharding.ShardOptions(
          shard_index=jax.process_index(), shard_count=n_proc, drop_remainder=True),
      shuffle=shuffle, num_epochs=num_epochs, seed=seed)
  ops = [_Load(tuple(map(str, source.files_a)), tuple(map(str, source.files_b)), size,
               load if train else 0, bool(data_config.get("random_flip", True)) and train),
         grain.transforms.Batch(global_batch_size // n_proc, drop_remainder=True)]
  return grain.DataLoader(data_source=source, sampler=sampler, operations=ops, worker_count=0)


def load_split(root: str, split: str, image_size: int) -> Tuple[np.ndarray, np.ndarray]:
  """All images of `split`A and `split`B as float32 [N, R, R, 3] in [-1, 1] (sorted names)."""
  load = lambda files: np.stack([load_rgb(p, image_size) for p in files]).astype(
      np.float32) / 127.5 - 1.0
  return (load(list_images(root, f"{split}A")), load(list_images(root, f"{split}B")))
