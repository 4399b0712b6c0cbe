"""Spatial Pyramid Attentive Pooling (SPAP) and the atrous discriminator block.

Source: W. Sun and T. Wu, "Learning Spatial Pyramid Attentive Pooling in Image
Synthesis and Image-to-Image Translation", Sec. 3.2
(Eq. 5 attentive fuse, Eq. 6 residual), Sec. 4.3 (pyramid layout and rates),
Fig. 2 (generator block) and Fig. 3 (discriminator block). This follows the
paper text (no official code was used); the choices the text leaves open are
listed in each class docstring.
"""

import math
from typing import Callable, List, Optional, Sequence, Tuple, Union

import flax.linen as nn
import jax
import jax.numpy as jnp

from genattn_jax import _checks
from genattn_jax.layers.conv import Conv

Array = jax.Array
Dtype = jnp.dtype

ORDERS = ("coarse_to_fine", "fine_to_coarse")
GAMMA_CONSTRAINTS = ("none", "clip", "sigmoid")


def _check_rates(rates: Sequence[int], name: str = "rates") -> Tuple[int, ...]:
  """Validates a sequence of dilation rates and returns it as a tuple of ints."""
  rates = tuple(rates)
  if not rates:
    raise ValueError(f"`{name}` must hold at least one dilation rate, got {rates!r}.")
  for r in rates:
    if not isinstance(r, int) or isinstance(r, bool):
      raise ValueError(f"`{name}` must hold ints, got {rates!r}.")
    _checks.check_positive(r, name)
  if len(set(rates)) != len(rates):
    raise ValueError(f"`{name}` must not repeat a rate, got {rates!r}.")
  return rates


class AttentiveFuse(nn.Module):
  """Fuses two same-shape feature maps with a learned pixel-wise gate (Eq. 5).

  Computes `alpha = sigmoid(Atten([f_a, f_b]))` and returns
  `f_a * alpha + f_b * (1 - alpha)`. `Atten` is a small conv net on the channel
  concatenation of both inputs: a `attention_kernel_size` x
  `attention_kernel_size` conv to `hidden_features` channels, `activation`,
  then a 1x1 conv to one channel. The single-channel map `alpha` (one weight per
  pixel, the heat maps of Fig. 1/7) is broadcast over the channels.

  Eq. 5 of the paper writes the two weights as `alpha_i` and
  `(1 - alpha_{i+1})`; with one predicted map per fuse step this can only be
  the same map, so it is read as a convex per-pixel blend. The paper says only
  that it is "predicted by sequence of convolutional neural network followed by
  sigmoid activation" (Sec. 3.2); the two-conv
  stack here is this library's choice. The map is stored with
  `self.sow('intermediates', 'attention', alpha)`.

  Attributes:
    hidden_features: channels of the hidden attention conv; None uses the
      channel count C of the inputs.
    attention_kernel_size: spatial size of the first attention conv (SPAP
      passes 1 by default, see `SpatialPyramidAttentivePooling`).
    activation: nonlinearity between the two attention convs.
    conv: conv constructor (`nn.Conv` or e.g. `SpectralConv`), called with
      `features, kernel_size, padding, dtype, param_dtype, name`.
    dtype: computation dtype; None infers it from inputs and params.
    param_dtype: dtype of the parameters.
  """
  hidden_features: Optional[int] = None
  attention_kernel_size: int = 3
  activation: Callable[[Array], Array] = nn.relu
  conv: Callable[..., nn.Module] = Conv
  dtype: Optional[Dtype] = None
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, f_a: Array, f_b: Array) -> Array:
    """Blends `f_a` and `f_b` per pixel.

    Args:
      f_a: [B, H, W, C] float feature map weighted by `alpha`.
      f_b: [B, H, W, C] float feature map weighted by `1 - alpha`; same shape
        as `f_a`.

    Returns:
      [B, H, W, C] array in the computation dtype, pixel-wise convex
      combination of the inputs (`alpha` lies in (0, 1)).

    Raises:
      ValueError: if `f_a` or `f_b` is not rank 4 NHWC, if their shapes differ,
        or if `hidden_features` / `attention_kernel_size` is not positive.
    """
    _checks.check_nhwc(f_a, "f_a")
    _checks.check_nhwc(f_b, "f_b")
    if f_a.shape != f_b.shape:
      raise ValueError(
          f"`f_b` must have the shape of `f_a` {tuple(f_a.shape)}, got {tuple(f_b.shape)}.")
    _checks.check_positive(self.attention_kernel_size, "attention_kernel_size")
    hidden = f_a.shape[-1] if self.hidden_features is None else self.hidden_features
    _checks.check_positive(hidden, "hidden_features")

    f_a, f_b = nn.dtypes.promote_dtype(f_a, f_b, dtype=self.dtype)
    k = self.attention_kernel_size
    h = jnp.concatenate([f_a, f_b], axis=-1)
    h = self.conv(features=hidden, kernel_size=(k, k), padding="SAME", dtype=self.dtype,
                  param_dtype=self.param_dtype, name="attention_hidden")(h)
    h = self.activation(h)
    logits = self.conv(features=1, kernel_size=(1, 1), padding="SAME", dtype=self.dtype,
                       param_dtype=self.param_dtype, name="attention_logits")(h)
    alpha = nn.sigmoid(logits).astype(f_a.dtype)
    self.sow("intermediates", "attention", alpha)
    return f_a * alpha + f_b * (1 - alpha)


class SpatialPyramidAttentivePooling(nn.Module):
  """SPAP block (Sec. 3.2, Fig. 2): atrous pyramid, cascade fuse, convex residual.

  Every pyramid level is a conv of the input to C channels (C = input channels)
  followed by `activation`:

  * one 3x3 conv per rate in `rates` with that dilation (Sec. 4.3: (3, 5, 7)
    for CelebA-HQ generators, (6, 12, 18) for CycleGAN at 256x256);
  * with `local_levels=True` (default), also a plain 3x3 conv (rate 1) and a
    1x1 conv. Sec. 4.3 lists "three 3x3 atrous convolutions..., one 3x3 and
    then one 1x1 convolution without atrous rate"; Fig. 7 labels attention
    maps by kernel size and rate (CkDn), so both are read as the finest two
    pyramid levels, mirroring the 1x1 branch of ASPP.

  Levels are ordered by receptive field `(k - 1) * rate + 1` (the order of
  `rates` does not matter). With `order='coarse_to_fine'` (the paper's best
  model) the cascade starts from the largest rate:
  `o = Fuse_{n-1}(...Fuse_1(Fuse_0(f_0, f_1), f_2)..., f_{n-1})` with
  `AttentiveFuse` (Eq. 5); `'fine_to_coarse'` walks the same levels in reverse.
  The fuse modules are named by step (`fuse_0`, ...) and the branches by
  kernel and rate, so both orders share one parameter tree.

  The output is Eq. 6, `y = gamma * o + (1 - gamma) * x`, with a learned
  scalar `gamma` (parameter `'gamma'`, initialised to `gamma_init`, default
  0 so the block starts as the identity, as in SAGAN's residual gate). The
  paper calls this a convex combination but gives no constraint, so:

  * `gamma_constraint='none'` (default): `gamma` is used as stored (Eq. 6 as
    written, may leave [0, 1] during training);
  * `'clip'`: `clip(gamma, 0, 1)` is used; note the gradient is zero once the
    stored value has left [0, 1], so the gate can stick at 0 or 1;
  * `'sigmoid'`: the stored value is a logit and `gamma = sigmoid(logit)`;
    needs 0 < `gamma_init` < 1.

  Attention net size and the parameter count (Table 1). Table 1 lists
  20.065M parameters for the vanilla SNDCGAN-128 G and 20.756M with SPAP, so
  SPAP adds 0.691M at the 64x64 map, where G has C = 128 channels. With
  L = len(rates) + 2 levels (5 in the paper), hidden width h and attention
  kernel k, the block has

    levels:  len(rates) * (9 C^2 + C) + (9 C^2 + C) + (C^2 + C)
    fuses:   (L - 1) * (k^2 * 2C * h + h + h + 1)
    gamma:   1

  (conv kernels plus biases; `param_count` computes it). The levels alone
  give 4 * 147,584 + 16,512 = 606,848 at C = 128, leaving ~84K for the four
  fuse steps, ~21K each: a 3x3 conv from 2C to C (295K per step, 1.787M in
  all) cannot be the paper's. The default is therefore a 1x1 bottleneck,
  `attention_kernel_size=1`, `attention_reduction=2` (h = C / 2):
  4 * (256 * 64 + 64 + 64 + 1) = 66,052, total 672,901 = 0.673M, 2.6% below
  the paper's 0.691M (the paper's exact attention net is not given; any
  choice of this size is a reading). The larger variant of earlier versions
  of this library (3x3 conv, h = C: 1.787M at C = 128) is
  `attention_kernel_size=3, attention_reduction=1`.

  The fused map `o` is sown as `('intermediates', 'pyramid_output')` and each
  fuse step's attention map as `('intermediates', 'fuse_i', 'attention')`.
  Sec. 4.3 also freezes SPAP for the first 40k (GAN) / 100 epochs (CycleGAN)
  steps; that is an optimiser setting (`optimizer.delayed_update`, see
  `training/state.py`), not part of this module.

  Attributes:
    rates: dilation rates of the 3x3 atrous levels (distinct, positive).
    local_levels: add the rate-1 3x3 and the 1x1 levels.
    order: `'coarse_to_fine'` or `'fine_to_coarse'` cascade direction.
    activation: applied to each pyramid level; None for no nonlinearity.
    attention_hidden_features: hidden channels of each attention net; None
      uses `max(C // attention_reduction, 1)`.
    attention_reduction: divisor of C for the hidden width when
      `attention_hidden_features` is None (2 = the paper-sized default).
    attention_kernel_size: kernel of the first attention conv (1 = the
      paper-sized default; 3 with `attention_reduction=1` = the large variant).
    gamma_init: initial value of `gamma` (before the constraint mapping).
    gamma_constraint: `'none'`, `'clip'` or `'sigmoid'`, see above.
    conv: conv constructor (`nn.Conv` or e.g. `SpectralConv`), called with
      `features, kernel_size, kernel_dilation, padding, dtype, param_dtype, name`.
    dtype: computation dtype; None infers it from inputs and params.
    param_dtype: dtype of the parameters.
  """
  rates: Sequence[int] = (3, 5, 7)
  local_levels: bool = True
  order: str = "coarse_to_fine"
  activation: Optional[Callable[[Array], Array]] = nn.relu
  attention_hidden_features: Optional[int] = None
  attention_reduction: int = 2
  attention_kernel_size: int = 1
  gamma_init: float = 0.0
  gamma_constraint: str = "none"
  conv: Callable[..., nn.Module] = Conv
  dtype: Optional[Dtype] = None
  param_dtype: Dtype = jnp.float32

  def levels(self) -> List[Tuple[int, int]]:
    """Returns the pyramid levels as (kernel size, rate), coarsest first."""
    rates = _check_rates(self.rates)
    levels = [(3, r) for r in rates]
    if self.local_levels:
      levels += [(3, 1), (1, 1)]
    if len(set(levels)) != len(levels):
      raise ValueError(
          f"`rates` {rates!r} must not contain 1 when `local_levels` is True (the "
          "rate-1 3x3 level is already included).")
    if len(levels) < 2:
      raise ValueError(
          f"`rates` {rates!r} gives a single pyramid level; the attentive fuse needs "
          "at least two (give two rates or set `local_levels=True`).")
    return sorted(levels, key=lambda kr: -((kr[0] - 1) * kr[1] + 1))

  def hidden_width(self, channels: int) -> int:
    """Hidden channels of each attention net for an input of `channels` channels."""
    if self.attention_hidden_features is not None:
      return int(self.attention_hidden_features)
    _checks.check_positive(self.attention_reduction, "attention_reduction")
    return max(channels // int(self.attention_reduction), 1)

  def param_count(self, channels: int) -> int:
    """Parameters of this block for C = `channels` (the formula in the class doc)."""
    levels = self.levels()
    branch = sum(k * k * channels * channels + channels for k, _ in levels)
    h, k = self.hidden_width(channels), self.attention_kernel_size
    fuse = k * k * 2 * channels * h + h + h + 1
    return branch + (len(levels) - 1) * fuse + 1

  def _gamma(self) -> Array:
    """Creates the `gamma` parameter and maps it through the constraint."""
    _checks.check_in(self.gamma_constraint, GAMMA_CONSTRAINTS, "gamma_constraint")
    init_value = float(self.gamma_init)
    if self.gamma_constraint == "sigmoid":
      if not 0.0 < init_value < 1.0:
        raise ValueError(
            f"`gamma_init` must be in (0, 1) with gamma_constraint='sigmoid', got {init_value}.")
      init_value = math.log(init_value / (1.0 - init_value))
    raw = self.param("gamma", lambda _, shape, dt: jnp.full(shape, init_value, dt), (),
                     self.param_dtype)
    if self.gamma_constraint == "clip":
      return jnp.clip(raw, 0.0, 1.0)
    if self.gamma_constraint == "sigmoid":
      return nn.sigmoid(raw)
    return raw

  @nn.compact
  def __call__(self, x: Array) -> Array:
    """Applies SPAP.

    Args:
      x: [B, H, W, C] float feature map (any H, W >= 1, C >= 1).

    Returns:
      [B, H, W, C] array, `gamma * o + (1 - gamma) * x` in the computation
      dtype.

    Raises:
      ValueError: if `x` is not rank 4 NHWC, if `rates` is empty, repeats a
        rate, holds a non-positive rate, or gives fewer than two levels, if
        `order` or `gamma_constraint` is unknown, or if `gamma_init` is outside
        (0, 1) with the sigmoid constraint.
    """
    _, _, _, c = _checks.check_nhwc(x, "x")
    _checks.check_in(self.order, ORDERS, "order")
    levels = self.levels()
    if self.order == "fine_to_coarse":
      levels = levels[::-1]

    (x,) = nn.dtypes.promote_dtype(x, dtype=self.dtype)
    feats = []
    for k, r in levels:
      f = self.conv(features=c, kernel_size=(k, k), kernel_dilation=(r, r), padding="SAME",
                    dtype=self.dtype, param_dtype=self.param_dtype, name=f"branch_k{k}_d{r}")(x)
      if self.activation is not None:
        f = self.activation(f)
      feats.append(f)

    o = feats[0]
    for i, f in enumerate(feats[1:]):
      o = AttentiveFuse(hidden_features=self.hidden_width(c),
                        attention_kernel_size=self.attention_kernel_size,
                        conv=self.conv, dtype=self.dtype, param_dtype=self.param_dtype,
                        name=f"fuse_{i}")(o, f)
    self.sow("intermediates", "pyramid_output", o)

    gamma, o, x = nn.dtypes.promote_dtype(self._gamma(), o, x, dtype=self.dtype)
    return gamma * o + (1 - gamma) * x


class AtrousConvBlock(nn.Module):
  """Discriminator conv widened with parallel strided atrous convs (Fig. 3).

  Replaces one (usually downsampling) discriminator conv: the original conv
  (`kernel_size`, no dilation) and one `atrous_kernel_size` conv per rate in
  `rates` (Sec. 4.3: rates (3, 5, 7); the paper gives no kernel size for D's atrous
  convs, 3x3 (as SPAP's own atrous levels) is our choice) all see the input with the same `strides`
  and `features`. Output:

    `y = (conv(x) + mean_r atrous_r(x)) / 2`

  i.e. the atrous outputs are averaged first, then averaged with the original
  conv, as described under "Discriminator" in Sec. 3.2. All convs use 'SAME'
  padding so the branches line up. The block returns the pre-activation sum;
  the discriminator's own nonlinearity follows it.

  Attributes:
    features: output channels of every branch.
    rates: dilation rates of the atrous branches (distinct, positive).
    kernel_size: kernel of the original conv (4x4 in SNDCGAN's downsampling
      convs).
    atrous_kernel_size: kernel of each atrous branch.
    strides: stride of every branch, an int or (sh, sw).
    use_bias: whether the convs have biases.
    conv: conv constructor (`nn.Conv` or e.g. `SpectralConv`), called with
      `features, kernel_size, strides, kernel_dilation, padding, use_bias,
      dtype, param_dtype, name`.
    dtype: computation dtype; None infers it from inputs and params.
    param_dtype: dtype of the parameters.
  """
  features: int
  rates: Sequence[int] = (3, 5, 7)
  kernel_size: Union[int, Sequence[int]] = (4, 4)
  atrous_kernel_size: Union[int, Sequence[int]] = (3, 3)
  strides: Union[int, Sequence[int]] = (2, 2)
  use_bias: bool = True
  conv: Callable[..., nn.Module] = Conv
  dtype: Optional[Dtype] = None
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    """Applies the averaged original + atrous convs.

    Args:
      x: [B, H, W, C] float feature map.

    Returns:
      [B, ceil(H / sh), ceil(W / sw), features] array in the computation dtype
      (H / sh exactly when H is divisible by the stride).

    Raises:
      ValueError: if `x` is not rank 4 NHWC, if `features`, a kernel size or a
        stride is not positive, or if `rates` is empty, repeats a rate or holds
        a non-positive rate.
    """
    _checks.check_nhwc(x, "x")
    _checks.check_positive(self.features, "features")
    rates = _check_rates(self.rates)
    kernel = _checks.to_pair(self.kernel_size, "kernel_size")
    atrous_kernel = _checks.to_pair(self.atrous_kernel_size, "atrous_kernel_size")
    strides = _checks.to_pair(self.strides, "strides")

    def make(name, k, r):
      return self.conv(features=self.features, kernel_size=k, strides=strides,
                       kernel_dilation=(r, r), padding="SAME", use_bias=self.use_bias,
                       dtype=self.dtype, param_dtype=self.param_dtype, name=name)

    original = make("conv", kernel, 1)(x)
    atrous = [make(f"atrous_d{r}", atrous_kernel, r)(x) for r in rates]
    atrous_mean = sum(atrous[1:], atrous[0]) / len(atrous)
    return (original + atrous_mean) / 2
