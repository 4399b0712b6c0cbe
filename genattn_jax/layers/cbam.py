"""CBAM: Convolutional Block Attention Module (Woo et al., ECCV 2018, Sec. 3).

Channel attention (Eq. (2)) followed by spatial attention (Eq. (3)), applied
sequentially (Eq. (1)): F' = M_c(F) * F, F'' = M_s(F') * F'.
"""

from typing import Any, Callable, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from genattn_jax import _checks
from genattn_jax.layers.conv import Conv

Dtype = Any


class CBAM(nn.Module):
  """Channel gate then spatial gate; output has the input's shape.

  Channel gate (Eq. (2)): `M_c = sigmoid(MLP(avgpool_hw(x)) + MLP(maxpool_hw(x)))`,
  one MLP shared by both pooled `[B, C]` vectors: Dense(C // r) -> ReLU -> Dense(C),
  with biases (as in the official code). The hidden width is `max(1, C // r)`
  (the official code floors C / r; the `max` keeps C < r usable).

  Spatial gate (Eq. (3)): `M_s = sigmoid(conv_kxk([max_c(x'), mean_c(x')]))` with a
  single-output `k x k` conv ('SAME' zero padding) on the 2-channel map whose
  channel 0 is the max and channel 1 the mean over channels, the order of the
  official code (the paper writes [AvgPool; MaxPool]). The paper's conv (used here)
  has a bias and no normalization; the official code uses a bias-free conv followed
  by BatchNorm, left out so the block needs no train/eval switch.

  Submodules: `mlp_hidden`, `mlp_out` (the shared MLP, via `dense`), `spatial_conv`.

  Attributes:
    reduction_ratio: r, channel reduction of the MLP (16 in the paper).
    spatial_kernel_size: k, odd size of the spatial conv (7 in the paper).
    conv: conv constructor (`nn.Conv` or `SpectralConv`).
    dense: dense constructor (`nn.Dense` or `SpectralDense`).
    dtype: computation dtype (None: inferred).
    param_dtype: parameter dtype.
  """
  reduction_ratio: int = 16
  spatial_kernel_size: int = 7
  conv: Callable[..., nn.Module] = Conv
  dense: Callable[..., nn.Module] = nn.Dense
  dtype: Optional[Dtype] = None
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """Refines `x` with channel and spatial attention.

    Args:
      x: `[B, H, W, C]` float.

    Returns:
      `[B, H, W, C]`, `x * M_c` then `* M_s`; both gates lie in (0, 1).

    Raises:
      ValueError: if `x` is not `[B, H, W, C]`, `reduction_ratio` is not positive,
        or `spatial_kernel_size` is not a positive odd number.
    """
    _, _, _, c = _checks.check_nhwc(x, "x")
    _checks.check_positive(self.reduction_ratio, "reduction_ratio")
    _checks.check_positive(self.spatial_kernel_size, "spatial_kernel_size")
    if self.spatial_kernel_size % 2 != 1:
      raise ValueError(
          f"`spatial_kernel_size` must be odd, got {self.spatial_kernel_size}.")
    if self.dtype is not None:
      x = x.astype(self.dtype)

    # Channel attention (Eq. (2)).
    hidden = self.dense(features=max(1, c // self.reduction_ratio), dtype=self.dtype,
                        param_dtype=self.param_dtype, name="mlp_hidden")
    out = self.dense(features=c, dtype=self.dtype, param_dtype=self.param_dtype,
                     name="mlp_out")
    pooled = jnp.stack([jnp.mean(x, axis=(1, 2)), jnp.max(x, axis=(1, 2))])  # [2, B, C]
    logits = out(nn.relu(hidden(pooled)))
    channel_gate = nn.sigmoid(logits[0] + logits[1])
    x = x * channel_gate[:, None, None, :].astype(x.dtype)

    # Spatial attention (Eq. (3)).
    desc = jnp.concatenate(
        [jnp.max(x, axis=-1, keepdims=True), jnp.mean(x, axis=-1, keepdims=True)], axis=-1)
    k = self.spatial_kernel_size
    spatial_logits = self.conv(features=1, kernel_size=(k, k), padding="SAME",
                               dtype=self.dtype, param_dtype=self.param_dtype,
                               name="spatial_conv")(desc)
    return x * nn.sigmoid(spatial_logits).astype(x.dtype)
