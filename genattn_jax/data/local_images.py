"""Local image collections as a tensorflow-datasets dataset (ArrayRecord, no TensorFlow).

A folder of images with one sub-folder per class (optionally under `train/` and `test/`
split folders), a `.tar.gz`/`.tar` of such a folder, or a folder of IDX files
(MNIST / Fashion-MNIST layout, `*-images-idx3-ubyte.gz` + `*-labels-idx1-ubyte.gz`, as the
Debian package `dataset-fashion-mnist` installs under `/usr/share/datasets/fashion-mnist`)
is converted once into a tfds dataset stored as ArrayRecord, then served through
`builder.as_data_source()` like any other tfds dataset. Images are stored as raw uint8
tensors, so neither writing nor reading needs TensorFlow.

A conversion is keyed on the source's file listing: the sha1 of every file's relative path,
size and modification time (for an archive: its own path, size and mtime). Adding, removing,
renaming or rewriting a file under a folder gives a new key and a new conversion; each call
says whether it reuses a conversion or converts (and when an older conversion of the same
source exists, that the source changed since).

An image that cannot be decoded (e.g. a truncated JPEG) stops the conversion with
`UnreadableImageError` naming the file, unless `skip_unreadable=True`, which leaves such files
out and reports how many (and which) were skipped.
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

from absl import logging
import numpy as np
from PIL import Image
import tensorflow_datasets as tfds

from genattn_jax import _checks
from genattn_jax.data import conversion_lock

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
    skip_unreadable: leave out images that fail to decode instead of raising.
  """
  source: str = ""
  image_size: Optional[int] = None
  skip_unreadable: bool = False


def source_listing(source: pathlib.Path) -> List[Tuple[str, int, int]]:
  """(relative path, size, mtime_ns) of every file under folder `source`, sorted; for a file
  source, the file itself (its resolved path)."""
  if source.is_dir():
    out = []
    for path in sorted(source.rglob("*")):
      if path.is_file():
        stat = path.stat()
        out.append((str(path.relative_to(source)), stat.st_size, stat.st_mtime_ns))
    return out
  stat = source.stat()
  return [(str(source.resolve()), stat.st_size, stat.st_mtime_ns)]


def _source_fingerprint(source: pathlib.Path) -> str:
  digest = hashlib.sha1(str(source.resolve()).encode())
  for name, size, mtime in source_listing(source):
    digest.update(f"\0{name}\0{size}\0{mtime}".encode())
  return digest.hexdigest()[:10]


def local_images_config(source: str, image_size: Optional[int] = None,
                        skip_unreadable: bool = False) -> LocalImagesConfig:
  """Returns the builder config naming `source` uniquely (by its file listing, see module doc).

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
  skip = "_skip" if skip_unreadable else ""
  name = f"{stem}_{size}{skip}_{_source_fingerprint(path)}"
  return LocalImagesConfig(name=name, source=str(path.resolve()), image_size=image_size,
                           skip_unreadable=skip_unreadable,
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


_SKIP_HINT = ("Replace or remove it, or set `config.data.skip_unreadable=True` to leave "
              "unreadable images out of the converted dataset (they are counted).")


def _decode(data: bytes, image_size: Optional[int], name: str = "image") -> np.ndarray:
  """Decodes one image; raises `UnreadableImageError` naming `name` when it cannot."""
  try:
    with Image.open(io.BytesIO(data)) as img:
      img = img.convert("RGB")
      if image_size and img.size != (image_size, image_size):
        img = img.resize((image_size, image_size), Image.BICUBIC)
      return np.asarray(img, dtype=np.uint8)
  except (OSError, SyntaxError, ValueError) as e:  # PIL's errors for truncated/corrupt files
    raise _checks.unreadable_image(name, e, _SKIP_HINT) from e


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
    self.skipped: List[str] = []
    self._layout = self._inspect(pathlib.Path(config.source), config.image_size,
                                 config.skip_unreadable)
    super().__init__(config=config, **kwargs)

  @staticmethod
  def _inspect(source: pathlib.Path, image_size: Optional[int], skip_unreadable: bool = False):
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
    for split, cls, key, data in items:
      if shape is None:
        try:
          shape = _decode(data, image_size, f"{source}/{key}").shape
        except _checks.UnreadableImageError:
          if not skip_unreadable:
            raise
          continue
      classes.add(cls)
      splits.add(split)
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
      try:
        img = _decode(data, size, f"{source}/{key}")
      except _checks.UnreadableImageError as e:
        if not self.builder_config.skip_unreadable:
          raise
        self.skipped.append(key)
        logging.warning("skipping unreadable image: %s", e)
        continue
      if img.shape != shape:
        raise ValueError(f"image `{key}` in `{source}` has shape {img.shape}, expected {shape}:"
                         " set `config.data.image_size` to resize every image.")
      yield key, {"image": img, "label": names.index(cls)}


def prepare_local_images(source: str, data_dir: str, image_size: Optional[int] = None,
                         skip_unreadable: bool = False) -> tfds.core.DatasetBuilder:
  """Converts `source` once (ArrayRecord under `data_dir`) and returns the builder.

  Later calls with an unchanged file listing reuse the prepared files; a changed listing
  converts again (see module doc). Each call prints which of the two happened.

  Raises:
    FileNotFoundError: the source is missing.
    ValueError: it holds no images.
    UnreadableImageError: an image cannot be decoded and `skip_unreadable` is False (names
      the file).
  """
  config = local_images_config(source, image_size, skip_unreadable)
  data_dir = os.path.expanduser(data_dir)
  make = lambda: LocalImages(config=config, data_dir=data_dir, file_format="array_record")

  def convert(builder):
    older = _older_conversions(builder, config.name)
    why = (f"the file listing changed since the conversion(s) {older}" if older else
           "first conversion")
    _report(f"converting {config.source} to {builder.data_dir} ({why})")
    builder.download_and_prepare()
    if builder.skipped:
      _report(f"skipped {len(builder.skipped)} unreadable image(s) of {config.source} "
              f"(config.data.skip_unreadable): {builder.skipped[:5]}"
              + (" ..." if len(builder.skipped) > 5 else ""))

  # One process converts; one started beside it waits and reuses the result.
  builder, converted = conversion_lock.prepare_once(data_dir, make, convert)
  if not converted:
    _report(f"reusing the conversion of {config.source} in {builder.data_dir} (file listing "
            "unchanged)")
  return builder


def _report(message: str) -> None:
  logging.info(message)
  print(f"[data] {message}", flush=True)


def _older_conversions(builder, name: str) -> List[str]:
  """Other prepared configs of the same source stem and options (earlier listings)."""
  root = pathlib.Path(builder.data_dir).parent.parent  # <data_dir>/local_images/<name>/<ver>
  prefix = name.rsplit("_", 1)[0] + "_"
  return sorted(p.name for p in root.glob(prefix + "*") if p.name != name and p.is_dir())
