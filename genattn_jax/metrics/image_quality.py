"""Per-pair image fidelity: PSNR and SSIM (reported by semantic image synthesis papers).

  psnr(x, y) = 10 · log10(255² / mean((x − y)²)) per image, on uint8 [0, 255] values.
  ssim(x, y): Wang et al., "Image Quality Assessment: From Error Visibility to Structural
    Similarity", IEEE TIP 2004, Eq. (13): local statistics under an 11x11 Gaussian window
    (σ = 1.5), C1 = (0.01 · 255)², C2 = (0.03 · 255)², valid positions only, averaged over
    positions and channels (the scikit-image `gaussian_weights=True` convention).
"""

import numpy as np
import jax
import jax.numpy as jnp


def _check(x, y):
  x, y = np.asarray(x), np.asarray(y)
  if x.shape != y.shape or x.ndim != 4:
    raise ValueError(f"expected two [N, H, W, C] image arrays of one shape, got {x.shape} "
                     f"and {y.shape}.")
  return x.astype(np.float64), y.astype(np.float64)


def psnr(x, y) -> np.ndarray:
  """float64 [N] PSNR in dB of uint8-range [N, H, W, C] images (inf for identical pairs)."""
  x, y = _check(x, y)
  mse = np.mean((x - y) ** 2, axis=(1, 2, 3))
  with np.errstate(divide="ignore"):
    return 10.0 * np.log10(255.0 ** 2 / mse)


def gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
  g = np.exp(-((np.arange(size) - (size - 1) / 2) ** 2) / (2 * sigma ** 2))
  g = g / g.sum()
  return np.outer(g, g)


@jax.jit
def _ssim(x, y, win):
  c = x.shape[-1]
  k = jnp.tile(win[:, :, None, None], (1, 1, 1, c))

  def filt(a):
    return jax.lax.conv_general_dilated(a, k, (1, 1), "VALID",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                        feature_group_count=c,
                                        precision=jax.lax.Precision.HIGHEST)

  mx, my = filt(x), filt(y)
  sxx = filt(x * x) - mx ** 2
  syy = filt(y * y) - my ** 2
  sxy = filt(x * y) - mx * my
  c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
  s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (sxx + syy + c2))
  return s.mean(axis=(1, 2, 3))


def ssim(x, y) -> np.ndarray:
  """float [N] SSIM of uint8-range [N, H, W, C] images (H, W ≥ 11)."""
  x, y = _check(x, y)
  if min(x.shape[1:3]) < 11:
    raise ValueError(f"SSIM needs images of at least 11x11, got {x.shape[1:3]}.")
  return np.asarray(_ssim(jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32),
                          jnp.asarray(gaussian_window(), jnp.float32)))
