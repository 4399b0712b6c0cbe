"""Normalization layers used by the GAN backbones and the baselines.

Contents:
  SpectralConv, SpectralDense, SpectralConvTranspose: drop-in replacements for
    `nn.Conv`, `nn.Dense` and `nn.ConvTranspose` whose kernel is divided by its
    largest singular value (Miyato et al., "Spectral Normalization for Generative
    Adversarial Networks", ICLR 2018, Sec. 2.1-2.2, Eq. (8) and Algorithm 1).
  ConditionalBatchNorm: batch norm whose per-channel scale and shift come from a
    class embedding (de Vries et al. 2017; the form used by SN-GAN / SA-GAN / BigGAN).
  SPADE: spatially-adaptive denormalization (Park et al., CVPR 2019, Sec. 3, Eq. (1)).
  AdaIN: adaptive instance normalization driven by a style vector (Huang & Belongie
    2017, Eq. (8); learned per-channel affine as in StyleGAN, Karras et al. 2019, Sec. 2).
  PixelNorm: per-position feature-vector normalization (Karras et al., "Progressive
    Growing of GANs", ICLR 2018, Sec. 4.2).
  InstanceNorm: `nn.InstanceNorm` with an NHWC check (Ulyanov et al. 2016).

Every module follows the project convention "None means decided by mutability" for
the train/eval switch: when the flag is not given, statistics (power-iteration vector,
batch-norm running averages) are updated and batch statistics are used iff the
`'batch_stats'` collection is mutable in the current `apply`.
"""

from typing import Any, Callable, Optional, Sequence, Tuple, Union

import flax.linen as nn
import jax
import jax.numpy as jnp

from genattn_jax import _checks
from genattn_jax.layers.conv import Conv, ConvTranspose

Dtype = Any
Initializer = Callable[..., jax.Array]
PaddingLike = Union[str, int, Sequence[Union[int, Tuple[int, int]]]]
IntOrSeq = Union[int, Sequence[int]]

_STATS = "batch_stats"


def _train_flag(module: nn.Module, flag: Optional[bool]) -> bool:
  """Resolves an optional train/update flag: None -> `'batch_stats'` is mutable."""
  if flag is None:
    return module.is_mutable_collection(_STATS)
  return bool(flag)


def _apply_spectral_norm(module: nn.Module, layer: nn.Module, x: jax.Array,
                         update_stats: Optional[bool]) -> jax.Array:
  """Wraps `layer` in `nn.SpectralNorm` with the wrapper's settings and applies it.

  Shared by `SpectralConv`, `SpectralDense` and `SpectralConvTranspose`; must be
  called from the wrapper's compact `__call__` so that the `nn.SpectralNorm`
  submodule is registered on `module` under the name `'sn'`.

  Args:
    module: the calling wrapper (provides `n_steps`, `eps`, `dtype`, `param_dtype`).
    layer: the unnormalized layer whose kernel is normalized.
    x: the input, already checked by the caller.
    update_stats: as in `SpectralConv.__call__`.

  Returns:
    `layer` applied to `x` with its kernel divided by its spectral norm.
  """
  sn = nn.SpectralNorm(layer, n_steps=module.n_steps, epsilon=module.eps,
                       dtype=module.dtype, param_dtype=module.param_dtype,
                       collection_name=_STATS, name="sn")
  return sn(x, update_stats=_train_flag(module, update_stats))


# ---------------------------------------------------------------------------
# Spectral normalization wrappers.
# ---------------------------------------------------------------------------


class SpectralConv(nn.Module):
  """`nn.Conv` with a spectrally normalized kernel (drop-in replacement).

  The convolution itself is `layers.conv.Conv` (flax's, with the matmul kernel gradient on
  CPU; the same values).

  The kernel `[kh, kw, C_in / feature_group_count, features]` is reshaped to a
  matrix `[kh * kw * C_in / groups, features]` and divided by an estimate of its
  largest singular value obtained by `n_steps` power iterations (Miyato et al. 2018,
  Algorithm 1), using `flax.linen.SpectralNorm`. The power-iteration vector `u`
  `[1, features]` and the estimate `sigma` live in the `'batch_stats'` collection
  under `sn/conv/kernel/{u,sigma}`; the kernel and bias are in `params['conv']`.
  Biases are not normalized. Note that Flax writes the kernel back already divided
  by its spectral norm during `init`, so freshly initialised kernels have sigma = 1.

  Attributes:
    features: number of output channels (> 0).
    kernel_size: int or (kh, kw).
    strides: int or (sh, sw).
    padding: as for `nn.Conv` ('SAME', 'VALID', or explicit pairs).
    kernel_dilation: int or (dh, dw).
    feature_group_count: as for `nn.Conv`.
    use_bias: add a (not normalized) bias.
    n_steps: power iterations per call (Miyato et al. use 1 per training step).
    eps: added in the l2 normalisation of the power-iteration vectors.
    dtype: computation dtype (None: inferred from inputs and params).
    param_dtype: dtype of the parameters and of `u` / `sigma`.
    kernel_init: kernel initializer.
    bias_init: bias initializer.
  """
  features: int
  kernel_size: IntOrSeq = (3, 3)
  strides: IntOrSeq = (1, 1)
  padding: PaddingLike = "SAME"
  kernel_dilation: IntOrSeq = (1, 1)
  feature_group_count: int = 1
  use_bias: bool = True
  n_steps: int = 1
  eps: float = 1e-12
  dtype: Optional[Dtype] = None
  param_dtype: Dtype = jnp.float32
  kernel_init: Initializer = nn.initializers.lecun_normal()
  bias_init: Initializer = nn.initializers.zeros_init()

  @nn.compact
  def __call__(self, x: jax.Array, update_stats: Optional[bool] = None) -> jax.Array:
    """Applies the normalized convolution.

    Args:
      x: `[B, H, W, C_in]` input (any float dtype).
      update_stats: whether to store the new `u` / `sigma`; None means "iff the
        `'batch_stats'` collection is mutable".

    Returns:
      `[B, H', W', features]` in `dtype` (or the promoted input/param dtype), with
      H', W' as for `nn.Conv` with the same strides / padding / dilation.

    Raises:
      ValueError: if `x` is not rank 4 or `features` / `n_steps` are invalid.
    """
    _checks.check_nhwc(x, "x")
    _checks.check_positive(self.features, "features")
    _checks.check_positive(self.n_steps, "n_steps")
    conv = Conv(
        features=self.features, kernel_size=self.kernel_size, strides=self.strides,
        padding=self.padding, kernel_dilation=self.kernel_dilation,
        feature_group_count=self.feature_group_count, use_bias=self.use_bias,
        dtype=self.dtype, param_dtype=self.param_dtype, kernel_init=self.kernel_init,
        bias_init=self.bias_init, name="conv")
    return _apply_spectral_norm(self, conv, x, update_stats)


class SpectralDense(nn.Module):
  """`nn.Dense` with a spectrally normalized `[C_in, features]` kernel.

  Same mechanism and state layout as `SpectralConv` (`params['dense']`,
  `batch_stats['sn']['dense/kernel/{u,sigma}']`); Miyato et al. 2018, Eq. (8).

  Attributes:
    features: output width (> 0).
    use_bias: add a (not normalized) bias.
    n_steps: power iterations per call.
    eps: l2-normalisation epsilon of the power iteration.
    dtype: computation dtype (None: inferred).
    param_dtype: parameter dtype.
    kernel_init: kernel initializer.
    bias_init: bias initializer.
  """
  features: int
  use_bias: bool = True
  n_steps: int = 1
  eps: float = 1e-12
  dtype: Optional[Dtype] = None
  param_dtype: Dtype = jnp.float32
  kernel_init: Initializer = nn.initializers.lecun_normal()
  bias_init: Initializer = nn.initializers.zeros_init()

  @nn.compact
  def __call__(self, x: jax.Array, update_stats: Optional[bool] = None) -> jax.Array:
    """Applies the normalized dense layer.

    Args:
      x: `[..., C_in]` input, rank >= 1.
      update_stats: as in `SpectralConv.__call__`.

    Returns:
      `[..., features]`.

    Raises:
      ValueError: if `x` is a scalar or `features` / `n_steps` are invalid.
    """
    if jnp.ndim(x) < 1:
      raise ValueError(f"`x` must have rank >= 1 [..., C], got shape {jnp.shape(x)}.")
    _checks.check_positive(self.features, "features")
    _checks.check_positive(self.n_steps, "n_steps")
    dense = nn.Dense(features=self.features, use_bias=self.use_bias, dtype=self.dtype,
                     param_dtype=self.param_dtype, kernel_init=self.kernel_init,
                     bias_init=self.bias_init, name="dense")
    return _apply_spectral_norm(self, dense, x, update_stats)


class SpectralConvTranspose(nn.Module):
  """`nn.ConvTranspose` with a spectrally normalized kernel.

  The convolution itself is `layers.conv.ConvTranspose` (flax's, with the matmul kernel
  gradient on CPU; the same values).

  The kernel `[kh, kw, C_in, features]` is reshaped to `[kh * kw * C_in, features]`
  before the power iteration (the same flattening Flax uses for every kernel).
  State layout: `params['conv_transpose']`, `batch_stats['sn']`.

  Attributes:
    features: output channels (> 0).
    kernel_size: int or (kh, kw).
    strides: int or (sh, sw) (the upsampling factor).
    padding: as for `nn.ConvTranspose`.
    kernel_dilation: int or (dh, dw).
    use_bias: add a (not normalized) bias.
    transpose_kernel: as for `nn.ConvTranspose` (gradient-of-conv semantics).
    n_steps: power iterations per call.
    eps: l2-normalisation epsilon of the power iteration.
    dtype: computation dtype (None: inferred).
    param_dtype: parameter dtype.
    kernel_init: kernel initializer.
    bias_init: bias initializer.
  """
  features: int
  kernel_size: IntOrSeq = (3, 3)
  strides: IntOrSeq = (1, 1)
  padding: PaddingLike = "SAME"
  kernel_dilation: IntOrSeq = (1, 1)
  use_bias: bool = True
  transpose_kernel: bool = False
  n_steps: int = 1
  eps: float = 1e-12
  dtype: Optional[Dtype] = None
  param_dtype: Dtype = jnp.float32
  kernel_init: Initializer = nn.initializers.lecun_normal()
  bias_init: Initializer = nn.initializers.zeros_init()

  @nn.compact
  def __call__(self, x: jax.Array, update_stats: Optional[bool] = None) -> jax.Array:
    """Applies the normalized transposed convolution.

    Args:
      x: `[B, H, W, C_in]` input.
      update_stats: as in `SpectralConv.__call__`.

    Returns:
      `[B, H', W', features]`, H' = H * sh and W' = W * sw for 'SAME' padding.

    Raises:
      ValueError: if `x` is not rank 4 or `features` / `n_steps` are invalid.
    """
    _checks.check_nhwc(x, "x")
    _checks.check_positive(self.features, "features")
    _checks.check_positive(self.n_steps, "n_steps")
    kernel_size = ((self.kernel_size,) * 2 if isinstance(self.kernel_size, int)
                   else tuple(self.kernel_size))
    strides = (self.strides,) * 2 if isinstance(self.strides, int) else tuple(self.strides)
    dilation = ((self.kernel_dilation,) * 2 if isinstance(self.kernel_dilation, int)
                else tuple(self.kernel_dilation))
    conv = ConvTranspose(
        features=self.features, kernel_size=kernel_size, strides=strides,
        padding=self.padding, kernel_dilation=dilation, use_bias=self.use_bias,
        transpose_kernel=self.transpose_kernel, dtype=self.dtype,
        param_dtype=self.param_dtype, kernel_init=self.kernel_init,
        bias_init=self.bias_init, name="conv_transpose")
    return _apply_spectral_norm(self, conv, x, update_stats)


# ---------------------------------------------------------------------------
# Feature normalizations.
# ---------------------------------------------------------------------------


class InstanceNorm(nn.Module):
  """Instance normalization over H and W of an NHWC map (Ulyanov et al. 2016).

  Thin wrapper of `nn.InstanceNorm` (statistics in float32) that rejects
  non-NHWC input. Parameters live under `params['norm']`.

  Attributes:
    epsilon: variance epsilon (1e-5, PyTorch's default, rather than Flax's 1e-6).
    use_scale: learn a per-channel scale (init 1). Set False together with
      `use_bias=False` for the parameter-free form used inside AdaIN / SPADE.
    use_bias: learn a per-channel shift (init 0).
    dtype: computation / output dtype (None: inferred).
    param_dtype: parameter dtype.
  """
  epsilon: float = 1e-5
  use_scale: bool = True
  use_bias: bool = True
  dtype: Optional[Dtype] = None
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """Normalizes `x`.

    Args:
      x: `[B, H, W, C]` float.

    Returns:
      `[B, H, W, C]`; each (b, c) slice has mean 0 and variance var/(var+eps)
      before the optional affine.

    Raises:
      ValueError: if `x` is not `[B, H, W, C]`.
    """
    _checks.check_nhwc(x, "x")
    return nn.InstanceNorm(epsilon=self.epsilon, use_scale=self.use_scale,
                           use_bias=self.use_bias, dtype=self.dtype,
                           param_dtype=self.param_dtype, name="norm")(x)


class PixelNorm(nn.Module):
  """Normalizes each feature vector to unit root-mean-square (ProGAN, Sec. 4.2).

  `out[..., c] = x[..., c] / sqrt(mean_c(x ** 2) + epsilon)`, computed in float32.
  Works on NHWC maps (per pixel) and on `[B, D]` latents alike.

  Attributes:
    epsilon: 1e-8 as in ProGAN.
    dtype: output dtype (None: the input dtype).
    param_dtype: unused (no parameters); kept for the project-wide convention.
  """
  epsilon: float = 1e-8
  dtype: Optional[Dtype] = None
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """Normalizes over the last axis.

    Args:
      x: `[B, ..., C]` float, rank >= 2.

    Returns:
      Same shape; each `x[b, ..., :]` has RMS ~1 (exactly `rms / sqrt(rms^2 + eps)`).

    Raises:
      ValueError: if `x` has rank < 2.
    """
    if jnp.ndim(x) < 2:
      raise ValueError(f"`x` must have rank >= 2 [B, ..., C], got shape {jnp.shape(x)}.")
    out_dtype = self.dtype or x.dtype
    x32 = x.astype(jnp.promote_types(x.dtype, jnp.float32))
    inv = jax.lax.rsqrt(jnp.mean(jnp.square(x32), axis=-1, keepdims=True) + self.epsilon)
    return (x32 * inv).astype(out_dtype)


class ConditionalBatchNorm(nn.Module):
  """Class-conditional batch normalization.

  `out = BN(x) * gamma[y] + beta[y]` where `BN` is parameter-free batch
  normalization over (B, H, W) and `gamma`, `beta` are `[num_classes, C]` class
  embeddings initialised to 1 and 0, so at initialisation the layer equals plain
  batch norm for every class (de Vries et al. 2017; the categorical conditional BN of
  Miyato & Koyama 2018 used by SN-GAN and SA-GAN). BigGAN instead predicts the
  gains from a shared embedding concatenated with noise; that variant is not this
  layer.

  State: `params['gamma_embedding']`, `params['beta_embedding']`;
  `batch_stats['bn']['mean' | 'var']` (running averages).

  Attributes:
    num_classes: number of classes (> 0).
    momentum: running-average decay (0.9 = PyTorch momentum 0.1).
    epsilon: variance epsilon.
    axis_name: pmap / shard_map axis over which batch statistics are averaged
      (cross-replica "sync" batch norm); None for per-device statistics.
    scale_init: initializer of the gamma embedding (default ones).
    bias_init: initializer of the beta embedding (default zeros).
    dtype: computation dtype (None: inferred).
    param_dtype: parameter dtype.
  """
  num_classes: int
  momentum: float = 0.9
  epsilon: float = 1e-5
  axis_name: Optional[str] = None
  scale_init: Initializer = nn.initializers.ones_init()
  bias_init: Initializer = nn.initializers.zeros_init()
  dtype: Optional[Dtype] = None
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, y: jax.Array,
               use_running_average: Optional[bool] = None) -> jax.Array:
    """Normalizes `x` and modulates it with the embeddings of classes `y`.

    Args:
      x: `[B, H, W, C]` float.
      y: int labels `[B]` with values in `[0, num_classes)` (out-of-range labels
        give NaN rows, JAX's gather fill value), or float `[B, num_classes]`
        one-hot / soft labels (the embeddings are mixed linearly).
      use_running_average: True: use the running statistics (eval); False: use
        batch statistics and update the running ones (train; as in `nn.BatchNorm`,
        `'batch_stats'` must then be mutable). None: train iff `'batch_stats'` is
        mutable.

    Returns:
      `[B, H, W, C]`.

    Raises:
      ValueError: if `x` is not NHWC, `y` has the wrong shape, or `num_classes <= 0`.
    """
    b, _, _, c = _checks.check_nhwc(x, "x")
    _checks.check_positive(self.num_classes, "num_classes")
    y = jnp.asarray(y)
    if y.ndim == 1 and jnp.issubdtype(y.dtype, jnp.integer):
      if y.shape[0] != b:
        raise ValueError(f"`y` must have shape [B]=({b},), got {y.shape}.")
    elif y.ndim == 2 and jnp.issubdtype(y.dtype, jnp.floating):
      if y.shape != (b, self.num_classes):
        raise ValueError(
            f"`y` (soft labels) must have shape [B, num_classes]=({b}, "
            f"{self.num_classes}), got {y.shape}.")
    else:
      raise ValueError(
          f"`y` must be int labels [B] or float [B, num_classes], got shape {y.shape} "
          f"dtype {y.dtype}.")
    train = not use_running_average if use_running_average is not None else (
        self.is_mutable_collection(_STATS))
    xn = nn.BatchNorm(use_running_average=not train, momentum=self.momentum,
                      epsilon=self.epsilon, axis_name=self.axis_name, use_scale=False,
                      use_bias=False, dtype=self.dtype, param_dtype=self.param_dtype,
                      name="bn")(x)
    gamma_table = self.param("gamma_embedding", self.scale_init, (self.num_classes, c),
                             self.param_dtype)
    beta_table = self.param("beta_embedding", self.bias_init, (self.num_classes, c),
                            self.param_dtype)
    if y.ndim == 1:
      gamma, beta = jnp.take(gamma_table, y, axis=0), jnp.take(beta_table, y, axis=0)
    else:
      gamma, beta = y @ gamma_table, y @ beta_table
    gamma, beta = nn.dtypes.promote_dtype(gamma, beta, dtype=xn.dtype)
    return xn * gamma[:, None, None, :] + beta[:, None, None, :]


def nearest_index(out_size: int, in_size: int) -> jnp.ndarray:
  """int32 [out_size]: the source index floor(i * in_size / out_size) of each output i.

  PyTorch's `F.interpolate(mode='nearest')` rule (computed exactly in integers; PyTorch uses
  a float32 scale, which agrees except where i * in / out is within float rounding of an
  integer).
  """
  return (jnp.arange(out_size, dtype=jnp.int32) * in_size) // out_size


def nearest_resize(x: jax.Array, size: Tuple[int, int]) -> jax.Array:
  """Nearest resize of `x` [B, H, W, C] to `size` = (h, w) with PyTorch's index rule.

  Used for label maps (SPADE, Park et al. 2019, official code `F.interpolate(segmap,
  size=x.size()[2:], mode='nearest')`); works for up- and downsampling.
  """
  _, hi, wi, _ = _checks.check_nhwc(x, "x")
  h, w = size
  if (hi, wi) == (h, w):
    return x
  return x[:, nearest_index(h, hi)][:, :, nearest_index(w, wi)]


class SPADE(nn.Module):
  """Spatially-adaptive denormalization (Park et al. 2019, Sec. 3, Eq. (1)).

  `out = norm(x) * (1 + gamma(m)) + beta(m)` where `norm` is parameter-free batch or
  instance normalization, `m` is the segmentation map resized (nearest) to x's
  H x W, and `gamma`, `beta` are `kernel_size` convs (to C channels) applied to a
  shared `kernel_size` conv (to `hidden_features`) + ReLU of `m`. The `1 +` follows the
  official code (the paper writes `gamma * norm(x) + beta`); it makes a zero-initialised
  gamma conv start as plain normalization.

  Resizing is `nearest_resize`, PyTorch's `F.interpolate(mode='nearest')` as the official
  code uses it: output pixel i reads input index floor(i * in / out) (the top-left pixel of
  each block when downsampling), so every SPADE block below full resolution sees the labels
  the official model sees.

  Submodules: `shared`, `gamma`, `beta` (convs, via the injectable `conv`), `bn`
  (batch statistics, only for `norm='batch'`).

  Attributes:
    hidden_features: width of the shared conv (128 in the paper).
    kernel_size: odd spatial size of the three convs (3 in the paper).
    norm: 'batch' (paper: synchronized batch norm, set `axis_name` for
      cross-replica statistics) or 'instance'.
    momentum: batch-norm running-average decay.
    epsilon: normalization epsilon.
    axis_name: cross-replica axis for batch statistics (None: per device).
    conv: conv constructor, e.g. `nn.Conv` or `SpectralConv` (official code applies
      spectral norm to the generator's convs but not inside SPADE).
    dtype: computation dtype (None: inferred).
    param_dtype: parameter dtype.
  """
  hidden_features: int = 128
  kernel_size: int = 3
  norm: str = "batch"
  momentum: float = 0.9
  epsilon: float = 1e-5
  axis_name: Optional[str] = None
  conv: Callable[..., nn.Module] = Conv
  dtype: Optional[Dtype] = None
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, segmap: jax.Array,
               use_running_average: Optional[bool] = None) -> jax.Array:
    """Normalizes `x` and modulates it with maps predicted from `segmap`.

    Args:
      x: `[B, H, W, C]` float features.
      segmap: `[B, Hs, Ws, L]` float (typically one-hot labels in {0, 1}), any size.
      use_running_average: only for `norm='batch'`; as in
        `ConditionalBatchNorm.__call__` (False needs `'batch_stats'` mutable; None:
        batch statistics iff `'batch_stats'` is mutable).

    Returns:
      `[B, H, W, C]`.

    Raises:
      ValueError: bad ranks, batch mismatch, even / non-positive `kernel_size`,
        non-positive `hidden_features`, or unknown `norm`.
    """
    b, h, w, c = _checks.check_nhwc(x, "x")
    bs, hs, ws, labels = _checks.check_nhwc(segmap, "segmap")
    if bs != b:
      raise ValueError(f"`segmap` batch ({bs}) must equal `x` batch ({b}).")
    _checks.check_in(self.norm, ("batch", "instance"), "norm")
    _checks.check_positive(self.hidden_features, "hidden_features")
    _checks.check_positive(self.kernel_size, "kernel_size")
    if self.kernel_size % 2 != 1:
      raise ValueError(f"`kernel_size` must be odd, got {self.kernel_size}.")

    if self.norm == "batch":
      train = not use_running_average if use_running_average is not None else (
          self.is_mutable_collection(_STATS))
      xn = nn.BatchNorm(use_running_average=not train, momentum=self.momentum,
                        epsilon=self.epsilon, axis_name=self.axis_name, use_scale=False,
                        use_bias=False, dtype=self.dtype, param_dtype=self.param_dtype,
                        name="bn")(x)
    else:
      xn = InstanceNorm(epsilon=self.epsilon, use_scale=False, use_bias=False,
                        dtype=self.dtype, param_dtype=self.param_dtype, name="in")(x)

    m = segmap.astype(self.dtype or jnp.promote_types(segmap.dtype, jnp.float32))
    if (hs, ws) != (h, w):
      m = nearest_resize(m, (h, w))
    k = (self.kernel_size, self.kernel_size)
    conv_kw = dict(kernel_size=k, padding="SAME", dtype=self.dtype,
                   param_dtype=self.param_dtype)
    actv = nn.relu(self.conv(features=self.hidden_features, name="shared", **conv_kw)(m))
    gamma = self.conv(features=c, name="gamma", **conv_kw)(actv)
    beta = self.conv(features=c, name="beta", **conv_kw)(actv)
    return xn * (1 + gamma) + beta


class AdaIN(nn.Module):
  """Adaptive instance normalization with a learned style affine.

  `out = IN(x) * (1 + s) + t`, `[s, t] = dense(style)` split into two `[B, C]` halves,
  `IN` the parameter-free instance norm. Huang & Belongie (2017, Eq. (8)) take `s`, `t`
  from the style image's feature statistics; StyleGAN (Karras et al. 2019, Sec. 2)
  predicts them from a style vector with a learned affine map, and its official code
  adds the `1 +` to the scale, which this layer follows.

  Submodule: `style_affine` (the injectable `dense`, `2 * C` outputs).

  Attributes:
    epsilon: instance-norm epsilon.
    dense: dense constructor (`nn.Dense`, or `SpectralDense`).
    dtype: computation dtype (None: inferred).
    param_dtype: parameter dtype.
  """
  epsilon: float = 1e-5
  dense: Callable[..., nn.Module] = nn.Dense
  dtype: Optional[Dtype] = None
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, style: jax.Array) -> jax.Array:
    """Normalizes `x` per instance and applies the style's scale and shift.

    Args:
      x: `[B, H, W, C]` float.
      style: `[B, S]` float style / latent vector.

    Returns:
      `[B, H, W, C]`.

    Raises:
      ValueError: if `x` is not NHWC or `style` is not `[B, S]` with x's batch.
    """
    b, _, _, c = _checks.check_nhwc(x, "x")
    _checks.check_rank(style, 2, "style", "[B, S]")
    if style.shape[0] != b:
      raise ValueError(f"`style` batch ({style.shape[0]}) must equal `x` batch ({b}).")
    xn = InstanceNorm(epsilon=self.epsilon, use_scale=False, use_bias=False,
                      dtype=self.dtype, param_dtype=self.param_dtype, name="in")(x)
    st = self.dense(features=2 * c, dtype=self.dtype, param_dtype=self.param_dtype,
                    name="style_affine")(style)
    scale, shift = jnp.split(st, 2, axis=-1)
    return xn * (1 + scale[:, None, None, :]) + shift[:, None, None, :]
