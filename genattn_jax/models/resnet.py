"""ResNet SNGAN / SAGAN backbones: the AN paper's class-conditional baseline.

Sources: Miyato et al., "Spectral Normalization for GANs" (ICLR 2018), Appendix
B.4 / Fig. 8 (residual blocks, "optimized" first D block); Miyato & Koyama,
"cGANs with Projection Discriminator" (ICLR 2018), Eq. 3 (projection head) and
their 128x128 ImageNet networks (the layout SAGAN and the AN paper, Sec. 4,
build on: "our generator G is sequentially formed by five residual blocks").
The AN paper applies spectral norm to G as well (Sec. 5.1, SN-GAN*):
`spectral_norm=True` on `ResNetGenerator`.

Generator (ch = base * width):
  z -> dense -> [4, 4, c0] -> up-blocks -> BN -> ReLU -> 3x3 conv -> tanh
  up-block(c): BN(y) -> ReLU -> nearest x2 -> 3x3 conv(c) -> BN(y) -> ReLU
               -> 3x3 conv(c), plus shortcut nearest x2 -> 1x1 conv(c).
  BN(y) is class-conditional BN when num_classes > 0, else plain BN; the final
  BN is always unconditional (as in the official SNGAN code).
  The up-block convs have no bias by default (`block_bias=False`): each output
  goes into a batch norm (conv1 -> BN; conv2 + shortcut -> the next block's BN
  or the final BN, after any block placed at that resolution), and batch norm
  subtracts any per-channel constant. Where nothing sits in between, those
  biases get a gradient of zero up to rounding, and Adam, which divides by the
  gradient's scale, turns the rounding noise into lr-sized random steps. The
  official chainer code has the biases: `block_bias=True` gives its exact
  parameter layout.
Discriminator:
  optimized block (3x3 conv -> ReLU -> 3x3 conv -> avg-pool, shortcut
  avg-pool -> 1x1 conv), then blocks ReLU -> 3x3 conv -> ReLU -> 3x3 conv
  (-> avg-pool), shortcut 1x1 conv (-> avg-pool) when the shape changes; then
  ReLU -> global sum pooling -> linear + projection <embed(y), h>. All convs,
  the linear and the embedding are spectrally normalised. The hidden width of
  a non-first D block is its input width (official code).

Channel layouts (`ARCHS`), per resolution R:
  32 (CIFAR, SNGAN Table 4): G base 256, widths (1, 1, 1, 1) from 4x4, i.e.
     3 up-blocks of 256; D base 128: optimized(128) 32->16, 128 16->8,
     128 at 8, 128 at 8.
  64: G base 64, (16, 8, 4, 2, 1); D base 64, (1, 2, 4, 8, 16), all
     downsampling (64 -> 2).
  128 (ImageNet): G base 64, (16, 16, 8, 4, 2, 1); D base 64,
     (1, 2, 4, 8, 16, 16), the last block not downsampling (128 -> 4).
G stage resolutions (where blocks may be placed): 4, 8, ..., R (4 = after
the dense layer). D stages: each block's output resolution; when several
blocks share one, a block placed there goes after the first of them.
"""

from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from genattn_jax import _checks
from genattn_jax._dtypes import wide
from genattn_jax.models import placement as pl
from genattn_jax.models.sndcgan import nearest_upsample, scale_width
from genattn_jax.layers.conv import Conv

# resolution -> (G base, G multipliers [dense, blocks...],
#                D base, D multipliers, D downsample flags)
ARCHS: Dict[int, Tuple[int, Tuple[int, ...], int, Tuple[int, ...], Tuple[bool, ...]]] = {
    32: (256, (1, 1, 1, 1), 128, (1, 1, 1, 1), (True, True, False, False)),
    64: (64, (16, 8, 4, 2, 1), 64, (1, 2, 4, 8, 16), (True, True, True, True, True)),
    128: (64, (16, 16, 8, 4, 2, 1), 64, (1, 2, 4, 8, 16, 16),
          (True, True, True, True, True, False)),
}


def _avg_pool(x: jax.Array) -> jax.Array:
  return nn.avg_pool(x, (2, 2), strides=(2, 2), padding="VALID")


def _check_arch(resolution: int) -> None:
  _checks.check_in(resolution, tuple(ARCHS), "resolution")


class ResNetGBlock(nn.Module):
  """Up-sampling residual block of the SNGAN / projection-cGAN generator.

  Attributes:
    features: output channels (also the hidden width).
    num_classes: > 0 for class-conditional batch norm.
    bn_axis_name: pmap axis for batch statistics.
    conv: conv constructor (nn.Conv or SpectralConv); must accept `use_bias`.
    use_bias: biases on conv1, conv2 and the shortcut conv (see the module
      docstring: False by default, True = the official code's layout).
    inner: placements applied between conv1 and the following BN -> ReLU
      (`position='in_block'`, the AN paper's place), keyed by `inner_resolution`.
    inner_resolution: the resolution key of `inner` (the block's output size).
    spectral_inner: spectrally normalise the convs of `inner` blocks.
    dtype: computation dtype.
    param_dtype: parameter dtype.
  """
  features: int
  num_classes: int = 0
  bn_axis_name: Optional[str] = None
  conv: Callable[..., nn.Module] = Conv
  use_bias: bool = False
  inner: Sequence[Any] = ()
  inner_resolution: int = 0
  spectral_inner: bool = False
  dtype: Optional[jnp.dtype] = None
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, y: Optional[jax.Array], train: bool) -> jax.Array:
    """[B, H, W, C] -> [B, 2H, 2W, features]; `y` [B] int labels or None."""
    _checks.check_nhwc(x, "x")
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype, use_bias=self.use_bias)

    def bn(h, name):
      return pl.batch_norm(h, y, num_classes=self.num_classes, train=train,
                           axis_name=self.bn_axis_name, name=name, dtype=self.dtype,
                           param_dtype=self.param_dtype)

    h = nearest_upsample(nn.relu(bn(x, "bn1")))
    h = self.conv(features=self.features, kernel_size=(3, 3), padding="SAME", name="conv1",
                  **kw)(h)
    h = pl.apply_placed_blocks(h, self.inner, self.inner_resolution, train=train,
                               spectral_conv=self.spectral_inner, dtype=self.dtype,
                               param_dtype=self.param_dtype, axis_name=self.bn_axis_name)
    h = nn.relu(bn(h, "bn2"))
    h = self.conv(features=self.features, kernel_size=(3, 3), padding="SAME", name="conv2",
                  **kw)(h)
    sc = self.conv(features=self.features, kernel_size=(1, 1), padding="VALID",
                   name="shortcut", **kw)(nearest_upsample(x))
    return h + sc


class ResNetDBlock(nn.Module):
  """Residual block of the SNGAN / projection discriminator.

  Attributes:
    features: output channels.
    downsample: 2x2 average pooling at the end of both paths.
    optimized: the first block's form (no leading ReLU, shortcut pools before
      its 1x1 conv, hidden width = `features`); implies downsampling.
    conv: conv constructor (SpectralConv in the papers).
    inner: placements applied between conv1 and the following ReLU
      (`position='in_block'`, the AN paper's place), keyed by `inner_resolution`.
    inner_resolution: the resolution key of `inner` (the block's output size).
    spectral_inner: spectrally normalise the convs of `inner` blocks.
    axis_name: pmap axis for `inner` blocks that draw per-example numbers (AN).
    dtype: computation dtype.
    param_dtype: parameter dtype.
  """
  features: int
  downsample: bool = True
  optimized: bool = False
  conv: Callable[..., nn.Module] = Conv
  inner: Sequence[Any] = ()
  inner_resolution: int = 0
  spectral_inner: bool = False
  axis_name: Optional[str] = None
  dtype: Optional[jnp.dtype] = None
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
    """[B, H, W, C] -> [B, H', W', features], H' = H/2 when downsampling.

    `train` is forwarded to `inner` blocks (AN's sampling branch).
    """
    _, _, _, c = _checks.check_nhwc(x, "x")
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    hidden = self.features if self.optimized else c
    h = x if self.optimized else nn.relu(x)
    h = self.conv(features=hidden, kernel_size=(3, 3), padding="SAME", name="conv1", **kw)(h)
    h = pl.apply_placed_blocks(h, self.inner, self.inner_resolution, train=train,
                               spectral_conv=self.spectral_inner, axis_name=self.axis_name, **kw)
    h = self.conv(features=self.features, kernel_size=(3, 3), padding="SAME", name="conv2",
                  **kw)(nn.relu(h))
    down = self.downsample or self.optimized
    if down:
      h = _avg_pool(h)
    if self.optimized:
      sc = self.conv(features=self.features, kernel_size=(1, 1), padding="VALID",
                     name="shortcut", **kw)(_avg_pool(x))
    elif c != self.features or down:
      sc = self.conv(features=self.features, kernel_size=(1, 1), padding="VALID",
                     name="shortcut", **kw)(x)
      sc = _avg_pool(sc) if down else sc
    else:
      sc = x
    return h + sc


class ResNetGenerator(nn.Module):
  """SNGAN / SAGAN ResNet generator, conditional (CBN) or unconditional (BN).

  Attributes:
    resolution: 32, 64 or 128 (see the module docstring for the layouts).
    z_dim: latent size (128).
    num_classes: 0 = unconditional, > 0 = class-conditional BN in the blocks.
    width: multiplier of the base channels (1.0 = the papers: 256 at 32, 64
      otherwise).
    blocks: placements at resolutions in {4, 8, ..., R}.
    spectral_norm: spectrally normalise G's layers (AN paper: yes).
    block_bias: biases on the up-blocks' convs (default False; True = the
      official code's layout, see the module docstring).
    bn_axis_name: pmap axis for batch statistics (and placed AN blocks'
      global-batch sampling).
    conv, dense: layer constructors; None picks `layers.conv.Conv` (flax's
      `nn.Conv` with the CPU kernel gradient) / nn.Dense or their `norms.Spectral*` versions.
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
  blocks: Sequence[Any] = ()
  spectral_norm: bool = False
  block_bias: bool = False
  bn_axis_name: Optional[str] = None
  conv: Optional[Callable[..., nn.Module]] = None
  dense: Optional[Callable[..., nn.Module]] = None
  dtype: Optional[jnp.dtype] = None
  param_dtype: jnp.dtype = jnp.float32
  remat_blocks: bool = False

  def stage_resolutions(self) -> Tuple[int, ...]:
    """Output resolutions of the dense layer and the up-blocks."""
    n = len(ARCHS[self.resolution][1])
    return tuple(4 * 2 ** i for i in range(n))

  @nn.compact
  def __call__(self, z: jax.Array, y: Optional[jax.Array] = None,
               train: bool = True) -> jax.Array:
    """Generates images.

    Args:
      z: [B, z_dim] float latents.
      y: [B] int32 labels in [0, num_classes); required iff num_classes > 0.
      train: batch statistics if True (running averages updated when
        'batch_stats' is mutable), running averages if False; AN blocks need
        the 'sampling' rng when True.

    Returns:
      [B, R, R, 3] float32 images in [-1, 1].

    Raises:
      ValueError: on a bad `z` / `y`, resolution, width or block placement.
    """
    _check_arch(self.resolution)
    _checks.check_positive(self.width, "width")
    _checks.check_rank(z, 2, "z", "[B, z_dim]")
    if z.shape[1] != self.z_dim:
      raise ValueError(f"`z` must have shape [B, z_dim={self.z_dim}], got {tuple(z.shape)}.")
    pl.check_labels(y, self.num_classes, z.shape[0])
    stages = self.stage_resolutions()
    placements, inner = pl.split_by_position(
        pl.normalize_placements(self.blocks, "blocks", stages), "blocks")
    for p in inner:
      if stages[0] in p.resolutions:
        raise ValueError(f"`blocks`: an 'in_block' {p.block!r} cannot sit at {stages[0]}x"
                         f"{stages[0]} (the dense layer's output, no residual block); use one "
                         f"of {stages[1:]}.")
    sn = self.spectral_norm
    conv = pl.resolve_layer(self.conv, sn, Conv, "SpectralConv")
    dense = pl.resolve_layer(self.dense, sn, nn.Dense, "SpectralDense")
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    base, mults = ARCHS[self.resolution][:2]
    widths = [scale_width(base * m, self.width) for m in mults]

    def blocks(h, res):
      return pl.apply_placed_blocks(h, placements, res, train=train, spectral_conv=sn,
                                    axis_name=self.bn_axis_name, remat=self.remat_blocks, **kw)

    h = dense(features=16 * widths[0], name="linear", **kw)(z)
    h = blocks(h.reshape(z.shape[0], 4, 4, widths[0]), 4)
    for i, (c, res) in enumerate(zip(widths[1:], stages[1:]), start=1):
      h = ResNetGBlock(features=c, num_classes=self.num_classes,
                       bn_axis_name=self.bn_axis_name, conv=conv, use_bias=self.block_bias,
                       inner=inner, inner_resolution=res, spectral_inner=sn,
                       name=f"block{i}", **kw)(h, y, train)
      h = blocks(h, res)
    h = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                     axis_name=self.bn_axis_name, name="bn_out", **kw)(h)
    h = conv(features=3, kernel_size=(3, 3), padding="SAME", name="conv_out",
             **kw)(nn.relu(h))
    return wide(jnp.tanh(h))


class ResNetDiscriminator(nn.Module):
  """SNGAN ResNet discriminator with a projection head (Miyato & Koyama 2018).

  Attributes:
    resolution: 32, 64 or 128.
    num_classes: 0 = unconditional (linear head only), > 0 adds the
      projection term `<embed(y), h>`.
    width: multiplier of the base channels (128 at 32, 64 otherwise).
    blocks: placements at the blocks' output resolutions; their convs are
      spectrally normalised when `spectral_norm`.
    spectral_norm: spectrally normalise every layer (the papers: yes).
    axis_name: pmap axis the batch is split over (None: not split); placed
      blocks that draw per-example random numbers (AN) draw for the global batch.
    conv, dense: layer constructors; None picks `norms.SpectralConv` /
      `norms.SpectralDense` (`layers.conv.Conv` / nn.Dense without spectral norm).
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
  spectral_norm: bool = True
  axis_name: Optional[str] = None
  num_blocks: int = 0
  conv: Optional[Callable[..., nn.Module]] = None
  dense: Optional[Callable[..., nn.Module]] = None
  dtype: Optional[jnp.dtype] = None
  param_dtype: jnp.dtype = jnp.float32
  remat_blocks: bool = False

  def _arch(self):
    """(base, multipliers, downsample flags), the first `num_blocks` blocks when set."""
    _, _, base, mults, downs = ARCHS[self.resolution]
    n = self.num_blocks or len(mults)
    if not 1 <= n <= len(mults):
      raise ValueError(f"`num_blocks` must be in 1..{len(mults)} at resolution "
                       f"{self.resolution} (0 = all), got {self.num_blocks}.")
    return base, mults[:n], downs[:n]

  def block_resolutions(self) -> Tuple[int, ...]:
    """Output resolution of each residual block, in order."""
    res, out = self.resolution, []
    for down in self._arch()[2]:
      res = res // 2 if down else res
      out.append(res)
    return tuple(out)

  @nn.compact
  def __call__(self, x: jax.Array, y: Optional[jax.Array] = None,
               train: bool = True) -> jax.Array:
    """Scores images.

    Args:
      x: [B, R, R, 3] float images, nominally in [-1, 1].
      y: [B] int32 labels, required iff num_classes > 0 (ignored otherwise).
      train: forwarded to placed blocks; spectral-norm `u` vectors update iff
        'batch_stats' is mutable.

    Returns:
      [B] float32 logits.

    Raises:
      ValueError: on a bad `x` / `y` shape, resolution or block placement.
    """
    _check_arch(self.resolution)
    _checks.check_positive(self.width, "width")
    b, h_, w_, c_ = _checks.check_nhwc(x, "x")
    if (h_, w_, c_) != (self.resolution, self.resolution, 3):
      raise ValueError(f"`x` must have shape [B, {self.resolution}, {self.resolution}, 3], "
                       f"got {tuple(x.shape)}.")
    pl.check_labels(y, self.num_classes, b)
    block_res = self.block_resolutions()
    placements, inner = pl.split_by_position(
        pl.normalize_placements(self.blocks, "blocks", block_res), "blocks")
    sn = self.spectral_norm
    conv = pl.resolve_layer(self.conv, sn, Conv, "SpectralConv")
    dense = pl.resolve_layer(self.dense, sn, nn.Dense, "SpectralDense")
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    base, mults, downs = self._arch()
    h = x
    for i, (m, down, res) in enumerate(zip(mults, downs, block_res)):
      first = res not in block_res[:i]  # first block with this output resolution
      h = ResNetDBlock(features=scale_width(base * m, self.width), downsample=down,
                       optimized=(i == 0), conv=conv, inner=inner if first else (),
                       inner_resolution=res, spectral_inner=sn, axis_name=self.axis_name,
                       name=f"block{i + 1}", **kw)(h, train)
      if first:
        h = pl.apply_placed_blocks(h, placements, res, train=train, spectral_conv=sn,
                                   axis_name=self.axis_name, remat=self.remat_blocks, **kw)
    h = jnp.sum(nn.relu(h), axis=(1, 2))
    return pl.projection_logits(h, y, num_classes=self.num_classes, dense=dense, **kw)
