"""Atrous Spatial Pyramid Pooling (ASPP), the DeepLab v3 form.

Source: L.-C. Chen, G. Papandreou, F. Schroff, H. Adam, "Rethinking Atrous
Convolution for Semantic Image Segmentation" (DeepLab v3, arXiv:1706.05587),
Sec. 3.3 and Fig. 5.

The SPAP paper (Sun & Wu, Sec. 4.4, Tables 1-3) compares against a "vanilla ASPP"
baseline, citing DeepLab [5] (Chen et al., TPAMI 2017) and describing it only as parallel
atrous convolutions "concatenated together, followed by a 1 × 1 convolution" (Sec. 1); it
names no image-pooling branch and no norm. Which ASPP it ran is therefore a reading. The
CycleGAN ASPP configs use this module with its v3 branches (1x1, atrous 3x3, image pooling,
no norm); the CelebA-HQ config `celebahq128_sndcgan_aspp.py` reads it as SPAP's own pyramid
with concatenation + 1x1 (no image pooling), the reading whose parameter count is closest
to Table 1's (see that config).
"""

from typing import Callable, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from genattn_jax import _checks
from genattn_jax.layers.conv import Conv

Array = jax.Array
Dtype = jnp.dtype


class ASPP(nn.Module):
  """DeepLab v3 ASPP: parallel 1x1 / atrous 3x3 / image-pool branches, 1x1 fuse.

  Branches, each `conv -> norm -> activation` with `features` channels:

  * a 1x1 conv;
  * one 3x3 conv per rate in `rates` with that dilation (DeepLab v3 uses
    (6, 12, 18) at output stride 16 and doubles them at output stride 8);
  * with `image_pooling=True`, image-level features: global average over H and
    W, a 1x1 conv, then broadcast back to H x W (the paper's bilinear
    upsampling of a 1x1 map is a broadcast, so every position of this branch
    holds the same vector; it is sown as `('intermediates', 'image_pool')`).

  The branches are concatenated on channels and fused by a 1x1 conv ->
  norm -> activation to `features` channels. The official code also ends
  with dropout in some ports (torchvision); that is left to the caller.

  Normalisation: `norm=None` (default) uses no normalisation and gives every
  conv a bias, which suits GAN generators (the SPAP baseline, usually with
  spectral-normalised convs). DeepLab v3 itself uses batch norm: pass
  `norm=nn.BatchNorm` (convs then have no bias) and call with
  `use_running_average=False` in training (mutable `'batch_stats'`) and
  `True` in evaluation. Any norm constructor is called as
  `norm(dtype=..., param_dtype=..., name=...)`; the layer is then applied as
  `layer(h, use_running_average=...)` when that argument is not None, else as
  `layer(h)` (so `nn.GroupNorm` or a pre-bound
  `functools.partial(nn.BatchNorm, use_running_average=True)` also work).
  With batch norm, the image-pool branch normalises over the batch only
  (1x1 maps), so a batch of 1 in training mode yields its bias term.

  Attributes:
    features: output channels of every branch and of the result; None keeps
      the input channel count C (DeepLab v3 uses 256).
    rates: dilation rates of the atrous 3x3 branches (positive).
    image_pooling: include the image-level pooling branch.
    norm: normalisation constructor or None (see above).
    activation: nonlinearity after each norm (ReLU in DeepLab v3); None for
      none.
    conv: conv constructor (`nn.Conv` or e.g. `SpectralConv`), called with
      `features, kernel_size, kernel_dilation, padding, use_bias, dtype,
      param_dtype, name`.
    dtype: computation dtype; None infers it from inputs and params.
    param_dtype: dtype of the parameters.
  """
  features: Optional[int] = None
  rates: Sequence[int] = (6, 12, 18)
  image_pooling: bool = True
  norm: Optional[Callable[..., nn.Module]] = None
  activation: Optional[Callable[[Array], Array]] = nn.relu
  conv: Callable[..., nn.Module] = Conv
  dtype: Optional[Dtype] = None
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array, use_running_average: Optional[bool] = None) -> Array:
    """Applies ASPP.

    Args:
      x: [B, H, W, C] float feature map.
      use_running_average: forwarded to `norm` layers when not None (False
        while training with batch norm, True in evaluation); ignored when
        `norm` is None.

    Returns:
      [B, H, W, features] array in the computation dtype (`features` = C when
      None).

    Raises:
      ValueError: if `x` is not rank 4 NHWC, if `features` is not positive, or
        if `rates` holds a non-positive rate or repeats one.
    """
    b, h, w, c = _checks.check_nhwc(x, "x")
    features = c if self.features is None else self.features
    _checks.check_positive(features, "features")
    rates = tuple(self.rates)
    for r in rates:
      _checks.check_positive(r, "rates")
    if len(set(rates)) != len(rates):
      raise ValueError(f"`rates` must not repeat a rate, got {rates!r}.")
    use_bias = self.norm is None

    def conv_norm_act(inputs, kernel, rate, name):
      y = self.conv(features=features, kernel_size=(kernel, kernel),
                    kernel_dilation=(rate, rate), padding="SAME", use_bias=use_bias,
                    dtype=self.dtype, param_dtype=self.param_dtype, name=f"{name}_conv")(inputs)
      if self.norm is not None:
        layer = self.norm(dtype=self.dtype, param_dtype=self.param_dtype, name=f"{name}_norm")
        if use_running_average is None:
          y = layer(y)
        else:
          y = layer(y, use_running_average=use_running_average)
      if self.activation is not None:
        y = self.activation(y)
      return y

    branches = [conv_norm_act(x, 1, 1, "branch_1x1")]
    branches += [conv_norm_act(x, 3, r, f"branch_d{r}") for r in rates]
    if self.image_pooling:
      pooled = jnp.mean(x, axis=(1, 2), keepdims=True)
      pooled = conv_norm_act(pooled, 1, 1, "image_pool")
      pooled = jnp.broadcast_to(pooled, (b, h, w, pooled.shape[-1]))
      self.sow("intermediates", "image_pool", pooled)
      branches.append(pooled)
    return conv_norm_act(jnp.concatenate(branches, axis=-1), 1, 1, "project")
