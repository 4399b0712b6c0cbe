"""SPADE / GauGAN (Park et al., "Semantic Image Synthesis with Spatially-Adaptive
Normalization", CVPR 2019): the generator, its optional VAE style encoder and the multi-scale
PatchGAN discriminator, the host DAGAN and LGGAN were published on.

Layouts follow the official code (NVlabs/SPADE, `models/networks/generator.py`,
`architecture.py`, `discriminator.py`, `encoder.py`), in NHWC:

  SPADEGenerator(seg [B, H, W, S], z=None, image=None, train) -> (fake [B, H, W, 3] in [-1, 1],
      kl scalar)
    S = label_nc + contain_dontcare_label + use_instance (one-hot labels ⊕ instance edges).
    Input: the segmentation map resized (PyTorch nearest) to (H, W) / 2^u, u = 5 / 6 / 7 for
    `num_upsampling_layers` 'normal' / 'more' / 'most', through a 3x3 conv to 16·ngf
    channels (official default); with `use_vae` a 256-d style code z (from the encoder when an
    image is given, else N(0, I)) through a linear layer instead. Then SPADE residual blocks
    head_0, G_middle_0, G_middle_1 (16·ngf), up_0..up_3 (8, 4, 2, 1 ·ngf) (+ up_4, ngf/2, for
    'most') with nearest ×2 upsampling between them, LeakyReLU(0.2), a 3x3 conv to RGB, tanh.
    Non-square outputs: the bottom map is (H, W) / 2^u, any aspect ratio.
  SPADEResBlock: x_s + conv_1(lrelu(SPADE(conv_0(lrelu(SPADE(x)))))) with the learned
    shortcut x_s = conv_s(SPADE(x)) (1x1, no bias) where channels change; spectral norm on
    the three convs (official `norm_G='spectralspadesyncbatch3x3'`: synchronized, parameter-
    free batch norm inside SPADE, 128 hidden channels, 3x3 convs).
  Biases whose only way to the image is a SPADE normalisation are dropped by default
    (`block_bias=False`): conv_0's (its output goes only into norm_1), the input layer's
    `fc` and conv_1's of every block but the last (their outputs reach the next
    learned-shortcut block, whose norm_s and norm_0 see them, through identity shortcuts
    only). Batch (or instance) norm subtracts any per-channel constant, so these biases
    change nothing G computes and their true gradient is 0; the computed one is rounding
    noise, which Adam (dividing by its scale) turns into lr-sized random steps that differ
    with the summation order (8 devices vs 1). The official code has them (`nn.Conv2d`'s
    default bias): `block_bias=True` gives its exact parameter layout.
  ConvEncoder(image) -> (mu, logvar) [B, z_dim]: image resized bilinearly to 256², six (five
    below 256 crop) stride-2 3x3 convs with spectral + instance norm, linear heads.
  MultiscaleDiscriminator(seg, image, train) -> list over `num_d` scales of the list of
    `n_layers_d + 1` intermediate feature maps (the last is the [B, h, w, 1] patch logits):
    each scale is an NLayerDiscriminator (kernel 4, padding 2, ndf..min(ndf·2^k, 512), stride
    2 except the last hidden layer, spectral + instance norm on all but the first and last
    convs, LeakyReLU 0.2) on seg ⊕ image; scales are separated by a 3x3 stride-2 average
    pool that does not count padding.

Spectral-norm vectors and batch-norm statistics live in 'batch_stats'.
"""

import functools
from typing import Any, List, Optional, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from genattn_jax import _checks
from genattn_jax.layers.conv import Conv
from genattn_jax.layers.norms import SPADE, InstanceNorm, SpectralConv, \
    nearest_resize

Dtype = Any
NUM_UP = {"normal": 5, "more": 6, "most": 7}
# Official `BaseNetwork.init_weights` (init_type 'xavier', gain 0.02) for every conv / linear
# of G and D: normal with std = 0.02 · sqrt(2 / (fan_in + fan_out)); biases 0.
XAVIER_002 = nn.initializers.variance_scaling(0.02 ** 2, "fan_avg", "normal")


def lrelu(x):
  return nn.leaky_relu(x, 0.2)


def upsample2x(x):
  """Nearest ×2 upsampling of [B, H, W, C] (PyTorch `nn.Upsample(scale_factor=2)`)."""
  return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


class SPADEResBlock(nn.Module):
  """SPADE residual block (Park et al. 2019, Fig. 4 right / official `SPADEResnetBlock`).

  Attributes:
    features: output channels; fmiddle = min(C_in, features); learned shortcut iff
      C_in != features.
    spectral_norm: spectral norm on conv_0, conv_1, conv_s.
    spade_hidden: hidden channels of the SPADE layers (128).
    bias_0, bias_1: biases on conv_0 / conv_1 (the official code has both; see the module
      doc for why the generator drops those a SPADE norm removes).
    bn_axis_name: axis for synchronized batch norm (pmap), None under jit.
  """
  features: int
  spectral_norm: bool = True
  spade_hidden: int = 128
  spade_norm: str = "batch"
  bias_0: bool = True
  bias_1: bool = True
  bn_axis_name: Optional[str] = None
  kernel_init: Any = XAVIER_002
  dtype: Optional[Dtype] = None
  param_dtype: Dtype = jnp.float32

  def _conv(self, features, kernel, name, use_bias=True):
    kw = dict(features=features, kernel_size=(kernel, kernel), padding="SAME",
              use_bias=use_bias, dtype=self.dtype, param_dtype=self.param_dtype,
              kernel_init=self.kernel_init, name=name)
    return SpectralConv(**kw) if self.spectral_norm else Conv(**kw)

  def _spade(self, name):
    return SPADE(hidden_features=self.spade_hidden, norm=self.spade_norm,
                 conv=functools.partial(Conv, kernel_init=self.kernel_init),
                 axis_name=self.bn_axis_name, dtype=self.dtype, param_dtype=self.param_dtype,
                 name=name)

  @nn.compact
  def __call__(self, x, seg, train: bool = True):
    cin = x.shape[-1]
    fmid = min(cin, self.features)
    ura = not train
    if cin != self.features:
      x_s = self._conv(self.features, 1, "conv_s", use_bias=False)(
          self._spade("norm_s")(x, seg, use_running_average=ura), update_stats=train)
    else:
      x_s = x
    dx = self._conv(fmid, 3, "conv_0", use_bias=self.bias_0)(
        lrelu(self._spade("norm_0")(x, seg, use_running_average=ura)), update_stats=train)
    dx = self._conv(self.features, 3, "conv_1", use_bias=self.bias_1)(
        lrelu(self._spade("norm_1")(dx, seg, use_running_average=ura)), update_stats=train)
    return x_s + dx


class ConvEncoder(nn.Module):
  """SPADE's VAE style encoder (official `ConvEncoder`): image [B, H, W, 3] → (mu, logvar)."""
  ndf: int = 64
  z_dim: int = 256
  crop_size: int = 256
  dtype: Optional[Dtype] = None
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, image, train: bool = True):
    b = image.shape[0]
    if image.shape[1:3] != (256, 256):
      image = jax.image.resize(image, (b, 256, 256, image.shape[-1]), "bilinear",
                               antialias=False)
    mults = [1, 2, 4, 8, 8] + ([8] if self.crop_size >= 256 else [])
    x = image
    for i, m in enumerate(mults):
      if i:
        x = lrelu(x)
      x = SpectralConv(self.ndf * m, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)),
                       use_bias=False, kernel_init=XAVIER_002, dtype=self.dtype, param_dtype=self.param_dtype, name=f"layer{i + 1}")(
                           x, update_stats=train)
      x = InstanceNorm(use_scale=False, use_bias=False, dtype=self.dtype,
                       name=f"norm{i + 1}")(x)
    x = lrelu(x)
    if x.shape[1:3] != (4, 4):  # official code: s0 = 4 (256 → 4 after six stride-2 convs)
      x = jax.image.resize(x, (b, 4, 4, x.shape[-1]), "bilinear", antialias=False)
    x = x.reshape(b, -1)
    mu = nn.Dense(self.z_dim, kernel_init=XAVIER_002, dtype=self.dtype, param_dtype=self.param_dtype, name="fc_mu")(x)
    logvar = nn.Dense(self.z_dim, kernel_init=XAVIER_002, dtype=self.dtype, param_dtype=self.param_dtype,
                      name="fc_var")(x)
    return mu, logvar


def kl_divergence(mu, logvar):
  """KL(N(mu, exp(logvar)) || N(0, I)) summed over batch and dimensions (official
  `KLDLoss`: −0.5 Σ(1 + logvar − mu² − exp(logvar)))."""
  return -0.5 * jnp.sum(1 + logvar - mu ** 2 - jnp.exp(logvar))


class SPADEGenerator(nn.Module):
  """SPADE generator (see module doc).

  Attributes:
    height, width: output size; both divisible by 2^u (u from `num_upsampling_layers`).
    ngf: base width (64 in the paper).
    num_upsampling_layers: 'normal' | 'more' | 'most'.
    use_vae: style encoder + z input (paper Sec. 3.3 multi-modal synthesis).
    z_dim: style code size (256).
    spectral_norm, spade_hidden, bn_axis_name: see `SPADEResBlock`.
    block_bias: keep the biases a SPADE norm removes (fc, every conv_0, conv_1 of all but
      the last block; see the module doc). False (default) drops them; True = the official
      code's parameter layout.
    kernel_init: initialiser of every conv / linear kernel of G's trunk (biases are zero;
      the VAE encoder keeps `XAVIER_002`): the official xavier-normal gain 0.02 by default.
  """
  height: int
  width: int
  ngf: int = 64
  num_upsampling_layers: str = "normal"
  use_vae: bool = False
  z_dim: int = 256
  spectral_norm: bool = True
  spade_hidden: int = 128
  spade_norm: str = "batch"
  block_bias: bool = False
  bn_axis_name: Optional[str] = None
  kernel_init: Any = XAVIER_002
  dtype: Optional[Dtype] = None
  param_dtype: Dtype = jnp.float32

  def bottom_size(self) -> Tuple[int, int]:
    _checks.check_in(self.num_upsampling_layers, tuple(NUM_UP), "num_upsampling_layers")
    f = 2 ** NUM_UP[self.num_upsampling_layers]
    if self.height % f or self.width % f:
      raise ValueError(f"output size {self.height}x{self.width} must be divisible by {f} "
                       f"(`num_upsampling_layers`={self.num_upsampling_layers!r}).")
    return self.height // f, self.width // f

  @nn.compact
  def __call__(self, seg, z=None, image=None, train: bool = True, fc_input=None,
               return_features: bool = False):
    """seg: [B, H, W, S] float one-hot ⊕ edge; z: [B, z_dim] or None; image: [B, H, W, 3]
    in [-1, 1] for the encoder (use_vae only). Returns (fake [B, H, W, 3], kl scalar).

    Hosting options (DAGAN, LGGAN): `fc_input` [B, h, w, C] float replaces the downsampled
    label map as the input of the first conv 'fc' (resized nearest to the bottom size;
    LGGAN feeds its shared encoder's deepest map there; not with `use_vae`). With
    `return_features` the output layer is not built and ((last, earlier), kl) is returned:
    `last` [B, H, W, ngf] is the last residual block's output (before LeakyReLU and
    'conv_img') and `earlier` that block's input ([B, H, W, 2·ngf], after the last ×2
    upsampling), the two maps DAGAN's attention head takes.
    """
    b, h, w, _ = _checks.check_nhwc(seg, "seg")
    if (h, w) != (self.height, self.width):
      raise ValueError(f"`seg` is {h}x{w}; the generator was built for "
                       f"{self.height}x{self.width}.")
    sh, sw = self.bottom_size()
    nf = self.ngf
    common = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    kl = jnp.zeros((), jnp.float32)
    if self.use_vae and fc_input is not None:
      raise ValueError("`fc_input` replaces the label-map input; it cannot be combined with "
                       "`use_vae` (whose input is the style code).")
    if self.use_vae:
      if image is not None:
        mu, logvar = ConvEncoder(ndf=nf, z_dim=self.z_dim, crop_size=max(h, w), **common,
                                 name="encoder")(image, train=train)
        eps = jax.random.normal(self.make_rng("sampling"), mu.shape, mu.dtype)
        z = mu + eps * jnp.exp(0.5 * logvar)
        kl = kl_divergence(mu, logvar)
      elif z is None:
        z = jax.random.normal(self.make_rng("sampling"), (b, self.z_dim), jnp.float32)
      x = nn.Dense(16 * nf * sh * sw, kernel_init=self.kernel_init, use_bias=self.block_bias,
                   **common, name="fc")(z).reshape(b, sh, sw, 16 * nf)
    else:
      src = seg
      if fc_input is not None:
        _checks.check_nhwc(fc_input, "fc_input")
        src = fc_input
      x = Conv(16 * nf, (3, 3), padding="SAME", kernel_init=self.kernel_init,
                  use_bias=self.block_bias, **common, name="fc")(nearest_resize(src, (sh, sw)))
    last = "up_4" if self.num_upsampling_layers == "most" else "up_3"

    def block(features, name):
      return SPADEResBlock(features, spectral_norm=self.spectral_norm,
                           spade_hidden=self.spade_hidden, spade_norm=self.spade_norm,
                           bias_0=self.block_bias, bias_1=self.block_bias or name == last,
                           bn_axis_name=self.bn_axis_name, kernel_init=self.kernel_init,
                           **common, name=name)

    x = block(16 * nf, "head_0")(x, seg, train)
    x = upsample2x(x)
    x = block(16 * nf, "G_middle_0")(x, seg, train)
    if self.num_upsampling_layers in ("more", "most"):
      x = upsample2x(x)
    x = block(16 * nf, "G_middle_1")(x, seg, train)
    ups = [(m * nf, f"up_{i}") for i, m in enumerate((8, 4, 2, 1))]
    if self.num_upsampling_layers == "most":
      ups.append((nf // 2, "up_4"))
    earlier = x
    for features, name in ups:
      earlier = upsample2x(x)
      x = block(features, name)(earlier, seg, train)
    if return_features:
      return (x, earlier), kl
    x = Conv(3, (3, 3), padding="SAME", kernel_init=self.kernel_init, **common,
                name="conv_img")(lrelu(x))
    return jnp.tanh(x), kl


class NLayerDiscriminator(nn.Module):
  """One PatchGAN scale (official `NLayerDiscriminator`); returns its n_layers+1 features."""
  ndf: int = 64
  n_layers: int = 4
  spectral_norm: bool = True
  dtype: Optional[Dtype] = None
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = True) -> List[jax.Array]:
    pad = ((2, 2), (2, 2))  # padw = ceil((4 - 1) / 2)
    common = dict(kernel_size=(4, 4), padding=pad, dtype=self.dtype,
                  param_dtype=self.param_dtype, kernel_init=XAVIER_002)
    feats = []
    x = lrelu(Conv(self.ndf, strides=(2, 2), **common, name="conv0")(x))
    feats.append(x)
    nf = self.ndf
    for n in range(1, self.n_layers):
      nf = min(nf * 2, 512)
      stride = 1 if n == self.n_layers - 1 else 2
      kw = dict(features=nf, strides=(stride, stride), use_bias=not self.spectral_norm, **common,
                name=f"conv{n}")
      if self.spectral_norm:
        # Official code removes the conv bias before the (affine-free) instance norm.
        x = SpectralConv(**kw)(x, update_stats=train)
      else:
        x = Conv(**kw)(x)
      x = InstanceNorm(use_scale=False, use_bias=False, dtype=self.dtype, name=f"norm{n}")(x)
      x = lrelu(x)
      feats.append(x)
    feats.append(Conv(1, strides=(1, 1), **common, name=f"conv{self.n_layers}")(x))
    return feats


def downsample_d_input(x):
  """3x3 stride-2 average pool, padding 1, padding not counted (`count_include_pad=False`).

  The per-position divisor (9, 6 or 4 real pixels) is computed in NumPy from the static
  shape, so XLA does not constant-fold a window sum over a ones tensor at compile time.
  """
  h, w = x.shape[1:3]

  def counts(n):
    ho = (n - 1) // 2 + 1
    return np.array([min(2 * i + 1, n - 1) - max(2 * i - 1, 0) + 1 for i in range(ho)])

  div = (counts(h)[:, None] * counts(w)[None, :]).astype(np.float32)
  summed = nn.avg_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)),
                       count_include_pad=True) * 9.0
  return summed / jnp.asarray(div, x.dtype)[None, :, :, None]


class MultiscaleDiscriminator(nn.Module):
  """`num_d` PatchGAN discriminators on successively halved seg ⊕ image (see module doc)."""
  ndf: int = 64
  n_layers: int = 4
  num_d: int = 2
  spectral_norm: bool = True
  dtype: Optional[Dtype] = None
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, seg, image, train: bool = True) -> List[List[jax.Array]]:
    """seg: [B, H, W, S]; image: [B, H, W, 3] in [-1, 1]. Returns features per scale."""
    _checks.check_nhwc(seg, "seg")
    _checks.check_nhwc(image, "image")
    if seg.shape[:3] != image.shape[:3]:
      raise ValueError(f"`seg` {seg.shape} and `image` {image.shape} differ in B, H or W.")
    x = jnp.concatenate([seg.astype(image.dtype), image], axis=-1)
    out = []
    for i in range(self.num_d):
      out.append(NLayerDiscriminator(self.ndf, self.n_layers, self.spectral_norm, self.dtype,
                                     self.param_dtype, name=f"D_{i}")(x, train))
      if i + 1 < self.num_d:
        x = downsample_d_input(x)
    return out


def semantic_nc(label_nc: int, contain_dontcare_label: bool, use_instance: bool) -> int:
  """Channels of G's / D's segmentation input: one-hot classes (+ don't care) (+ edge)."""
  return label_nc + int(contain_dontcare_label) + int(use_instance)


def spade_model_config(resolution: int = 256):
  """The official SPADE defaults (Park et al. 2019, official options) as a model ConfigDict.

  Fields: name 'spade'; image_size [H, W] (default [resolution, resolution]); ngf, ndf (64);
  num_upsampling_layers ('normal'); use_vae (False); z_dim (256); spade_hidden (128);
  num_d (2); n_layers_d (4); g_spectral_norm, d_spectral_norm (True); g_block_bias (False:
  G's biases that a SPADE norm removes are dropped, True = the official layout; see the
  module doc); bn_axis_name; dtype, param_dtype; resolution (= H, kept for the shared config
  helpers).
  """
  import ml_collections  # pylint: disable=g-import-not-at-top
  return ml_collections.ConfigDict(spade_model_defaults(resolution))


def spade_model_defaults(resolution: int = 256) -> dict:
  """The fields of `spade_model_config(resolution)` as a plain dict (no ml_collections, so
  that `models.build_gan` builds SPADE where it is not installed, e.g. benchmarks/gpu_suite.sh
  on a GPU machine)."""
  return {
      "name": "spade",
      "resolution": resolution,
      "image_size": [resolution, resolution],
      "ngf": 64,
      "ndf": 64,
      "num_upsampling_layers": "normal",
      "use_vae": False,
      "z_dim": 256,
      "spade_hidden": 128,
      "num_d": 2,
      "n_layers_d": 4,
      "g_spectral_norm": True,
      "d_spectral_norm": True,
      "g_block_bias": False,
      "bn_axis_name": "",
      "dtype": "",
      "param_dtype": "float32",
      # Accepted for the shared helpers (`shrink_for_tests`); unused by SPADE.
      "g_width": 1.0,
      "d_width": 1.0,
  }


def build_spade(cfg: dict, common: dict, axis: Optional[str]):
  """(SPADEGenerator, MultiscaleDiscriminator) from the model config dict (see
  `models.default_model_config('spade')`)."""
  h, w = (int(s) for s in cfg["image_size"])
  gen = SPADEGenerator(height=h, width=w, ngf=int(cfg["ngf"]),
                       num_upsampling_layers=cfg["num_upsampling_layers"],
                       use_vae=bool(cfg["use_vae"]), z_dim=int(cfg["z_dim"]),
                       spectral_norm=bool(cfg["g_spectral_norm"]),
                       spade_hidden=int(cfg["spade_hidden"]),
                       block_bias=bool(cfg["g_block_bias"]), bn_axis_name=axis, **common)
  gen.bottom_size()  # validates the size now, naming the field
  return gen, build_spade_discriminator(cfg, common)


def build_spade_discriminator(cfg: dict, common: dict) -> MultiscaleDiscriminator:
  """SPADE's multi-scale PatchGAN from the model config dict (also DAGAN's and LGGAN's D)."""
  return MultiscaleDiscriminator(ndf=int(cfg["ndf"]), n_layers=int(cfg["n_layers_d"]),
                                 num_d=int(cfg["num_d"]),
                                 spectral_norm=bool(cfg["d_spectral_norm"]), **common)
