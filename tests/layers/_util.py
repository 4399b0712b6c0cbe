"""NumPy references and NumPy-drawn variables shared by the layer tests."""

import jax
import jax.numpy as jnp
import numpy as np


def np_conv(x, kernel, bias=None, strides=(1, 1), dilation=(1, 1), mode="constant"):
  """NumPy float64 conv with XLA 'SAME' padding (independent reference).

  Cross-correlation of NHWC `x` with an HWIO `kernel`; for odd kernels at stride 1
  the padding is `k // 2` on each side.

  Args:
    x: `[B, H, W, C_in]` input.
    kernel: `[kh, kw, C_in, C_out]` kernel.
    bias: optional `[C_out]` bias.
    strides: (sh, sw).
    dilation: (dh, dw) kernel dilation.
    mode: `np.pad` mode of the padding ('constant' = zeros, 'reflect' = reflect).

  Returns:
    `[B, ceil(H / sh), ceil(W / sw), C_out]` float64.
  """
  x = np.asarray(x, np.float64)
  kernel = np.asarray(kernel, np.float64)
  kh, kw, _, cout = kernel.shape
  b, h, w, _ = x.shape
  outs, pads = [], []
  for n, k, s, d in ((h, kh, strides[0], dilation[0]), (w, kw, strides[1], dilation[1])):
    out = -(-n // s)
    total = max((out - 1) * s + (k - 1) * d + 1 - n, 0)
    outs.append(out)
    pads.append((total // 2, total - total // 2))
  xp = np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)), mode=mode)
  (oh, ow), (sh, sw), (dh, dw) = outs, strides, dilation
  y = np.zeros((b, oh, ow, cout))
  for u in range(kh):
    for v in range(kw):
      patch = xp[:, u * dh:u * dh + (oh - 1) * sh + 1:sh, v * dw:v * dw + (ow - 1) * sw + 1:sw]
      y += np.einsum("bhwc,co->bhwo", patch, kernel[u, v])
  if bias is not None:
    y += np.asarray(bias, np.float64)
  return y


def np_random_init(module, *args, seed=0):
  """Random variables with the shapes and dtypes `module.init` gives, drawn with
  NumPy: only traces the module, so the PRNG initialisers are never compiled
  (that compile dominates the CPU time of these tiny tests)."""
  shapes = jax.eval_shape(module.init, jax.random.PRNGKey(0), *args)
  rng = np.random.default_rng(seed)

  def draw(s):
    fan_in = int(np.prod(s.shape[:-1])) if len(s.shape) > 1 else 1
    return jnp.asarray(rng.standard_normal(s.shape) / np.sqrt(fan_in), s.dtype)

  return jax.tree_util.tree_map(draw, shapes)


def np_normal(seed, shape):
  """Standard-normal float32 input drawn with NumPy (no PRNG compile)."""
  return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)
