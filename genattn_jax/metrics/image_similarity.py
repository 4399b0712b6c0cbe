"""PSNR and SSIM between translated and ground-truth images (the spap paper's Table 3).

SSIM follows Wang, Bovik, Sheikh, Simoncelli, "Image Quality Assessment: From Error
Visibility to Structural Similarity" (IEEE TIP 2004), Eq. 13 with the paper's settings: an
11x11 Gaussian window with sigma 1.5, K1 = 0.01, K2 = 0.03, L = the data range; the map is
computed per channel over the 'valid' window positions and averaged over positions and
channels (the convention of scikit-image's `structural_similarity(..., gaussian_weights=True,
use_sample_covariance=False)` and of most image-translation evaluations). PSNR is
10 log10(L² / MSE) per image, averaged over images.

Inputs: [N, H, W, C] (or [H, W, C]) arrays in a common range, by default uint8-style [0, 255]
(`data_range=255`); pass `data_range=2` for images in [-1, 1].
"""

from typing import Tuple

import jax
import jax.numpy as jnp
import numpy as np


def _check_pair(x, y) -> Tuple[jnp.ndarray, jnp.ndarray]:
  x = jnp.asarray(x, jnp.float32)
  y = jnp.asarray(y, jnp.float32)
  if x.shape != y.shape:
    raise ValueError(f"images must have the same shape, got {x.shape} and {y.shape}.")
  if x.ndim == 3:
    x, y = x[None], y[None]
  if x.ndim != 4:
    raise ValueError(f"images must be [N, H, W, C] or [H, W, C], got shape {x.shape}.")
  return x, y


def psnr(x, y, data_range: float = 255.0) -> np.ndarray:
  """Per-image PSNR in dB: float [N] (inf where the images are equal).

  Raises:
    ValueError: shapes differ or are not [N, H, W, C] / [H, W, C].
  """
  x, y = _check_pair(x, y)
  mse = jnp.mean((x - y) ** 2, axis=(1, 2, 3))
  return np.asarray(10.0 * jnp.log10(data_range ** 2 / mse))


def gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
  """Normalised 1-D Gaussian [size] (float64)."""
  r = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
  g = np.exp(-(r ** 2) / (2.0 * sigma ** 2))
  return g / g.sum()


def ssim(x, y, data_range: float = 255.0, window: int = 11, sigma: float = 1.5,
         k1: float = 0.01, k2: float = 0.03) -> np.ndarray:
  """Per-image mean SSIM: float [N] in [-1, 1].

  Raises:
    ValueError: shapes differ, are not [N, H, W, C] / [H, W, C], or H / W < `window`.
  """
  x, y = _check_pair(x, y)
  n, h, w, c = x.shape
  if h < window or w < window:
    raise ValueError(f"images of {h}x{w} are smaller than the {window}x{window} SSIM window.")
  g = jnp.asarray(gaussian_window(window, sigma), jnp.float32)
  kernel = jnp.outer(g, g)[:, :, None, None] * jnp.ones((1, 1, 1, c), jnp.float32)

  def blur(t):  # depthwise 'valid' Gaussian filter
    return jax.lax.conv_general_dilated(t, kernel, (1, 1), "VALID",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                        feature_group_count=c,
                                        precision=jax.lax.Precision.HIGHEST)

  c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
  mx, my = blur(x), blur(y)
  sxx = blur(x * x) - mx * mx
  syy = blur(y * y) - my * my
  sxy = blur(x * y) - mx * my
  s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
  return np.asarray(jnp.mean(s, axis=(1, 2, 3)))
