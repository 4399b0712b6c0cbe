"""StyleGAN (Karras et al., CVPR 2019): the LAP paper's main host (Tables 1, 2, 4, 5).

Follows the official TensorFlow code (networks_stylegan.py, config-f-free StyleGAN 1), which
produced the baselines LAP reports ("we train baseline models with the official code").

Mapping network f (Sec. 2, App. C): z [B, 512] → pixel norm → 8 × (EqualizedDense(512,
lr_mul=0.01) → LeakyReLU(0.2)) → w [B, 512], broadcast to one w per synthesis layer.

Synthesis network g: a learned constant [4, 4, 512] (ones at init); each resolution
r = 4 … R has two layers (4²: the constant, then one 3×3 conv); every layer ends with the
epilogue  noise (learned per-channel scale) → bias → LeakyReLU(0.2) → AdaIN(w_i).
The constant's layer has no bias by default (`const_bias=False`; True = the official layout):
a per-channel bias added to a learned per-position constant is redundant with it, and while
the constant (ones at init) plus its noise stays positive, the LeakyReLU is the identity and
AdaIN's instance norm subtracts the bias, so its true gradient is 0. The computed one is
rounding noise, which Adam (β1 = 0) turns into ±lr steps that differ with the summation order
(8 devices vs 1); through AdaIN of the nearly constant map (std ~1e-3 after one step, eps
1e-8) those differences then reach every parameter (measured: 2e-3 on the bias, 2e-4 on the
convs after 2 steps of the CIFAR test twin on 8 devices vs 1).
Upsampling layers are nearest ×2 → 3×3 equalised conv → blur [1, 2, 1]² (the "blurred
upsampling"). ToRGB is a 1×1 equalised conv of gain 1; output is linear (no tanh), nominally
in [-1, 1]. Channels: 512 up to 32², then 256, 128, 64 (at 256²), times `width`.
2·log2(R) − 2 layers take a w each (14 at 256²).

Training-time regularisation inside G (needs the 'sampling' rng): style mixing with
probability `style_mixing_prob` (0.9): a second z2 is mapped and, from one crossover layer
drawn uniformly in [1, num_layers) per minibatch (as the official code draws it), layers use
w2 instead of w. The moving average of w (decay 0.995, `w_avg` in the 'batch_stats'
collection) is updated in training and used by the truncation trick at sampling time:
w' = w_avg + ψ (w − w_avg) on the first `truncation_cutoff` layers (ψ = `truncation_psi`;
1.0 = off, the FID protocol; the paper's figures use 0.7, cutoff 8).

Discriminator (residual-free, the official `D_basic`): FromRGB 1×1 at R; per resolution
r = R … 8: conv 3×3 → LeakyReLU → blur → conv 3×3 → 2×2 average pool → LeakyReLU (channels
nf(r) → nf(r/2)); at 4²: minibatch stddev (group 4, one map) → conv 3×3 → dense(nf(4)) →
dense(1). All equalised-lr, no normalisation.

Parameter count at 256² (width 1): G 26,082,883 + D 23,042,625 = 49,125,508 (G 26,083,395,
total 49,126,020 with the official constant-layer bias): 49.13M rounded, as in the LAP paper's
Table 2. With LAP: + 91,492 (Sec. 4.1: 79,588; Sec. 4.2: 11,904) = 49.22M (Table 4:
49.24M; Table 5 gives Sec. 4.1 as 95K where Eq. 1-2 with 3×3 kernels give us 80K, a gap the
paper does not let us explain); with CBAM 49.35M (Table 4: 49.36M).

Progressive growing is not implemented: the hosts train at full resolution from step 0
(see the config docstrings for why).

LAP / self-attention / CBAM: `attention` places one block after each synthesis conv at
8² … R² (`style_layers.attention_after_conv`), after the layer's AdaIN.
"""

from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import flax.linen as nn
import jax
import jax.numpy as jnp

from genattn_jax import _checks
from genattn_jax._dtypes import wide
from genattn_jax._parallel import global_rows, own_rows
from genattn_jax.models import style_layers as sl


class MappingNetwork(nn.Module):
  """z [B, z_dim] → w [B, w_dim] (8 equalised dense layers, lr multiplier 0.01).

  Attributes:
    num_layers: depth (8).
    w_dim: width and output size (512).
    lr_mul: learning-rate multiplier of every layer (0.01).
    normalize_z: pixel-normalise z first (the official code does).
    dtype, param_dtype: computation / parameter dtypes.
  """
  num_layers: int = 8
  w_dim: int = 512
  lr_mul: float = 0.01
  normalize_z: bool = True
  dtype: Optional[jnp.dtype] = None
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, z: jax.Array) -> jax.Array:
    _checks.check_rank(z, 2, "z", "[B, z_dim]")
    h = sl.pixel_norm(z) if self.normalize_z else z
    for i in range(self.num_layers):
      h = sl.EqualizedDense(self.w_dim, lr_mul=self.lr_mul, dtype=self.dtype,
                            param_dtype=self.param_dtype, name=f"dense{i}")(h)
      h = nn.leaky_relu(h, 0.2)
    return h


class SynthesisNetwork(nn.Module):
  """ws [B, num_layers, w_dim] → image(s) (see the module doc).

  Attributes:
    resolution: output size R (power of two ≥ 8).
    width: channel multiplier of the official schedule.
    attention: '' / 'lap' / 'self_attention' / 'cbam' after every conv at 8² … R².
    attention_kwargs: extra block arguments.
    const_bias: bias on the constant's layer (official: True; see the module doc).
    axis_name: pmap axis (noise is drawn for the global batch).
    dtype, param_dtype: computation / parameter dtypes.
  """
  resolution: int = 256
  width: float = 1.0
  attention: str = ""
  attention_kwargs: Any = None
  const_bias: bool = False
  axis_name: Optional[str] = None
  dtype: Optional[jnp.dtype] = None
  param_dtype: jnp.dtype = jnp.float32

  def num_layers(self) -> int:
    return 2 * sl.check_pow2_resolution(self.resolution) - 2

  def stage_resolutions(self) -> Tuple[int, ...]:
    return tuple(2**k for k in range(2, sl.check_pow2_resolution(self.resolution) + 1))

  @nn.compact
  def __call__(self, ws: jax.Array, multiscale: bool = False,
               noise: Optional[Sequence[jax.Array]] = None) -> Union[jax.Array, List[jax.Array]]:
    """Args:
      ws: [B, num_layers, w_dim] float.
      multiscale: return an RGB image from every stage (MSG-StyleGAN), coarse to fine.
      noise: optional list of num_layers [B, r, r, 1] noise maps (tests).

    Returns:
      [B, R, R, 3] float32 (linear output), or a list of [B, r, r, 3] for r = 4 … R.

    Raises:
      ValueError: wrong `ws` shape.
    """
    n = self.num_layers()
    if ws.ndim != 3 or ws.shape[1] != n:
      raise ValueError(f"`ws` must be [B, {n}, w_dim], got {tuple(ws.shape)}.")
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    b = ws.shape[0]
    layer = [0]

    def epilogue(h, res):
      i = layer[0]
      nz = None if noise is None else noise[i]
      h = sl.NoiseInjection(axis_name=self.axis_name, name=f"noise{i}", **kw)(h, nz)
      if i or self.const_bias:
        h = h + self.param(f"bias{i}", nn.initializers.zeros, (h.shape[-1],), self.param_dtype)
      h = nn.leaky_relu(h, 0.2)
      h = sl.StyleModulation(name=f"style{i}", **kw)(h, ws[:, i])
      h = sl.attention_after_conv(h, self.attention, self.attention_kwargs, res, i % 2, **kw)
      layer[0] += 1
      return h

    def to_rgb(h, res):
      return sl.EqualizedConv(3, kernel_size=1, gain=1.0, name=f"to_rgb{res}", **kw)(h)

    c4 = sl.stage_channels(4, width=self.width)
    const = self.param("const", nn.initializers.ones, (1, 4, 4, c4), self.param_dtype)
    h = jnp.broadcast_to(jnp.asarray(const, self.dtype or jnp.result_type(const)), (b, 4, 4, c4))
    h = epilogue(h, 4)
    h = epilogue(sl.EqualizedConv(c4, name="conv4", **kw)(h), 4)
    outputs = [to_rgb(h, 4)] if multiscale else []
    for res in self.stage_resolutions()[1:]:
      c = sl.stage_channels(res, width=self.width)
      h = sl.blur(sl.EqualizedConv(c, name=f"conv{res}_up", **kw)(sl.upsample2x(h)))
      h = epilogue(h, res)
      h = epilogue(sl.EqualizedConv(c, name=f"conv{res}", **kw)(h), res)
      if multiscale or res == self.resolution:
        outputs.append(to_rgb(h, res))
    outputs = [wide(o) for o in outputs]
    return outputs if multiscale else outputs[-1]


def mix_styles(ws: jax.Array, w2: jax.Array, cutoff: jax.Array) -> jax.Array:
  """Style mixing: layers i < cutoff keep ws[:, i], the rest take w2.

  Args:
    ws: [B, L, w_dim] per-layer styles of the first latent.
    w2: [B, w_dim] the second latent's w.
    cutoff: int scalar crossover layer in [1, L] (L = no mixing).

  Returns:
    [B, L, w_dim].
  """
  layer_idx = jnp.arange(ws.shape[1])[None, :, None]
  return jnp.where(layer_idx < cutoff, ws, jnp.asarray(w2, ws.dtype)[:, None, :])


class StyleGANGenerator(nn.Module):
  """Mapping + synthesis, with style mixing (training) and truncation (sampling).

  Call: `generator(z [B, z_dim], y=None, train=True, multiscale=False)`; `y` is ignored
  (unconditional, as in the LAP paper). Training needs the 'sampling' rng (noise, mixing)
  and a mutable 'batch_stats' (w_avg). With 'intermediates' mutable the per-layer styles
  ('ws') and, when mixing ran, 'mixing_z2' / 'mixing_cutoff' are recorded.

  Attributes:
    resolution, width, attention, attention_kwargs, const_bias: see `SynthesisNetwork`.
    z_dim, w_dim: 512, 512.
    mapping_layers: 8; mapping_lr_mul: 0.01.
    style_mixing_prob: 0.9 (0 = off).
    truncation_psi: ψ used when train=False (1.0 = off).
    truncation_cutoff: layers truncated (8).
    w_avg_decay: 0.995.
    axis_name: pmap axis (noise / mixing drawn for the global batch, w_avg averaged).
    dtype, param_dtype: computation / parameter dtypes.
  """
  resolution: int = 256
  z_dim: int = 512
  w_dim: int = 512
  width: float = 1.0
  mapping_layers: int = 8
  mapping_lr_mul: float = 0.01
  style_mixing_prob: float = 0.9
  truncation_psi: float = 1.0
  truncation_cutoff: int = 8
  w_avg_decay: float = 0.995
  attention: str = ""
  attention_kwargs: Any = None
  const_bias: bool = False
  axis_name: Optional[str] = None
  dtype: Optional[jnp.dtype] = None
  param_dtype: jnp.dtype = jnp.float32

  def stage_resolutions(self) -> Tuple[int, ...]:
    return tuple(2**k for k in range(2, sl.check_pow2_resolution(self.resolution) + 1))

  @nn.compact
  def __call__(self, z: jax.Array, y: Optional[jax.Array] = None, train: bool = True,
               multiscale: bool = False, noise: Optional[Sequence[jax.Array]] = None):
    """Generates images.

    Args:
      z: [B, z_dim] float latents.
      y: ignored (the hosts are unconditional; the builder rejects num_classes > 0).
      train: style mixing + w_avg update (needs 'sampling' rng) if True; truncation if False.
      multiscale: return every stage's RGB (coarse → fine) for MSG-StyleGAN.
      noise: optional per-layer noise maps (see `SynthesisNetwork`).

    Returns:
      [B, R, R, 3] float32, or a list of [B, r, r, 3] when `multiscale`.

    Raises:
      ValueError: bad `z` shape or bad settings.
    """
    _checks.check_rank(z, 2, "z", "[B, z_dim]")
    if z.shape[1] != self.z_dim:
      raise ValueError(f"`z` must have shape [B, z_dim={self.z_dim}], got {tuple(z.shape)}.")
    del y  # unconditional (model.num_classes = 0): labels are ignored, as in SNDCGAN
    if not 0.0 <= self.style_mixing_prob <= 1.0:
      raise ValueError(f"`style_mixing_prob` must lie in [0, 1], got {self.style_mixing_prob}.")
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    synthesis = SynthesisNetwork(resolution=self.resolution, width=self.width,
                                 attention=self.attention, attention_kwargs=self.attention_kwargs,
                                 const_bias=self.const_bias, axis_name=self.axis_name,
                                 name="synthesis", **kw)
    mapping = MappingNetwork(num_layers=self.mapping_layers, w_dim=self.w_dim,
                             lr_mul=self.mapping_lr_mul, name="mapping", **kw)
    n = synthesis.num_layers()
    b = z.shape[0]
    w = mapping(z)
    w_avg = self.variable("batch_stats", "w_avg", jnp.zeros, (self.w_dim,), jnp.float32)
    ws = jnp.broadcast_to(w[:, None, :], (b, n, self.w_dim))
    if train and self.has_rng("sampling") and not self.is_initializing():
      batch_mean = jnp.mean(wide(w), axis=0)
      if self.axis_name is not None:
        batch_mean = jax.lax.pmean(batch_mean, self.axis_name)
      w_avg.value = batch_mean + self.w_avg_decay * (w_avg.value - batch_mean)
      if self.style_mixing_prob > 0:
        rng = self.make_rng("sampling")
        z_rng, p_rng, c_rng = jax.random.split(rng, 3)
        z2 = own_rows(jax.random.normal(z_rng, (global_rows(b, self.axis_name), self.z_dim),
                                        z.dtype), b, self.axis_name)
        w2 = mapping(z2)
        cutoff = jnp.where(jax.random.uniform(p_rng) < self.style_mixing_prob,
                           jax.random.randint(c_rng, (), 1, n), n)
        ws = mix_styles(ws, w2, cutoff)
        self.sow("intermediates", "mixing_z2", z2)
        self.sow("intermediates", "mixing_cutoff", cutoff)
    elif not train and self.truncation_psi != 1.0:
      avg = jnp.asarray(w_avg.value, ws.dtype)
      layer_idx = jnp.arange(n)[None, :, None]
      psi = jnp.where(layer_idx < self.truncation_cutoff, self.truncation_psi, 1.0)
      ws = avg + psi * (ws - avg)
    self.sow("intermediates", "ws", ws)
    return synthesis(ws, multiscale=multiscale, noise=noise)


class StyleGANDiscriminator(nn.Module):
  """StyleGAN's residual-free discriminator with minibatch stddev (see the module doc).

  Call: `discriminator(x [B, R, R, 3], y=None, train=True) -> [B] float32 logits`.

  Attributes:
    resolution: input size R.
    width: channel multiplier.
    mbstd_group: minibatch-stddev group size (4).
    dtype, param_dtype: computation / parameter dtypes.
  """
  resolution: int = 256
  width: float = 1.0
  mbstd_group: int = 4
  dtype: Optional[jnp.dtype] = None
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, y: Optional[jax.Array] = None,
               train: bool = True) -> jax.Array:
    """x: [B, R, R, 3] float images in [-1, 1] → [B] float32 logits.

    Raises:
      ValueError: wrong image shape.
    """
    del train
    k = sl.check_pow2_resolution(self.resolution)
    b, h, w_, c = _checks.check_nhwc(x, "x")
    if (h, w_, c) != (self.resolution, self.resolution, 3):
      raise ValueError(f"`x` must be [B, {self.resolution}, {self.resolution}, 3], "
                       f"got {tuple(x.shape)}.")
    del y  # unconditional: labels are ignored
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    nf = lambda r: sl.stage_channels(r, width=self.width)
    act = lambda t: nn.leaky_relu(t, 0.2)
    h = act(sl.EqualizedConv(nf(self.resolution), kernel_size=1, name="from_rgb", **kw)(x))
    for res in (2**i for i in range(k, 2, -1)):
      h = act(sl.EqualizedConv(nf(res), name=f"conv{res}_0", **kw)(h))
      h = sl.EqualizedConv(nf(res // 2), name=f"conv{res}_down", **kw)(sl.blur(h))
      h = act(sl.downsample2x(h))
    return d_epilogue(h, self.mbstd_group, nf(4), kw)


def d_epilogue(h: jax.Array, mbstd_group: int, channels: int, kw: Dict[str, Any]) -> jax.Array:
  """The 4² head shared with MSG: mbstd → conv 3×3 → dense(channels) → dense(1) → [B]."""
  act = lambda t: nn.leaky_relu(t, 0.2)
  h = sl.minibatch_stddev(h, mbstd_group)
  h = act(sl.EqualizedConv(channels, name="conv4", **kw)(h))
  h = act(sl.EqualizedDense(channels, name="dense4", **kw)(h.reshape(h.shape[0], -1)))
  return wide(sl.EqualizedDense(1, gain=1.0, name="logit", **kw)(h)[:, 0])
