"""LGGAN's local class-specific generation, classification module and fusion.

Source: H. Tang, D. Xu, Y. Yan, P. H. S. Torr and N. Sebe, "Local
Class-Specific and Global Image-Level Generative Adversarial Networks for
Semantic-Guided Scene Generation" (CVPR 2020), Sec. 3.2: mask-guided feature
filtering (Eq. 1), class-masked L1 (Eq. 2), fusion of the class outputs by sum
(Eq. 3) or by a conv of their concatenation (Eq. 4), the classification-based
discriminative feature learning with void classes filtered (Eq. 5), and the
two-channel softmax weight-map fusion of global and local results (Eq. 6-7).
The official PyTorch code (github.com/Ha0Tang/LGGAN,
`semantic_image_synthesis/models/networks/generator.py` and
`models/pix2pix_model.py`) was read for what the text leaves open; where it
differs from the paper the docstrings say so.

Label maps: every function here accepts either a one-hot (or soft) float map
`[B, H, W, K]` (K = `num_classes`, channel k is the mask `M_k`) or an integer
map `[B, H, W]` of class ids in [0, K); ids outside that range (e.g. 255 for
"don't care") give an all-zero mask at that pixel, so they belong to no class.
"""

import functools
from typing import Callable, Optional, Sequence, Tuple, Union

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from genattn_jax import _checks

Array = jax.Array
Dtype = jnp.dtype

FUSIONS = ("sum", "conv")
POOLINGS = ("mask", "global")


def label_masks(labels: Array, num_classes: int, spatial: Optional[Tuple[int, int, int]] = None,
                dtype: Dtype = jnp.float32, name: str = "labels") -> Array:
  """Turns a label map into per-class masks `M_k` as a [B, H, W, K] array.

  Args:
    labels: one-hot/soft float (or bool) map [B, H, W, K], or integer class ids
      [B, H, W]; ids outside [0, K) give all-zero masks.
    num_classes: K, > 0.
    spatial: optional (B, H, W) the map must match (e.g. the features' sizes).
    dtype: dtype of the returned masks.
    name: argument name used in error messages.

  Returns:
    [B, H, W, K] masks in `dtype`.

  Raises:
    ValueError: if `num_classes` <= 0, if an integer map is not rank 3, a float
      map not rank 4 or its last axis is not `num_classes`, or if (B, H, W)
      differs from `spatial`.
  """
  _checks.check_positive(num_classes, "num_classes")
  labels = jnp.asarray(labels)
  if jnp.issubdtype(labels.dtype, jnp.integer):
    _checks.check_rank(labels, 3, name, "[B, H, W] integer class ids")
    masks = jax.nn.one_hot(labels, num_classes, dtype=dtype)
  else:
    _checks.check_rank(labels, 4, name, "[B, H, W, K] one-hot masks (or [B, H, W] int ids)")
    if labels.shape[-1] != num_classes:
      raise ValueError(
          f"`{name}` has {labels.shape[-1]} class channels (shape {tuple(labels.shape)}), "
          f"expected num_classes={num_classes}.")
    masks = labels.astype(dtype)
  if spatial is not None and tuple(masks.shape[:3]) != tuple(spatial):
    raise ValueError(
        f"`{name}` has [B, H, W] = {tuple(masks.shape[:3])}, expected {tuple(spatial)} "
        "to match the features/images.")
  return masks


class _ClassBranch(nn.Module):
  """One class's sub-generator: convs on its filtered features (Sec. 3.2)."""
  out_features: int
  hidden_features: Tuple[int, ...]
  kernel_size: Tuple[int, int]
  padding: str
  activation: Callable[[Array], Array]
  out_activation: Optional[Callable[[Array], Array]]
  conv: Callable[..., nn.Module]
  dtype: Optional[Dtype]
  param_dtype: Dtype

  @nn.compact
  def __call__(self, x: Array) -> Array:
    for i, width in enumerate(self.hidden_features):
      x = self.conv(features=width, kernel_size=self.kernel_size, padding=self.padding,
                    dtype=self.dtype, param_dtype=self.param_dtype, name=f"conv_{i}")(x)
      x = self.activation(x)
    x = self.conv(features=self.out_features, kernel_size=self.kernel_size,
                  padding=self.padding, dtype=self.dtype, param_dtype=self.param_dtype,
                  name="conv_out")(x)
    return x if self.out_activation is None else self.out_activation(x)


class ClassSpecificLocalGeneration(nn.Module):
  """Local class-specific generator head `G_l` (Sec. 3.2, Eq. 1, 3, 4, Fig. 3).

  Given the shared upsampled feature map `f'` ([B, H, W, N]) and the label map,
  each class k gets its filtered features `F_k = M_k * f'` (Eq. 1) and its own
  sub-generator, with parameters independent of every other class, that makes
  a class image `I^l_k` ([B, H, W, out_features]). The K branches are one
  `nn.vmap` over a class axis (params stacked with a leading K axis, e.g.
  `params['branches']['conv_out']['kernel']` is [K, kh, kw, N, out]), so XLA
  runs them as a single batched conv. The local image is then
  'sum' (Eq. 3): `sum_k I^l_k`, or 'conv' (Eq. 4): a conv of the class-major
  channel concatenation `[I^l_1, ..., I^l_K]` followed by `fusion_activation`.

  The two deconvolution layers that make `f'` from the encoder output are not
  part of this block (they belong to the backbone). Defaults follow the
  official code, which the paper leaves open: each branch is a single 7x7 conv
  with reflect padding to 3 channels and tanh; the Eq. 4 fusion is a 3x3
  zero-padded conv followed by tanh. `hidden_features` adds more conv layers
  per branch ("several convolutional layers" in the text).

  Attributes:
    num_classes: K, the number of semantic classes (= label channels).
    out_features: channels of each class image and of the local image.
    hidden_features: widths of extra per-branch convs before the output conv.
    kernel_size: kernel size of the per-branch convs.
    padding: padding of the per-branch convs ('REFLECT' as the official code,
      or 'SAME' for zeros); 'REFLECT' needs H, W > kernel_size // 2.
    activation: nonlinearity after each hidden per-branch conv.
    out_activation: applied to each class image; None for none.
    fusion: 'sum' (Eq. 3) or 'conv' (Eq. 4).
    fusion_kernel_size: kernel size of the Eq. 4 conv (zero 'SAME' padding).
    fusion_activation: applied after the Eq. 4 conv; None for none.
    conv: conv constructor (`nn.Conv` or e.g. `SpectralConv`), called with
      `features, kernel_size, padding, dtype, param_dtype, name`.
    dtype: computation dtype; None keeps the inputs' dtype.
    param_dtype: dtype of the parameters.
  """
  num_classes: int
  out_features: int = 3
  hidden_features: Sequence[int] = ()
  kernel_size: Tuple[int, int] = (7, 7)
  padding: str = "REFLECT"
  activation: Callable[[Array], Array] = nn.relu
  out_activation: Optional[Callable[[Array], Array]] = jnp.tanh
  fusion: str = "conv"
  fusion_kernel_size: Tuple[int, int] = (3, 3)
  fusion_activation: Optional[Callable[[Array], Array]] = jnp.tanh
  conv: Callable[..., nn.Module] = nn.Conv
  dtype: Optional[Dtype] = None
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, features: Array, labels: Array) -> Tuple[Array, Array]:
    """Generates the class images and fuses them into the local image.

    Args:
      features: [B, H, W, N] float shared feature map `f'`.
      labels: one-hot float [B, H, W, K] or int ids [B, H, W] (module docstring)
        at the same B, H, W.

    Returns:
      A pair `(local_image, class_images)`: `local_image` [B, H, W, out] is
      `I^L_g` (in (-1, 1) with the default tanh activations) and
      `class_images` [B, K, H, W, out] holds `I^l_k` for every class k, for the
      class-masked L1 of Eq. 2 (`class_masked_l1`).

    Raises:
      ValueError: if `features` is not [B, H, W, N]; if `labels` has the wrong
        rank, a class count other than `num_classes` or a different B, H, W;
        or if `fusion`, `num_classes`, `out_features`, `hidden_features` or a
        kernel size is invalid.
    """
    b, h, w, _ = _checks.check_nhwc(features, "features")
    _checks.check_in(self.fusion, FUSIONS, "fusion")
    _checks.check_positive(self.out_features, "out_features")
    for width in self.hidden_features:
      _checks.check_positive(width, "hidden_features")
    kernel = _checks.to_pair(self.kernel_size, "kernel_size")
    fusion_kernel = _checks.to_pair(self.fusion_kernel_size, "fusion_kernel_size")
    if self.dtype is not None:
      features = jnp.asarray(features, self.dtype)
    masks = label_masks(labels, self.num_classes, (b, h, w), features.dtype)
    # Eq. 1, class axis first so that the branches are vmapped over it.
    filtered = jnp.einsum("bhwk,bhwn->kbhwn", masks, features)
    branches = nn.vmap(
        _ClassBranch, in_axes=0, out_axes=0, axis_size=self.num_classes,
        variable_axes={"params": 0, "batch_stats": 0},
        split_rngs={"params": True})
    class_images = branches(
        out_features=self.out_features, hidden_features=tuple(self.hidden_features),
        kernel_size=kernel, padding=self.padding, activation=self.activation,
        out_activation=self.out_activation, conv=self.conv, dtype=self.dtype,
        param_dtype=self.param_dtype, name="branches")(filtered)  # [K, B, H, W, out]
    class_images = jnp.moveaxis(class_images, 0, 1)  # [B, K, H, W, out]
    if self.fusion == "sum":  # Eq. 3
      local = jnp.sum(class_images, axis=1)
    else:  # Eq. 4
      stacked = jnp.moveaxis(class_images, 1, 3).reshape(b, h, w, -1)
      local = self.conv(features=self.out_features, kernel_size=fusion_kernel, padding="SAME",
                        dtype=self.dtype, param_dtype=self.param_dtype, name="fuse")(stacked)
      if self.fusion_activation is not None:
        local = self.fusion_activation(local)
    return local, class_images


def filtered_class_cross_entropy(logits: Array, present: Array) -> Array:
  """Cross-entropy of Eq. 5 with void (absent) classes filtered out.

  Row k of `logits[b]` is the prediction made from class k's features; its
  target is k. Rows of classes absent from sample b (`present[b, k]` False)
  do not count. The result is the mean over the counted rows,
  `sum(present * CE) / max(sum(present), 1)`, as the official code normalises
  it (the paper's Eq. 5 writes the plain sum); it is 0 when no class counts.

  Args:
    logits: [B, K, K] float classification scores.
    present: [B, K] bool/0-1 indicator `H` of valid (present) classes.

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
  targets = jnp.broadcast_to(jnp.arange(k), (b, k))
  ce = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), targets)
  weight = jnp.asarray(present, jnp.float32)
  return jnp.sum(ce * weight) / jnp.maximum(jnp.sum(weight), 1.0)


class SemanticClassificationModule(nn.Module):
  """Classification-based discriminative feature learning (Sec. 3.2, Eq. 5).

  The pack of filtered maps `F_k = M_k * f'` is pooled per class by a
  semantic-guided average pooling to a [B, K, N] tensor, a linear classifier
  (shared by all classes, as in the official code) maps each pooled vector to
  K scores, and the cross-entropy against target k for row k is averaged over
  the classes present in each sample (`filtered_class_cross_entropy`).

  Pooling: 'mask' averages `f'` over the pixels of class k (sum of `M_k * f'`
  divided by the mask area, an empty class pools to 0), which is how this
  library reads "semantic-guided average pooling"; 'global' divides by H * W
  instead, as the official code does (a plain average pool of `F_k`).

  Attributes:
    num_classes: K.
    pooling: 'mask' or 'global' (see above).
    use_bias: whether the classifier has a bias.
    dense: dense constructor (`nn.Dense` or e.g. `SpectralDense`), called with
      `features=K, use_bias, dtype, param_dtype, name='classifier'`.
    dtype: computation dtype; None keeps the inputs' dtype.
    param_dtype: dtype of the parameters.
  """
  num_classes: int
  pooling: str = "mask"
  use_bias: bool = True
  dense: Callable[..., nn.Module] = nn.Dense
  dtype: Optional[Dtype] = None
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, features: Array, labels: Array) -> Tuple[Array, Array]:
    """Computes the filtered classification loss and the class scores.

    Args:
      features: either the shared map `f'` [B, H, W, N] (filtered here by the
        masks, without building the K filtered copies) or the already
        filtered pack `[B, K, H, W, N]` of `F_k` (as returned by masking).
      labels: one-hot float [B, H, W, K] or int ids [B, H, W] at the same
        B, H, W; a class counts for sample b iff its mask is non-zero there.

    Returns:
      A pair `(loss, logits)`: scalar float32 loss (>= 0) and the [B, K, K]
      scores, row k being the prediction from class k's features.

    Raises:
      ValueError: if `features` is not rank 4 or 5 (or a pack whose K is not
        `num_classes`), if `labels` has the wrong rank, class count or
        B, H, W, or if `pooling` is invalid.
    """
    _checks.check_in(self.pooling, POOLINGS, "pooling")
    ndim = np.ndim(features)
    if ndim == 4:
      b, h, w, _ = _checks.check_nhwc(features, "features")
    elif ndim == 5:
      b, k, h, w, _ = features.shape
      if k != self.num_classes:
        raise ValueError(
            f"`features` pack has {k} classes (shape {tuple(features.shape)}), expected "
            f"num_classes={self.num_classes}.")
    else:
      raise ValueError(
          f"`features` must have rank 4 [B, H, W, N] or 5 [B, K, H, W, N], got shape "
          f"{tuple(np.shape(features))}.")
    if self.dtype is not None:
      features = jnp.asarray(features, self.dtype)
    masks = label_masks(labels, self.num_classes, (b, h, w), jnp.float32)
    area = jnp.sum(masks, axis=(1, 2))  # [B, K]
    if ndim == 4:
      summed = jnp.einsum("bhwk,bhwn->bkn", masks.astype(features.dtype), features)
    else:
      summed = jnp.sum(features, axis=(2, 3))
    if self.pooling == "mask":
      denom = jnp.maximum(area, 1.0)
    else:
      denom = jnp.full_like(area, float(h * w))
    pooled = summed / denom[..., None].astype(summed.dtype)
    logits = self.dense(features=self.num_classes, use_bias=self.use_bias, dtype=self.dtype,
                        param_dtype=self.param_dtype, name="classifier")(pooled)
    loss = filtered_class_cross_entropy(logits, area > 0)
    return loss, logits


def class_masked_l1(target: Array, class_images: Array, labels: Array) -> Array:
  """Semantic-mask guided pixel-wise L1 of Eq. 2.

  `sum_k mean(|target * M_k - I^l_k|)`, the mean taken over B, H, W and the
  image channels (as the official code, an `L1Loss` per class summed over
  classes).

  Args:
    target: [B, H, W, C] float real image `I_g` (e.g. in [-1, 1]).
    class_images: [B, K, H, W, C] float class images `I^l_k`.
    labels: one-hot float [B, H, W, K] or int ids [B, H, W] at the same B, H, W.

  Returns:
    Scalar float32 loss, >= 0.

  Raises:
    ValueError: if `target` is not [B, H, W, C], `class_images` not
      [B, K, H, W, C] matching it, or `labels` has the wrong rank, class
      count or B, H, W.
  """
  b, h, w, c = _checks.check_nhwc(target, "target")
  _checks.check_rank(class_images, 5, "class_images", "[B, K, H, W, C]")
  k = class_images.shape[1]
  if (class_images.shape[0],) + tuple(class_images.shape[2:]) != (b, h, w, c):
    raise ValueError(
        f"`class_images` must be [B, K, H, W, C] with B, H, W, C = {(b, h, w, c)} of "
        f"`target`, got shape {tuple(class_images.shape)}.")
  masks = label_masks(labels, k, (b, h, w), jnp.float32)
  masked_target = jnp.einsum("bhwk,bhwc->bkhwc", masks, jnp.asarray(target, jnp.float32))
  diff = jnp.abs(masked_target - jnp.asarray(class_images, jnp.float32))
  return jnp.sum(jnp.mean(diff, axis=(0, 2, 3, 4)))


class AttentionFusion(nn.Module):
  """Pixel-level fusion weight maps `G_w` and the fusion of Eq. 6-7 (Sec. 3.2).

  From a feature map (the shared encoder output `E(S_g)`) the weight-map
  generator predicts 2-channel logits at image resolution; a softmax over the
  two channels (Eq. 6) gives weights that sum to 1 at every pixel, and the
  result is `I^C = I^G * W_g + I^L * W_l` (Eq. 7).

  `G_w` is `len(hidden_features)` blocks of stride-2 transposed conv
  (`kernel_size`) -> `norm` -> `activation`, each doubling H and W, then a
  1x1 conv to 2 logits. The paper lists two transposed blocks (128, 64
  channels, 3x3, stride 2) and a 1x1 Conv -> InstanceNorm -> ReLU block to 2
  channels; the official code has no norm or ReLU after that last conv (a
  ReLU before the softmax would clip the logits), which is followed here. The
  norm defaults to instance norm without affine parameters (the PyTorch
  default used there). As in the official code, weight channel 0 weights the
  local image and channel 1 the global image.

  Attributes:
    hidden_features: channels of the upsampling blocks; () means `features`
      is already at image resolution.
    kernel_size: kernel size of the transposed convs.
    activation: nonlinearity after each norm.
    conv: conv constructor for the final 1x1 conv.
    conv_transpose: transposed-conv constructor (`nn.ConvTranspose`), called
      with `features, kernel_size, strides=(2, 2), padding='SAME', dtype,
      param_dtype, name`.
    norm: norm constructor called with `dtype, param_dtype, name`; None skips.
    dtype: computation dtype; None keeps the inputs' dtype.
    param_dtype: dtype of the parameters.
  """
  hidden_features: Sequence[int] = (128, 64)
  kernel_size: Tuple[int, int] = (3, 3)
  activation: Callable[[Array], Array] = nn.relu
  conv: Callable[..., nn.Module] = nn.Conv
  conv_transpose: Callable[..., nn.Module] = nn.ConvTranspose
  norm: Optional[Callable[..., nn.Module]] = functools.partial(
      nn.InstanceNorm, use_scale=False, use_bias=False)
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
        the batch sizes differ, or `features` is not `2**len(hidden_features)`
        times smaller than the images.
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
    kernel = _checks.to_pair(self.kernel_size, "kernel_size")
    x = features if self.dtype is None else jnp.asarray(features, self.dtype)
    for i, width in enumerate(self.hidden_features):
      _checks.check_positive(width, "hidden_features")
      x = self.conv_transpose(features=width, kernel_size=kernel, strides=(2, 2),
                              padding="SAME", dtype=self.dtype, param_dtype=self.param_dtype,
                              name=f"up_{i}")(x)
      if self.norm is not None:
        x = self.norm(dtype=self.dtype, param_dtype=self.param_dtype, name=f"norm_{i}")(x)
      x = self.activation(x)
    logits = self.conv(features=2, kernel_size=(1, 1), padding="SAME", dtype=self.dtype,
                       param_dtype=self.param_dtype, name="weights")(x)
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
