"""SNDCGAN: the DCGAN-style backbone of the SPAP paper's image-synthesis runs.

Source: Miyato et al., "Spectral Normalization for GANs" (ICLR 2018), Table 3
(the "standard CNN" models), in the layout of Kurach et al.'s compare_gan
(`sndcgan` architecture), which the SPAP paper (Sec. 4.3, "we follow the
SNDCGAN setting of [20]") builds on; the SPAP paper also applies spectral norm
to the generator (`spectral_norm=True` on `SNDCGANGenerator`).

Generator (M = resolution / 8):
  z -> dense -> [M, M, 512w] -> BN -> ReLU
    -> 3 x (up x2: 4x4 stride-2 transposed conv, or nearest x2 + 3x3 conv;
            widths 256w, 128w, 64w) -> BN -> ReLU
    -> 3x3 conv to 3 channels -> tanh
Discriminator:
  3x3 s1 (64w) | 4x4 s2 (64w), 3x3 s1 (128w) | 4x4 s2 (128w), 3x3 s1 (256w)
  | 4x4 s2 (256w), 3x3 s1 (512w), each followed by LeakyReLU(0.1), all
  spectrally normalised -> flatten -> dense -> logit (+ projection term when
  class-conditional). These are Table 3's widths; compare_gan instead uses
  64, 128, 128, 256, 256, 512, 512 (the strided conv already widening).

Parameter count against the SPAP paper's Table 1 (vanilla G: 20.065M). At
R = 128, z_dim = 128, width 1 this generator has 19,533,379 parameters:
dense 128 x (16 * 16 * 512) = 16,777,216, transposed convs 2,097,152 +
524,288 + 131,072, output conv 1,731, BN scale/offset 1,920. compare_gan's
sndcgan generator has the same layer list and widths (512 -> 256 -> 128 -> 64
-> 3) but gives the dense layer and the transposed convs biases; those are
exactly cancelled by the following batch norm, so they are left out here
(131,072 + 448 parameters; with them: 19.665M). The remaining ~0.40M gap to
the paper's 20.065M is not explained by the layer list the paper cites; the
library keeps compare_gan's widths rather than guess. The discriminator
widths differ from compare_gan as stated below.

`w` is the `width` multiplier (1.0 = the paper). Blocks from `placement.py`
go after the stage whose output has the listed resolution: generator stages
output M, 2M, 4M, 8M = resolution (after BN+ReLU, the last one before the
output conv); discriminator stages output resolution (first conv), /2, /4, /8
(after each stride-2 + 3x3 pair).
"""

from typing import Any, Callable, Optional, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from genattn_jax import _checks
from genattn_jax._dtypes import wide
from genattn_jax.models import placement as pl
from genattn_jax.layers.conv import Conv, ConvTranspose

G_WIDTHS: Tuple[int, ...] = (512, 256, 128, 64)
D_WIDTHS: Tuple[int, ...] = (64, 64, 128, 128, 256, 256, 512)
UPSAMPLE_MODES: Tuple[str, ...] = ("transposed", "nearest")


def scale_width(channels: int, width: float) -> int:
  """`channels * width` rounded, at least 1."""
  return max(1, int(round(channels * width)))


def _check_resolution(resolution: int, factor: int) -> None:
  _checks.check_positive(resolution, "resolution")
  _checks.check_divisible(resolution, factor, "resolution", "the total down/up-sampling factor")


def nearest_upsample(x: jax.Array, factor: int = 2) -> jax.Array:
  """Nearest-neighbour upsampling of a [B, H, W, C] map to [B, fH, fW, C]."""
  return jnp.repeat(jnp.repeat(x, factor, axis=1), factor, axis=2)


class SNDCGANGenerator(nn.Module):
  """SNDCGAN generator (Miyato et al. 2018, Table 3b), optionally conditional.

  Attributes:
    resolution: output size R (a multiple of 8; the papers use 32, 64, 128).
    z_dim: latent size (128 in compare_gan).
    num_classes: 0 = unconditional (plain BN); > 0 = class-conditional batch
      norm everywhere (an extension: the SPAP paper is unconditional).
    width: channel multiplier of (512, 256, 128, 64).
    upsample: 'transposed' (the paper: 4x4 stride-2 transposed conv) or
      'nearest' (nearest x2 then 3x3 conv; about 10x faster on XLA:CPU).
    blocks: placements (`placement.normalize_placements` input) at resolutions
      in {R/8, R/4, R/2, R}.
    spectral_norm: spectrally normalise the dense and conv layers (the SPAP
      paper does, Sec. 4.3).
    bn_axis_name: pmap axis name over which BN averages batch statistics (and
      placed AN blocks draw their samples for the global batch).
    conv, dense, conv_transpose: layer constructors; None picks `layers.conv.Conv` /
      nn.Dense / `layers.conv.ConvTranspose` (flax's layers with the CPU kernel gradient) or
      their `norms.Spectral*` versions.
    dtype: computation dtype (None: inferred; 'bfloat16' = mixed precision, see
      `genattn_jax.models`).
    param_dtype: parameter dtype.
    remat_blocks: wrap the placed blocks in `nn.remat` (recomputed in the backward
      pass instead of stored; same outputs and gradients).
  """
  resolution: int = 32
  z_dim: int = 128
  num_classes: int = 0
  width: float = 1.0
  upsample: str = "transposed"
  blocks: Sequence[Any] = ()
  spectral_norm: bool = False
  bn_axis_name: Optional[str] = None
  conv: Optional[Callable[..., nn.Module]] = None
  dense: Optional[Callable[..., nn.Module]] = None
  conv_transpose: Optional[Callable[..., nn.Module]] = None
  dtype: Optional[jnp.dtype] = None
  param_dtype: jnp.dtype = jnp.float32
  remat_blocks: bool = False

  def stage_resolutions(self) -> Tuple[int, ...]:
    """Output resolutions of the stages, coarse to fine."""
    m = self.resolution // 8
    return (m, 2 * m, 4 * m, 8 * m)

  @nn.compact
  def __call__(self, z: jax.Array, y: Optional[jax.Array] = None,
               train: bool = True) -> jax.Array:
    """Generates images.

    Args:
      z: [B, z_dim] float latents.
      y: [B] int32 labels in [0, num_classes); required iff num_classes > 0
        (ignored otherwise).
      train: batch statistics (and their running-average update when
        'batch_stats' is mutable) if True, running averages if False; AN
        blocks then also need the 'sampling' rng.

    Returns:
      [B, R, R, 3] float32 images in [-1, 1].

    Raises:
      ValueError: on a bad `z` / `y` shape, resolution, `upsample`, or block
        placement.
    """
    _check_resolution(self.resolution, 8)
    _checks.check_in(self.upsample, UPSAMPLE_MODES, "upsample")
    _checks.check_positive(self.width, "width")
    _checks.check_rank(z, 2, "z", "[B, z_dim]")
    if z.shape[1] != self.z_dim:
      raise ValueError(f"`z` must have shape [B, z_dim={self.z_dim}], got {tuple(z.shape)}.")
    pl.check_labels(y, self.num_classes, z.shape[0])
    stages = self.stage_resolutions()
    placements = pl.normalize_placements(self.blocks, "blocks", stages)
    sn = self.spectral_norm
    conv = pl.resolve_layer(self.conv, sn, Conv, "SpectralConv")
    dense = pl.resolve_layer(self.dense, sn, nn.Dense, "SpectralDense")
    conv_t = pl.resolve_layer(self.conv_transpose, sn, ConvTranspose,
                              "SpectralConvTranspose")
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    widths = [scale_width(c, self.width) for c in G_WIDTHS]

    def bn_relu(h, name):
      h = pl.batch_norm(h, y, num_classes=self.num_classes, train=train,
                        axis_name=self.bn_axis_name, name=name, **kw)
      return nn.relu(h)

    def blocks(h, res):
      return pl.apply_placed_blocks(h, placements, res, train=train, spectral_conv=sn,
                                    axis_name=self.bn_axis_name, remat=self.remat_blocks, **kw)

    # Layers followed by batch norm have no bias: BN removes it exactly, so its gradient is
    # identically zero and Adam would only turn rounding noise into updates.
    m = stages[0]
    h = dense(features=m * m * widths[0], use_bias=False, name="linear", **kw)(z)
    h = h.reshape(z.shape[0], m, m, widths[0])
    h = blocks(bn_relu(h, "bn0"), m)
    for i, (c, res) in enumerate(zip(widths[1:], stages[1:]), start=1):
      if self.upsample == "transposed":
        h = conv_t(features=c, kernel_size=(4, 4), strides=(2, 2), padding="SAME",
                   use_bias=False, name=f"deconv{i}", **kw)(h)
      else:
        h = conv(features=c, kernel_size=(3, 3), strides=(1, 1), padding="SAME",
                 use_bias=False, name=f"upconv{i}", **kw)(nearest_upsample(h))
      h = blocks(bn_relu(h, f"bn{i}"), res)
    h = conv(features=3, kernel_size=(3, 3), strides=(1, 1), padding="SAME",
             name="conv_out", **kw)(h)
    return wide(jnp.tanh(h))


class SNDCGANDiscriminator(nn.Module):
  """SNDCGAN discriminator (Miyato et al. 2018, Table 3c) with optional SPAP atrous.

  With `atrous=True`, the stride-2 convs of the stages in `atrous_stages`
  become `layers.spap.AtrousConvBlock` (the original 4x4 conv averaged with
  the mean of parallel stride-2 atrous convs, SPAP paper Sec. 3.2 /
  Fig. 3; 3x3 is our choice, the paper gives only their rates). The SPAP paper puts it "in
  second downsample layer" (Sec. 4.3), hence the default `atrous_stages=(2,)`, rates (3, 5, 7)
  (Sec. 4.3).

  Attributes:
    resolution: input size R (a multiple of 8).
    num_classes: 0 = unconditional; > 0 adds the projection term of Miyato &
      Koyama (2018) on the flattened features.
    width: channel multiplier of (64, 64, 128, 128, 256, 256, 512).
    blocks: placements at resolutions in {R, R/2, R/4, R/8}; their convs are
      spectrally normalised when `spectral_norm`.
    atrous: use `AtrousConvBlock` for the stride-2 convs of `atrous_stages`.
    atrous_stages: 1-based indices (1..3) of the downsampling convs to widen.
    atrous_rates: dilation rates of the atrous branches.
    leak: LeakyReLU slope (0.1 in the paper).
    spectral_norm: spectrally normalise every conv / dense (the paper: yes).
    axis_name: pmap axis the batch is split over (None: not split); placed
      blocks that draw per-example random numbers (AN) draw for the global batch.
    conv, dense: layer constructors; None picks `norms.SpectralConv` /
      `norms.SpectralDense` (or `layers.conv.Conv` / nn.Dense without spectral norm).
    dtype: computation dtype (None: inferred; 'bfloat16' = mixed precision, see
      `genattn_jax.models`).
    param_dtype: parameter dtype.
    remat_blocks: wrap the placed blocks in `nn.remat` (recomputed in the backward
      pass instead of stored; same outputs and gradients).
  """
  resolution: int = 32
  num_classes: int = 0
  width: float = 1.0
  blocks: Sequence[Any] = ()
  atrous: bool = False
  atrous_stages: Sequence[int] = (2,)
  atrous_rates: Sequence[int] = (3, 5, 7)
  leak: float = 0.1
  spectral_norm: bool = True
  axis_name: Optional[str] = None
  conv: Optional[Callable[..., nn.Module]] = None
  dense: Optional[Callable[..., nn.Module]] = None
  dtype: Optional[jnp.dtype] = None
  param_dtype: jnp.dtype = jnp.float32
  remat_blocks: bool = False

  def stage_resolutions(self) -> Tuple[int, ...]:
    """Output resolutions of the stages, fine to coarse."""
    r = self.resolution
    return (r, r // 2, r // 4, r // 8)

  @nn.compact
  def __call__(self, x: jax.Array, y: Optional[jax.Array] = None,
               train: bool = True) -> jax.Array:
    """Scores images.

    Args:
      x: [B, R, R, 3] float images, nominally in [-1, 1].
      y: [B] int32 labels, required iff num_classes > 0 (ignored otherwise).
      train: forwarded to placed blocks (AN sampling). Spectral-norm `u`
        vectors update iff the 'batch_stats' collection is mutable.

    Returns:
      [B] float32 logits (unbounded).

    Raises:
      ValueError: on a bad `x` / `y` shape, resolution, atrous stage or block
        placement.
    """
    _check_resolution(self.resolution, 8)
    _checks.check_positive(self.width, "width")
    b, h_, w_, c_ = _checks.check_nhwc(x, "x")
    if (h_, w_, c_) != (self.resolution, self.resolution, 3):
      raise ValueError(f"`x` must have shape [B, {self.resolution}, {self.resolution}, 3], "
                       f"got {tuple(x.shape)}.")
    for s in self.atrous_stages:
      _checks.check_in(s, (1, 2, 3), "atrous_stages")
    pl.check_labels(y, self.num_classes, b)
    stages = self.stage_resolutions()
    placements = pl.normalize_placements(self.blocks, "blocks", stages)
    sn = self.spectral_norm
    conv = pl.resolve_layer(self.conv, sn, Conv, "SpectralConv")
    dense = pl.resolve_layer(self.dense, sn, nn.Dense, "SpectralDense")
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    widths = [scale_width(c, self.width) for c in D_WIDTHS]
    act = lambda t: nn.leaky_relu(t, self.leak)

    def blocks(h, res):
      return pl.apply_placed_blocks(h, placements, res, train=train, spectral_conv=sn,
                                    axis_name=self.axis_name, remat=self.remat_blocks, **kw)

    h = act(conv(features=widths[0], kernel_size=(3, 3), strides=(1, 1), padding="SAME",
                 name="conv0", **kw)(x))
    h = blocks(h, stages[0])
    for k in (1, 2, 3):
      c_down, c_same = widths[2 * k - 1], widths[2 * k]
      if self.atrous and k in self.atrous_stages:
        from genattn_jax.layers.spap import AtrousConvBlock  # pylint: disable=g-import-not-at-top
        h = AtrousConvBlock(features=c_down, rates=tuple(self.atrous_rates), kernel_size=(4, 4),
                            strides=(2, 2), conv=conv, name=f"atrous{2 * k - 1}", **kw)(h)
      else:
        h = conv(features=c_down, kernel_size=(4, 4), strides=(2, 2), padding="SAME",
                 name=f"conv{2 * k - 1}", **kw)(h)
      h = act(h)
      h = act(conv(features=c_same, kernel_size=(3, 3), strides=(1, 1), padding="SAME",
                   name=f"conv{2 * k}", **kw)(h))
      h = blocks(h, stages[k])
    h = h.reshape(b, -1)
    return pl.projection_logits(h, y, num_classes=self.num_classes, dense=dense, **kw)
