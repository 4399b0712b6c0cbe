"""Local Attention Pyramid (LAP) blocks for scene-image GAN generators.

Source: S.-H. Shim, S. Hyun, D. Bae, J.-P. Heo, "Local Attention Pyramid for
Scene Image Generation", CVPR 2022 -- Sec. 4 (Eq. 1-8), Fig. 2 and the level
schedule of Sec. 5.2. No official code was available to compare against; every
choice the paper leaves open is stated in the docstring where it is made.

The module has two parts (Fig. 2):

* `ChannelSeparatedTransform` (Sec. 4.1, Eq. 1-2): a CBAM-style one-channel
  spatial map, modulating two per-channel (depthwise) convolutions.
* `LocalAttentionPyramid` (Sec. 4.2, Eq. 3-8): recursive, multi-scale
  attention built from instance normalisation inside non-overlapping patches
  (`patch_instance_norm`, Eq. 4); its square / wide / long branches are merged
  with learned per-channel weights (the ~11K parameters of Table 5) or a fixed
  mean.

`LAPBlock` chains the two and adds the result to its input, which is how the
paper inserts the module after a generator's convolution block.
"""

from typing import Callable, Optional, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from genattn_jax import _checks
from genattn_jax.layers.conv import Conv

PATCH_SHAPES = ("square", "wide", "long")
COMBINE_MODES = ("learned", "mean")


def lap_levels_for_resolution(resolution: int) -> int:
  """The pyramid level P the paper uses for a `resolution` x `resolution` map.

  Sec. 5.2: the module is not applied to 4x4 maps; P = 1 from 8x8, and P grows
  by one every time the map is up-scaled 4x per side (two generator stages),
  so P = 2 from 32x32 and P = 3 from 128x128. In closed form, for
  resolution = 2**k with k >= 2: P = (k - 1) // 2, i.e.

    4 -> 0, 8 -> 1, 16 -> 1, 32 -> 2, 64 -> 2, 128 -> 3, 256 -> 3,
    512 -> 4, 1024 -> 4 (the last two extend the rule beyond the paper's 256).

  A return value of 0 means "do not insert a LAP block at this resolution"
  (the paper's choice at 4x4). Note that `LocalAttentionPyramid(levels=0)` is
  still a valid module (one whole-map level); skipping is up to the caller.

  Args:
    resolution: side length of the (square) feature map, a power of two >= 4.

  Returns:
    The pyramid level P (>= 0): the finest level, whose patches have side
    resolution / 2**P.

  Raises:
    ValueError: if `resolution` is not an integer power of two >= 4.
  """
  if (isinstance(resolution, bool) or not isinstance(resolution, int) or
      resolution < 4 or resolution & (resolution - 1)):
    raise ValueError(
        f"`resolution` must be an integer power of two >= 4, got {resolution!r}.")
  k = resolution.bit_length() - 1
  return (k - 1) // 2


def _check_patch_hw(patch_hw: Sequence[int]) -> Tuple[int, int]:
  """Validates a (ph, pw) pair of positive integers and returns it as a tuple."""
  try:
    ph, pw = (int(v) for v in patch_hw)
  except (TypeError, ValueError) as e:
    raise ValueError(f"`patch_hw` must be a pair (ph, pw) of positive integers, "
                     f"got {patch_hw!r}.") from e
  if tuple(patch_hw) != (ph, pw):
    raise ValueError(f"`patch_hw` must hold integers, got {patch_hw!r}.")
  _checks.check_positive(ph, "patch_hw[0] (ph)")
  _checks.check_positive(pw, "patch_hw[1] (pw)")
  return ph, pw


def patch_instance_norm(x: jax.Array, patch_hw: Sequence[int],
                        eps: float = 1e-5) -> jax.Array:
  """Instance normalisation inside non-overlapping spatial patches (Eq. 4).

  The map is cut into a grid of ph x pw patches (kernel = stride = patch size,
  as the paper uses it in Eq. 5 and 8) and every (sample, patch, channel) is
  shifted and scaled independently to zero mean and unit variance:
  `(x - mean) / sqrt(var + eps)`, with the biased (population) variance over
  the ph * pw positions of the patch. There are no learnable scale/shift
  parameters: the paper calls Patch-IN an "instance normalization function"
  (Sec. 4.2) that "calibrates the highest activated value of a feature patch to
  nearby 1" before the sigmoid, and mentions no affine parameters.

  Statistics are computed in at least float32 (so bfloat16 inputs keep their
  accuracy) and the result is cast back to `x.dtype`.

  Args:
    x: [B, H, W, C] floating feature map (any float dtype).
    patch_hw: (ph, pw) patch height and width; H must be divisible by ph and W
      by pw. (ph, pw) = (H, W) is ordinary instance normalisation.
    eps: small positive constant added to the variance.

  Returns:
    [B, H, W, C] array of `x.dtype`; inside every patch and channel it has mean
    0 and variance var / (var + eps) (i.e. ~1, or 0 for a constant patch).

  Raises:
    ValueError: if `x` is not rank 4, `patch_hw` is not two positive integers,
      `eps` is not positive, or H (W) is not divisible by ph (pw).
  """
  b, h, w, c = _checks.check_nhwc(x, "x")
  ph, pw = _check_patch_hw(patch_hw)
  _checks.check_positive(eps, "eps")
  _checks.check_divisible(h, ph, "x height H", "patch height ph")
  _checks.check_divisible(w, pw, "x width W", "patch width pw")
  stat_dtype = jnp.promote_types(x.dtype, jnp.float32)
  xp = x.astype(stat_dtype).reshape(b, h // ph, ph, w // pw, pw, c)
  mean = jnp.mean(xp, axis=(2, 4), keepdims=True)
  centred = xp - mean
  var = jnp.mean(jnp.square(centred), axis=(2, 4), keepdims=True)
  y = centred * jax.lax.rsqrt(var + eps)
  return y.reshape(b, h, w, c).astype(x.dtype)


def _patch_size(shape: str, level: int, h: int, w: int) -> Tuple[int, int]:
  """Patch (s_h, s_w) of Eq. 7 for one patch shape at pyramid level p."""
  scale = 2**level
  if shape == "square":
    return h // scale, w // scale
  if shape == "wide":
    return h // scale, w
  return h, w // scale  # "long"


class ChannelSeparatedTransform(nn.Module):
  """Channel-separated transformation, Sec. 4.1 of the LAP paper (Eq. 1-2).

  Computes

    F'  = conv_s([mean_c(F); max_c(F)])                  (Eq. 1, one channel)
    F_a = conv_gamma(F) * tile(F', C) + conv_beta(F)      (Eq. 2)

  where mean_c / max_c pool over the channel axis, conv_s is a
  `kernel_size` convolution from the two pooled maps to one map, and
  conv_gamma / conv_beta are depthwise `kernel_size` convolutions (one filter
  per channel, `feature_group_count = C`). The tile is a broadcast over the
  channel axis. As the paper prescribes, no normalisation or activation is
  applied; the raw F_a goes to `LocalAttentionPyramid`.

  All three convolutions use 'SAME' zero padding and stride 1 so the map keeps
  its size. The paper does not say whether they carry biases; `use_bias`
  (default True, the usual convolution default) controls all three.

  Attributes:
    kernel_size: spatial kernel of all three convolutions (paper: 3x3).
    use_bias: whether the convolutions add a bias.
    conv: convolution constructor, called as `conv(features=...,
      kernel_size=..., padding='SAME', feature_group_count=...,
      use_bias=..., dtype=..., param_dtype=..., name=...)`; e.g. `nn.Conv`
      (default) or `genattn_jax.layers.norms.SpectralConv`.
    dtype: computation dtype (None: inferred from inputs and params).
    param_dtype: dtype of the parameters.
  """
  kernel_size: Tuple[int, int] = (3, 3)
  use_bias: bool = True
  conv: Callable[..., nn.Module] = Conv
  dtype: Optional[jnp.dtype] = None
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """Applies Eq. 1-2.

    Args:
      x: [B, H, W, C] float feature map F (any real values).

    Returns:
      F_a: [B, H, W, C] of the computation dtype, unbounded real values.

    Raises:
      ValueError: if `x` is not a non-empty rank-4 [B, H, W, C] array.
    """
    _, _, _, c = _checks.check_nhwc(x, "x")
    kernel_size = tuple(self.kernel_size)

    def make_conv(features: int, groups: int, name: str) -> nn.Module:
      return self.conv(features=features, kernel_size=kernel_size, padding="SAME",
                       feature_group_count=groups, use_bias=self.use_bias,
                       dtype=self.dtype, param_dtype=self.param_dtype, name=name)

    pooled = jnp.concatenate(
        [jnp.mean(x, axis=-1, keepdims=True), jnp.max(x, axis=-1, keepdims=True)],
        axis=-1)
    spatial = make_conv(1, 1, "spatial_conv")(pooled)         # F', [B, H, W, 1]
    gamma = make_conv(c, c, "depthwise_gamma")(x)            # Conv_d^gamma(F)
    beta = make_conv(c, c, "depthwise_beta")(x)              # Conv_d^beta(F)
    return gamma * spatial + beta


class LocalAttentionPyramid(nn.Module):
  """Local attention pyramid, Sec. 4.2 of the LAP paper (Eq. 3, 5-8).

  For one patch shape, starting from F^P = x at the finest level P and going
  to the whole-map level 0 (the recursion stops once one patch covers the
  map), each level computes

    M^p     = sigmoid(Patch-IN(F^p, s_h^p, s_w^p))              (Eq. 5 / 8)
    F^{p-1} = alpha * F^p + (1 - alpha) * M^p * F^p              (Eq. 6)

  and F^{-1} is that shape's result, so P + 1 attention maps are applied. With
  H x W maps, the patch sizes of Eq. 7 at level p are

    square: (H / 2^p, W / 2^p)   wide: (H / 2^p, W)   long: (H, W / 2^p).

  ("square" patches have the map's own aspect ratio; they are square for
  square maps, as in the paper.)

  Combining the shapes: the paper runs all three shapes (Eq. 7) but does not
  write out how their results are merged. Each shape runs its own recursion
  from the same input; the outputs are then combined per channel:

    combine='learned' (default):  out[..., c] = sum_s w[s, c] * out_s[..., c]
    combine='mean':               out = mean_s out_s   (no parameters)

  `w` ('shape_weights', [S, C] for S shapes and C channels) is initialised to
  1 / S, so at initialisation the learned combination equals the fixed mean.
  Why a learned combination is the default: Table 5 of the paper reports that
  adding Sec. 4.2 to StyleGAN-256 adds about 11K learnable parameters, while
  Eq. 3-8 alone have none (in our reading: the paper mentions no parameters
  for them). One weight per channel and patch shape gives, for
  a generator whose LAP modules see C_m channels each,

    #params(Sec. 4.2) = S * sum_m C_m.

  We read "in every convolution blocks of the generator" (Sec. 5.2) as a LAP
  after each of the two 3x3 convolutions of StyleGAN-256's 8^2 ... 256^2 blocks
  (12 modules; consistent with Table 5's "+ Eq. 1 + 0.2K" row, 12 x 18
  spatial-conv weights = 216, though not with its "+ 95K" for Sec. 4.1, see
  `models/stylegan.py`), with C_m = 512 (8^2 - 32^2),
  256 (64^2), 128 (128^2), 64 (256^2), so

    #params = 3 * 2 * (3 * 512 + 256 + 128 + 64) = 3 * 3968 = 11,904,

  close to the paper's "+ 11K" (the paper does not say how it rounds). One
  weight per channel without the shape index would give 3,968, too few; a
  weight per channel and pyramid level would give 10,240, about as close to
  11K. We weight per shape because how the square, wide and long outputs are
  merged is the part Sec. 4.2 leaves open. No official code was available, so
  this is our reading; `combine='mean'` keeps the parameter-free variant. Set
  `patch_shapes` to a subset (e.g. `("square",)`) to use fewer shapes.

  Parameters: 'shape_weights' [S, C] with combine='learned', none with
  combine='mean'.

  Attributes:
    levels: finest pyramid level P >= 0; patches at level p have sides
      H / 2^p (and/or W / 2^p). None: use `lap_levels_for_resolution` of the
      longer side max(H, W) (which must then be a power of two >= 4), i.e. the
      schedule of Sec. 5.2 (l in Eq. 3 is the longer side).
    alpha: decay factor of Eq. 6 in [0, 1]; the paper uses 0.5 everywhere.
      alpha = 1 makes the module the identity.
    patch_shapes: non-empty subset of ("square", "wide", "long") (Eq. 7).
    eps: variance epsilon of Patch-IN.
    combine: 'learned' (per-channel, per-shape weights, initialised to the
      mean; the default) or 'mean' (fixed, parameter-free average).
    dtype: computation dtype (None: the input's dtype). Patch-IN statistics are
      always computed in at least float32.
    param_dtype: dtype of 'shape_weights'.
  """
  levels: Optional[int] = None
  alpha: float = 0.5
  patch_shapes: Sequence[str] = PATCH_SHAPES
  eps: float = 1e-5
  combine: str = "learned"
  dtype: Optional[jnp.dtype] = None
  param_dtype: jnp.dtype = jnp.float32

  def _validated_levels(self, h: int, w: int) -> int:
    if self.levels is None:
      side = max(h, w)
      try:
        return lap_levels_for_resolution(side)
      except ValueError as e:
        raise ValueError(
            f"`levels` is None, so it is derived from the longer side max(H, W) = "
            f"{side} of `x` (H={h}, W={w}), which must be a power of two >= 4; "
            f"pass `levels` explicitly otherwise.") from e
    if (isinstance(self.levels, bool) or not isinstance(self.levels, int) or
        self.levels < 0):
      raise ValueError(f"`levels` must be an integer >= 0 or None, got {self.levels!r}.")
    return self.levels

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """Applies the pyramid (Eq. 5-8) and combines the patch-shape branches.

    Args:
      x: [B, H, W, C] float feature map F_a (e.g. `ChannelSeparatedTransform`
        output), any real values.

    Returns:
      [B, H, W, C] array of the computation dtype: each branch is x rescaled
      element-wise by a factor in [alpha^(P+1), 1]; the branches are averaged
      ('mean') or summed with the learned per-channel weights ('learned').

    Raises:
      ValueError: if `x` is not rank-4 [B, H, W, C]; if `levels`, `alpha`,
        `patch_shapes`, `combine` or `eps` are invalid; or if H (square/wide patches) or
        W (square/long patches) is not divisible by 2^p at some level p (the
        message names H, W, the level and the patch shape). No padding is
        done.
    """
    _, h, w, c = _checks.check_nhwc(x, "x")
    levels = self._validated_levels(h, w)
    _checks.check_in(self.combine, COMBINE_MODES, "combine")
    if not 0.0 <= self.alpha <= 1.0:
      raise ValueError(f"`alpha` must lie in [0, 1], got {self.alpha!r}.")
    _checks.check_positive(self.eps, "eps")
    shapes = tuple(self.patch_shapes)
    if not shapes:
      raise ValueError("`patch_shapes` must name at least one patch shape.")
    for shape in shapes:
      _checks.check_in(shape, PATCH_SHAPES, "patch_shapes")

    for shape in shapes:
      scale = 2**levels
      for axis, size in (("H", h), ("W", w)):
        if shape == ("long" if axis == "H" else "wide"):
          continue  # this side of the patch is the whole map at every level
        if size % scale:
          bad = next(p for p in range(levels + 1) if size % 2**p)
          raise ValueError(
              f"`x` with H={h}, W={w}: {axis}={size} is not divisible by "
              f"2^{bad} = {2**bad} at pyramid level p={bad} of "
              f"`levels`={levels} ({shape!r} patches). Use H and W divisible by "
              f"2^levels or fewer `levels`.")

    dtype = self.dtype if self.dtype is not None else x.dtype
    x = jnp.asarray(x, dtype)
    outputs = []
    for shape in shapes:
      f = x
      for p in range(levels, -1, -1):
        attention = jax.nn.sigmoid(
            patch_instance_norm(f, _patch_size(shape, p, h, w), self.eps))
        f = self.alpha * f + (1.0 - self.alpha) * (attention * f)
      outputs.append(f)
    if self.combine == "mean":
      return (sum(outputs) / len(outputs)).astype(dtype)
    weights = self.param("shape_weights", nn.initializers.constant(1.0 / len(shapes)),
                         (len(shapes), c), self.param_dtype)
    weights = jnp.asarray(weights, dtype)
    return sum(weights[i] * out for i, out in enumerate(outputs)).astype(dtype)


class LAPBlock(nn.Module):
  """The full LAP module in its residual form (Fig. 2): `x + LAP(CST(x))`.

  F_a = `ChannelSeparatedTransform`(x) (Eq. 1-2), then the attention pyramid
  (Eq. 3-8) gives F_a^{-1}, which the paper adds to the block's input feature
  map F. Output has the input's shape. The paper inserts one after every
  generator convolution block except at 4x4, with
  `levels = lap_levels_for_resolution(resolution)` (Sec. 5.2); leaving
  `levels=None` derives that automatically from max(H, W).

  Attributes:
    levels: finest pyramid level P (see `LocalAttentionPyramid`), None = the
      Sec. 5.2 schedule from max(H, W).
    alpha: decay factor of Eq. 6 (paper: 0.5).
    patch_shapes: subset of ("square", "wide", "long").
    eps: Patch-IN variance epsilon.
    combine: how the shapes' outputs merge ('learned' or 'mean', see
      `LocalAttentionPyramid`).
    kernel_size: kernel of the three convolutions of Sec. 4.1 (paper: 3x3).
    use_bias: whether those convolutions add a bias.
    conv: convolution constructor for Sec. 4.1 (see
      `ChannelSeparatedTransform.conv`), e.g. a spectral-normalised conv.
    dtype: computation dtype (None: inferred).
    param_dtype: parameter dtype.
  """
  levels: Optional[int] = None
  alpha: float = 0.5
  patch_shapes: Sequence[str] = PATCH_SHAPES
  eps: float = 1e-5
  combine: str = "learned"
  kernel_size: Tuple[int, int] = (3, 3)
  use_bias: bool = True
  conv: Callable[..., nn.Module] = Conv
  dtype: Optional[jnp.dtype] = None
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """Applies `x + LocalAttentionPyramid(ChannelSeparatedTransform(x))`.

    Args:
      x: [B, H, W, C] float feature map F.

    Returns:
      [B, H, W, C] array of the computation dtype.

    Raises:
      ValueError: as `ChannelSeparatedTransform` and `LocalAttentionPyramid`
        (wrong rank, H or W not divisible by 2^p at some level, bad settings).
    """
    _checks.check_nhwc(x, "x")
    f_a = ChannelSeparatedTransform(
        kernel_size=self.kernel_size, use_bias=self.use_bias, conv=self.conv,
        dtype=self.dtype, param_dtype=self.param_dtype, name="transform")(x)
    attended = LocalAttentionPyramid(
        levels=self.levels, alpha=self.alpha, patch_shapes=self.patch_shapes,
        eps=self.eps, combine=self.combine, dtype=self.dtype,
        param_dtype=self.param_dtype, name="pyramid")(f_a)
    dtype = self.dtype if self.dtype is not None else jnp.result_type(x, attended)
    return (jnp.asarray(x, dtype) + attended).astype(dtype)
