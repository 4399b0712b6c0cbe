"""LGGAN's classification-based feature learning (Eq. 5) and weight-map fusion (Eq. 6-7).

Source: H. Tang, D. Xu, Y. Yan, P. H. S. Torr and N. Sebe, "Local
Class-Specific and Global Image-Level Generative Adversarial Networks for
Semantic-Guided Scene Generation" (CVPR 2020), Sec. 3.2: the classification
module with void classes filtered (Eq. 5) and the two-channel softmax weight
map G_w that fuses the global and local results (Eq. 6-7). The local
class-specific generation (Eq. 1, 3, 4), the class-masked L1 (Eq. 2) and the
label-map conventions (one-hot or integer maps, `max_local_classes`) are in
`genattn_jax.layers.lggan`. The official PyTorch code
(github.com/Ha0Tang/LGGAN, `semantic_image_synthesis/models/networks/generator.py`)
was read for what the text leaves open; where it differs from the paper the
docstrings say so.
"""

import functools
from typing import Callable, Optional, Sequence, Tuple, Union

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from genattn_jax import _checks
from genattn_jax._dtypes import wide
from genattn_jax.layers.conv import Conv, ConvTranspose
from genattn_jax.layers.dagan import init_kwargs
from genattn_jax.layers.lggan import (label_masks, num_local_branches,
                                      torch_conv_transpose_padding)

Array = jax.Array
Dtype = jnp.dtype

POOLINGS = ("global", "mask")


def class_cross_entropy(logits: Array) -> Array:
  """Per-row cross-entropy of Eq. 5: row k of `logits[b]` against target k.

  Args:
    logits: [B, K, K] float classification scores (row k from class k's features).

  Returns:
    [B, K] float32 cross-entropies, >= 0 (not yet filtered by the classes present).

  Raises:
    ValueError: if `logits` is not [B, K, K].
  """
  _checks.check_rank(logits, 3, "logits", "[B, K, K]")
  b, k, k2 = logits.shape
  if k != k2:
    raise ValueError(f"`logits` must be [B, K, K], got shape {tuple(logits.shape)}.")
  targets = jnp.broadcast_to(jnp.arange(k), (b, k))
  return optax.softmax_cross_entropy_with_integer_labels(wide(logits), targets)


def filtered_class_cross_entropy(logits: Array, present: Array,
                                 axis_name: Optional[str] = None) -> Array:
  """Cross-entropy of Eq. 5 with void (absent) classes filtered out.

  Row k of `logits[b]` is the prediction made from class k's features; its
  target is k. Rows of classes absent from sample b (`present[b, k]` False)
  do not count. The result is the mean over the counted rows,
  `sum(present * CE) / max(sum(present), 1)`, as the official code normalises
  it (the paper's Eq. 5 writes the plain sum); it is 0 when no class counts.

  With `axis_name` (a pmap / shard_map axis over which the batch is split) the mean is over
  the counted rows of the global batch: this device's sum over the global count, times the
  device count, so that the mean of the per-device gradients is the gradient of the global
  mean (per-device means would weight devices by their own counts).

  Args:
    logits: [B, K, K] float classification scores.
    present: [B, K] bool/0-1 indicator `H` of valid (present) classes.
    axis_name: batch axis to normalise over (None: this array is the whole batch).

  Returns:
    Scalar float32 loss, >= 0.

  Raises:
    ValueError: if `logits` is not [B, K, K] or `present` not [B, K].
  """
  _checks.check_rank(logits, 3, "logits", "[B, K, K]")
  b, k, k2 = logits.shape
  if k != k2:
    raise ValueError(f"`logits` must be [B, K, K], got shape {tuple(logits.shape)}.")
  if tuple(np.shape(present)) != (b, k):
    raise ValueError(f"`present` must be [B, K] = {(b, k)}, got shape {tuple(np.shape(present))}.")
  weight = jnp.asarray(present, jnp.float32)
  total, count, n_dev = jnp.sum(class_cross_entropy(logits) * weight), jnp.sum(weight), 1.0
  if axis_name is not None:
    count = jax.lax.psum(count, axis_name)
    n_dev = jax.lax.psum(1.0, axis_name)
  return total / jnp.maximum(count, 1.0) * n_dev


class SemanticClassificationModule(nn.Module):
  """Classification-based discriminative feature learning (Sec. 3.2, Eq. 5).

  The pack of filtered maps `F_k = M_k * f'` is pooled per class by the
  "semantic-guided averaging pooling" to a [B, K', N] tensor, a linear
  classifier (shared by all classes, as in the official code) maps each pooled
  vector to K' scores, and the cross-entropy against target k for row k is
  averaged over the classes present in each sample
  (`filtered_class_cross_entropy`).

  Pooling: 'global' (default) is the average pool of `F_k` over all H * W
  pixels, as the authors' code computes Eq. 5 (`AdaptiveAvgPool2d(1)` on the
  filtered maps), i.e. the class's sum divided by H * W; 'mask' divides by
  the class's mask area instead (a mean over the class's own pixels; an
  empty class pools to 0), another reading of "semantic-guided" pooling that
  is offered as an option.

  Attributes:
    num_classes: K.
    max_local_classes: None, or m < K to merge classes >= m into one branch
      (module docstring); the classifier then has K' = m + 1 outputs.
    pooling: 'global' or 'mask' (see above).
    use_bias: whether the classifier has a bias.
    init_scheme: 'spade' (xavier-normal gain `init_gain`, zero bias; default) or
      'default' (the `dense` constructor's own initialisers).
    init_gain: xavier gain for init_scheme='spade'.
    dense: dense constructor (`nn.Dense` or e.g. `SpectralDense`), called with
      `features=K', use_bias, dtype, param_dtype, name='classifier'`.
    dtype: computation dtype; None keeps the inputs' dtype.
    param_dtype: dtype of the parameters.
  """
  num_classes: int
  max_local_classes: Optional[int] = None
  pooling: str = "global"
  use_bias: bool = True
  init_scheme: str = "spade"
  init_gain: float = 0.02
  dense: Callable[..., nn.Module] = nn.Dense
  dtype: Optional[Dtype] = None
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, features: Array, labels: Array) -> Tuple[Array, Array]:
    """Computes the filtered classification loss and the class scores.

    Args:
      features: either the shared map `f'` [B, H, W, N] (filtered here by the
        masks, without building the K' filtered copies) or the already
        filtered pack `[B, K', H, W, N]` of `F_k`.
      labels: one-hot float [B, H, W, K] or int ids [B, H, W] at the same
        B, H, W; a class counts for sample b iff its mask is non-zero there.

    Returns:
      A pair `(loss, logits)`: scalar float32 loss (>= 0) and the [B, K', K']
      scores, row k being the prediction from class k's features.

    Raises:
      ValueError: if `features` is not rank 4 or 5 (or a pack whose K' is not
        the number of branches), if `labels` has the wrong rank, class count
        or B, H, W, or if `pooling` or `init_scheme` is invalid.
    """
    _checks.check_in(self.pooling, POOLINGS, "pooling")
    branches = num_local_branches(self.num_classes, self.max_local_classes)
    ndim = np.ndim(features)
    if ndim == 4:
      b, h, w, _ = _checks.check_nhwc(features, "features")
    elif ndim == 5:
      b, k, h, w, _ = features.shape
      if k != branches:
        raise ValueError(
            f"`features` pack has {k} classes (shape {tuple(features.shape)}), expected "
            f"{branches} local branches.")
    else:
      raise ValueError(
          f"`features` must have rank 4 [B, H, W, N] or 5 [B, K, H, W, N], got shape "
          f"{tuple(np.shape(features))}.")
    if self.dtype is not None:
      features = jnp.asarray(features, self.dtype)
    masks = label_masks(labels, self.num_classes, (b, h, w), jnp.float32,
                        max_local_classes=self.max_local_classes)
    area = jnp.sum(masks, axis=(1, 2))  # [B, K']
    if ndim == 4:
      summed = jnp.einsum("bhwk,bhwn->bkn", masks.astype(features.dtype), features)
    else:
      summed = jnp.sum(features, axis=(2, 3))
    if self.pooling == "mask":
      denom = jnp.maximum(area, 1.0)
    else:
      denom = jnp.full_like(area, float(h * w))
    pooled = summed / denom[..., None].astype(summed.dtype)
    logits = self.dense(features=branches, use_bias=self.use_bias, dtype=self.dtype,
                        param_dtype=self.param_dtype, name="classifier",
                        **init_kwargs(self.init_scheme, self.init_gain))(pooled)
    loss = filtered_class_cross_entropy(logits, area > 0)
    return loss, logits


class AttentionFusion(nn.Module):
  """Pixel-level fusion weight maps `G_w` and the fusion of Eq. 6-7 (Sec. 3.2).

  From a feature map (the shared encoder output `E(S_g)`) the weight-map
  generator predicts 2-channel logits at image resolution; a softmax over the
  two channels (Eq. 6) gives weights that sum to 1 at every pixel, and the
  result is `I^C = I^G * W_g + I^L * W_l` (Eq. 7).

  `G_w` is `len(hidden_features)` blocks of stride-2 transposed conv
  (`kernel_size`) -> `norm` -> `activation`, each doubling H and W, then a
  1x1 conv to 2 logits. The transposed convs are PyTorch's
  `ConvTranspose2d(k, 2, padding=1, output_padding=1)` of the official code,
  built with the explicit padding of `torch_conv_transpose_padding` ((1, 2)
  for k=3; Flax's 'SAME' would shift every block's output by one pixel). The
  paper lists two transposed blocks (128, 64 channels, 3x3, stride 2) and a
  1x1 Conv -> InstanceNorm -> ReLU block to 2 channels; the official code has
  no norm or ReLU after that last conv (a ReLU before the softmax would clip
  the logits), which is followed here. The norm defaults to instance norm
  without affine parameters, eps 1e-5 and a two-pass variance (PyTorch's `InstanceNorm2d`
  defaults used there). As in the official code, weight channel 0 weights the
  local image and channel 1 the global image.

  Attributes:
    hidden_features: channels of the upsampling blocks; () means `features`
      is already at image resolution.
    kernel_size: kernel size of the transposed convs (int; PyTorch padding 1,
      output_padding 1, so every block exactly doubles H and W).
    activation: nonlinearity after each norm.
    init_scheme: 'spade' (xavier-normal gain `init_gain`, zero bias; default) or
      'default' (the constructors' own initialisers).
    init_gain: xavier gain for init_scheme='spade'.
    conv: conv constructor for the final 1x1 conv.
    conv_transpose: transposed-conv constructor (`nn.ConvTranspose` or
      `SpectralConvTranspose`), called with `features, kernel_size,
      strides=(2, 2), padding=((lo, hi), (lo, hi)), dtype, param_dtype, name`.
    norm: norm constructor called with `dtype, param_dtype, name`; None skips.
    dtype: computation dtype; None keeps the inputs' dtype.
    param_dtype: dtype of the parameters.
  """
  hidden_features: Sequence[int] = (128, 64)
  kernel_size: int = 3
  activation: Callable[[Array], Array] = nn.relu
  init_scheme: str = "spade"
  init_gain: float = 0.02
  conv: Callable[..., nn.Module] = Conv
  conv_transpose: Callable[..., nn.Module] = ConvTranspose
  norm: Optional[Callable[..., nn.Module]] = functools.partial(
      nn.InstanceNorm, epsilon=1e-5, use_scale=False, use_bias=False,
      use_fast_variance=False)
  dtype: Optional[Dtype] = None
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, features: Array, global_image: Array, local_image: Array,
               return_weights: bool = False) -> Union[Array, Tuple[Array, Array]]:
    """Fuses the global and local images with predicted per-pixel weights.

    Args:
      features: [B, h, w, C] float map with `h * 2**len(hidden_features) = H`
        and likewise for w.
      global_image: [B, H, W, D] float global result `I^G_g`.
      local_image: [B, H, W, D] float local result `I^L_g`.
      return_weights: also return the weights.

    Returns:
      The fused [B, H, W, D] image `I^C_g`, or with `return_weights` the pair
      `(fused, weights)` where `weights` [B, H, W, 2] float32 are in [0, 1],
      sum to 1 per pixel, channel 0 = `W_l` (local), channel 1 = `W_g`.

    Raises:
      ValueError: if any input is not rank 4, the images differ in shape,
        the batch sizes differ, `features` is not `2**len(hidden_features)`
        times smaller than the images, or `kernel_size` / `init_scheme` is invalid.
    """
    b, h, w, _ = _checks.check_nhwc(features, "features")
    gb, gh, gw, gc = _checks.check_nhwc(global_image, "global_image")
    _checks.check_nhwc(local_image, "local_image")
    if tuple(local_image.shape) != tuple(global_image.shape):
      raise ValueError(
          f"`local_image` shape {tuple(local_image.shape)} must equal `global_image` "
          f"shape {tuple(global_image.shape)}.")
    scale = 2 ** len(self.hidden_features)
    if b != gb or (h * scale, w * scale) != (gh, gw):
      raise ValueError(
          f"`features` is [B, h, w] = {(b, h, w)}; with {len(self.hidden_features)} "
          f"upsampling blocks it must be {(gb, gh // scale, gw // scale)} to reach the "
          f"images' [B, H, W] = {(gb, gh, gw)}.")
    if not isinstance(self.kernel_size, int):
      raise ValueError(f"`kernel_size` must be an int, got {self.kernel_size!r}.")
    pad = torch_conv_transpose_padding(self.kernel_size, 2, 1, 1)
    inits = init_kwargs(self.init_scheme, self.init_gain)
    x = features if self.dtype is None else jnp.asarray(features, self.dtype)
    for i, width in enumerate(self.hidden_features):
      _checks.check_positive(width, "hidden_features")
      x = self.conv_transpose(features=width, kernel_size=(self.kernel_size,) * 2,
                              strides=(2, 2), padding=(pad, pad), dtype=self.dtype,
                              param_dtype=self.param_dtype, name=f"up_{i}", **inits)(x)
      if self.norm is not None:
        x = self.norm(dtype=self.dtype, param_dtype=self.param_dtype, name=f"norm_{i}")(x)
      x = self.activation(x)
    logits = self.conv(features=2, kernel_size=(1, 1), padding="SAME", dtype=self.dtype,
                       param_dtype=self.param_dtype, name="weights", **inits)(x)
    weights = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)  # Eq. 6
    out_dtype = jnp.result_type(global_image, local_image)
    if self.dtype is not None:
      out_dtype = self.dtype
    w_local = weights[..., 0:1].astype(out_dtype)
    w_global = weights[..., 1:2].astype(out_dtype)
    fused = global_image.astype(out_dtype) * w_global + local_image.astype(out_dtype) * w_local
    if return_weights:
      return fused, weights
    return fused
