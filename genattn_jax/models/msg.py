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

* `MSGDCGANGenerator` + `MSGDCGANDiscriminator` — MSG-DCGAN, the LAP paper's weakest host
  (Table 1: FID 60.9 → 24.9 on LSUN bedroom with LAP). The LAP paper follows "the default
  training settings in the official implementation of ... MSG-GAN" (Sec. 5.2); we follow the
  layers of that implementation's default network (the BMSG-GAN code, `use_eql=True`), whose
  count at 256² is G 23,044,309 + D 18,733,185 = 41,777,494 parameters (41.78M, within 0.02%
  of the 41.77M of the LAP paper's Table 2; tested):
  G: z → dense to 4×4×nf(4) (the code's 4×4 transposed conv of the 1×1 latent) → LeakyReLU(0.2)
  → conv 3×3 → LeakyReLU → pixel norm; per stage 8² … R²: nearest ×2 → 2 × (conv 3×3 →
  LeakyReLU(0.2) → pixel norm). ToRGB: a linear 1×1 conv at every stage (no tanh, as in the
  code; images are clipped to [-1, 1] only when they are written or scored).
  D: per stage r = R … 8, the stage's image goes through FromRGB (1×1 conv; nf(R) channels at
  R, nf(r)/2 below, concatenated with the features from the finer stage: the paper's φ_cat
  with r' = FromRGB) → conv 3×3 (nf(r) → nf(r)) → LeakyReLU → conv 3×3 (→ nf(r/2)/2) →
  LeakyReLU → 2×2 average pool; at 4²: [FromRGB(image_4) (nf(4)/2); features] → minibatch
  stddev → conv 3×3 → LeakyReLU → conv 4×4 'VALID' (as a dense layer) → LeakyReLU → 1×1 conv
  to the logit. Channels nf(r) follow the StyleGAN schedule (512 up to 32², then halving)
  times `width`. Every layer has equalised learning rate with the He gain √2 (the code uses √2
  for every layer, the logit included); `equalized=False` gives plain Flax layers with their
  default init (the code's `use_eql=False`). The code's minibatch stddev takes the whole
  (per-GPU) batch; here it takes groups of `mbstd_group` (4, StyleGAN's), so that a batch split
  over devices gives the same result; set it to the per-device batch for the code's statistic.
* MSG-StyleGAN: `stylegan.StyleGANGenerator` called with `multiscale=True` and
  `MSGDiscriminator` (equalised, φ_lin by default; see `style_hosts`).
* `MSGDiscriminator` — a multi-scale D on the StyleGAN channel schedule with a selectable φ:
  per stage r = R … 8: combine(image_r, a) (not at R: FromRGB instead) → 2 × (conv 3×3 →
  LeakyReLU(0.2)) → 2×2 average pool; at 4²: combine(image_4, a) → minibatch stddev → conv
  3×3 → dense → logit (StyleGAN's head). Channels nf(r) → nf(r/2). `equalized=True` uses the
  equalised-lr layers (MSG-StyleGAN), False plain layers. MSG-DCGAN uses it when
  `model.d_combine` is 'simple' or 'lin' instead of the code's layout ('cat').

LAP / SA / CBAM (`attention`) go after both convs of every G stage 8² … R², after the pixel
norm (the positions of `style_layers.attention_after_conv`).
"""

from typing import Any, Optional, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from genattn_jax import _checks
from genattn_jax._dtypes import wide
from genattn_jax.models import style_layers as sl
from genattn_jax.models.stylegan import d_epilogue
from genattn_jax.layers.conv import Conv

COMBINE_FNS: Tuple[str, ...] = ("simple", "lin", "cat")


def _stages(resolution: int) -> Tuple[int, ...]:
  return tuple(2**k for k in range(2, sl.check_pow2_resolution(resolution) + 1))


class MSGDCGANGenerator(nn.Module):
  """MSG-DCGAN generator (see the module doc).

  Call: `generator(z [B, z_dim], y=None, train=True, multiscale=False)` → [B, R, R, 3] float
  (images on the [-1, 1] scale of the data, not clipped: the ToRGB layer is linear), or with
  `multiscale` the list of [B, r, r, 3] for r = 4 … R (coarse → fine).

  Attributes:
    resolution: R (power of two ≥ 8).
    z_dim: latent size (512 in MSG-GAN).
    width: channel multiplier.
    attention, attention_kwargs: block after every conv of stages 8² … R².
    equalized: equalised-lr layers with gain √2 (the official code's default `use_eql=True`)
      or plain Flax layers with their default init.
    axis_name: unused (no cross-sample layers); kept for the builder's uniform interface.
    dtype, param_dtype: computation / parameter dtypes.
  """
  resolution: int = 256
  z_dim: int = 512
  width: float = 1.0
  equalized: bool = True
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
    lrelu = lambda t: nn.leaky_relu(t, 0.2)
    conv, dense = _layers(self.equalized, kw)

    def rgb(h, res):
      return wide(conv(h, 3, 1, f"to_rgb{res}"))

    b = z.shape[0]
    # The code's 4×4 transposed conv of the 1×1 latent: a dense layer with one bias per channel.
    h = dense(z, 16 * nf(4), "dense4", use_bias=False).reshape(b, 4, 4, nf(4))
    bias = self.param("bias4", nn.initializers.zeros, (nf(4),), self.param_dtype)
    h = lrelu(h + jnp.asarray(bias, h.dtype))
    h = sl.pixel_norm(lrelu(conv(h, nf(4), 3, "conv4")))
    outputs = [rgb(h, 4)] if multiscale else []
    for res in self.stage_resolutions()[1:]:
      h = sl.upsample2x(h)
      for j in range(2):
        h = sl.pixel_norm(lrelu(conv(h, nf(res), 3, f"conv{res}_{j}")))
        h = sl.attention_after_conv(h, self.attention, self.attention_kwargs, res, j, **kw)
      if multiscale or res == self.resolution:
        outputs.append(rgb(h, res))
    return outputs if multiscale else outputs[-1]


def _layers(equalized: bool, kw):
  """(conv(h, c, k, name), dense(h, c, name, use_bias)): equalised (gain √2) or plain layers."""

  def conv(h, c, k, name, padding="SAME"):
    if equalized:
      if padding == "VALID":  # a k×k 'VALID' conv of a k×k map is a dense layer
        return sl.EqualizedDense(c, name=name, **kw)(h.reshape(h.shape[0], -1))[:, None, None]
      return sl.EqualizedConv(c, kernel_size=k, name=name, **kw)(h)
    return Conv(c, (k, k), padding=padding, name=name, **kw)(h)

  def dense(h, c, name, use_bias=True):
    if equalized:
      return sl.EqualizedDense(c, use_bias=use_bias, name=name, **kw)(h)
    return nn.Dense(c, use_bias=use_bias, name=name, **kw)(h)

  return conv, dense


def _check_scales(images: Any, stages: Tuple[int, ...]) -> Tuple[jax.Array, ...]:
  if not isinstance(images, (list, tuple)):
    images = sl.image_pyramid(jnp.asarray(images), stages)
  if len(images) != len(stages):
    raise ValueError(f"`images` must hold {len(stages)} scales {list(stages)} (coarse to "
                     f"fine), got {len(images)}.")
  for img, r in zip(images, stages):
    if img.ndim != 4 or tuple(img.shape[1:]) != (r, r, 3):
      raise ValueError(f"scale {r} of `images` must be [B, {r}, {r}, 3], got "
                       f"{tuple(img.shape)}.")
  return tuple(images)


class _MultiScaleDiscriminator(nn.Module):
  """Fields shared by the two multi-scale discriminators (documented on each)."""
  resolution: int = 256
  width: float = 1.0
  equalized: bool = True
  mbstd_group: int = 4
  dtype: Optional[jnp.dtype] = None
  param_dtype: jnp.dtype = jnp.float32


class MSGDCGANDiscriminator(_MultiScaleDiscriminator):
  """MSG-DCGAN discriminator, the official code's layout (see the module doc).

  Call: `discriminator(images, y=None, train=True) -> [B] float32 logits`, where `images`
  is the list/tuple of [B, r, r, 3] for r = 4 … R (coarse → fine), or one [B, R, R, 3]
  array, which is pooled into that pyramid first.

  Attributes:
    resolution: R.
    width: channel multiplier.
    equalized: equalised-lr layers (gain √2, the code's default) or plain Flax layers.
    mbstd_group: minibatch-stddev group size (4).
    dtype, param_dtype: computation / parameter dtypes.
  """

  @nn.compact
  def __call__(self, images: Any, y: Optional[jax.Array] = None,
               train: bool = True) -> jax.Array:
    """Scores multi-scale images.

    Raises:
      ValueError: wrong number of scales or a scale of the wrong shape.
    """
    del train, y  # unconditional: labels are ignored
    stages = _stages(self.resolution)
    by_res = dict(zip(stages, _check_scales(images, stages)))
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    nf = lambda r: sl.stage_channels(r, width=self.width)
    lrelu = lambda t: nn.leaky_relu(t, 0.2)
    conv, _ = _layers(self.equalized, kw)
    h = None
    for res in stages[:0:-1]:
      if h is None:
        h = conv(by_res[res], nf(res), 1, "from_rgb")
      else:
        h = jnp.concatenate([conv(by_res[res], nf(res) // 2, 1, f"from_rgb{res}"), h], axis=-1)
      h = lrelu(conv(h, nf(res), 3, f"conv{res}_0"))
      h = lrelu(conv(h, nf(res // 2) // 2, 3, f"conv{res}_1"))
      h = sl.downsample2x(h)
    h = jnp.concatenate([conv(by_res[4], nf(4) // 2, 1, "from_rgb4"), h], axis=-1)
    h = sl.minibatch_stddev(h, self.mbstd_group)
    h = lrelu(conv(h, nf(4), 3, "conv4"))
    h = lrelu(conv(h, nf(4), 4, "conv4x4", padding="VALID"))
    return wide(conv(h, 1, 1, "logit")[:, 0, 0, 0])


class MSGDiscriminator(_MultiScaleDiscriminator):
  """Multi-scale discriminator (see the module doc).

  Call: `discriminator(images, y=None, train=True) -> [B] float32 logits`, where `images`
  is the list/tuple of [B, r, r, 3] for r = 4 … R (coarse → fine, the generator's
  `multiscale=True` output or `style_layers.image_pyramid` of real images), or one
  [B, R, R, 3] array, which is pooled into that pyramid first (evaluation, R1 on one image).

  Attributes:
    resolution: R.
    width: channel multiplier.
    combine: 'simple' (φ_simple), 'lin' (φ_lin) or 'cat' (φ_cat).
    equalized: equalised-lr layers (MSG-StyleGAN; MSG-DCGAN with `model.equalized`) or plain
      Flax layers.
    mbstd_group: minibatch-stddev group size (4).
    dtype, param_dtype: computation / parameter dtypes.
  """
  combine: str = "simple"
  equalized: bool = False

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
    images = _check_scales(images, stages)
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    nf = lambda r: sl.stage_channels(r, width=self.width)
    act = lambda t: nn.leaky_relu(t, 0.2)

    def conv(h, c, k, name):
      if self.equalized:
        return sl.EqualizedConv(c, kernel_size=k, name=name, **kw)(h)
      return Conv(c, (k, k), padding="SAME", name=name, **kw)(h)

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
    h = act(Conv(nf(4), (3, 3), padding="SAME", name="conv4", **kw)(h))
    h = act(nn.Dense(nf(4), name="dense4", **kw)(h.reshape(h.shape[0], -1)))
    return wide(nn.Dense(1, name="logit", **kw)(h)[:, 0])
