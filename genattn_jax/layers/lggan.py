"""LGGAN's local class-specific generation (Eq. 1, 3, 4) and class-masked L1 (Eq. 2).

Source: H. Tang, D. Xu, Y. Yan, P. H. S. Torr and N. Sebe, "Local
Class-Specific and Global Image-Level Generative Adversarial Networks for
Semantic-Guided Scene Generation" (CVPR 2020), Sec. 3.2: mask-guided feature
filtering (Eq. 1), class-masked L1 (Eq. 2), fusion of the class outputs by sum
(Eq. 3) or by a conv of their concatenation (Eq. 4).
The official PyTorch code (github.com/Ha0Tang/LGGAN,
`semantic_image_synthesis/models/networks/generator.py`, its `ade20k/`
variant and `models/pix2pix_model.py`) was read for what the text leaves
open; where it differs from the paper the docstrings say so. The classification
module (Eq. 5) and the weight-map fusion (Eq. 6-7) are in
`genattn_jax.layers.lggan_fusion`.

Label maps: every function here accepts either a one-hot (or soft) float map
`[B, H, W, K]` (K = `num_classes`, channel k is the mask `M_k`) or an integer
map `[B, H, W]` of class ids in [0, K); ids outside that range (e.g. 255 for
"don't care") give an all-zero mask at that pixel, so they belong to no class.

Local classes: with `max_local_classes = m < K`, classes 0..m-1 keep their own
branch and classes m..K-1 share one merged branch (their masks summed), so
there are m + 1 local branches. This is the authors' ADE20K setting
(`ade20k/models/networks/generator.py`: label channels 0-50 separate, 51-150
summed, 52 branches); ADE20K's ids are ordered by pixel frequency, so these
are the 51 most frequent classes. Other datasets need ids in that order.
"""

import math
from typing import Callable, Optional, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from genattn_jax import _checks
from genattn_jax._dtypes import wide
from genattn_jax.layers.conv import Conv, conv_general_dilated
from genattn_jax.layers.dagan import init_kwargs

Array = jax.Array
Dtype = jnp.dtype

FUSIONS = ("sum", "conv")
BRANCH_PADDINGS = ("REFLECT", "SAME")


def torch_conv_transpose_padding(kernel_size: int, stride: int, padding: int,
                                 output_padding: int = 0) -> Tuple[int, int]:
  """Explicit (low, high) padding that makes `nn.ConvTranspose` match PyTorch.

  PyTorch's `ConvTranspose2d(k, s, p, output_padding=op)` scatters input
  pixel i to outputs `s * i + u - p` (u = 0..k-1) and keeps
  `(H - 1) * s - 2p + k + op` of them. As a correlation of the s-dilated
  input that is the padding `(k - 1 - p, k - 1 - p + op)`, which `lax`
  takes as explicit padding; the kernel is then PyTorch's weight flipped in
  space (`kernel[u, v, i, o] = weight[i, o, k-1-u, k-1-v]`). Flax's
  'SAME' pads (2, 1) for k=3, s=2, i.e. shifts the output by one pixel.

  Args:
    kernel_size: k (> 0).
    stride: s (> 0).
    padding: p, 0 <= p <= k - 1.
    output_padding: op, 0 <= op < s.

  Returns:
    The pair `(k - 1 - p, k - 1 - p + op)`.

  Raises:
    ValueError: if an argument is out of range.
  """
  _checks.check_positive(kernel_size, "kernel_size")
  _checks.check_positive(stride, "stride")
  if not 0 <= padding <= kernel_size - 1:
    raise ValueError(f"`padding` must be in [0, kernel_size - 1 = {kernel_size - 1}], "
                     f"got {padding}.")
  if not 0 <= output_padding < stride:
    raise ValueError(f"`output_padding` must be in [0, stride = {stride}), got {output_padding}.")
  low = kernel_size - 1 - padding
  return low, low + output_padding


def num_local_branches(num_classes: int, max_local_classes: Optional[int] = None) -> int:
  """Number of local branches: K, or m + 1 when `max_local_classes = m < K`.

  Raises:
    ValueError: if `num_classes` <= 0 or `max_local_classes` <= 0.
  """
  _checks.check_positive(num_classes, "num_classes")
  if max_local_classes is None or max_local_classes >= num_classes:
    return num_classes
  _checks.check_positive(max_local_classes, "max_local_classes")
  return max_local_classes + 1


def label_masks(labels: Array, num_classes: int, spatial: Optional[Tuple[int, int, int]] = None,
                dtype: Dtype = jnp.float32, name: str = "labels",
                max_local_classes: Optional[int] = None) -> Array:
  """Turns a label map into per-branch masks `M_k` as a [B, H, W, K'] array.

  Args:
    labels: one-hot/soft float (or bool) map [B, H, W, K], or integer class ids
      [B, H, W]; ids outside [0, K) give all-zero masks.
    num_classes: K, > 0.
    spatial: optional (B, H, W) the map must match (e.g. the features' sizes).
    dtype: dtype of the returned masks.
    name: argument name used in error messages.
    max_local_classes: None, or m: classes >= m are merged into one last mask
      (module docstring); K' = `num_local_branches(K, m)`.

  Returns:
    [B, H, W, K'] masks in `dtype`.

  Raises:
    ValueError: if `num_classes` <= 0, if an integer map is not rank 3, a float
      map not rank 4 or its last axis is not `num_classes`, if (B, H, W)
      differs from `spatial`, or if `max_local_classes` <= 0.
  """
  branches = num_local_branches(num_classes, max_local_classes)
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
  if branches < num_classes:
    m = branches - 1
    masks = jnp.concatenate(
        [masks[..., :m], jnp.sum(masks[..., m:], axis=-1, keepdims=True)], axis=-1)
  return masks


class _StackedConvParams(nn.Module):
  """Kernels [K, kh, kw, C_in, C_out] and biases [K, C_out] of K independent convs."""
  num: int
  kernel_size: Tuple[int, int]
  in_features: int
  out_features: int
  init_scheme: str
  init_gain: float
  param_dtype: Dtype

  @nn.compact
  def __call__(self) -> Tuple[Array, Array]:
    inits = init_kwargs(self.init_scheme, self.init_gain, stacked=True)
    kernel_init = inits.get("kernel_init", nn.initializers.lecun_normal(batch_axis=(0,)))
    bias_init = inits.get("bias_init", nn.initializers.zeros_init())
    kernel = self.param("kernel", kernel_init,
                        (self.num,) + tuple(self.kernel_size) + (self.in_features,
                                                                  self.out_features),
                        self.param_dtype)
    bias = self.param("bias", bias_init, (self.num, self.out_features), self.param_dtype)
    return kernel, bias


class ClassSpecificLocalGeneration(nn.Module):
  """Local class-specific generator head `G_l` (Sec. 3.2, Eq. 1, 3, 4, Fig. 3).

  Given the shared upsampled feature map `f'` ([B, H, W, N]) and the label map,
  each class k gets its filtered features `F_k = M_k * f'` (Eq. 1) and its own
  sub-generator, with parameters independent of every other class, that makes
  a class image `I^l_k` ([B, H, W, out_features]). The local image is then
  'sum' (Eq. 3): `sum_k I^l_k`, or 'conv' (Eq. 4): a conv of the class-major
  channel concatenation `[I^l_1, ..., I^l_K]` followed by `fusion_activation`.

  Parameters are stacked over classes: `params['branches']['conv_out']`
  holds `kernel` [K', kh, kw, C_in, out] and `bias` [K', out] (hidden layers
  `conv_0`, `conv_1`, ...), K' = `num_local_branches(num_classes,
  max_local_classes)`; the layout does not depend on `class_chunk_size`.

  Memory: the K' filtered copies of `f'` are the cost (151 x 64 x 256 x 256
  floats = 2.5 GB for ADE20K, plus their padded copies and gradients). With
  `class_chunk_size = c` the branches run as a `lax.scan` over ceil(K'/c)
  chunks of c classes (inside a chunk an unrolled loop of plain convs), the
  filtering done inside the chunk, and with `remat` each chunk is
  rematerialised in the backward pass (`jax.checkpoint`), so only one chunk's
  activations are alive at a time. K' is padded to a multiple of c with empty
  classes whose outputs are dropped. None runs all K' at once (fastest).

  Defaults follow the official code, which the paper leaves open: each branch
  is a single 7x7 conv with reflect padding to 3 channels and tanh
  (`deconv5_k`); the Eq. 4 fusion is a 3x3 zero-padded conv followed by tanh
  (`deconv9`). `hidden_features` adds more conv layers per branch ("several
  convolutional layers" in the text). The two deconvolutions that make `f'`
  are in `genattn_jax.models.lggan_heads.LGGANLocalBranch`.

  Attributes:
    num_classes: K, the number of semantic classes (= label channels).
    max_local_classes: None, or m < K to merge classes >= m into one branch
      (module docstring; the authors' ADE20K setting is 51).
    out_features: channels of each class image and of the local image.
    hidden_features: widths of extra per-branch convs before the output conv.
    kernel_size: odd kernel size of the per-branch convs.
    padding: 'REFLECT' (as the official code; needs H, W > kernel_size // 2)
      or 'SAME' (zeros).
    activation: nonlinearity after each hidden per-branch conv.
    out_activation: applied to each class image; None for none.
    fusion: 'sum' (Eq. 3) or 'conv' (Eq. 4).
    fusion_kernel_size: kernel size of the Eq. 4 conv (zero 'SAME' padding).
    fusion_activation: applied after the Eq. 4 conv; None for none.
    class_chunk_size: None (all branches at once) or classes per chunk.
    remat: rematerialise each chunk in the backward pass (when chunked).
    init_scheme: 'spade' (xavier-normal gain `init_gain`, zero bias, as the official
      SPADE-based code; default) or 'default' (lecun-normal per class kernel,
      zero bias, and the `conv` constructor's own for the fusion conv).
    init_gain: xavier gain for init_scheme='spade'.
    conv: conv constructor for the Eq. 4 fusion conv (`nn.Conv` or e.g.
      `SpectralConv`); the per-class convs are plain convs on the stacked
      parameters (as the official `deconv5_k`, which are not normalised).
    dtype: computation dtype; None keeps the inputs' dtype.
    param_dtype: dtype of the parameters.
  """
  num_classes: int
  max_local_classes: Optional[int] = None
  out_features: int = 3
  hidden_features: Sequence[int] = ()
  kernel_size: Tuple[int, int] = (7, 7)
  padding: str = "REFLECT"
  activation: Callable[[Array], Array] = nn.relu
  out_activation: Optional[Callable[[Array], Array]] = jnp.tanh
  fusion: str = "conv"
  fusion_kernel_size: Tuple[int, int] = (3, 3)
  fusion_activation: Optional[Callable[[Array], Array]] = jnp.tanh
  class_chunk_size: Optional[int] = None
  remat: bool = True
  init_scheme: str = "spade"
  init_gain: float = 0.02
  conv: Callable[..., nn.Module] = Conv
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
      `class_images` [B, K', H, W, out] holds `I^l_k` for every branch k, for
      the class-masked L1 of Eq. 2 (`class_masked_l1`).

    Raises:
      ValueError: if `features` is not [B, H, W, N]; if `labels` has the wrong
        rank, a class count other than `num_classes` or a different B, H, W;
        or if `fusion`, `padding`, `init_scheme`, `num_classes`, `max_local_classes`,
        `out_features`, `hidden_features`, `class_chunk_size` or a kernel size
        is invalid (branch kernels must be odd).
    """
    b, h, w, n = _checks.check_nhwc(features, "features")
    _checks.check_in(self.fusion, FUSIONS, "fusion")
    _checks.check_in(self.padding, BRANCH_PADDINGS, "padding")
    _checks.check_positive(self.out_features, "out_features")
    for width in self.hidden_features:
      _checks.check_positive(width, "hidden_features")
    kernel = _checks.to_pair(self.kernel_size, "kernel_size")
    if kernel[0] % 2 == 0 or kernel[1] % 2 == 0:
      raise ValueError(f"`kernel_size` must be odd (centred per-class convs), got {kernel}.")
    fusion_kernel = _checks.to_pair(self.fusion_kernel_size, "fusion_kernel_size")
    if self.dtype is not None:
      features = jnp.asarray(features, self.dtype)
    masks = label_masks(labels, self.num_classes, (b, h, w), features.dtype,
                        max_local_classes=self.max_local_classes)
    k_total = masks.shape[-1]
    chunk = k_total if self.class_chunk_size is None else self.class_chunk_size
    _checks.check_positive(chunk, "class_chunk_size")
    chunk = min(chunk, k_total)
    n_chunks = math.ceil(k_total / chunk)

    widths = list(self.hidden_features) + [self.out_features]
    names = [f"conv_{i}" for i in range(len(self.hidden_features))] + ["conv_out"]
    bank = _BranchBank(num=k_total, names=tuple(names), widths=tuple(widths), in_features=n,
                       kernel_size=kernel, init_scheme=self.init_scheme, init_gain=self.init_gain,
                       param_dtype=self.param_dtype, name="branches")
    layers = bank()
    dtype = features.dtype
    layers = [(kk.astype(dtype), bb.astype(dtype)) for kk, bb in layers]
    pad_mode = "reflect" if self.padding == "REFLECT" else "constant"
    ph, pw = kernel[0] // 2, kernel[1] // 2
    if pad_mode == "reflect" and (h <= ph or w <= pw):
      raise ValueError(f"'REFLECT' padding of a {kernel} kernel needs H, W > {(ph, pw)}, "
                       f"got `features` of shape {(b, h, w, n)}.")
    activation, out_activation = self.activation, self.out_activation

    def one_class(mask, params):  # mask [B, H, W]; params: list of (kernel, bias)
      x = features * mask[..., None]  # Eq. 1
      for i, (kk, bb) in enumerate(params):
        x = jnp.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)), mode=pad_mode)
        x = conv_general_dilated(  # layers.conv: the CPU kernel gradient
            x, kk, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC")) + bb
        if i < len(params) - 1:
          x = activation(x)
        elif out_activation is not None:
          x = out_activation(x)
      return x

    def run_chunk(carry, xs):
      # An unrolled loop of plain convs: `jax.vmap` over per-class kernels
      # becomes a grouped conv, which XLA:CPU runs about 15x slower.
      chunk_masks, chunk_params = xs
      return carry, jnp.stack([
          one_class(chunk_masks[i], [(kk[i], bb[i]) for kk, bb in chunk_params])
          for i in range(chunk)])

    padded = n_chunks * chunk - k_total

    def split(x):  # [K', ...] -> [n_chunks, chunk, ...], empty classes appended
      x = jnp.pad(x, [(0, padded)] + [(0, 0)] * (x.ndim - 1))
      return x.reshape((n_chunks, chunk) + x.shape[1:])

    xs = (split(jnp.moveaxis(masks, -1, 0)),
          [(split(kk), split(bb)) for kk, bb in layers])
    if n_chunks == 1:
      class_images = run_chunk(None, jax.tree_util.tree_map(lambda x: x[0], xs))[1][None]
    else:
      body = jax.checkpoint(run_chunk) if self.remat else run_chunk
      class_images = jax.lax.scan(body, None, xs)[1]
    class_images = class_images.reshape((n_chunks * chunk, b, h, w, self.out_features))
    class_images = class_images[:k_total]  # [K', B, H, W, out]
    if self.fusion == "sum":  # Eq. 3
      local = jnp.sum(class_images, axis=0)
    else:  # Eq. 4, channels class-major: [I_1 (out ch), I_2, ...]
      stacked = jnp.moveaxis(class_images, 0, 3).reshape(b, h, w, -1)
      local = self.conv(features=self.out_features, kernel_size=fusion_kernel, padding="SAME",
                        dtype=self.dtype, param_dtype=self.param_dtype, name="fuse",
                        **init_kwargs(self.init_scheme, self.init_gain))(stacked)
      if self.fusion_activation is not None:
        local = self.fusion_activation(local)
    return local, jnp.moveaxis(class_images, 0, 1)


class _BranchBank(nn.Module):
  """The stacked per-class conv parameters of `ClassSpecificLocalGeneration`."""
  num: int
  names: Tuple[str, ...]
  widths: Tuple[int, ...]
  in_features: int
  kernel_size: Tuple[int, int]
  init_scheme: str
  init_gain: float
  param_dtype: Dtype

  @nn.compact
  def __call__(self):
    layers, cin = [], self.in_features
    for name, width in zip(self.names, self.widths):
      layers.append(_StackedConvParams(
          num=self.num, kernel_size=self.kernel_size, in_features=cin, out_features=width,
          init_scheme=self.init_scheme, init_gain=self.init_gain, param_dtype=self.param_dtype, name=name)())
      cin = width
    return layers


def class_masked_l1(target: Array, class_images: Array, labels: Array,
                    num_classes: Optional[int] = None, max_local_classes: Optional[int] = None,
                    present_only: bool = False) -> Array:
  """Semantic-mask guided pixel-wise L1 of Eq. 2.

  `sum_k mean(|target * M_k - I^l_k|)`, the mean taken over B, H, W and the
  image channels (as the official code: an `L1Loss` per class, summed over
  classes). As Eq. 2 and the code, every branch counts by default: an absent
  class's image is pulled to 0 (its masked target). With `present_only` a
  class counts only in the samples where it is present (the per-class mean
  is then over those samples' pixels).

  Args:
    target: [B, H, W, C] float real image `I_g` (e.g. in [-1, 1]).
    class_images: [B, K', H, W, C] float class images `I^l_k`.
    labels: one-hot float [B, H, W, K] or int ids [B, H, W] at the same B, H, W.
    num_classes: K; None means K' (no merged branch).
    max_local_classes: as `ClassSpecificLocalGeneration`; K' must equal
      `num_local_branches(num_classes, max_local_classes)`.
    present_only: count only the (sample, class) pairs whose mask is non-zero.

  Returns:
    Scalar float32 loss, >= 0.

  Raises:
    ValueError: if `target` is not [B, H, W, C], `class_images` not
      [B, K', H, W, C] matching it and the branch count, or `labels` has the
      wrong rank, class count or B, H, W.
  """
  b, h, w, c = _checks.check_nhwc(target, "target")
  _checks.check_rank(class_images, 5, "class_images", "[B, K, H, W, C]")
  k = class_images.shape[1]
  if (class_images.shape[0],) + tuple(class_images.shape[2:]) != (b, h, w, c):
    raise ValueError(
        f"`class_images` must be [B, K, H, W, C] with B, H, W, C = {(b, h, w, c)} of "
        f"`target`, got shape {tuple(class_images.shape)}.")
  num_classes = k if num_classes is None else num_classes
  if num_local_branches(num_classes, max_local_classes) != k:
    raise ValueError(
        f"`class_images` has {k} branches, expected "
        f"{num_local_branches(num_classes, max_local_classes)} for num_classes={num_classes}, "
        f"max_local_classes={max_local_classes}.")
  masks = label_masks(labels, num_classes, (b, h, w), jnp.float32,
                      max_local_classes=max_local_classes)
  masked_target = jnp.einsum("bhwk,bhwc->bkhwc", masks, wide(target))
  diff = jnp.abs(masked_target - wide(class_images))
  per_sample = jnp.sum(diff, axis=(2, 3, 4))  # [B, K']
  if not present_only:
    return jnp.sum(per_sample) / (b * h * w * c)
  present = (jnp.sum(masks, axis=(1, 2)) > 0).astype(jnp.float32)  # [B, K']
  count = jnp.sum(present, axis=0) * (h * w * c)  # [K']
  return jnp.sum(jnp.sum(per_sample * present, axis=0) / jnp.maximum(count, 1.0))
