"""MSG-GAN hosts (Karnewar & Wang, "MSG-GAN: Multi-Scale Gradients for GANs", CVPR 2020).

Multi-scale gradients: every generator stage r = 4 … R emits an RGB image through a 1×1
conv, and the discriminator receives each of them at the depth of matching resolution, so
gradients flow from D into every G stage directly (paper Sec. 3, Fig. 2). Real images are
given to D as the same pyramid (2×2 average pooling of the full image).

Combine functions φ (paper Sec. 3.1), merging the image o at resolution r with D's features
a at the input of the block of that resolution:
  φ_simple(o, a) = [o; a]            (concatenate the raw RGB image; MSG-ProGAN's choice),
  φ_lin(o, a)    = r'(o) + a         (r' a 1×1 conv to a's channels),
  φ_cat(o, a)    = [r'(o); a]        (r' a 1×1 conv to a's channels, then concatenate).
At the full resolution D starts from a FromRGB 1×1 conv of the R² image (for every φ).

* `MSGDCGANGenerator` — MSG-DCGAN, the LAP paper's weakest host (Table 1: FID 60.9 → 24.9 on
  LSUN bedroom with LAP). Our reading of the paper's "DCGAN" variant (the MSG-GAN code's
  default generator without equalised learning rate): z (pixel-normalised) → dense to
  4×4×nf(4) → LeakyReLU(0.2) → pixel norm → conv 3×3 → LeakyReLU → pixel norm; per stage
  8² … R²: nearest ×2 → 2 × (conv 3×3 → LeakyReLU(0.2) → pixel norm). ToRGB: 1×1 conv then
  tanh, at every stage. Channels follow the StyleGAN schedule (512 up to 32², then halving),
  times `width`. Plain `nn.Conv` / `nn.Dense` with Flax's default (LeCun-normal) init.
* MSG-StyleGAN: `stylegan.StyleGANGenerator` called with `multiscale=True`.
  Parameter count at 256² (width 1): G 23.05M + D 23.11M = 46.16M, vs 41.77M in the LAP
  paper's Table 2; the paper does not describe this host's layers, so the 4.4M gap (about one
  512·4·4 × 512 layer) is unexplained. LAP adds 91,492 (Table 2: "+0.1M").
* `MSGDiscriminator` — per stage r = R … 8: combine(image_r, a) (not at R: FromRGB instead)
  → 2 × (conv 3×3 → LeakyReLU(0.2)) → 2×2 average pool; at 4²: combine(image_4, a) →
  minibatch stddev → conv 3×3 → dense → logit (StyleGAN's head). Channels
  nf(r) → nf(r/2). `equalized=True` uses the equalised-lr layers (MSG-StyleGAN), False plain
  layers (MSG-DCGAN).

LAP / SA / CBAM (`attention`) go after both convs of every G stage 8² … R², after the pixel
norm (the positions of `style_layers.attention_after_conv`).
"""

from typing import Any, Optional, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from genattn_jax import _checks
from genattn_jax._dtypes import wide
from genattn_jax.models import style_layers as sl
from genattn_jax.models.stylegan import d_epilogue

COMBINE_FNS: Tuple[str, ...] = ("simple", "lin", "cat")


def _stages(resolution: int) -> Tuple[int, ...]:
  return tuple(2**k for k in range(2, sl.check_pow2_resolution(resolution) + 1))


class MSGDCGANGenerator(nn.Module):
  """MSG-DCGAN generator (see the module doc).

  Call: `generator(z [B, z_dim], y=None, train=True, multiscale=False)` → [B, R, R, 3] in
  [-1, 1], or with `multiscale` the list of [B, r, r, 3] for r = 4 … R (coarse → fine).

  Attributes:
    resolution: R (power of two ≥ 8).
    z_dim: latent size (512 in MSG-GAN).
    width: channel multiplier.
    attention, attention_kwargs: block after every conv of stages 8² … R².
    axis_name: unused (no cross-sample layers); kept for the builder's uniform interface.
    dtype, param_dtype: computation / parameter dtypes.
  """
  resolution: int = 256
  z_dim: int = 512
  width: float = 1.0
  attention: str = ""
  attention_kwargs: Any = None
  axis_name: Optional[str] = None
  dtype: Optional[jnp.dtype] = None
  param_dtype: jnp.dtype = jnp.float32

  def stage_resolutions(self) -> Tuple[int, ...]:
    return _stages(self.resolution)

  @nn.compact
  def __call__(self, z: jax.Array, y: Optional[jax.Array] = None, train: bool = True,
               multiscale: bool = False):
    """Generates images.

    Raises:
      ValueError: bad `z` shape.
    """
    del train
    _checks.check_rank(z, 2, "z", "[B, z_dim]")
    if z.shape[1] != self.z_dim:
      raise ValueError(f"`z` must have shape [B, z_dim={self.z_dim}], got {tuple(z.shape)}.")
    del y  # unconditional (model.num_classes = 0): labels are ignored
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    nf = lambda r: sl.stage_channels(r, width=self.width)
    act = lambda t: sl.pixel_norm(nn.leaky_relu(t, 0.2))

    def conv(h, c, name):
      return nn.Conv(c, (3, 3), padding="SAME", name=name, **kw)(h)

    def rgb(h, res):
      return wide(jnp.tanh(nn.Conv(3, (1, 1), name=f"to_rgb{res}", **kw)(h)))

    b = z.shape[0]
    h = nn.Dense(16 * nf(4), name="dense4", **kw)(sl.pixel_norm(z)).reshape(b, 4, 4, nf(4))
    h = act(conv(act(h), nf(4), "conv4"))
    outputs = [rgb(h, 4)] if multiscale else []
    for res in self.stage_resolutions()[1:]:
      h = sl.upsample2x(h)
      for j in range(2):
        h = act(conv(h, nf(res), f"conv{res}_{j}"))
        h = sl.attention_after_conv(h, self.attention, self.attention_kwargs, res, j, **kw)
      if multiscale or res == self.resolution:
        outputs.append(rgb(h, res))
    return outputs if multiscale else outputs[-1]


class MSGDiscriminator(nn.Module):
  """Multi-scale discriminator (see the module doc).

  Call: `discriminator(images, y=None, train=True) -> [B] float32 logits`, where `images`
  is the list/tuple of [B, r, r, 3] for r = 4 … R (coarse → fine, the generator's
  `multiscale=True` output or `style_layers.image_pyramid` of real images), or one
  [B, R, R, 3] array, which is pooled into that pyramid first (evaluation, R1 on one image).

  Attributes:
    resolution: R.
    width: channel multiplier.
    combine: 'simple' (φ_simple), 'lin' (φ_lin) or 'cat' (φ_cat).
    equalized: equalised-lr layers (MSG-StyleGAN) or plain Flax layers (MSG-DCGAN).
    mbstd_group: minibatch-stddev group size (4).
    dtype, param_dtype: computation / parameter dtypes.
  """
  resolution: int = 256
  width: float = 1.0
  combine: str = "simple"
  equalized: bool = False
  mbstd_group: int = 4
  dtype: Optional[jnp.dtype] = None
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, images: Any, y: Optional[jax.Array] = None,
               train: bool = True) -> jax.Array:
    """Scores multi-scale images.

    Raises:
      ValueError: wrong number of scales, a scale of the wrong shape, or an
        unknown `combine`.
    """
    del train
    _checks.check_in(self.combine, COMBINE_FNS, "combine")
    del y  # unconditional: labels are ignored
    stages = _stages(self.resolution)
    if not isinstance(images, (list, tuple)):
      images = sl.image_pyramid(jnp.asarray(images), stages)
    if len(images) != len(stages):
      raise ValueError(f"`images` must hold {len(stages)} scales {list(stages)} (coarse to "
                       f"fine), got {len(images)}.")
    for img, r in zip(images, stages):
      if img.ndim != 4 or tuple(img.shape[1:]) != (r, r, 3):
        raise ValueError(f"scale {r} of `images` must be [B, {r}, {r}, 3], got "
                         f"{tuple(img.shape)}.")
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    nf = lambda r: sl.stage_channels(r, width=self.width)
    act = lambda t: nn.leaky_relu(t, 0.2)

    def conv(h, c, k, name):
      if self.equalized:
        return sl.EqualizedConv(c, kernel_size=k, name=name, **kw)(h)
      return nn.Conv(c, (k, k), padding="SAME", name=name, **kw)(h)

    def combine(img, a, res):
      if self.combine == "simple":
        return jnp.concatenate([jnp.asarray(img, a.dtype), a], axis=-1)
      r = conv(img, a.shape[-1], 1, f"combine{res}")
      return a + r if self.combine == "lin" else jnp.concatenate([r, a], axis=-1)

    by_res = dict(zip(stages, images))
    h = act(conv(by_res[self.resolution], nf(self.resolution), 1, "from_rgb"))
    for res in stages[:0:-1]:
      if res != self.resolution:
        h = combine(by_res[res], h, res)
      h = act(conv(h, nf(res), 3, f"conv{res}_0"))
      h = act(conv(h, nf(res // 2), 3, f"conv{res}_1"))
      h = sl.downsample2x(h)
    h = combine(by_res[4], h, 4)
    if self.equalized:
      return d_epilogue(h, self.mbstd_group, nf(4), kw)
    h = sl.minibatch_stddev(h, self.mbstd_group)
    h = act(nn.Conv(nf(4), (3, 3), padding="SAME", name="conv4", **kw)(h))
    h = act(nn.Dense(nf(4), name="dense4", **kw)(h.reshape(h.shape[0], -1)))
    return wide(nn.Dense(1, name="logit", **kw)(h)[:, 0])
