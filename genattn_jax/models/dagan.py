"""DAGAN (Tang, Bai and Sebe, "Dual Attention GANs for Semantic Image Synthesis", ACM MM 2020)
as a complete generator on the SPADE host, and its model config.

  DAGANGenerator(seg [B, H, W, S], z=None, image=None, train) -> (fake [B, H, W, 3] in
      (-1, 1), kl scalar)   (the call contract of `models.spade.SPADEGenerator`)

The SPADE generator runs up to its last residual block (`SPADEGenerator(...,
return_features=True)`); DAGAN's head (`models.dagan_heads.DAGANHead`, Sec. 3 and Fig. 2) then
sums the channel attention module (CAM, Eq. 5-9) fed by the earlier map (the last block's
input, 2·ngf channels after the last ×2 upsampling, as the official
`DAGAN_v1/models/networks/generator.py`) and the spatial attention module (SAM, Eq. 2-4) on
the last feature map, and maps the sum through LeakyReLU 0.2 → 3x3 conv → tanh. The Table 4
rows select the terms: B1 (the paper's "our baseline": no attention, here exactly SPADE's
output layer; its Table 4 numbers differ from the GauGAN row of Table 2), B2 (+SAM), B3 (+CAM-I, Eq. 8), B4 (+CAM-II, Eq. 9), B5 (+SAM+CAM-I), B6 (+SAM+CAM-II = DAGAN).

Parameters: the SPADE trunk under 'spade' (the output conv 'conv_img' lives in the head),
the head under 'head' ('sam', 'cam', 'conv_img'). The discriminator is SPADE's multi-scale
PatchGAN (paper Sec. 3, "Training Details": the multi-scale discriminator of [31, 44]).
"""

from typing import Any, Optional

import flax.linen as nn
import jax.numpy as jnp

from genattn_jax import _checks
from genattn_jax.layers import dagan as dagan_layers
from genattn_jax.layers import norms
from genattn_jax.models import dagan_heads
from genattn_jax.models import spade as spade_lib
from genattn_jax.layers.conv import Conv, ConvTranspose

Dtype = Any
INIT_SCHEMES = dagan_layers.INITS
SN_SCOPES = ("code", "all")


def added_layer_convs(sn_scope: str):
  """(conv, conv_transpose) constructors for the layers DAGAN / LGGAN add to SPADE.

  'code': plain convs, as the authors' code (spectral norm only in SPADE's residual blocks
  and in D); 'all': spectral norm on them too (LGGAN's text: "Spectral Norm to all the
  layers in both the generator and discriminator", its supplementary Sec. 6.1; the DAGAN
  paper does not mention spectral norm). LGGAN's per-class convs
  are plain in both (stacked parameters, see `ClassSpecificLocalGeneration`).

  Raises:
    ValueError: for another scope.
  """
  _checks.check_in(sn_scope, SN_SCOPES, "sn_scope")
  if sn_scope == "all":
    return norms.SpectralConv, norms.SpectralConvTranspose
  return Conv, ConvTranspose


def trunk_kernel_init(scheme: str, gain: float):
  """Kernel initialiser of the SPADE trunk for a model `init_scheme` / `init_gain`.

  'spade': xavier-normal with `gain` (the official `BaseNetwork.init_weights`, gain 0.02);
  'default': Flax's lecun-normal. Biases are zero in both.

  Raises:
    ValueError: for an unknown scheme or gain <= 0.
  """
  kw = dagan_layers.init_kwargs(scheme, gain)
  return kw.get("kernel_init", nn.initializers.lecun_normal())


def spade_trunk(host: nn.Module, **extra) -> spade_lib.SPADEGenerator:
  """The SPADE generator named 'spade' inside a DAGAN / LGGAN generator `host`, from the
  host's SPADE fields (height, width, ngf, num_upsampling_layers, spectral_norm,
  spade_hidden, bn_axis_name, block_bias, init_scheme, init_gain, dtype, param_dtype) and
  `extra`."""
  return spade_lib.SPADEGenerator(
      height=host.height, width=host.width, ngf=host.ngf,
      num_upsampling_layers=host.num_upsampling_layers, spectral_norm=host.spectral_norm,
      spade_hidden=host.spade_hidden, bn_axis_name=host.bn_axis_name,
      block_bias=host.block_bias,
      kernel_init=trunk_kernel_init(host.init_scheme, host.init_gain), dtype=host.dtype,
      param_dtype=host.param_dtype, name="spade", **extra)


class DAGANGenerator(nn.Module):
  """SPADE generator + DAGAN's SAM / CAM head (see module doc).

  Attributes:
    height, width, ngf, num_upsampling_layers, use_vae, z_dim, spectral_norm, spade_hidden,
      bn_axis_name, block_bias: as `models.spade.SPADEGenerator` (`model.g_block_bias`).
    use_sam: SAM on the last map (Table 4 rows B2, B5, B6).
    cam_variant: None, 'I' (Eq. 8) or 'II' (Eq. 9).
    sn_scope: 'code' (plain head convs, as the authors' code) or 'all' (spectral norm on
      the head's convs too, LGGAN's text; `added_layer_convs`).
    init_scheme: 'spade' (xavier-normal gain `init_gain`, zero bias: the authors' code,
      default) or 'default' (Flax's initialisers), for the trunk and the head.
    init_gain: xavier gain (0.02).
    dtype, param_dtype: computation / parameter dtypes.
  """
  height: int
  width: int
  ngf: int = 64
  num_upsampling_layers: str = "normal"
  use_vae: bool = False
  z_dim: int = 256
  spectral_norm: bool = True
  spade_hidden: int = 128
  bn_axis_name: Optional[str] = None
  block_bias: bool = False
  use_sam: bool = True
  cam_variant: Optional[str] = "II"
  sn_scope: str = "code"
  init_scheme: str = "spade"
  init_gain: float = 0.02
  dtype: Optional[Dtype] = None
  param_dtype: Dtype = jnp.float32

  @nn.nowrap
  def trunk(self) -> spade_lib.SPADEGenerator:
    return spade_trunk(self, use_vae=self.use_vae, z_dim=self.z_dim)

  @nn.compact
  def __call__(self, seg, z=None, image=None, train: bool = True):
    """seg: [B, H, W, S] float one-hot ⊕ edge; z, image: as `SPADEGenerator`.

    Returns:
      (fake [B, H, W, 3] float in (-1, 1), kl scalar float32).

    Raises:
      ValueError: for a `seg` of another size than (height, width), or a bad
        `cam_variant` / `init_scheme` (naming the field).
    """
    if self.cam_variant is not None:
      _checks.check_in(self.cam_variant, dagan_layers.CAM_VARIANTS, "cam_variant")
    (last, earlier), kl = self.trunk()(seg, z, image, train, return_features=True)
    conv, _ = added_layer_convs(self.sn_scope)
    fake = dagan_heads.DAGANHead(
        use_sam=self.use_sam, cam_variant=self.cam_variant, conv=conv,
        init_scheme=self.init_scheme,
        init_gain=self.init_gain, dtype=self.dtype, param_dtype=self.param_dtype,
        name="head")(last, earlier if self.cam_variant is not None else None)
    return fake, kl


def dagan_model_config(resolution: int = 256, row: str = "B6"):
  """DAGAN's model ConfigDict: SPADE's fields (`spade_model_config`) plus

  name 'dagan'; use_sam, cam_variant ('' = no CAM) from the Table 4 `row` (B6 = DAGAN);
  sn_scope ('code'; 'all' = LGGAN's text), init_scheme ('spade') and init_gain (0.02).

  Raises:
    ValueError: if `row` is not a Table 4 row.
  """
  _checks.check_in(row, tuple(dagan_heads.TABLE4_ROWS), "row")
  c = spade_lib.spade_model_config(resolution)
  c.name = "dagan"
  use_sam, cam = dagan_heads.TABLE4_ROWS[row]
  c.use_sam = use_sam
  c.cam_variant = cam or ""
  c.sn_scope = "code"
  c.init_scheme = "spade"
  c.init_gain = 0.02
  return c


def build_dagan(cfg: dict, common: dict, axis: Optional[str]):
  """(DAGANGenerator, MultiscaleDiscriminator) from the model config dict."""
  h, w = (int(s) for s in cfg["image_size"])
  _checks.check_in(cfg["init_scheme"], INIT_SCHEMES, "init_scheme")
  gen = DAGANGenerator(height=h, width=w, ngf=int(cfg["ngf"]),
                       num_upsampling_layers=cfg["num_upsampling_layers"],
                       use_vae=bool(cfg["use_vae"]), z_dim=int(cfg["z_dim"]),
                       spectral_norm=bool(cfg["g_spectral_norm"]),
                       spade_hidden=int(cfg["spade_hidden"]), bn_axis_name=axis,
                       block_bias=bool(cfg["g_block_bias"]), use_sam=bool(cfg["use_sam"]),
                       cam_variant=cfg["cam_variant"] or None,
                       sn_scope=cfg["sn_scope"],
                       init_scheme=cfg["init_scheme"], init_gain=float(cfg["init_gain"]),
                       **common)
  gen.trunk().bottom_size()  # validates the size now, naming the field
  disc = spade_lib.build_spade_discriminator(cfg, common)
  return gen, disc
