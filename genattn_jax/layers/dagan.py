"""DAGAN's position-wise Spatial and scale-wise Channel Attention Modules.

Source: H. Tang, S. Bai and N. Sebe, "Dual Attention GANs for Semantic Image
Synthesis" (ACM MM 2020), Sec. 3: SAM (Eq. 2-4, Fig. 3), CAM (Eq. 5-9, Fig. 4)
and their sum ("Attention Modeling with GANs", Fig. 2). The official PyTorch
code (github.com/Ha0Tang/DAGAN, `DAGAN_v1/models/networks/generator.py`) was
read for the choices the text leaves open; where it differs from the paper the
class docstrings say so.

Layout is NHWC throughout: the paper's `C x H x W` maps are `[B, H, W, C]`.
"""

from typing import Callable, List, Optional, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from genattn_jax import _checks
from genattn_jax.layers.conv import Conv

Array = jax.Array
Dtype = jnp.dtype

CAM_VARIANTS = ("I", "II")
INITS = ("spade", "default")
RESIZE_METHODS = ("nearest", "linear", "bilinear", "cubic", "bicubic", "lanczos3", "lanczos5")


def init_kwargs(scheme: str, gain: float = 0.02, stacked: bool = False) -> dict:
  """Initialiser keyword arguments for a conv/dense constructor.

  Both official codes (DAGAN, LGGAN) are built on the SPADE code base, whose
  `BaseNetwork.init_weights` re-initialises every Conv, ConvTranspose and
  Linear layer after construction with `xavier_normal_(gain=init_variance)`,
  `init_variance = 0.02`, and zero bias. 'spade' reproduces that:
  `std = gain * sqrt(2 / (fan_in + fan_out))`, fans counted as PyTorch does
  (receptive field x channels; for a transposed conv the sum of the two fans
  is the same in either layout). 'default' returns no arguments, so the
  constructor's own initialisers apply (Flax: lecun-normal kernel, zero bias,
  or whatever an injected `functools.partial` sets).

  Args:
    scheme: 'spade' or 'default' (a module's `init_scheme` field).
    gain: xavier gain for 'spade' (> 0).
    stacked: the kernel has a leading per-class axis (excluded from the fans).

  Returns:
    `{'kernel_init': ..., 'bias_init': ...}` or `{}`.

  Raises:
    ValueError: if `scheme` is not one of `INITS` or `gain` <= 0 (named as the
      modules' `init_scheme` / `init_gain` fields).
  """
  _checks.check_in(scheme, INITS, "init_scheme")
  if scheme == "default":
    return {}
  _checks.check_positive(gain, "init_gain")
  kernel_init = nn.initializers.variance_scaling(
      gain ** 2, "fan_avg", "normal", in_axis=-2, out_axis=-1,
      batch_axis=(0,) if stacked else ())
  return {"kernel_init": kernel_init, "bias_init": nn.initializers.zeros_init()}


def _check_feature_list(features, name: str = "features") -> List[Array]:
  """Checks that `features` is a list/tuple of >= 2 NHWC maps with one batch size."""
  if not isinstance(features, (list, tuple)):
    raise ValueError(
        f"`{name}` must be a list or tuple of [B, h_i, w_i, c_i] feature maps "
        f"(earlier backbone layers first, the last layer F_b^l last), got {type(features)}.")
  if len(features) < 2:
    raise ValueError(
        f"`{name}` must hold at least 2 feature maps (at least one earlier layer and "
        f"the last layer), got {len(features)}.")
  batch = None
  for i, f in enumerate(features):
    b, _, _, _ = _checks.check_nhwc(f, f"{name}[{i}]")
    if batch is None:
      batch = b
    elif b != batch:
      raise ValueError(
          f"`{name}[{i}]` has batch size {b}, but `{name}[0]` has {batch}: all maps "
          "must share the batch size.")
  return list(features)


class SpatialAttentionModule(nn.Module):
  """Position-wise Spatial Attention Module, SAM (Sec. 3, Eq. 2-4, Fig. 3).

  For the last backbone map `x = F_b^l` it takes the mean and the max over the
  channel axis at every pixel (`P_a`, `P_m`, Eq. 2), concatenates them into a
  2-channel map, applies one conv to a single channel and a sigmoid
  (`A_s`, Eq. 3) and rescales every channel of `x` by that map
  (`F_s = A_s * x`, Eq. 4). The attention map `A_s` ([B, H, W, 1], values in
  (0, 1)) is stored with `self.sow('intermediates', 'attention', A_s)`.

  Pooling axis: Eq. 2 gives P_a, P_m the shape 1×H×W, i.e. pooled over the
  channels, as here; the paper's prose also says it pools "in the spatial
  dimension", unlike [3] in "the channel dimension", which contradicts the
  shapes. We follow the equation's shapes (one value per pixel, the only
  reading under which Eq. 4 rescales each pixel).

  The paper leaves the conv unspecified; the defaults follow the official
  code: a 3x3 kernel with zero ('SAME') padding and no bias (that code accepts
  3 or 7). Concatenation order is [mean, max].

  Attributes:
    kernel_size: spatial size of the attention conv (int or pair).
    use_bias: whether the attention conv has a bias.
    init_scheme: 'spade' (xavier-normal with gain `init_gain`, zero bias: the
      official code's SPADE initialisation, default) or 'default' (the conv
      constructor's own initialisers); see `init_kwargs`.
    init_gain: xavier gain for init_scheme='spade'.
    conv: conv constructor (`nn.Conv`, `SpectralConv`, or a partial of one),
      called as `conv(features=1, kernel_size=..., padding='SAME',
      use_bias=..., dtype=..., param_dtype=..., name='conv')`.
    dtype: computation dtype; None keeps the input's dtype (the conv promotes
      with its params as Flax does).
    param_dtype: dtype of the parameters.
  """
  kernel_size: Tuple[int, int] = (3, 3)
  use_bias: bool = False
  init_scheme: str = "spade"
  init_gain: float = 0.02
  conv: Callable[..., nn.Module] = Conv
  dtype: Optional[Dtype] = None
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    """Applies SAM.

    Args:
      x: [B, H, W, C] float feature map (F_b^l), any real values.

    Returns:
      [B, H, W, C] spatially re-weighted features `F_s`, in `dtype` (or the
      promoted input/param dtype when `dtype` is None).

    Raises:
      ValueError: if `x` is not rank 4 [B, H, W, C] or has an empty dimension,
        if `kernel_size` is not a positive int or pair, or `init_scheme` is unknown.
    """
    _checks.check_nhwc(x, "x")
    kernel_size = _checks.to_pair(self.kernel_size, "kernel_size")
    inits = init_kwargs(self.init_scheme, self.init_gain)
    if self.dtype is not None:
      x = jnp.asarray(x, self.dtype)
    pooled = jnp.concatenate(
        [jnp.mean(x, axis=-1, keepdims=True), jnp.max(x, axis=-1, keepdims=True)], axis=-1)
    logits = self.conv(
        features=1, kernel_size=kernel_size, padding="SAME", use_bias=self.use_bias,
        dtype=self.dtype, param_dtype=self.param_dtype, name="conv", **inits)(pooled)
    attention = nn.sigmoid(logits)
    self.sow("intermediates", "attention", attention)
    return x * attention


class ChannelAttentionModule(nn.Module):
  """Scale-wise Channel Attention Module, CAM (Sec. 3, Eq. 5-9, Fig. 4).

  Input is the list of backbone maps `[F_b^1, ..., F_b^{l-1}, F_b^l]`
  (earlier layers first, of any sizes `[B, h_i, w_i, c_i]`); the last one,
  `[B, H, W, C]`, fixes the output size. Steps:

  1. every earlier map is resized to H x W (`resize_method`, via
     `jax.image.resize`; maps already H x W are untouched) and gives `F~`
     (Eq. 5). With ONE earlier map, `F~` is one conv of it to C channels
     (`branch_0`, `branch_kernel_size`), as the official code's single
     `conv_64`. With two or more, each map has its own conv to
     `branch_features` channels and their channel concatenation (list order)
     is fused by one more conv to C channels (`fuse`, `fuse_kernel_size`),
     Eq. 5 as written;
  2. `alpha` = global average over H x W of `concat([F~, F_b^l])`, a
     [B, 1, 1, 2C] vector (Eq. 6);
  3. two 1x1 convs, `2C -> hidden_features -> C` with `activation` between
     them, give `gamma` (Sec. 3 text after Eq. 6); `delta = sigmoid(gamma)`
     (Eq. 7), one weight in (0, 1) per channel;
  4. variant 'I' (Eq. 8): `F_c = delta * F~ + F_b^l`;
     variant 'II' (Eq. 9): `F_c = delta * F_b^l + F~`.

  `delta` ([B, 1, 1, C]) is stored with
  `self.sow('intermediates', 'channel_weights', delta)`.

  Choices the paper leaves open follow the official code
  (`DAGAN_v1/models/networks/generator.py`: one earlier map of 2C channels
  at the output resolution, a 3x3 conv to C, ReLU between the two 1x1 convs,
  hidden width C, variant II in the final model B6). Default resize is
  'nearest' (the generator upsamples with nearest neighbour).

  Attributes:
    variant: 'I' (Eq. 8) or 'II' (Eq. 9).
    branch_features: channels of each per-scale conv when there are >= 2
      earlier maps; None uses C. With one earlier map the conv outputs C and
      this must be None or C.
    branch_kernel_size: kernel size of the per-scale convs.
    fuse_kernel_size: kernel size of the fusing conv (>= 2 earlier maps only).
    hidden_features: width of the first 1x1 conv after pooling; None uses C.
    activation: nonlinearity between the two 1x1 convs.
    resize_method: a `jax.image.resize` method name used to bring earlier maps
      to H x W ('nearest', 'bilinear', 'bicubic', 'lanczos3', ...).
    init_scheme: 'spade' (default, xavier-normal gain `init_gain`, zero bias) or
      'default'; see `init_kwargs`.
    init_gain: xavier gain for init_scheme='spade'.
    conv: conv constructor (`nn.Conv` or e.g. `SpectralConv`), called with
      `features, kernel_size, padding='SAME', dtype, param_dtype, name` (and
      the initialisers for init_scheme='spade').
    dtype: computation dtype; None keeps the inputs' dtype.
    param_dtype: dtype of the parameters.
  """
  variant: str = "II"
  branch_features: Optional[int] = None
  branch_kernel_size: Tuple[int, int] = (3, 3)
  fuse_kernel_size: Tuple[int, int] = (1, 1)
  hidden_features: Optional[int] = None
  activation: Callable[[Array], Array] = nn.relu
  resize_method: str = "nearest"
  init_scheme: str = "spade"
  init_gain: float = 0.02
  conv: Callable[..., nn.Module] = Conv
  dtype: Optional[Dtype] = None
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, features: Sequence[Array]) -> Array:
    """Applies CAM.

    Args:
      features: list/tuple of >= 2 float maps `[B, h_i, w_i, c_i]`, earlier
        backbone layers first and the last layer `F_b^l` ([B, H, W, C]) last.
        All share B; sizes and channel counts may differ.

    Returns:
      [B, H, W, C] channel-attended features `F_c`.

    Raises:
      ValueError: if `features` is not a list/tuple of at least two rank-4 maps
        with one batch size (the message names `features[i]`), or if `variant`,
        `resize_method`, `init_scheme`, `branch_features` (also: set to other than C
        with one earlier map), `hidden_features` or a kernel size is invalid.
    """
    _checks.check_in(self.variant, CAM_VARIANTS, "variant")
    _checks.check_in(self.resize_method, RESIZE_METHODS, "resize_method")
    feats = _check_feature_list(features, "features")
    if self.dtype is not None:
      feats = [jnp.asarray(f, self.dtype) for f in feats]
    last = feats[-1]
    b, h, w, c = last.shape
    single = len(feats) == 2
    if single and self.branch_features not in (None, c):
      raise ValueError(
          f"`branch_features` ({self.branch_features}) must be None or C = {c} when CAM "
          "gets one earlier map: its single conv makes F~ with C channels (Eq. 5).")
    branch_features = c if self.branch_features is None else self.branch_features
    hidden = c if self.hidden_features is None else self.hidden_features
    _checks.check_positive(branch_features, "branch_features")
    _checks.check_positive(hidden, "hidden_features")
    branch_kernel = _checks.to_pair(self.branch_kernel_size, "branch_kernel_size")
    fuse_kernel = _checks.to_pair(self.fuse_kernel_size, "fuse_kernel_size")
    inits = init_kwargs(self.init_scheme, self.init_gain)

    def conv(features, kernel, name):
      return self.conv(features=features, kernel_size=kernel, padding="SAME",
                       dtype=self.dtype, param_dtype=self.param_dtype, name=name, **inits)

    branches = []
    for i, f in enumerate(feats[:-1]):
      if f.shape[1:3] != (h, w):
        f = jax.image.resize(f, (b, h, w, f.shape[-1]), method=self.resize_method)
      branches.append(conv(branch_features, branch_kernel, f"branch_{i}")(f))
    if single:  # Eq. 5 with l - 1 = 1: one conv, F~ = Conv(F_b^1)
      fused = branches[0]
    else:
      fused = conv(c, fuse_kernel, "fuse")(jnp.concatenate(branches, axis=-1))  # Eq. 5
    alpha = jnp.mean(jnp.concatenate([fused, last], axis=-1), axis=(1, 2), keepdims=True)
    gamma = conv(hidden, (1, 1), "scale_0")(alpha)
    gamma = conv(c, (1, 1), "scale_1")(self.activation(gamma))
    delta = nn.sigmoid(gamma)  # Eq. 7
    self.sow("intermediates", "channel_weights", delta)
    if self.variant == "I":
      return delta * fused + last  # Eq. 8
    return delta * last + fused  # Eq. 9


class DualAttention(nn.Module):
  """DAGAN's dual attention: `SAM(F_b^l) + CAM([F_b^1, ..., F_b^l])` (Sec. 3).

  The paper sums the outputs of both modules ("Attention Modeling with GANs",
  Fig. 2) before the generator's final image conv, which is not part of this
  block (see `genattn_jax.models.dagan_heads.DAGANHead` for the whole head).
  The submodules are named 'sam' and 'cam'.

  Attributes:
    cam_variant: 'I' (Eq. 8) or 'II' (Eq. 9, the paper's final model B6).
    sam_kernel_size: kernel size of SAM's attention conv.
    sam_use_bias: whether SAM's conv has a bias.
    branch_features: see `ChannelAttentionModule.branch_features`.
    branch_kernel_size: see `ChannelAttentionModule.branch_kernel_size`.
    fuse_kernel_size: see `ChannelAttentionModule.fuse_kernel_size`.
    hidden_features: see `ChannelAttentionModule.hidden_features`.
    activation: see `ChannelAttentionModule.activation`.
    resize_method: see `ChannelAttentionModule.resize_method`.
    init_scheme: 'spade' (default) or 'default', for both modules; see `init_kwargs`.
    init_gain: xavier gain for init_scheme='spade'.
    conv: conv constructor shared by both modules.
    dtype: computation dtype; None keeps the inputs' dtype.
    param_dtype: dtype of the parameters.
  """
  cam_variant: str = "II"
  sam_kernel_size: Tuple[int, int] = (3, 3)
  sam_use_bias: bool = False
  branch_features: Optional[int] = None
  branch_kernel_size: Tuple[int, int] = (3, 3)
  fuse_kernel_size: Tuple[int, int] = (1, 1)
  hidden_features: Optional[int] = None
  activation: Callable[[Array], Array] = nn.relu
  resize_method: str = "nearest"
  init_scheme: str = "spade"
  init_gain: float = 0.02
  conv: Callable[..., nn.Module] = Conv
  dtype: Optional[Dtype] = None
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, features: Sequence[Array]) -> Array:
    """Applies SAM to the last map and CAM to all maps and sums the results.

    Args:
      features: list/tuple of >= 2 float maps `[B, h_i, w_i, c_i]`, earlier
        backbone layers first and `F_b^l` ([B, H, W, C]) last.

    Returns:
      [B, H, W, C] float `F_s + F_c`.

    Raises:
      ValueError: as `ChannelAttentionModule` and `SpatialAttentionModule`.
    """
    feats = _check_feature_list(features, "features")
    spatial = SpatialAttentionModule(
        kernel_size=self.sam_kernel_size, use_bias=self.sam_use_bias, init_scheme=self.init_scheme,
        init_gain=self.init_gain, conv=self.conv, dtype=self.dtype,
        param_dtype=self.param_dtype, name="sam")(feats[-1])
    channel = ChannelAttentionModule(
        variant=self.cam_variant, branch_features=self.branch_features,
        branch_kernel_size=self.branch_kernel_size, fuse_kernel_size=self.fuse_kernel_size,
        hidden_features=self.hidden_features, activation=self.activation,
        resize_method=self.resize_method, init_scheme=self.init_scheme, init_gain=self.init_gain,
        conv=self.conv, dtype=self.dtype, param_dtype=self.param_dtype, name="cam")(feats)
    return spatial + channel
