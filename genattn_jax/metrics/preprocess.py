"""Input preprocessing for the FID Inception network: range check, resize, [-1, 1].

pytorch-fid turns uint8 images into [0, 1] floats, resizes them to 299x299 with
`F.interpolate(x, size=(299, 299), mode='bilinear', align_corners=False)` (no
antialiasing, so downscaling aliases) and maps them to [-1, 1] with `2 * x - 1`.
`to_inception_input` does the same in JAX, with the resize written as two
interpolation matrices built from PyTorch's formula (`bilinear_resize_matrix`), so the
result equals PyTorch's up to float32 rounding on any input size, up- or downscaling.

`clean_resize_host` is the optional host-side alternative of clean-fid (Parmar et al.,
CVPR 2022): PIL's bicubic resize, which antialiases when downscaling, applied to each
channel as a float32 image so nothing is quantised.

All of it is float32 and works image by image, so an image's result does not depend on
which batch it is in.
"""

from typing import Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from genattn_jax import _checks

INCEPTION_SIZE = (299, 299)
INPUT_RANGES = ("auto", "[-1,1]", "[0,1]", "[0,255]")
_FLOAT_SLACK = 1e-3


def bilinear_resize_matrix(in_size: int, out_size: int) -> np.ndarray:
  """[out_size, in_size] float32 weights of PyTorch's bilinear, align_corners=False.

  Output index i samples the input at s = (i + 0.5) * in_size / out_size - 0.5,
  clamped below at 0; it mixes rows floor(s) and min(floor(s) + 1, in_size - 1) with
  weights 1 - frac(s) and frac(s). No antialiasing (PyTorch's `antialias=False`). Like
  PyTorch's CPU kernel for float32 tensors, s and the weights are computed in float32.
  """
  _checks.check_positive(in_size, "in_size")
  _checks.check_positive(out_size, "out_size")
  f32 = np.float32
  scale = f32(in_size) / f32(out_size)
  src = scale * (np.arange(out_size, dtype=f32) + f32(0.5)) - f32(0.5)
  src = np.maximum(src, f32(0.0))
  i0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
  i1 = np.minimum(i0 + 1, in_size - 1)
  frac = np.clip(src - i0.astype(f32), f32(0.0), f32(1.0))
  m = np.zeros((out_size, in_size), f32)
  rows = np.arange(out_size)
  np.add.at(m, (rows, i0), f32(1.0) - frac)
  np.add.at(m, (rows, i1), frac)
  return m


def resize_bilinear(x: jax.Array, size: Tuple[int, int] = INCEPTION_SIZE) -> jax.Array:
  """PyTorch-compatible bilinear resize (align_corners=False, no antialias).

  Args:
    x: [B, H, W, C] float.
    size: (out_h, out_w).

  Returns:
    [B, out_h, out_w, C] float32. Matches `F.interpolate(..., mode='bilinear',
    align_corners=False)` up to float32 rounding (~1e-6 on [0, 1] images).

  Raises:
    ValueError: `x` is not [B, H, W, C].
  """
  _, h, w, _ = _checks.check_nhwc(x, "x")
  x = jnp.asarray(x, jnp.float32)
  if (h, w) == tuple(size):
    return x
  mh = jnp.asarray(bilinear_resize_matrix(h, size[0]))
  mw = jnp.asarray(bilinear_resize_matrix(w, size[1]))
  hi = jax.lax.Precision.HIGHEST
  x = jnp.einsum("oh,bhwc->bowc", mh, x, precision=hi)
  return jnp.einsum("pw,bowc->bopc", mw, x, precision=hi)


def resolve_input_range(dtype, input_range: str = "auto") -> str:
  """Returns the concrete range for a dtype: 'auto' means uint8→[0,255], float→[-1,1].

  Raises:
    ValueError: unknown `input_range`, a dtype that is neither uint8/integer nor
      floating, or uint8 data declared as a float range.
  """
  _checks.check_in(input_range, INPUT_RANGES, "input_range")
  dtype = np.dtype(dtype)
  is_int = np.issubdtype(dtype, np.integer)
  if not (is_int or np.issubdtype(dtype, np.floating) or dtype == jnp.bfloat16):
    raise ValueError(f"`images` must be uint8 or floating, got dtype {dtype}.")
  if input_range == "auto":
    return "[0,255]" if is_int else "[-1,1]"
  if is_int and input_range != "[0,255]":
    raise ValueError(f"integer `images` must be in [0, 255], got input_range={input_range!r}.")
  return input_range


def check_images(images, input_range: str = "auto") -> str:
  """Checks shape, channels and (for concrete arrays) the value range.

  Args:
    images: [B, H, W, C], C in {1, 3}; uint8 in [0, 255] or float in [-1, 1] (or the
      declared `input_range`: '[-1,1]', '[0,1]', '[0,255]').
    input_range: 'auto' (uint8 → [0, 255], float → [-1, 1]) or one of the above.

  Returns:
    The resolved range string.

  Raises:
    ValueError: wrong rank, C not 1 or 3, unknown `input_range`, or values outside the
      range by more than 1e-3 (e.g. float images in [0, 255] with 'auto').
  """
  _, _, _, c = _checks.check_nhwc(images, "images")
  if c not in (1, 3):
    raise ValueError(f"`images` must have 1 or 3 channels [B, H, W, C], got C={c}.")
  rng = resolve_input_range(images.dtype, input_range)
  if isinstance(images, jax.core.Tracer):
    return rng
  arr = np.asarray(images)
  if arr.size == 0:
    return rng
  lo, hi = {"[-1,1]": (-1.0, 1.0), "[0,1]": (0.0, 1.0), "[0,255]": (0.0, 255.0)}[rng]
  vmin, vmax = float(arr.min()), float(arr.max())
  slack = _FLOAT_SLACK * (hi - lo) / 2
  if not (np.isfinite(vmin) and np.isfinite(vmax)) or vmin < lo - slack or vmax > hi + slack:
    hint = " (float images in [0, 255]? pass uint8 or input_range='[0,255]')" if vmax > 2 else ""
    raise ValueError(f"`images` values must lie in [{lo:g}, {hi:g}] for input_range "
                     f"{rng!r}, got [{vmin:g}, {vmax:g}]{hint}.")
  return rng


def to_unit_range(x: jax.Array, input_range: str) -> jax.Array:
  """Maps images in `input_range` (resolved, not 'auto') to float32 [0, 1], clipped."""
  x = jnp.asarray(x).astype(jnp.float32)
  if input_range == "[-1,1]":
    x = (x + 1.0) * 0.5
  elif input_range == "[0,255]":
    x = x / 255.0
  return jnp.clip(x, 0.0, 1.0)


def to_inception_input(images: jax.Array, input_range: str = "auto",
                       size: Optional[Tuple[int, int]] = INCEPTION_SIZE) -> jax.Array:
  """pytorch-fid's preprocessing: [0, 1] → bilinear resize → 2x - 1, 3 channels.

  Jittable (the value-range check is skipped for traced inputs; `extract_features`
  checks each batch on the host).

  Args:
    images: [B, H, W, C], C in {1, 3}, uint8 in [0, 255] or float in [-1, 1] (see
      `check_images`); grayscale is replicated to 3 channels.
    input_range: 'auto', '[-1,1]', '[0,1]' or '[0,255]'.
    size: output (H, W), or None to keep the size (e.g. after `clean_resize_host`).

  Returns:
    [B, 299, 299, 3] float32 in [-1, 1].

  Raises:
    ValueError: see `check_images`.
  """
  rng = check_images(images, input_range)
  x = to_unit_range(images, rng)
  if size is not None:
    x = resize_bilinear(x, size)
  x = 2.0 * x - 1.0
  if x.shape[-1] == 1:
    x = jnp.repeat(x, 3, axis=-1)
  return x


def clean_resize_host(images: np.ndarray, input_range: str = "auto",
                      size: Tuple[int, int] = INCEPTION_SIZE) -> np.ndarray:
  """clean-fid style host-side resize: PIL bicubic per channel in float32 ('F' mode).

  Args:
    images: [B, H, W, C] NumPy, C in {1, 3}, uint8 in [0, 255] or float in [-1, 1].
    input_range: as in `check_images`.
    size: output (H, W).

  Returns:
    [B, out_h, out_w, C] float32 in [0, 1] (clipped; bicubic overshoots), to be passed
    on with input_range='[0,1]' and size=None.

  Raises:
    ValueError: see `check_images`.
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top

  images = np.asarray(images)
  rng = check_images(images, input_range)
  x = np.asarray(to_unit_range(images, rng), np.float32) * 255.0
  out = np.empty((x.shape[0], size[0], size[1], x.shape[-1]), np.float32)
  for b in range(x.shape[0]):
    for c in range(x.shape[-1]):
      img = Image.fromarray(np.ascontiguousarray(x[b, :, :, c]))  # float32 -> mode F
      out[b, :, :, c] = np.asarray(img.resize((size[1], size[0]), resample=Image.BICUBIC))
  return np.clip(out / 255.0, 0.0, 1.0)
