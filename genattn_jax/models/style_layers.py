"""Layers shared by the StyleGAN and MSG hosts (LAP paper's backbones).

Sources: Karras et al., "A Style-Based Generator Architecture for GANs" (CVPR 2019; Sec. 2,
Appendix C) and its official TensorFlow code (networks_stylegan.py), which produced the
numbers LAP compares against; Karras et al., "Progressive Growing of GANs" (ICLR 2018,
Sec. 3, 4.1, 4.2) for equalised learning rate, pixel norm and minibatch standard deviation.

  * `EqualizedDense` / `EqualizedConv`: weights stored as N(0, 1 / lr_mul²) and scaled at
    run time by `gain / sqrt(fan_in) * lr_mul`; biases by `lr_mul` (ProGAN Sec. 4.1; the
    mapping network's lr_mul = 0.01, StyleGAN App. C).
  * `pixel_norm`: x / sqrt(mean_c x² + 1e-8) (ProGAN Sec. 4.2).
  * `blur`: the [1, 2, 1] ⊗ [1, 2, 1] / 16 binomial filter applied per channel (StyleGAN's
    `blur2d`, after every upsampling convolution and before every downsampling one).
  * `NoiseInjection`: x + w_c · n, n ~ N(0, 1) of shape [B, H, W, 1], w_c learned per
    channel, zero at init (StyleGAN Sec. 2, "B" in Fig. 1b).
  * `StyleModulation`: AdaIN (Eq. 1): instance-normalised x times (1 + y_s) plus y_b, with
    (y_s, y_b) = A(w) an equalised dense layer of gain 1 (the official `style_mod`; the +1
    keeps the initial scale at 1).
  * `minibatch_stddev`: ProGAN Sec. 3's extra feature map.

Every layer is NHWC, float, with separate `dtype` / `param_dtype`.
"""

import math
import zlib
from typing import Optional, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from genattn_jax import _checks
from genattn_jax._dtypes import wide
from genattn_jax._parallel import own_rows
from genattn_jax.layers.conv import conv_general_dilated

SQRT2 = math.sqrt(2.0)


class EqualizedDense(nn.Module):
  """Dense layer with equalised learning rate.

  y = x @ (w · gain / sqrt(fan_in) · lr_mul) + b · lr_mul, w ~ N(0, 1 / lr_mul²),
  b = bias_init / lr_mul at init (so the effective bias starts at `bias_init`).

  Attributes:
    features: output size.
    gain: He gain (sqrt(2) before leaky ReLU, 1 for linear outputs).
    lr_mul: learning-rate multiplier (0.01 in StyleGAN's mapping network).
    use_bias: add a bias.
    bias_init: initial effective bias.
    dtype, param_dtype: computation / parameter dtypes.
  """
  features: int
  gain: float = SQRT2
  lr_mul: float = 1.0
  use_bias: bool = True
  bias_init: float = 0.0
  dtype: Optional[jnp.dtype] = None
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """x: [..., fan_in] float → [..., features]."""
    fan_in = x.shape[-1]
    w = self.param("kernel", nn.initializers.normal(1.0 / self.lr_mul),
                   (fan_in, self.features), self.param_dtype)
    dtype = self.dtype or jnp.result_type(x, w)
    scale = self.gain / math.sqrt(fan_in) * self.lr_mul
    y = jnp.asarray(x, dtype) @ (jnp.asarray(w, dtype) * scale)
    if self.use_bias:
      b = self.param("bias", nn.initializers.constant(self.bias_init / self.lr_mul),
                     (self.features,), self.param_dtype)
      y = y + jnp.asarray(b, dtype) * self.lr_mul
    return y


class EqualizedConv(nn.Module):
  """Stride-1 'SAME' convolution with equalised learning rate (see `EqualizedDense`).

  Attributes:
    features: output channels.
    kernel_size: square kernel side.
    gain: He gain.
    lr_mul: learning-rate multiplier.
    use_bias: add a bias (zero at init).
    dtype, param_dtype: computation / parameter dtypes.
  """
  features: int
  kernel_size: int = 3
  gain: float = SQRT2
  lr_mul: float = 1.0
  use_bias: bool = True
  dtype: Optional[jnp.dtype] = None
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """x: [B, H, W, C] → [B, H, W, features]."""
    _checks.check_nhwc(x, "x")
    k, cin = self.kernel_size, x.shape[-1]
    w = self.param("kernel", nn.initializers.normal(1.0 / self.lr_mul),
                   (k, k, cin, self.features), self.param_dtype)
    dtype = self.dtype or jnp.result_type(x, w)
    scale = self.gain / math.sqrt(k * k * cin) * self.lr_mul
    y = conv_general_dilated(  # layers.conv: the CPU kernel gradient
        jnp.asarray(x, dtype), jnp.asarray(w, dtype) * scale, (1, 1), "SAME",
        dimension_numbers=("NHWC", "HWIO", "NHWC"))
    if self.use_bias:
      b = self.param("bias", nn.initializers.zeros, (self.features,), self.param_dtype)
      y = y + jnp.asarray(b, dtype) * self.lr_mul
    return y


def pixel_norm(x: jax.Array, eps: float = 1e-8) -> jax.Array:
  """x / sqrt(mean over the last axis of x² + eps) (ProGAN Sec. 4.2); any shape [..., C]."""
  return x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=-1, keepdims=True) + eps)


def blur(x: jax.Array) -> jax.Array:
  """[1, 2, 1]⊗[1, 2, 1] / 16 filter per channel, zero 'SAME' padding: [B, H, W, C] → same."""
  _checks.check_nhwc(x, "x")
  k1 = jnp.asarray([1.0, 2.0, 1.0], x.dtype)
  k = (k1[:, None] * k1[None, :]) / 16.0
  c = x.shape[-1]
  kernel = jnp.tile(k[:, :, None, None], (1, 1, 1, c))
  return jax.lax.conv_general_dilated(x, kernel, (1, 1), "SAME",
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                      feature_group_count=c)


def upsample2x(x: jax.Array) -> jax.Array:
  """Nearest-neighbour ×2: [B, H, W, C] → [B, 2H, 2W, C]."""
  return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def downsample2x(x: jax.Array) -> jax.Array:
  """2×2 average pooling: [B, H, W, C] → [B, H/2, W/2, C]."""
  b, h, w, c = x.shape
  return x.reshape(b, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


def image_pyramid(x: jax.Array, resolutions: Sequence[int]) -> Tuple[jax.Array, ...]:
  """Average-pooled copies of x [B, R, R, C] at each of `resolutions` (powers of 2 ≤ R).

  Raises:
    ValueError: a resolution does not divide R by a power of two.
  """
  _, h, w, _ = _checks.check_nhwc(x, "x")
  out = []
  for r in resolutions:
    if r > h or h % r or (h // r) & (h // r - 1) or w != h:
      raise ValueError(f"cannot pool a {h}x{w} image to {r}x{r} (need square, R/r a power of 2).")
    f = h // r
    out.append(x.reshape(x.shape[0], r, f, r, f, x.shape[-1]).mean(axis=(2, 4)))
  return tuple(out)


def minibatch_stddev(x: jax.Array, group_size: int = 4, num_features: int = 1) -> jax.Array:
  """Appends the minibatch standard-deviation feature map(s) (ProGAN Sec. 3).

  Samples are grouped in consecutive runs of `g = min(group_size, B)` rows (StyleGAN's code
  strides the groups through the batch instead; consecutive groups make a batch split
  over devices in multiples of g give the same result as one device, and batches are
  shuffled, so the statistic has the same distribution). For each group: the standard
  deviation over the group of every feature (channel split into `num_features` parts),
  averaged over H, W and the part's channels → one value per group and part, broadcast to
  a [B, H, W, num_features] map and concatenated.

  Args:
    x: [B, H, W, C] float, B divisible by min(group_size, B), C by num_features.
    group_size: group size g.
    num_features: number of stddev maps.

  Returns:
    [B, H, W, C + num_features].

  Raises:
    ValueError: B not divisible by the group size or C by `num_features`.
  """
  b, h, w, c = _checks.check_nhwc(x, "x")
  g = min(group_size, b)
  _checks.check_divisible(b, g, "batch size B", "minibatch-stddev group size")
  _checks.check_divisible(c, num_features, "channels C", "num_features")
  y = wide(x).reshape(b // g, g, h, w, num_features, c // num_features)
  y = y - y.mean(axis=1, keepdims=True)
  y = jnp.sqrt(jnp.mean(jnp.square(y), axis=1) + 1e-8)      # [b/g, h, w, F, c/F]
  y = y.mean(axis=(1, 2, 4))                                  # [b/g, F]
  y = jnp.repeat(y, g, axis=0)[:, None, None, :]
  y = jnp.broadcast_to(y, (b, h, w, num_features)).astype(x.dtype)
  return jnp.concatenate([x, y], axis=-1)


class NoiseInjection(nn.Module):
  """x + weight_c · noise with noise ~ N(0, 1), [B, H, W, 1] (StyleGAN Sec. 2).

  Noise comes from the 'sampling' rng when the module has one (training), drawn for the
  global batch and cut to this device's rows (`axis_name`), so pmap equals one device.
  Without that rng (evaluation) a fixed noise map per layer is used (the official code's
  `randomize_noise=False`), so sampling is deterministic. `noise` overrides both.

  Attributes:
    axis_name: pmap axis the batch is split over (None: not split).
    dtype, param_dtype: computation / parameter dtypes.
  """
  axis_name: Optional[str] = None
  dtype: Optional[jnp.dtype] = None
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, noise: Optional[jax.Array] = None) -> jax.Array:
    """x: [B, H, W, C]; noise: optional [B, H, W, 1] → [B, H, W, C]."""
    b, h, w, c = _checks.check_nhwc(x, "x")
    weight = self.param("weight", nn.initializers.zeros, (c,), self.param_dtype)
    dtype = self.dtype or x.dtype
    if noise is None:
      if self.has_rng("sampling"):
        from genattn_jax._parallel import global_rows  # pylint: disable=g-import-not-at-top
        # At init no pmap axis is bound (flax's BatchNorm skips its axis likewise): draw
        # for the rows given; the values do not reach any initialised variable.
        axis = None if self.is_initializing() else self.axis_name
        noise = own_rows(jax.random.normal(self.make_rng("sampling"),
                                           (global_rows(b, axis), h, w, 1)), b, axis)
      else:
        key = jax.random.PRNGKey(zlib.crc32((self.name or "noise").encode()) % (2**31))
        noise = jnp.broadcast_to(jax.random.normal(key, (1, h, w, 1)), (b, h, w, 1))
    elif tuple(noise.shape) != (b, h, w, 1):
      raise ValueError(f"`noise` must have shape {(b, h, w, 1)}, got {tuple(noise.shape)}.")
    return jnp.asarray(x, dtype) + jnp.asarray(weight, dtype) * jnp.asarray(noise, dtype)


class StyleModulation(nn.Module):
  """AdaIN (StyleGAN Eq. 1): (1 + y_s) · IN(x) + y_b with (y_s, y_b) = A(w).

  IN is instance normalisation over H, W (eps 1e-8, no affine). A is an `EqualizedDense`
  of gain 1 to 2C outputs.

  Attributes:
    dtype, param_dtype: computation / parameter dtypes.
  """
  dtype: Optional[jnp.dtype] = None
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, w: jax.Array) -> jax.Array:
    """x: [B, H, W, C]; w: [B, w_dim] → [B, H, W, C]."""
    b, _, _, c = _checks.check_nhwc(x, "x")
    _checks.check_rank(w, 2, "w", "[B, w_dim]")
    style = EqualizedDense(2 * c, gain=1.0, dtype=self.dtype, param_dtype=self.param_dtype,
                           name="affine")(w)
    dtype = self.dtype or x.dtype
    x = jnp.asarray(x, dtype)
    mean = x.mean(axis=(1, 2), keepdims=True)
    centred = x - mean
    xn = centred * jax.lax.rsqrt(jnp.mean(jnp.square(centred), axis=(1, 2), keepdims=True) + 1e-8)
    ys, yb = style[:, None, None, :c], style[:, None, None, c:]
    return xn * (1.0 + ys) + yb


def stage_channels(resolution: int, fmap_base: int = 8192, fmap_max: int = 512,
                   width: float = 1.0) -> int:
  """StyleGAN / MSG channel count of a `resolution` stage: min(base / res... , max) · width.

  The official `nf(stage) = min(fmap_base / 2**stage, fmap_max)` with stage = log2(res) - 1:
  4²-32² → 512, 64² → 256, 128² → 128, 256² → 64; scaled by `width` (at least 1).
  """
  stage = int(math.log2(resolution)) - 1
  return max(1, int(round(min(fmap_base // 2**stage, fmap_max) * width)))


def check_pow2_resolution(resolution: int, name: str = "resolution") -> int:
  """log2(resolution) for a power of two ≥ 8.

  Raises:
    ValueError: otherwise.
  """
  if (isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 8 or
      resolution & (resolution - 1)):
    raise ValueError(f"`{name}` must be a power of two >= 8, got {resolution!r}.")
  return resolution.bit_length() - 1


HOST_ATTENTION = ("", "lap", "self_attention", "memory_efficient_self_attention", "cbam")


def attention_after_conv(x: jax.Array, attention: str, attention_kwargs, resolution: int,
                         conv_index: int, *, dtype, param_dtype, parent_name: str = "") -> jax.Array:
  """The LAP / self-attention / CBAM block placed after one generator conv (LAP's positions).

  The LAP paper applies its module "in every convolution blocks of the generator" (Sec. 5.2);
  our reading is one module after every convolution of every generator block except 4²
  (12 modules in StyleGAN-256: consistent with Table 5's "+ Eq. 1 + 0.2K", not with its
  "+ 95K" for Sec. 4.1, see `models/stylegan.py`), with the pyramid depth
  `lap_levels_for_resolution(resolution)`; SA and CBAM go at the same positions for Table 4
  (the paper does not say where it put them). Call inside a compact method; the block is named
  `f'{attention}_r{resolution}_conv{conv_index}'`. Plain (not spectral) convolutions, as the
  StyleGAN / MSG hosts have no spectral norm.

  Args:
    x: [B, r, r, C] conv output.
    attention: '' (none) or a name in `HOST_ATTENTION`.
    attention_kwargs: extra constructor arguments (dict) for the block.
    resolution: r; nothing is inserted at r <= 4.
    conv_index: index of the conv inside its block (for the name).
    dtype, param_dtype: forwarded.

  Returns:
    [B, r, r, C].

  Raises:
    ValueError: unknown `attention`.
  """
  del parent_name
  _checks.check_in(attention, HOST_ATTENTION, "attention")
  if not attention or resolution <= 4:
    return x
  from genattn_jax.models import placement as pl  # pylint: disable=g-import-not-at-top
  kwargs = dict(attention_kwargs or {})
  if attention == "lap":
    from genattn_jax.layers.lap import lap_levels_for_resolution  # pylint: disable=g-import-not-at-top
    kwargs.setdefault("levels", lap_levels_for_resolution(resolution))
  placement = pl.BlockPlacement(attention, (resolution,), tuple(sorted(kwargs.items())))
  module = pl.make_block(placement, dtype=dtype, param_dtype=param_dtype,
                         name=f"{attention}_r{resolution}_conv{conv_index}")
  return pl.call_block(attention, module, x, train=True)
