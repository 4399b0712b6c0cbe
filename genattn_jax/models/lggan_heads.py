"""LGGAN's shared label encoder, local branch and fusion head for any global generator.

Source: H. Tang, D. Xu, Y. Yan, P. H. S. Torr and N. Sebe, "Local
Class-Specific and Global Image-Level Generative Adversarial Networks for
Semantic-Guided Scene Generation" (CVPR 2020), Sec. 3.1 (parameter-sharing
encoder E), Sec. 3.2 (local branch G_l, classification module, G_w) and
Table 3 (S1-S5). Layer sizes, paddings and norms that the paper leaves open
follow the official code (github.com/Ha0Tang/LGGAN,
`semantic_image_synthesis/models/networks/generator.py`, `LGGANGenerator`):

* E(S): reflect-pad 3, 7x7 conv -> 64, then 3x3 stride-2 convs (PyTorch
  padding 1) -> 128 -> 256 (`x_encode`, 1/4 size) -> 512 -> 1024 (1/16
  size), each followed by instance norm (no affine, eps 1e-5) and ReLU.
  `x_encode` feeds the local branch and G_w; the 1/16 map, resized (nearest)
  to the global generator's start size, replaces SPADE's downsampled label
  map as the global branch's input.
* Local branch: 9 residual blocks (reflect pad 1, 3x3 conv, IN, ReLU,
  reflect pad 1, 3x3 conv, IN, plus the input) at 256 channels, then two
  `ConvTranspose2d(3, stride 2, padding 1, output_padding 1)` -> IN -> ReLU
  blocks (128, 64 channels) giving f' at full size; then
  `ClassSpecificLocalGeneration` (Eq. 1, 3/4) and
  `SemanticClassificationModule` (Eq. 5) on f'.
* G_w on `x_encode` (`AttentionFusion`, Eq. 6-7).
"""

import functools
from typing import Callable, Dict, Optional, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from genattn_jax import _checks
from genattn_jax.layers import lggan
from genattn_jax.layers import lggan_fusion
from genattn_jax.layers.dagan import init_kwargs
from genattn_jax.layers.conv import Conv, ConvTranspose

Array = jax.Array
Dtype = jnp.dtype

# PyTorch's InstanceNorm2d defaults: no affine, eps 1e-5, two-pass variance.
_instance_norm = functools.partial(nn.InstanceNorm, epsilon=1e-5, use_scale=False,
                                   use_bias=False, use_fast_variance=False)

# Table 3 (right) rows: (use_local, fusion, use_class_loss, use_weight_map).
TABLE3_ROWS: Dict[str, Tuple[bool, Optional[str], bool, bool]] = {
    "S1": (False, None, False, False),   # global generator only
    "S2": (True, "sum", False, False),   # + local, Eq. 3
    "S3": (True, "conv", False, False),  # + local, Eq. 4
    "S4": (True, "conv", True, False),   # + classification loss, Eq. 5
    "S5": (True, "conv", True, True),    # + weight map, Eq. 6-7: LGGAN
}


class LabelEncoder(nn.Module):
  """Shared encoder E(S) (Sec. 3.1), the official code's conv1-conv5.

  Attributes:
    features: widths of the convs (first 7x7 stride 1, the rest 3x3 stride 2).
    encode_index: index of the conv whose output is `x_encode` (2: 256
      channels at 1/4 size, as the official code).
    init_scheme: 'spade' (xavier-normal gain `init_gain`, zero bias; default)
      or 'default'; see `genattn_jax.layers.dagan.init_kwargs`.
    init_gain: xavier gain for 'spade'.
    conv: conv constructor.
    norm: norm constructor called with `dtype, param_dtype, name`.
    dtype: computation dtype; None keeps the input's dtype.
    param_dtype: dtype of the parameters.
  """
  features: Sequence[int] = (64, 128, 256, 512, 1024)
  encode_index: int = 2
  init_scheme: str = "spade"
  init_gain: float = 0.02
  conv: Callable[..., nn.Module] = Conv
  norm: Callable[..., nn.Module] = _instance_norm
  dtype: Optional[Dtype] = None
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, labels: Array) -> Tuple[Array, Array]:
    """Encodes a label map.

    Args:
      labels: [B, H, W, K] float one-hot label map (plus any extra channels,
        e.g. an instance-edge map), H and W divisible by
        2**(len(features) - 1) and > 3 (reflect padding).

    Returns:
      `(x_encode, x_deep)`: [B, H/4, W/4, features[encode_index]] and
      [B, H/16, W/16, features[-1]] (for the default features), both >= 0.

    Raises:
      ValueError: if `labels` is not [B, H, W, K], H or W is not divisible by
        the total stride, or `encode_index` is out of range.
    """
    b, h, w, _ = _checks.check_nhwc(labels, "labels")
    if not 0 <= self.encode_index < len(self.features):
      raise ValueError(f"`encode_index` must be in [0, {len(self.features)}), "
                       f"got {self.encode_index}.")
    stride = 2 ** (len(self.features) - 1)
    if h % stride or w % stride or min(h, w) <= 3:
      raise ValueError(f"`labels` H, W = {(h, w)} must be divisible by {stride} and > 3.")
    inits = init_kwargs(self.init_scheme, self.init_gain)
    x = labels if self.dtype is None else jnp.asarray(labels, self.dtype)
    x = jnp.pad(x, ((0, 0), (3, 3), (3, 3), (0, 0)), mode="reflect")
    encoded = None
    for i, width in enumerate(self.features):
      _checks.check_positive(width, "features")
      if i == 0:
        x = self.conv(features=width, kernel_size=(7, 7), padding="VALID", dtype=self.dtype,
                      param_dtype=self.param_dtype, name="conv_0", **inits)(x)
      else:  # PyTorch Conv2d(3, stride 2, padding 1): pad (1, 1), not Flax's SAME (0, 1)
        x = self.conv(features=width, kernel_size=(3, 3), strides=(2, 2),
                      padding=((1, 1), (1, 1)), dtype=self.dtype,
                      param_dtype=self.param_dtype, name=f"conv_{i}", **inits)(x)
      x = nn.relu(self.norm(dtype=self.dtype, param_dtype=self.param_dtype,
                            name=f"norm_{i}")(x))
      if i == self.encode_index:
        encoded = x
    return encoded, x


class ResidualBlock(nn.Module):
  """`x + IN(conv(pad(ReLU(IN(conv(pad(x)))))))` with reflect padding (official code)."""
  kernel_size: int = 3
  init_scheme: str = "spade"
  init_gain: float = 0.02
  conv: Callable[..., nn.Module] = Conv
  norm: Callable[..., nn.Module] = _instance_norm
  dtype: Optional[Dtype] = None
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    """Applies the block to [B, H, W, C] (H, W > kernel_size // 2); same shape out."""
    _, _, _, c = _checks.check_nhwc(x, "x")
    p = self.kernel_size // 2
    inits = init_kwargs(self.init_scheme, self.init_gain)
    y = x
    for i in range(2):
      y = jnp.pad(y, ((0, 0), (p, p), (p, p), (0, 0)), mode="reflect")
      y = self.conv(features=c, kernel_size=(self.kernel_size,) * 2, padding="VALID",
                    dtype=self.dtype, param_dtype=self.param_dtype, name=f"conv_{i}",
                    **inits)(y)
      y = self.norm(dtype=self.dtype, param_dtype=self.param_dtype, name=f"norm_{i}")(y)
      if i == 0:
        y = nn.relu(y)
    return x + y


class LGGANLocalBranch(nn.Module):
  """The local class-specific branch G_l from `x_encode` to f' (Sec. 3.2, Fig. 3).

  Residual blocks on `x_encode`, then two transposed-conv blocks (PyTorch
  `ConvTranspose2d(k, 2, padding 1, output_padding 1)` layout through
  `lggan.torch_conv_transpose_padding`) -> norm -> ReLU, each doubling the size.

  Attributes:
    num_res_blocks: residual blocks (9 in the official code).
    up_features: widths of the transposed-conv blocks ((128, 64)).
    kernel_size: kernel of the residual and transposed convs (3).
    init_scheme, init_gain, conv, norm, dtype, param_dtype: as `LabelEncoder`.
    conv_transpose: transposed-conv constructor, called with `features,
      kernel_size, strides=(2, 2), padding=((lo, hi), (lo, hi)), dtype,
      param_dtype, name` and the initialisers.
  """
  num_res_blocks: int = 9
  up_features: Sequence[int] = (128, 64)
  kernel_size: int = 3
  init_scheme: str = "spade"
  init_gain: float = 0.02
  conv: Callable[..., nn.Module] = Conv
  conv_transpose: Callable[..., nn.Module] = ConvTranspose
  norm: Callable[..., nn.Module] = _instance_norm
  dtype: Optional[Dtype] = None
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x_encode: Array) -> Array:
    """Maps [B, h, w, C] to f' [B, h * 2**len(up_features), ..., up_features[-1]] (>= 0).

    Raises:
      ValueError: if `x_encode` is not [B, h, w, C].
    """
    _checks.check_nhwc(x_encode, "x_encode")
    x = x_encode if self.dtype is None else jnp.asarray(x_encode, self.dtype)
    common = dict(init_scheme=self.init_scheme, init_gain=self.init_gain, conv=self.conv,
                  norm=self.norm, dtype=self.dtype, param_dtype=self.param_dtype)
    for i in range(self.num_res_blocks):
      x = ResidualBlock(kernel_size=self.kernel_size, name=f"res_{i}", **common)(x)
    pad = lggan.torch_conv_transpose_padding(self.kernel_size, 2, 1, 1)
    for i, width in enumerate(self.up_features):
      x = self.conv_transpose(features=width, kernel_size=(self.kernel_size,) * 2,
                              strides=(2, 2), padding=(pad, pad), dtype=self.dtype,
                              param_dtype=self.param_dtype, name=f"up_{i}",
                              **init_kwargs(self.init_scheme, self.init_gain))(x)
      x = nn.relu(self.norm(dtype=self.dtype, param_dtype=self.param_dtype,
                            name=f"up_norm_{i}")(x))
    return x


class LGGANHead(nn.Module):
  """LGGAN's local branch, classification module and fusion around a global image.

  Given the shared encoder's `x_encode`, the label map and the global
  generator's image `I^G`, computes f' (`LGGANLocalBranch`), the class images
  and local image `I^L` (`ClassSpecificLocalGeneration`, Eq. 1, 3/4), the
  classification loss (`SemanticClassificationModule`, Eq. 5) and the final
  image `I^C` (`AttentionFusion`, Eq. 6-7). `from_table3(row)` builds a
  Table 3 row. Without the weight map (S2-S4) the paper does not say how
  `I^G` and `I^L` are combined; this uses their mean `(I^G + I^L) / 2`, the
  line the official code leaves commented out beside the weight map.
  With `use_local=False` (S1) the final image is `I^G`.

  Attributes:
    num_classes: K (label classes).
    max_local_classes: None, or m < K (the authors' ADE20K setting is 51).
    use_local: build the local branch (False: S1).
    fusion: 'sum' (Eq. 3) or 'conv' (Eq. 4).
    use_class_loss: compute the Eq. 5 loss (else it is 0).
    use_weight_map: fuse with G_w (Eq. 6-7) instead of the mean.
    class_pooling: `SemanticClassificationModule.pooling` ('global').
    class_chunk_size, remat: memory options of `ClassSpecificLocalGeneration`.
    num_res_blocks, up_features: as `LGGANLocalBranch`.
    weight_features: widths of G_w's transposed-conv blocks ((128, 64)).
    init_scheme, init_gain, conv, conv_transpose, dtype, param_dtype: shared by
      every submodule ('spade' init by default).
  """
  num_classes: int
  max_local_classes: Optional[int] = None
  use_local: bool = True
  fusion: str = "conv"
  use_class_loss: bool = True
  use_weight_map: bool = True
  class_pooling: str = "global"
  class_chunk_size: Optional[int] = None
  remat: bool = True
  num_res_blocks: int = 9
  up_features: Sequence[int] = (128, 64)
  weight_features: Sequence[int] = (128, 64)
  init_scheme: str = "spade"
  init_gain: float = 0.02
  conv: Callable[..., nn.Module] = Conv
  conv_transpose: Callable[..., nn.Module] = ConvTranspose
  dtype: Optional[Dtype] = None
  param_dtype: Dtype = jnp.float32

  @classmethod
  def from_table3(cls, row: str, **kwargs) -> "LGGANHead":
    """The head of a Table 3 row ('S1' ... 'S5'); `kwargs` set the other fields.

    Raises:
      ValueError: if `row` is not a Table 3 row.
    """
    _checks.check_in(row, tuple(TABLE3_ROWS), "row")
    use_local, fusion, use_class_loss, use_weight_map = TABLE3_ROWS[row]
    return cls(use_local=use_local, fusion=fusion or "conv", use_class_loss=use_class_loss,
               use_weight_map=use_weight_map, **kwargs)

  @nn.compact
  def __call__(self, x_encode: Array, labels: Array, global_image: Array) -> Dict[str, Array]:
    """Runs the local branch and the fusion.

    Args:
      x_encode: [B, h, w, C] float shared encoder map (`LabelEncoder`), with
        h * 2**len(up_features) = H (and G_w's blocks likewise).
      labels: one-hot float [B, H, W, K] or int ids [B, H, W].
      global_image: [B, H, W, D] float global result `I^G` in [-1, 1].

    Returns:
      A dict: 'image' (final `I^C`, [B, H, W, D]), 'global' (`I^G`),
      'local' (`I^L`, absent for S1), 'class_images' ([B, K', H, W, D]),
      'class_loss' (scalar float32, 0 when off), 'class_logits'
      ([B, K', K'], when on), 'weights' ([B, H, W, 2], channel 0 local, when
      the weight map is on). The caller applies the adversarial, feature
      matching and perceptual losses to 'image', 'global' and 'local' and
      `lggan.class_masked_l1` (Eq. 2) to 'class_images'.

    Raises:
      ValueError: on shapes that do not match (see the submodules).
    """
    _checks.check_nhwc(global_image, "global_image")
    out = {"global": global_image, "class_loss": jnp.zeros((), jnp.float32)}
    if not self.use_local:
      out["image"] = global_image
      return out
    common = dict(init_scheme=self.init_scheme, init_gain=self.init_gain, conv=self.conv,
                  dtype=self.dtype, param_dtype=self.param_dtype)
    feats = LGGANLocalBranch(num_res_blocks=self.num_res_blocks, up_features=self.up_features,
                             conv_transpose=self.conv_transpose, name="local_branch",
                             **common)(x_encode)
    if feats.shape[1:3] != global_image.shape[1:3]:
      raise ValueError(f"f' has H, W = {feats.shape[1:3]} but `global_image` has "
                       f"{global_image.shape[1:3]}: x_encode must be "
                       f"{2 ** len(self.up_features)}x smaller than the images.")
    local, class_images = lggan.ClassSpecificLocalGeneration(
        num_classes=self.num_classes, max_local_classes=self.max_local_classes,
        out_features=global_image.shape[-1], fusion=self.fusion,
        class_chunk_size=self.class_chunk_size, remat=self.remat, name="class_generation",
        **common)(feats, labels)
    out.update(local=local, class_images=class_images)
    if self.use_class_loss:
      loss, logits = lggan_fusion.SemanticClassificationModule(
          num_classes=self.num_classes, max_local_classes=self.max_local_classes,
          pooling=self.class_pooling, init_scheme=self.init_scheme, init_gain=self.init_gain,
          dtype=self.dtype, param_dtype=self.param_dtype, name="classification")(feats, labels)
      out.update(class_loss=loss, class_logits=logits)
    if self.use_weight_map:
      fused, weights = lggan_fusion.AttentionFusion(
          hidden_features=self.weight_features, conv_transpose=self.conv_transpose,
          name="weight_map", **common)(x_encode, global_image, local, return_weights=True)
      out.update(image=fused, weights=weights)
    else:
      out["image"] = 0.5 * (global_image.astype(local.dtype) + local)
    return out
