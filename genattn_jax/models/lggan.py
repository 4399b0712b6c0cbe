"""LGGAN (Tang et al., "Local Class-Specific and Global Image-Level Generative Adversarial
Networks for Semantic-Guided Scene Generation", CVPR 2020) as a complete generator on the SPADE
host, and its model config.

  LGGANGenerator(seg [B, H, W, S], z=None, image=None, train) -> (outputs dict, kl scalar)

with outputs 'image' (the final I^C, Eq. 7, [B, H, W, 3] in (-1, 1)), 'global' (I^G), 'local'
(I^L, Eq. 3/4), 'class_images' ([B, K', H, W, 3], the I^l_k of Eq. 2), 'class_loss' (Eq. 5,
scalar float32, 0 when off) and, when on, 'class_logits' and 'weights' ([B, H, W, 2], channel 0
local). S = label_nc (+ don't care) (+ the instance-edge channel); the first `num_classes`
channels are the one-hot label masks M_k.

Wiring (paper Sec. 3.1-3.2, Fig. 2; sizes the paper leaves open from the official
`semantic_image_synthesis/models/networks/generator.py`, see `models/lggan_heads.py`):
  * shared encoder E(S) (`LabelEncoder`) on the whole seg map, widths ngf·(1, 2, 4, 8, 16):
    `x_encode` (4·ngf, 1/4 size) feeds the local branch and G_w, the deepest map (16·ngf,
    1/16 size), resized nearest to SPADE's bottom size, replaces SPADE's downsampled label
    map as the global generator's input (`SPADEGenerator(..., fc_input=...)`);
  * global branch G_g: the SPADE generator (its SPADE norms still see the label map);
  * local branch G_l and fusion: `LGGANHead` (res blocks + two transposed convs to f′
    (2·ngf, ngf), per-class filtering Eq. 1 and generation, Eq. 3/4, classification Eq. 5,
    G_w Eq. 6-7 with widths (2·ngf, ngf)).
Table 3 (right) rows: S1 = the global generator only, GauGAN itself (its numbers equal
GauGAN's: 62.3 mIoU / 71.8 FID), so S1 takes the label map as SPADE does (`global_input`
'label', no encoder); S2 + local (Eq. 3 sum); S3 + local (Eq. 4 conv); S4 + classification
loss (Eq. 5); S5 + weight map (Eq. 6-7) = LGGAN. Without the weight map the final image is
(I^G + I^L) / 2 (see `LGGANHead`).

Parameters: 'encoder', 'spade' (global), 'head' (local branch, class generation,
classification, weight map).
"""

from typing import Any, Optional, Sequence

import flax.linen as nn
import jax.numpy as jnp

from genattn_jax import _checks
from genattn_jax.models import lggan_heads
from genattn_jax.models import spade as spade_lib
from genattn_jax.models.dagan import (INIT_SCHEMES, SN_SCOPES, added_layer_convs,
                                      spade_trunk)

Dtype = Any
GLOBAL_INPUTS = ("encoder", "label")


class LGGANGenerator(nn.Module):
  """Shared encoder + global SPADE branch + local class-specific branch + G_w (module doc).

  Attributes:
    height, width, ngf, num_upsampling_layers, spectral_norm, spade_hidden, bn_axis_name,
      block_bias (`model.g_block_bias`):
      as `models.spade.SPADEGenerator` (its VAE is not offered: LGGAN has none).
    num_classes: K, the label channels that are class masks (label_nc + don't care).
    global_input: 'encoder' (LGGAN: E(S)'s deepest map) or 'label' (GauGAN's downsampled
      label map; S1, then no encoder is built when the local branch is off too).
    use_local, fusion, use_class_loss, use_weight_map, class_pooling, max_local_classes,
      class_chunk_size, remat, num_res_blocks: as `models.lggan_heads.LGGANHead`.
    sn_scope: 'code' or 'all' (`models.dagan.added_layer_convs`).
    init_scheme, init_gain: 'spade' xavier-normal gain 0.02 (default) or 'default'.
    dtype, param_dtype: computation / parameter dtypes.
  """
  height: int
  width: int
  num_classes: int
  ngf: int = 64
  num_upsampling_layers: str = "normal"
  spectral_norm: bool = True
  spade_hidden: int = 128
  bn_axis_name: Optional[str] = None
  block_bias: bool = False
  global_input: str = "encoder"
  use_local: bool = True
  fusion: str = "conv"
  use_class_loss: bool = True
  use_weight_map: bool = True
  class_pooling: str = "global"
  max_local_classes: Optional[int] = None
  class_chunk_size: Optional[int] = None
  remat: bool = True
  num_res_blocks: int = 9
  sn_scope: str = "code"
  init_scheme: str = "spade"
  init_gain: float = 0.02
  dtype: Optional[Dtype] = None
  param_dtype: Dtype = jnp.float32

  @nn.nowrap
  def trunk(self) -> spade_lib.SPADEGenerator:
    return spade_trunk(self)

  @nn.nowrap
  def widths(self) -> Sequence[int]:
    return tuple(self.ngf * m for m in (1, 2, 4, 8, 16))

  @nn.compact
  def __call__(self, seg, z=None, image=None, train: bool = True):
    """seg: [B, H, W, S] float (one-hot classes first, S >= num_classes). `z` and `image`
    are accepted for the semantic task's call contract and must be None.

    Returns:
      (outputs dict (module doc), kl = 0 float32).

    Raises:
      ValueError: if `seg` has fewer than `num_classes` channels or another size than
        (height, width), if `z` / `image` is given, or a field is out of range (named).
    """
    _, h, w, s = _checks.check_nhwc(seg, "seg")
    if s < self.num_classes:
      raise ValueError(f"`seg` has {s} channels; the first num_classes={self.num_classes} "
                       "must be the one-hot label masks.")
    if z is not None or image is not None:
      raise ValueError("LGGANGenerator has no style encoder: `z` and `image` must be None.")
    _checks.check_in(self.global_input, GLOBAL_INPUTS, "global_input")
    conv, conv_transpose = added_layer_convs(self.sn_scope)
    common = dict(init_scheme=self.init_scheme, init_gain=self.init_gain, dtype=self.dtype,
                  param_dtype=self.param_dtype)
    x_encode = x_deep = None
    if self.use_local or self.global_input == "encoder":
      x_encode, x_deep = lggan_heads.LabelEncoder(features=self.widths(), encode_index=2,
                                                  conv=conv, name="encoder", **common)(seg)
    fc_input = x_deep if self.global_input == "encoder" else None
    global_image, _ = self.trunk()(seg, train=train, fc_input=fc_input)
    head = lggan_heads.LGGANHead(
        num_classes=self.num_classes, max_local_classes=self.max_local_classes,
        use_local=self.use_local, fusion=self.fusion, use_class_loss=self.use_class_loss,
        use_weight_map=self.use_weight_map, class_pooling=self.class_pooling,
        class_chunk_size=self.class_chunk_size, remat=self.remat,
        num_res_blocks=self.num_res_blocks, up_features=(2 * self.ngf, self.ngf),
        weight_features=(2 * self.ngf, self.ngf), conv=conv, conv_transpose=conv_transpose,
        name="head", **common)
    out = head(x_encode, seg[..., :self.num_classes], global_image)  # S1: x_encode unused
    return out, jnp.zeros((), jnp.float32)


def lggan_model_config(resolution: int = 256, row: str = "S5"):
  """LGGAN's model ConfigDict: SPADE's fields (`spade_model_config`; `use_vae` must stay
  False) plus name 'lggan'; from the Table 3 `row` (S5 = LGGAN): use_local, fusion,
  use_class_loss, use_weight_map, global_input ('label' for S1, else 'encoder'); and
  class_pooling ('global': Eq. 5 as the authors' code, divide by H·W; 'mask' divides by the
  class area), max_local_classes (0 = every class its own branch; 51 = the authors' ADE20K
  setting), class_chunk_size (0 = all classes at once), remat (True), num_res_blocks (9),
  sn_scope ('code'; 'all' = the paper's text), init_scheme ('spade'), init_gain (0.02).

  Raises:
    ValueError: if `row` is not a Table 3 row.
  """
  _checks.check_in(row, tuple(lggan_heads.TABLE3_ROWS), "row")
  c = spade_lib.spade_model_config(resolution)
  c.name = "lggan"
  use_local, fusion, use_class_loss, use_weight_map = lggan_heads.TABLE3_ROWS[row]
  c.use_local = use_local
  c.fusion = fusion or "conv"
  c.use_class_loss = use_class_loss
  c.use_weight_map = use_weight_map
  c.global_input = "encoder" if use_local else "label"
  c.class_pooling = "global"
  c.max_local_classes = 0
  c.class_chunk_size = 0
  c.remat = True
  c.num_res_blocks = 9
  c.sn_scope = "code"
  c.init_scheme = "spade"
  c.init_gain = 0.02
  c.num_classes = 0  # set from the data by `build_lggan` callers (configs): label_nc + dc
  return c


def build_lggan(cfg: dict, common: dict, axis: Optional[str]):
  """(LGGANGenerator, MultiscaleDiscriminator) from the model config dict.

  Raises:
    ValueError: if `num_classes` <= 0, `use_vae` is set, or a field is invalid (named).
  """
  h, w = (int(s) for s in cfg["image_size"])
  _checks.check_in(cfg["init_scheme"], INIT_SCHEMES, "init_scheme")
  _checks.check_in(cfg["sn_scope"], SN_SCOPES, "sn_scope")
  if int(cfg["num_classes"]) <= 0:
    raise ValueError("model.num_classes must be the number of label classes "
                     f"(label_nc + don't care), got {cfg['num_classes']}.")
  if cfg["use_vae"]:
    raise ValueError("model.use_vae is not supported by name='lggan' (LGGAN has no VAE).")
  gen = LGGANGenerator(
      height=h, width=w, num_classes=int(cfg["num_classes"]), ngf=int(cfg["ngf"]),
      num_upsampling_layers=cfg["num_upsampling_layers"],
      spectral_norm=bool(cfg["g_spectral_norm"]), spade_hidden=int(cfg["spade_hidden"]),
      bn_axis_name=axis, block_bias=bool(cfg["g_block_bias"]),
      global_input=cfg["global_input"], use_local=bool(cfg["use_local"]),
      fusion=cfg["fusion"], use_class_loss=bool(cfg["use_class_loss"]),
      use_weight_map=bool(cfg["use_weight_map"]), class_pooling=cfg["class_pooling"],
      max_local_classes=int(cfg["max_local_classes"]) or None,
      class_chunk_size=int(cfg["class_chunk_size"]) or None, remat=bool(cfg["remat"]),
      num_res_blocks=int(cfg["num_res_blocks"]), sn_scope=cfg["sn_scope"],
      init_scheme=cfg["init_scheme"], init_gain=float(cfg["init_gain"]), **common)
  gen.trunk().bottom_size()
  return gen, spade_lib.build_spade_discriminator(cfg, common)
