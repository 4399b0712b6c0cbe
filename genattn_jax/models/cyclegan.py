"""CycleGAN host: ResNet generator, 70x70 PatchGAN, history pool, and the G / D pairs.

Source: J.-Y. Zhu, T. Park, P. Isola, A. Efros, "Unpaired Image-to-Image Translation using
Cycle-Consistent Adversarial Networks" (ICCV 2017), Sec. 4 and appendix 7.2 (network
architecture: c7s1-64, d128, d256, R256 x 9, u128, u64, c7s1-3; PatchGAN C64-C128-C256-C512)
and the authors' PyTorch code (`ResnetGenerator`, `NLayerDiscriminator`, `ImagePool`), whose
layer details (reflect padding, instance norm without affine parameters, biases on every
conv because instance norm is used, LeakyReLU 0.2) are followed here. The SPAP paper (Sun &
Wu, Sec. 4.3) inserts one SPAP block "after the first upsample deconvolution layer, which has
a feature map size of 128x128" (rates (6, 12, 18)) and, in D, three atrous convs (rates
(3, 5, 7)) at "the third convolution layer, where the input feature map size is 64x64".

Layout: NHWC float32, images in [-1, 1].

Biases before instance norm: the authors' code gives every conv a bias because its instance
norm has no affine parameters, but a per-channel constant added before an affine-free instance
norm is subtracted by it, so those biases change nothing the networks compute and their true
gradient is 0. The computed gradient is rounding noise, which Adam (dividing by its scale)
turns into lr-sized random steps that differ with the summation order (8 devices vs 1). By
default (`norm_bias=False`) they are dropped: in G every conv but `conv_out` (those of SPAP /
ASPP are kept: no norm follows them), in D `conv1`..`conv3` (and the atrous block in place of
`conv2`). `norm_bias=True` gives the authors' exact parameter layout.

Transposed convs: PyTorch's `ConvTranspose2d(k=3, stride=2, padding=1, output_padding=1)`
maps H to 2H with padding (k - 1 - p, k - 1 - p + output_padding) = (1, 2) on the dilated
input; flax's `ConvTranspose(padding='SAME')` pads differently, so the explicit padding
((1, 2), (1, 2)) is used (the same function up to a spatial flip of the learned kernel).
`upsample='nearest'` (nearest x2 + 3x3 conv) is an option for CPU runs, where XLA's
transposed conv is about 10x slower.
"""

from typing import Any, Optional, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from genattn_jax import _checks
from genattn_jax._dtypes import wide
from genattn_jax.layers.conv import Conv, ConvTranspose

Array = jax.Array
UPSAMPLE_MODES = ("transposed", "nearest")
PYRAMIDS = ("none", "spap", "aspp")
MIN_PATCH_INPUT = 24  # smallest H, W with one PatchGAN patch: H / 8 - 2 >= 1


def reflect_pad(x: Array, p: int) -> Array:
  """Reflection padding of H and W by `p` (PyTorch `ReflectionPad2d(p)`)."""
  return jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)), mode="reflect")


def instance_norm(x: Array, eps: float = 1e-5) -> Array:
  """Per-example, per-channel normalisation over H, W, no affine (PyTorch InstanceNorm2d)."""
  mean = jnp.mean(x, axis=(1, 2), keepdims=True)
  var = jnp.var(x, axis=(1, 2), keepdims=True)
  return (x - mean) * jax.lax.rsqrt(var + eps)


class ResnetBlock(nn.Module):
  """Reflect-pad, 3x3 conv, IN, ReLU, reflect-pad, 3x3 conv, IN, plus the input.

  `norm_bias`: biases on the two convs (each feeds an instance norm; see the module doc).
  """
  features: int
  norm_bias: bool = False
  dtype: Optional[jnp.dtype] = None
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype, padding="VALID",
              use_bias=self.norm_bias)
    h = Conv(self.features, (3, 3), name="conv1", **kw)(reflect_pad(x, 1))
    h = nn.relu(instance_norm(h))
    h = Conv(self.features, (3, 3), name="conv2", **kw)(reflect_pad(h, 1))
    return x + instance_norm(h)


class ResnetGenerator(nn.Module):
  """CycleGAN's ResNet generator, optionally with SPAP or ASPP after the first upsampling.

  c7s1-ngf, d(2ngf), d(4ngf), n_blocks x R(4ngf), u(2ngf), [pyramid], u(ngf), c7s1-3, tanh.
  At 256x256 input the pyramid sees a 128x128 map with 2ngf channels (the SPAP paper's place).

  Attributes:
    ngf: base width (64 in the paper).
    n_blocks: residual blocks (9 at 256x256, 6 at 128x128 in the CycleGAN code).
    upsample: 'transposed' (the paper) or 'nearest' (CPU-friendly option).
    pyramid: 'none', 'spap' or 'aspp'.
    pyramid_rates: atrous rates of the pyramid ((6, 12, 18), Sec. 4.3 of the SPAP paper).
    spap_order: 'coarse_to_fine' (the paper's best) or 'fine_to_coarse'.
    spap_kwargs: extra `SpatialPyramidAttentivePooling` fields (as (name, value) pairs).
    out_channels: channels of the output image.
    norm_bias: biases on the convs that feed an instance norm (all but `conv_out`); False
      drops them (see the module doc), True = the authors' layout.
    dtype, param_dtype: computation and parameter dtypes.
  """
  ngf: int = 64
  n_blocks: int = 9
  upsample: str = "transposed"
  pyramid: str = "none"
  pyramid_rates: Sequence[int] = (6, 12, 18)
  spap_order: str = "coarse_to_fine"
  spap_kwargs: Tuple[Tuple[str, Any], ...] = ()
  out_channels: int = 3
  norm_bias: bool = False
  dtype: Optional[jnp.dtype] = None
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    """Translates images.

    Args:
      x: [B, H, W, C] float32 images in [-1, 1]; H and W multiples of 4 and > 3.

    Returns:
      [B, H, W, out_channels] float32 images in [-1, 1].

    Raises:
      ValueError: `x` is not NHWC, H or W is not a multiple of 4, or `upsample` /
        `pyramid` is unknown.
    """
    _, h, w, _ = _checks.check_nhwc(x, "x")
    _checks.check_divisible(h, 4, "x height", "4 (two stride-2 convs)")
    _checks.check_divisible(w, 4, "x width", "4 (two stride-2 convs)")
    _checks.check_in(self.upsample, UPSAMPLE_MODES, "upsample")
    _checks.check_in(self.pyramid, PYRAMIDS, "pyramid")
    _checks.check_positive(self.ngf, "ngf")
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    nb = dict(use_bias=self.norm_bias, **kw)
    ngf = self.ngf
    y = Conv(ngf, (7, 7), padding="VALID", name="conv_in", **nb)(reflect_pad(x, 3))
    y = nn.relu(instance_norm(y))
    for i, c in enumerate((2 * ngf, 4 * ngf)):
      y = Conv(c, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)), name=f"down{i}",
                  **nb)(y)
      y = nn.relu(instance_norm(y))
    for i in range(self.n_blocks):
      y = ResnetBlock(4 * ngf, norm_bias=self.norm_bias, name=f"res{i}", **kw)(y)
    for i, c in enumerate((2 * ngf, ngf)):
      if self.upsample == "transposed":
        y = ConvTranspose(c, (3, 3), strides=(2, 2), padding=((1, 2), (1, 2)),
                             name=f"up{i}", **nb)(y)
      else:
        y = jnp.repeat(jnp.repeat(y, 2, axis=1), 2, axis=2)
        y = Conv(c, (3, 3), padding=((1, 1), (1, 1)), name=f"up{i}", **nb)(y)
      y = nn.relu(instance_norm(y))
      if i == 0 and self.pyramid == "spap":
        from genattn_jax.layers.spap import SpatialPyramidAttentivePooling  # pylint: disable=g-import-not-at-top
        y = SpatialPyramidAttentivePooling(rates=tuple(self.pyramid_rates), order=self.spap_order,
                                           name="spap", **dict(self.spap_kwargs), **kw)(y)
      elif i == 0 and self.pyramid == "aspp":
        from genattn_jax.layers.aspp import ASPP  # pylint: disable=g-import-not-at-top
        y = ASPP(rates=tuple(self.pyramid_rates), name="aspp", **kw)(y)
    y = Conv(self.out_channels, (7, 7), padding="VALID", name="conv_out", **kw)(
        reflect_pad(y, 3))
    return wide(jnp.tanh(y))


class PatchDiscriminator(nn.Module):
  """70x70 PatchGAN (C64-C128-C256-C512, 4x4 convs, LeakyReLU 0.2), optional atrous convs.

  Convs: 4x4 stride 2 (ndf, no norm), 4x4 s2 (2ndf, IN), 4x4 s2 (4ndf, IN), 4x4 s1 (8ndf,
  IN), 4x4 s1 to one logit per patch; padding 1 everywhere (PyTorch's `NLayerDiscriminator`,
  n_layers=3). With `atrous=True` the third conv (input 64x64 at 256x256) becomes
  `layers.spap.AtrousConvBlock` with rates `atrous_rates` (SPAP paper Sec. 4.3 / 4.6).

  Attributes:
    ndf: base width (64).
    atrous: widen the third conv with parallel stride-2 atrous convs (3x3: our choice, the
      paper gives only their rates).
    atrous_rates: their dilation rates ((3, 5, 7)).
    norm_bias: biases on conv1..conv3 (each feeds an instance norm; see the module doc).
    dtype, param_dtype: computation and parameter dtypes.
  """
  ndf: int = 64
  atrous: bool = False
  atrous_rates: Sequence[int] = (3, 5, 7)
  norm_bias: bool = False
  dtype: Optional[jnp.dtype] = None
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    """Scores every 70x70 patch.

    Args:
      x: [B, H, W, C] float32 images in [-1, 1] (H, W >= 24: one patch at least).

    Returns:
      [B, H / 8 - 2, W / 8 - 2, 1] float32 logits (30x30 at 256x256).

    Raises:
      ValueError: `x` is not NHWC, or H or W < 24 (the patch map would be empty and every
        loss over it a NaN mean with zero gradients).
    """
    _, h_in, w_in, _ = _checks.check_nhwc(x, "x")
    if min(h_in, w_in) < MIN_PATCH_INPUT:
      raise ValueError(f"`x` is {h_in}x{w_in}: the PatchGAN discriminator needs H, W >= "
                       f"{MIN_PATCH_INPUT} (its output is H / 8 - 2 patches per side).")
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    nb = dict(use_bias=self.norm_bias, **kw)
    pad = ((1, 1), (1, 1))
    act = lambda t: nn.leaky_relu(t, 0.2)
    ndf = self.ndf
    h = act(Conv(ndf, (4, 4), strides=(2, 2), padding=pad, name="conv0", **kw)(x))
    h = act(instance_norm(Conv(2 * ndf, (4, 4), strides=(2, 2), padding=pad, name="conv1",
                                  **nb)(h)))
    if self.atrous:
      from genattn_jax.layers.spap import AtrousConvBlock  # pylint: disable=g-import-not-at-top
      h = AtrousConvBlock(features=4 * ndf, rates=tuple(self.atrous_rates), kernel_size=(4, 4),
                          strides=(2, 2), name="atrous2", **nb)(h)
    else:
      h = Conv(4 * ndf, (4, 4), strides=(2, 2), padding=pad, name="conv2", **nb)(h)
    h = act(instance_norm(h))
    h = act(instance_norm(Conv(8 * ndf, (4, 4), padding=pad, name="conv3", **nb)(h)))
    return wide(Conv(1, (4, 4), padding=pad, name="conv_out", **kw)(h))


def pool_query(pool: Array, count: Array, images: Array, rng: Array) -> Tuple[Array, Array, Array]:
  """CycleGAN's image history (Shrivastava et al. 2017): one image at a time, in batch order.

  For each image: while the pool holds fewer than `pool_size` images, store it and return it;
  afterwards, with probability 1/2 return a uniformly chosen stored image and put the new one
  in its slot, else return the new image (the authors' `ImagePool.query`). `pool_size` 0
  returns `images` unchanged.

  Args:
    pool: [pool_size, H, W, C] float32 stored images.
    count: int32 scalar, images stored so far (<= pool_size).
    images: [N, H, W, C] float32 new images.
    rng: PRNG key.

  Returns:
    (images for D [N, H, W, C], new pool, new count).
  """
  size = pool.shape[0]
  if size == 0:
    return images, pool, count
  keys = jax.random.split(rng, images.shape[0])

  def one(carry, inp):
    pool, count = carry
    img, key = inp
    k_swap, k_idx = jax.random.split(key)
    not_full = count < size
    swap = jax.random.uniform(k_swap) < 0.5
    idx = jax.random.randint(k_idx, (), 0, size)
    slot = jnp.where(not_full, count, idx)
    stored = pool[slot]
    out = jnp.where(not_full | ~swap, img, stored)
    write = not_full | swap
    pool = pool.at[slot].set(jnp.where(write, img, stored))
    return (pool, count + not_full.astype(count.dtype)), out

  (pool, count), out = jax.lax.scan(one, (pool, count), (images, keys))
  return out, pool, count


class GeneratorPair(nn.Module):
  """G_AB (A → B) and G_BA (B → A) in one module: one 'params' tree for the train step."""
  ab: nn.Module
  ba: nn.Module

  def __call__(self, a: Array, b: Array, train: bool = True) -> Tuple[Array, Array]:
    """(G_AB(a), G_BA(b)); `train` is accepted for the shared machinery and unused."""
    del train
    return self.ab(a), self.ba(b)

  def a_to_b(self, a: Array) -> Array:
    return self.ab(a)

  def b_to_a(self, b: Array) -> Array:
    return self.ba(b)


class DiscriminatorPair(nn.Module):
  """D_A (real A vs G_BA(b)) and D_B (real B vs G_AB(a)), plus their history pools.

  The pools live in the non-param collection 'history' ({'pool_a', 'pool_b': [pool_size, H,
  W, C], 'count_a', 'count_b': int32}), so they are carried in `GANState.d_state` and
  checkpointed with it.
  """
  d_a: nn.Module
  d_b: nn.Module
  image_shape: Tuple[int, int, int] = (256, 256, 3)  # of both domains' images
  pool_size: int = 50

  def setup(self):
    shape = (self.pool_size,) + tuple(self.image_shape)
    zeros = lambda: jnp.zeros(shape, jnp.float32)
    count = lambda: jnp.zeros((), jnp.int32)
    self.pool_a = self.variable("history", "pool_a", zeros)
    self.count_a = self.variable("history", "count_a", count)
    self.pool_b = self.variable("history", "pool_b", zeros)
    self.count_b = self.variable("history", "count_b", count)

  def __call__(self, a: Array, b: Array, train: bool = True) -> Tuple[Array, Array]:
    """(D_A(a), D_B(b)) patch logits; init creates the pools."""
    del train
    return self.d_a(a), self.d_b(b)

  def score_a(self, x: Array) -> Array:
    return self.d_a(x)

  def score_b(self, x: Array) -> Array:
    return self.d_b(x)

  def query_pools(self, fake_a: Array, fake_b: Array) -> Tuple[Array, Array]:
    """History-pool draws for D_A and D_B (mutable 'history', rng 'pool')."""
    ka, kb = jax.random.split(self.make_rng("pool"))
    out_a, self.pool_a.value, self.count_a.value = pool_query(
        self.pool_a.value, self.count_a.value, fake_a, ka)
    out_b, self.pool_b.value, self.count_b.value = pool_query(
        self.pool_b.value, self.count_b.value, fake_b, kb)
    return out_a, out_b


def default_model_config(resolution: int = 256):
  """The model section of a CycleGAN config (`models.default_model_config('cyclegan')`)."""
  import ml_collections  # pylint: disable=g-import-not-at-top
  c = ml_collections.ConfigDict()
  c.name = "cyclegan"
  c.resolution = resolution
  c.ngf = 64
  c.ndf = 64
  c.n_blocks = 9 if resolution >= 256 else 6
  c.upsample = "transposed"
  c.pyramid = "none"
  c.pyramid_rates = [6, 12, 18]
  c.spap_order = "coarse_to_fine"
  c.d_atrous = False
  c.d_atrous_rates = [3, 5, 7]
  c.pool_size = 50
  c.norm_bias = False  # True: the authors' biases before instance norm (see the module doc)
  c.bn_axis_name = ""  # set by the pmap backend; unused (instance norm is per example)
  c.dtype = ""
  c.param_dtype = "float32"
  return c


def build_cyclegan(cfg: dict) -> Tuple[GeneratorPair, DiscriminatorPair]:
  """(GeneratorPair, DiscriminatorPair) from a model-config dict (see `default_model_config`).

  Raises:
    ValueError: an unknown field (naming it) or a bad value.
  """
  full = default_model_config(cfg.get("resolution", 256)).to_dict()
  unknown = sorted(set(cfg) - set(full))
  if unknown:
    raise ValueError(f"unknown `model` fields for name='cyclegan': {unknown}; expected "
                     f"{sorted(full)}.")
  full.update(cfg)
  _checks.check_divisible(full["resolution"], 8, "model.resolution", "8")
  if full["resolution"] < MIN_PATCH_INPUT:
    raise ValueError(f"`model.resolution` must be >= {MIN_PATCH_INPUT} (the PatchGAN "
                     f"discriminator has no patch below it), got {full['resolution']}.")
  dtype = jnp.dtype(full["dtype"]) if full["dtype"] else None
  kw = dict(dtype=dtype, param_dtype=jnp.dtype(full["param_dtype"]))

  def gen():
    return ResnetGenerator(ngf=full["ngf"], n_blocks=full["n_blocks"], upsample=full["upsample"],
                           pyramid=full["pyramid"], pyramid_rates=tuple(full["pyramid_rates"]),
                           spap_order=full["spap_order"], norm_bias=bool(full["norm_bias"]),
                           **kw)

  def disc():
    return PatchDiscriminator(ndf=full["ndf"], atrous=full["d_atrous"],
                              atrous_rates=tuple(full["d_atrous_rates"]),
                              norm_bias=bool(full["norm_bias"]), **kw)

  r = full["resolution"]
  g = GeneratorPair(ab=gen(), ba=gen())
  d = DiscriminatorPair(d_a=disc(), d_b=disc(), image_shape=(r, r, 3),
                        pool_size=full["pool_size"])
  return g, d
