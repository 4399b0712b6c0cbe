"""GAN backbones the papers' blocks were published on, built from configs.

  * `sndcgan`: SNDCGAN (Miyato et al. 2018, Table 3; SPAP paper's backbone),
    optionally with the SPAP paper's atrous discriminator.
  * `resnet`: SNGAN / SAGAN ResNets with conditional BN and a projection
    discriminator (AN paper's backbone).
  * `stylegan`, `msg` (hosts wired up in `style_hosts`): StyleGAN, MSG-StyleGAN and
    MSG-DCGAN, the LAP paper's hosts ('stylegan', 'msg_stylegan', 'msg_dcgan').
  * `spade`: SPADE / GauGAN label map → image (Park et al. 2019; the host of DAGAN and
    LGGAN), with its own call contract (see `models/spade.py`); `dagan` and `lggan`: the
    DAGAN and LGGAN generators on that host (`models/dagan.py`, `models/lggan.py`).
  * `placement`: inserting LAP / SPAP / ASPP / AN / self-attention / CBAM
    blocks after chosen stages, from config lists.

`build_gan(config)` returns `(generator, discriminator)` flax modules with the
call contracts

  generator(z: [B, z_dim] float32, y: [B] int32 | None = None, train=True)
      -> [B, R, R, 3] float32 in [-1, 1]
  discriminator(x: [B, R, R, 3], y: [B] int32 | None = None, train=True)
      -> [B] float32 logits

BN running statistics and spectral-norm power-iteration state live in the
'batch_stats' collection (make it mutable in training steps); AN blocks need a
'sampling' rng when train=True.
"""

from typing import Any, Dict, Tuple

import flax.linen as nn
import jax.numpy as jnp

from genattn_jax import _checks
from genattn_jax.models.placement import BLOCK_NAMES, BlockPlacement, normalize_placements
from genattn_jax.models.resnet import ARCHS as RESNET_ARCHS
from genattn_jax.models.resnet import (ResNetDBlock, ResNetDiscriminator, ResNetGBlock,
                                       ResNetGenerator)
from genattn_jax.models.sndcgan import SNDCGANDiscriminator, SNDCGANGenerator
from genattn_jax.models import style_hosts
from genattn_jax.models.spade import (MultiscaleDiscriminator, SPADEGenerator, build_spade,
                                      spade_model_defaults)

MODEL_NAMES: Tuple[str, ...] = (("sndcgan", "resnet", "cyclegan", "spade", "dagan", "lggan")
                                + style_hosts.STYLE_HOSTS)

__all__ = [
    "BLOCK_NAMES", "BlockPlacement", "MODEL_NAMES", "RESNET_ARCHS", "ResNetDBlock",
    "ResNetDiscriminator", "ResNetGBlock", "ResNetGenerator", "SNDCGANDiscriminator",
    "SNDCGANGenerator", "SPADEGenerator", "MultiscaleDiscriminator", "build_gan",
    "default_model_config", "model_defaults", "normalize_placements",
]


def default_model_config(name: str = "sndcgan", resolution: int = 32):
  """The papers' settings for backbone `name` at `resolution`, as a ConfigDict.

  (`ml_collections` is imported here, not at module level, so that `build_gan` and the
  model modules import without it, e.g. in `benchmarks/gpu_suite.sh` on a machine without
  it; `model_defaults` gives the same fields as a dict.)

  Fields:
    name: 'sndcgan', 'resnet' or 'cyclegan' (the image-to-image host: its own fields,
      `models/cyclegan.py`).
    resolution: image size R (SNDCGAN: multiple of 8, papers 32/64/128;
      ResNet: 32, 64 or 128).
    z_dim: latent size (128).
    num_classes: 0 = unconditional; > 0 = conditional BN in G and a
      projection head in D. Default 0 for SNDCGAN (SPAP paper, CelebA-HQ),
      10 for ResNet at 32 (CIFAR-10) and 1000 at 64/128 (ImageNet, AN paper).
    g_width, d_width: channel multipliers (float, 1.0 = the papers' widths:
      SNDCGAN G 512..64, D 64..512; ResNet base channels G 256 / D 128 at 32,
      64 / 64 otherwise, times the per-stage multipliers in `RESNET_ARCHS`).
    upsample: SNDCGAN only: 'transposed' (paper) or 'nearest' (+3x3 conv,
      faster on CPU). ResNet always uses nearest + conv.
    g_blocks, d_blocks: lists of placements
      `{'block': name, 'resolutions': [...], **block_kwargs}`, name in
      `BLOCK_NAMES` (see `placement.py`). Empty by default (the vanilla
      baselines).
    d_atrous: SNDCGAN only: SPAP's atrous discriminator (`AtrousConvBlock`
      for the stride-2 convs of `d_atrous_stages`, rates `d_atrous_rates`).
    g_spectral_norm, d_spectral_norm: spectral norm in G / D (both papers:
      True for both).
    g_block_bias: ResNet only: biases on G's up-block convs, which all feed a
      batch norm (False; True = the official SNGAN code's parameter layout,
      needed to restore checkpoints written before this field existed).
    bn_axis_name: pmap axis name, '' = none: G's BN statistics are averaged
      over it, and AN blocks in G and D draw their samples for the global
      batch (so a pmap step equals one device running the global batch).
    dtype: computation dtype name, '' = inferred (float32). 'bfloat16' is mixed
      precision: convs, matmuls and the activations between them run in bfloat16,
      while parameters (hence optimizer states and the EMA), spectral-norm `u`
      vectors and their power iteration, normalisation statistics (BN / CBN batch
      and running statistics, AN's per-entity statistics, LAP's patch instance
      norm) and the softmaxes of self-attention and AN are float32; G's images
      and D's logits are cast to float32, so losses and parameter gradients are
      float32.
    param_dtype: parameter dtype name ('float32').
    remat_blocks: wrap every placed block (`g_blocks`, `d_blocks`) in `nn.remat`
      so its intermediates are recomputed in the backward pass instead of kept
      (memory of attention maps at high resolution); results are unchanged.

  Raises:
    ValueError: for an unknown `name` or unsupported `resolution`.
  """
  import ml_collections  # pylint: disable=g-import-not-at-top
  return ml_collections.ConfigDict(model_defaults(name, resolution))


def model_defaults(name: str = "sndcgan", resolution: int = 32) -> Dict[str, Any]:
  """The fields of `default_model_config(name, resolution)` as a plain dict.

  Raises:
    ValueError: for an unknown `name` or unsupported `resolution`.
  """
  _checks.check_in(name, MODEL_NAMES, "name")
  host_defaults = None
  if name in style_hosts.STYLE_HOSTS:
    host_defaults = style_hosts.default_config(name, resolution)
  elif name == "spade":
    host_defaults = spade_model_defaults(resolution)  # a dict: no ml_collections needed
  elif name in ("dagan", "lggan"):
    from genattn_jax.models import dagan, lggan  # pylint: disable=g-import-not-at-top
    host_defaults = (dagan.dagan_model_config if name == "dagan" else lggan.lggan_model_config)(
        resolution)
  elif name == "cyclegan":
    from genattn_jax.models import cyclegan  # pylint: disable=g-import-not-at-top
    host_defaults = cyclegan.default_model_config(resolution)
  if host_defaults is not None:  # the host modules build ConfigDicts: one type for every name
    return (host_defaults.to_dict() if hasattr(host_defaults, "to_dict")
            else dict(host_defaults))
  if name == "resnet":
    _checks.check_in(resolution, tuple(RESNET_ARCHS), "resolution")
  else:
    _checks.check_positive(resolution, "resolution")
    _checks.check_divisible(resolution, 8, "resolution", "8")
  return {
      "name": name,
      "resolution": resolution,
      "z_dim": 128,
      "num_classes": 0 if name == "sndcgan" else (10 if resolution == 32 else 1000),
      "g_width": 1.0,
      "d_width": 1.0,
      "upsample": "transposed" if name == "sndcgan" else "nearest",
      "g_blocks": [],
      "d_blocks": [],
      "d_atrous": False,
      "d_atrous_stages": [2],
      "d_atrous_rates": [3, 5, 7],
      "g_spectral_norm": True,
      "d_spectral_norm": True,
      "d_num_blocks": 0,  # ResNet D: use only the first N residual blocks (0 = all)
      "g_block_bias": False,
      "bn_axis_name": "",
      "dtype": "",
      "param_dtype": "float32",
      "remat_blocks": False,
  }


def _dtype(value: Any, field: str):
  if value is None or value == "":
    return None
  try:
    return jnp.dtype(value)
  except TypeError as e:
    raise ValueError(f"`{field}` must name a dtype (e.g. 'float32', 'bfloat16'), "
                     f"got {value!r}.") from e


def build_gan(config: Any) -> Tuple[nn.Module, nn.Module]:
  """Builds `(generator, discriminator)` from a model config.

  Args:
    config: ConfigDict (or dict) with the fields of `default_model_config`;
      missing optional fields take those defaults.

  Returns:
    (generator, discriminator) unbound flax modules (see the module
    docstring for their call contracts).

  Raises:
    ValueError: naming the field, for an unknown `name`, a bad resolution,
      `upsample`, dtype, or a bad `g_blocks` / `d_blocks` entry (unknown block
      name, resolution that is no stage output).
  """
  cfg = config.to_dict() if hasattr(config, "to_dict") else dict(config)
  if "name" not in cfg:
    raise ValueError(f"`name` missing from the model config; expected one of {MODEL_NAMES}.")
  _checks.check_in(cfg["name"], MODEL_NAMES, "name")
  if cfg["name"] == "cyclegan":  # image-to-image host: (GeneratorPair, DiscriminatorPair)
    from genattn_jax.models import cyclegan  # pylint: disable=g-import-not-at-top
    return cyclegan.build_cyclegan(cfg)
  full = model_defaults(cfg["name"], cfg.get("resolution", 32))
  unknown = sorted(set(cfg) - set(full))
  if unknown:
    raise ValueError(f"unknown model config fields {unknown}; known: {sorted(full)}.")
  full.update(cfg)
  common = dict(dtype=_dtype(full["dtype"], "dtype"),
                param_dtype=_dtype(full["param_dtype"], "param_dtype") or jnp.float32)
  if full["name"] in style_hosts.STYLE_HOSTS:
    return style_hosts.build(full, common)
  if full["name"] == "spade":
    return build_spade(full, common, full["bn_axis_name"] or None)
  if full["name"] in ("dagan", "lggan"):
    from genattn_jax.models import dagan, lggan  # pylint: disable=g-import-not-at-top
    return (dagan.build_dagan if full["name"] == "dagan" else lggan.build_lggan)(
        full, common, full["bn_axis_name"] or None)
  common["remat_blocks"] = bool(full["remat_blocks"])
  g_blocks = normalize_placements(full["g_blocks"], "g_blocks")
  d_blocks = normalize_placements(full["d_blocks"], "d_blocks")
  axis = full["bn_axis_name"] or None
  r, nc = full["resolution"], full["num_classes"]
  if full["name"] == "sndcgan":
    _checks.check_in(full["upsample"], ("transposed", "nearest"), "upsample")
    if full["g_block_bias"]:
      raise ValueError("`g_block_bias` is only supported by name='resnet' (SNDCGAN's G has no "
                       "bias before its batch norms).")
    gen = SNDCGANGenerator(resolution=r, z_dim=full["z_dim"], num_classes=nc,
                           width=full["g_width"], upsample=full["upsample"], blocks=g_blocks,
                           spectral_norm=full["g_spectral_norm"], bn_axis_name=axis, **common)
    disc = SNDCGANDiscriminator(resolution=r, num_classes=nc, width=full["d_width"],
                                blocks=d_blocks, atrous=full["d_atrous"],
                                atrous_stages=tuple(full["d_atrous_stages"]),
                                atrous_rates=tuple(full["d_atrous_rates"]),
                                spectral_norm=full["d_spectral_norm"], axis_name=axis,
                                **common)
    valid_g, valid_d = gen.stage_resolutions(), disc.stage_resolutions()
  else:
    _checks.check_in(full["upsample"], ("nearest",), "upsample")
    if full["d_atrous"]:
      raise ValueError("`d_atrous` is only supported by name='sndcgan'.")
    gen = ResNetGenerator(resolution=r, z_dim=full["z_dim"], num_classes=nc,
                          width=full["g_width"], blocks=g_blocks,
                          spectral_norm=full["g_spectral_norm"],
                          block_bias=full["g_block_bias"], bn_axis_name=axis, **common)
    disc = ResNetDiscriminator(resolution=r, num_classes=nc, width=full["d_width"],
                               blocks=d_blocks, spectral_norm=full["d_spectral_norm"],
                               axis_name=axis, num_blocks=full["d_num_blocks"], **common)
    valid_g, valid_d = gen.stage_resolutions(), disc.block_resolutions()
  # Check placements against the stage resolutions now, naming the config field.
  normalize_placements(g_blocks, "g_blocks", valid_g)
  normalize_placements(d_blocks, "d_blocks", valid_d)
  return gen, disc
