"""Image sources for evaluation: image folders, `.npz` of images, `.npz` of statistics.

A path given to the evaluation is one of
  * a folder of images: every `.png`, `.jpg`, `.jpeg` file below it (recursive, suffix
    case-insensitive), in sorted path order, decoded with PIL and converted to RGB;
  * an `.npz` holding images: the array `images`, or the archive's only array;
  * an `.npz` of Gaussian statistics with the arrays `mu` and `sigma` (pytorch-fid
    layout, see `genattn_jax.metrics.fid.save_statistics`).

Images are streamed in batches (`iter_image_batches`), so neither a folder nor an
`.npz` (compressed or not) is ever held in memory whole: `.npz` arrays are read
straight from the zip member in chunks of rows.

`.npz` image arrays may be
  * uint8 in [0, 255] (other integer dtypes in [0, 255] are converted to uint8), or
    floating point in [-1, 1] (returned as float32; a first batch entirely inside
    [0, 1] triggers a warning because such data is probably meant as [0, 1]);
  * [N, H, W, C] (NHWC) or [N, C, H, W] (NCHW) with C in {1, 3}, or [N, H, W]
    grayscale. The layout is detected from the shape: NHWC when the last axis has size
    1 or 3, otherwise NCHW when axis 1 has size 1 or 3 (so an ambiguous shape such as
    [N, 3, H, 3] is read as NHWC). One channel is repeated to three.
Every batch comes out as [b, H, W, 3], uint8 or float32.
"""

import dataclasses
import os
import pathlib
from typing import Iterator, List, Optional, Sequence, Tuple, Union
import warnings
import zipfile

import numpy as np
from PIL import Image

from genattn_jax import _checks

PathLike = Union[str, os.PathLike]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
_EXPECTED = ("an image folder (.png/.jpg/.jpeg files, searched recursively), an .npz of "
             "images (array `images` or a single array) or an .npz of statistics "
             "(arrays `mu` and `sigma`)")


@dataclasses.dataclass(frozen=True)
class ImageSource:
  """What an evaluation path holds (see the module docstring).

  Attributes:
    path: the path as given.
    kind: 'folder', 'images_npz' or 'stats_npz'.
    num_images: number of images available (None for statistics).
    files: sorted image files of a folder (empty otherwise).
    key: name of the image array inside an `.npz` (None otherwise).
    shape: stored shape of the `.npz` image array (None otherwise).
    layout: 'NHWC', 'NCHW' or 'NHW' for an `.npz` of images (None otherwise).
  """
  path: pathlib.Path
  kind: str
  num_images: Optional[int] = None
  files: Tuple[pathlib.Path, ...] = ()
  key: Optional[str] = None
  shape: Optional[Tuple[int, ...]] = None
  layout: Optional[str] = None


def list_image_files(folder: PathLike) -> List[pathlib.Path]:
  """All `.png` / `.jpg` / `.jpeg` files below `folder` (recursive), sorted by path.

  Raises:
    FileNotFoundError: `folder` is not a directory or holds no such file.
  """
  folder = pathlib.Path(folder)
  if not folder.is_dir():
    raise FileNotFoundError(f"image folder `{folder}` does not exist.")
  files = sorted(p for p in folder.rglob("*")
                 if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
  if not files:
    raise FileNotFoundError(f"no images found in `{folder}`: looked recursively for "
                            f"files ending in {', '.join(IMAGE_EXTENSIONS)}.")
  return files


def _read_npy_header(f):
  """Reads the `.npy` header from `f` -> (shape, fortran_order, dtype); `f` then points
  at the first data byte."""
  version = np.lib.format.read_magic(f)
  if version == (1, 0):
    return np.lib.format.read_array_header_1_0(f)
  return np.lib.format.read_array_header_2_0(f)


def _npy_header(zf: zipfile.ZipFile, member: str):
  """(shape, fortran_order, dtype) of an `.npy` member, read without loading it."""
  with zf.open(member) as f:
    return _read_npy_header(f)


def _detect_layout(shape: Tuple[int, ...], path: pathlib.Path) -> str:
  if len(shape) == 3:
    return "NHW"
  if len(shape) == 4:
    if shape[3] in (1, 3):
      return "NHWC"
    if shape[1] in (1, 3):
      return "NCHW"
  raise ValueError(f"images in `{path}` have shape {shape}: expected [N, H, W, C] or "
                   "[N, C, H, W] with C in {1, 3}, or [N, H, W].")


def detect_source(path: PathLike) -> ImageSource:
  """Works out whether `path` is an image folder, an `.npz` of images or of statistics.

  Raises:
    FileNotFoundError: `path` does not exist, or a folder holds no image files.
    ValueError: a file that is not a readable `.npz`, or an `.npz` without `mu`/`sigma`
      that holds several arrays but none named `images`, or an image array of a shape
      that is not an image batch.
  """
  path = pathlib.Path(path)
  if not path.exists():
    raise FileNotFoundError(f"`{path}` does not exist: expected {_EXPECTED}.")
  if path.is_dir():
    files = tuple(list_image_files(path))
    return ImageSource(path=path, kind="folder", num_images=len(files), files=files)
  try:
    zf = zipfile.ZipFile(path)
  except (zipfile.BadZipFile, OSError) as e:
    raise ValueError(f"`{path}` is neither a folder nor an .npz archive: expected "
                     f"{_EXPECTED}.") from e
  with zf:
    names = [n[:-4] for n in zf.namelist() if n.endswith(".npy")]
    if {"mu", "sigma"}.issubset(names):
      return ImageSource(path=path, kind="stats_npz")
    if "images" in names:
      key = "images"
    elif len(names) == 1:
      key = names[0]
    else:
      raise ValueError(f"`{path}` holds arrays {sorted(names)}: expected an array named "
                       "`images`, a single array, or `mu` and `sigma` (statistics).")
    shape, _, dtype = _npy_header(zf, key + ".npy")
  if not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)):
    raise ValueError(f"images in `{path}` have dtype {dtype}: expected uint8 or float.")
  layout = _detect_layout(tuple(shape), path)
  return ImageSource(path=path, kind="images_npz", num_images=int(shape[0]), key=key,
                     shape=tuple(int(s) for s in shape), layout=layout)


def _load_image(file: pathlib.Path, image_size: Optional[Tuple[int, int]]) -> np.ndarray:
  """Decodes one file; raises `_checks.UnreadableImageError` naming it when that fails."""
  try:
    with Image.open(file) as img:
      img = img.convert("RGB")
      if image_size is not None and img.size != (image_size[1], image_size[0]):
        img = img.resize((image_size[1], image_size[0]), Image.Resampling.BICUBIC)
      return np.asarray(img, dtype=np.uint8)
  except (OSError, SyntaxError, ValueError) as e:  # PIL's errors for truncated/corrupt files
    raise _checks.unreadable_image(str(file), e, "Remove or replace the file.") from e


def iter_image_folder(files: Sequence[pathlib.Path], batch_size: int = 64,
                      image_size: Optional[Tuple[int, int]] = None
                      ) -> Iterator[np.ndarray]:
  """Decodes image files batch by batch.

  Args:
    files: image paths, in the order to read them (see `list_image_files`).
    batch_size: images per batch (> 0); the last batch may be smaller.
    image_size: (H, W) to resize every image to (PIL bicubic); None keeps the sizes,
      which then must all equal the first image's.

  Yields:
    [b, H, W, 3] uint8 RGB batches in [0, 255].

  Raises:
    ValueError: sizes differ and `image_size` is None (names the offending file).
    UnreadableImageError: a file cannot be decoded (a ValueError naming the file).
  """
  _checks.check_positive(batch_size, "batch_size")
  expected = None
  batch = []
  for file in files:
    image = _load_image(pathlib.Path(file), image_size)
    if expected is None:
      expected = image.shape
    elif image.shape != expected:
      raise ValueError(f"`{file}` is {image.shape[1]}x{image.shape[0]} but the first image "
                       f"is {expected[1]}x{expected[0]}: pass `image_size` to resize all.")
    batch.append(image)
    if len(batch) == batch_size:
      yield np.stack(batch)
      batch = []
  if batch:
    yield np.stack(batch)


def _to_nhwc3(chunk: np.ndarray, layout: str) -> np.ndarray:
  if layout == "NHW":
    chunk = chunk[..., None]
  elif layout == "NCHW":
    chunk = np.transpose(chunk, (0, 2, 3, 1))
  if chunk.shape[-1] == 1:
    chunk = np.repeat(chunk, 3, axis=-1)
  return chunk


def _convert_dtype(chunk: np.ndarray, path: pathlib.Path, first: bool) -> np.ndarray:
  if np.issubdtype(chunk.dtype, np.floating):
    lo, hi = float(chunk.min()), float(chunk.max())
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo < -1.001 or hi > 1.001:
      raise ValueError(f"float images in `{path}` must lie in [-1, 1], found values in "
                       f"[{lo}, {hi}]; store uint8 [0, 255] images instead.")
    if first and lo >= 0.0:
      warnings.warn(f"float images in `{path}` are all in [0, 1]; they are read as [-1, 1] "
                    "(store uint8 or rescale if they are [0, 1] images).", stacklevel=3)
    return np.clip(chunk, -1.0, 1.0).astype(np.float32)
  if chunk.dtype != np.uint8:
    lo, hi = int(chunk.min()), int(chunk.max())
    if lo < 0 or hi > 255:
      raise ValueError(f"integer images in `{path}` must lie in [0, 255], found "
                       f"[{lo}, {hi}].")
  return chunk.astype(np.uint8)


def iter_images_npz(source: ImageSource, batch_size: int = 64,
                    num_images: Optional[int] = None) -> Iterator[np.ndarray]:
  """Streams the image array of an `.npz` in batches, reading only one batch at a time.

  Args:
    source: an 'images_npz' `ImageSource` from `detect_source`.
    batch_size: images per batch (> 0).
    num_images: read at most this many leading images (None: all).

  Yields:
    [b, H, W, 3] batches: uint8 [0, 255] or float32 [-1, 1] (see the module docstring).

  Raises:
    ValueError: values outside the allowed range.
  """
  _checks.check_positive(batch_size, "batch_size")
  total = source.num_images if num_images is None else min(num_images, source.num_images)
  with zipfile.ZipFile(source.path) as zf:
    member = source.key + ".npy"
    with zf.open(member) as f:
      shape, fortran_order, dtype = _read_npy_header(f)
      array = None
      if fortran_order:  # Rows are not contiguous: fall back to reading the array.
        with zf.open(member) as whole:
          array = np.lib.format.read_array(whole)
      row = int(np.prod(shape[1:])) * dtype.itemsize
      for start in range(0, total, batch_size):
        count = min(batch_size, total - start)
        if array is not None:
          chunk = np.asarray(array[start:start + count])
        else:
          buffer = f.read(count * row)
          if len(buffer) != count * row:
            raise ValueError(f"`{source.path}` is truncated: the array ends before "
                             f"image {start + count}.")
          chunk = np.frombuffer(buffer, dtype=dtype).reshape((count,) + tuple(shape[1:]))
        chunk = _convert_dtype(chunk, source.path, first=start == 0)
        yield _to_nhwc3(chunk, source.layout)


def iter_image_batches(path_or_source: Union[PathLike, ImageSource], batch_size: int = 64,
                       num_images: Optional[int] = None,
                       image_size: Optional[Tuple[int, int]] = None
                       ) -> Iterator[np.ndarray]:
  """Streams [b, H, W, 3] image batches from an image folder or an `.npz` of images.

  Args:
    path_or_source: a path or an `ImageSource` from `detect_source`.
    batch_size: images per batch (> 0); the last batch may be smaller.
    num_images: use at most this many images (folders: the first in sorted path order;
      `.npz`: the leading rows). None uses all. Fewer available gives a warning.
    image_size: (H, W) to resize folder images to; ignored for `.npz` arrays (which
      have one size already).

  Yields:
    uint8 [0, 255] batches (folders, uint8 `.npz`) or float32 [-1, 1] (float `.npz`).

  Raises:
    FileNotFoundError / ValueError: as `detect_source`; ValueError for a statistics
      file (it holds no images), mixed folder image sizes without `image_size`, or
      `num_images` <= 0.
  """
  source = (path_or_source if isinstance(path_or_source, ImageSource)
            else detect_source(path_or_source))
  if num_images is not None:
    _checks.check_positive(num_images, "num_images")
    if source.num_images is not None and num_images > source.num_images:
      warnings.warn(f"`{source.path}` has only {source.num_images} images, fewer than the "
                    f"{num_images} requested; using all of them.", stacklevel=2)
  if source.kind == "stats_npz":
    raise ValueError(f"`{source.path}` holds statistics (mu, sigma), not images.")
  if source.kind == "folder":
    files = source.files if num_images is None else source.files[:num_images]
    return iter_image_folder(files, batch_size, image_size)
  return iter_images_npz(source, batch_size, num_images)


def load_images(path: PathLike, num_images: Optional[int] = None,
                image_size: Optional[Tuple[int, int]] = None) -> np.ndarray:
  """All images of a folder or an `.npz` as one [N, H, W, 3] array (uint8 or float32).

  Convenience for small sets; use `iter_image_batches` to stream large ones.

  Raises:
    As `iter_image_batches`.
  """
  return np.concatenate(list(iter_image_batches(path, 256, num_images, image_size)))
