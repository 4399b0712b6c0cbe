"""Local image collections as a tensorflow-datasets dataset (ArrayRecord, no TensorFlow).

A folder of images with one sub-folder per class (optionally under `train/` and `test/`
split folders), a `.tar.gz`/`.tar` of such a folder, or a folder of IDX files
(MNIST / Fashion-MNIST layout, `*-images-idx3-ubyte.gz` + `*-labels-idx1-ubyte.gz`, as the
Debian package `dataset-fashion-mnist` installs under `/usr/share/datasets/fashion-mnist`)
is converted once into a tfds dataset stored as ArrayRecord, then served through
`builder.as_data_source()` like any other tfds dataset. Images are stored as raw uint8
tensors, so neither writing nor reading needs TensorFlow.
"""

import dataclasses
import gzip
import hashlib
import io
import os
import pathlib
import re
import tarfile
from typing import Iterator, List, Optional, Tuple

import numpy as np
from PIL import Image
import tensorflow_datasets as tfds

_IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
_SPLIT_NAMES = ("train", "test", "validation")


@dataclasses.dataclass
class LocalImagesConfig(tfds.core.BuilderConfig):
  """Which local collection to convert.

  Attributes:
    source: folder, `.tar.gz`/`.tar` archive, or folder of IDX `.gz` files.
    image_size: if set, every image of a folder/archive is resized (PIL bicubic) to this
      square size; otherwise all images must share the first image's size. IDX digits are
      always stored at their native size (the input pipeline pads 28 → 32).
  """
  source: str = ""
  image_size: Optional[int] = None


def _source_fingerprint(source: pathlib.Path) -> str:
  stat = source.stat()
  return hashlib.sha1(f"{source.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:10]


def local_images_config(source: str, image_size: Optional[int] = None) -> LocalImagesConfig:
  """Returns the builder config naming `source` uniquely (path, size and mtime).

  Raises:
    FileNotFoundError: `source` does not exist.
  """
  path = pathlib.Path(source).expanduser()
  if not path.exists():
    raise FileNotFoundError(
        f"data source `{source}` does not exist: point `config.data.source` at an image "
        "folder (class sub-folders), a .tar.gz of one, or a folder of IDX files.")
  stem = re.sub(r"[^a-z0-9]+", "_", path.name.lower().split(".")[0]).strip("_") or "images"
  size = f"{image_size}px" if image_size else "orig"
  name = f"{stem}_{size}_{_source_fingerprint(path)}"
  return LocalImagesConfig(name=name, source=str(path.resolve()), image_size=image_size,
                           description=f"Local images from {path.resolve()}")


# ---------------------------------------------------------------------------- readers


def _is_image(name: str) -> bool:
  return name.lower().endswith(_IMAGE_EXTENSIONS)


def _split_and_class(rel_parts: Tuple[str, ...]) -> Optional[Tuple[str, str]]:
  """Maps `[split/]class/file` path parts to (split, class)."""
  if len(rel_parts) >= 3 and rel_parts[-3] in _SPLIT_NAMES:
    return rel_parts[-3], rel_parts[-2]
  if len(rel_parts) >= 2:
    return "train", rel_parts[-2]
  return None


def _decode(data: bytes, image_size: Optional[int]) -> np.ndarray:
  with Image.open(io.BytesIO(data)) as img:
    img = img.convert("RGB")
    if image_size and img.size != (image_size, image_size):
      img = img.resize((image_size, image_size), Image.BICUBIC)
    return np.asarray(img, dtype=np.uint8)


def _iter_folder(root: pathlib.Path) -> Iterator[Tuple[str, str, str, bytes]]:
  for path in sorted(root.rglob("*")):
    if path.is_file() and _is_image(path.name):
      sc = _split_and_class(path.relative_to(root).parts)
      if sc:
        yield sc[0], sc[1], str(path.relative_to(root)), path.read_bytes()


def _iter_tar(archive: pathlib.Path) -> Iterator[Tuple[str, str, str, bytes]]:
  with tarfile.open(archive, "r:*") as tar:
    for member in tar:
      if member.isfile() and _is_image(member.name):
        sc = _split_and_class(tuple(p for p in member.name.split("/") if p not in ("", ".")))
        if sc:
          yield sc[0], sc[1], member.name, tar.extractfile(member).read()


def _read_idx(path: pathlib.Path) -> np.ndarray:
  opener = gzip.open if path.suffix == ".gz" else open
  with opener(path, "rb") as f:
    data = f.read()
  zero, dtype_code, ndim = data[0:2], data[2], data[3]
  if zero != b"\x00\x00" or dtype_code != 0x08:
    raise ValueError(f"{path} is not a uint8 IDX file (magic {data[:4].hex()}).")
  dims = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
  return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _idx_pairs(root: pathlib.Path) -> List[Tuple[str, pathlib.Path, pathlib.Path]]:
  pairs = []
  for images in sorted(root.glob("*images-idx3-ubyte*")):
    labels = pathlib.Path(str(images).replace("images-idx3", "labels-idx1"))
    if labels.exists():
      split = "test" if images.name.startswith(("t10k", "test")) else "train"
      pairs.append((split, images, labels))
  return pairs


_FASHION_MNIST_NAMES = ("t_shirt_top", "trouser", "pullover", "dress", "coat", "sandal",
                        "shirt", "sneaker", "bag", "ankle_boot")


class LocalImages(tfds.core.GeneratorBasedBuilder):
  """tfds builder for a local image collection; one config per source (see module doc)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Raw uint8 tensors in ArrayRecord."}

  def __init__(self, *, config: LocalImagesConfig, **kwargs):
    self._layout = self._inspect(pathlib.Path(config.source), config.image_size)
    super().__init__(config=config, **kwargs)

  @staticmethod
  def _inspect(source: pathlib.Path, image_size: Optional[int]):
    """Returns (kind, shape, class_names, splits) without decoding every image."""
    if source.is_dir() and _idx_pairs(source):
      pairs = _idx_pairs(source)
      images = _read_idx(pairs[0][1])
      h, w = images.shape[1:3]  # stored at native size; the pipeline pads or resizes
      names = _FASHION_MNIST_NAMES if "fashion" in str(source).lower() else tuple(
          str(i) for i in range(10))
      return "idx", (h, w, 1), names, sorted({p[0] for p in pairs})
    if source.is_dir():
      items = _iter_folder(source)
    elif source.is_file() and tarfile.is_tarfile(source):
      items = _iter_tar(source)
    else:
      raise ValueError(f"data source `{source}` is neither an image folder, a tar archive "
                       "nor a folder of IDX files.")
    classes, splits, shape = set(), set(), None
    for split, cls, _, data in items:
      classes.add(cls)
      splits.add(split)
      if shape is None:
        shape = _decode(data, image_size).shape
    if shape is None:
      raise ValueError(f"no images ({', '.join(_IMAGE_EXTENSIONS)}) in class sub-folders "
                       f"were found under `{source}`.")
    return "images", shape, tuple(sorted(classes)), sorted(splits)

  def _info(self) -> tfds.core.DatasetInfo:
    _, shape, names, _ = self._layout
    return tfds.core.DatasetInfo(
        builder=self,
        description=self.builder_config.description,
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Tensor(shape=shape, dtype=np.uint8, encoding="zlib"),
            "label": tfds.features.ClassLabel(names=list(names)),
        }),
        supervised_keys=("image", "label"),
    )

  def _split_generators(self, dl_manager):
    del dl_manager
    return {split: self._generate_examples(split) for split in self._layout[3]}

  def _generate_examples(self, split: str):
    source = pathlib.Path(self.builder_config.source)
    kind, shape, names, _ = self._layout
    size = self.builder_config.image_size
    if kind == "idx":
      for s, images_path, labels_path in _idx_pairs(source):
        if s != split:
          continue
        images, labels = _read_idx(images_path), _read_idx(labels_path)
        for i, (img, lab) in enumerate(zip(images, labels)):
          yield f"{images_path.name}/{i}", {"image": img[..., None], "label": int(lab)}
      return
    items = _iter_folder(source) if source.is_dir() else _iter_tar(source)
    for s, cls, key, data in items:
      if s != split:
        continue
      img = _decode(data, size)
      if img.shape != shape:
        raise ValueError(f"image `{key}` in `{source}` has shape {img.shape}, expected {shape}:"
                         " set `config.data.image_size` to resize every image.")
      yield key, {"image": img, "label": names.index(cls)}


def prepare_local_images(source: str, data_dir: str,
                         image_size: Optional[int] = None) -> tfds.core.DatasetBuilder:
  """Converts `source` once (ArrayRecord under `data_dir`) and returns the builder.

  Later calls with the same, unchanged source reuse the prepared files. Raises
  FileNotFoundError / ValueError with the path when the source is missing or holds no images.
  """
  builder = LocalImages(config=local_images_config(source, image_size),
                        data_dir=os.path.expanduser(data_dir), file_format="array_record")
  builder.download_and_prepare()
  return builder
