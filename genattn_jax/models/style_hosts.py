"""Config defaults and builders of the LAP paper's three hosts (StyleGAN, MSG-StyleGAN, MSG-DCGAN).

`models.default_model_config(name, resolution)` and `models.build_gan(config)` dispatch here
for `name` in `STYLE_HOSTS`. Model config fields:

  name: 'stylegan', 'msg_stylegan' or 'msg_dcgan'.
  resolution: R, a power of two ≥ 8 (the paper: 256; CIFAR-10 runs: 32).
  z_dim: 512 (both papers).
  num_classes: 0 (the hosts are unconditional).
  g_width, d_width: channel multipliers of the official schedule (512 up to 32², then
    256, 128, 64 at 256²).
  attention: '' (baseline), 'lap' (the paper's module), 'self_attention' /
    'memory_efficient_self_attention' or 'cbam' (Table 4):
    one block after every generator conv at 8² … R² (LAP with `lap_levels_for_resolution`).
  attention_kwargs: dict of extra block arguments (e.g. {'combine': 'mean'} for LAP).
  g_blocks, d_blocks: must stay empty (generic placements are not used by these hosts).
  style_mixing_prob, truncation_psi, truncation_cutoff, mapping_lr_mul: StyleGAN G only
    (0.9, 1.0, 8, 0.01).
  const_bias: StyleGAN / MSG-StyleGAN G: bias on the constant input's layer (False; True =
    the official layout; see `models/stylegan.py`).
  d_combine: MSG D's φ: 'simple', 'lin' or 'cat'. Defaults: 'lin' for MSG-StyleGAN (its G + D
    then count 49.14M parameters at 256², Table 2's 49.13M; 'cat' would give 59.3M, 'simple'
    49.19M); 'cat' for MSG-DCGAN, which then uses the official code's D
    (`msg.MSGDCGANDiscriminator`, G + D 41.78M at 256², Table 2's 41.77M); 'simple' / 'lin'
    give MSG-DCGAN the StyleGAN-schedule `msg.MSGDiscriminator` instead.
  equalized: MSG-DCGAN only: equalised learning rate in G and D (True, the official code's
    default `use_eql=True`) or plain Flax layers (False).
  mbstd_group: minibatch-stddev group size (4).
  bn_axis_name: pmap axis name ('' = none), set by the trainer for the pmap backend.
  dtype, param_dtype: dtype names.
"""

from typing import Any, Tuple

import flax.linen as nn

from genattn_jax import _checks
from genattn_jax.models import msg, stylegan
from genattn_jax.models import style_layers as sl

STYLE_HOSTS: Tuple[str, ...] = ("stylegan", "msg_stylegan", "msg_dcgan")


def default_config(name: str, resolution: int):
  """Defaults of host `name` at `resolution` (see the module doc).

  Raises:
    ValueError: unknown name or resolution not a power of two ≥ 8.
  """
  import ml_collections  # pylint: disable=g-import-not-at-top  (optional for build_gan users)
  _checks.check_in(name, STYLE_HOSTS, "name")
  sl.check_pow2_resolution(resolution)
  c = ml_collections.ConfigDict()
  c.name = name
  c.resolution = resolution
  c.z_dim = 512
  c.num_classes = 0
  c.g_width = 1.0
  c.d_width = 1.0
  c.attention = ""
  c.attention_kwargs = {}
  c.style_mixing_prob = 0.9
  c.truncation_psi = 1.0
  c.truncation_cutoff = 8
  c.mapping_lr_mul = 0.01
  c.const_bias = False
  c.d_combine = {"msg_stylegan": "lin", "msg_dcgan": "cat"}.get(name, "simple")
  c.equalized = True
  c.mbstd_group = 4
  c.g_blocks = []  # unused by these hosts (kept so generic config checks can read it):
  c.d_blocks = []  # placement is `attention`, at the paper's positions
  c.bn_axis_name = ""
  c.dtype = ""
  c.param_dtype = "float32"
  return c


def build(full: dict, common: dict) -> Tuple[nn.Module, nn.Module]:
  """(generator, discriminator) from a complete config dict (defaults merged in).

  Raises:
    ValueError: conditional config, unknown attention or combine.
  """
  name = full["name"]
  if full["num_classes"]:
    raise ValueError(f"`num_classes` must be 0 for {name!r} (the hosts are unconditional).")
  _checks.check_in(full["attention"], sl.HOST_ATTENTION, "attention")
  if full["g_blocks"] or full["d_blocks"]:
    raise ValueError(f"`g_blocks` / `d_blocks` are not used by {name!r}: set `attention` "
                     f"('lap', 'self_attention', 'cbam'), which places the block after every "
                     f"generator conv at 8x8 and above (the LAP paper's positions).")
  axis = full["bn_axis_name"] or None
  r = full["resolution"]
  akw = dict(full["attention_kwargs"] or {})
  if name in ("stylegan", "msg_stylegan"):
    gen = stylegan.StyleGANGenerator(
        resolution=r, z_dim=full["z_dim"], w_dim=full["z_dim"], width=full["g_width"],
        mapping_lr_mul=full["mapping_lr_mul"], style_mixing_prob=full["style_mixing_prob"],
        truncation_psi=full["truncation_psi"], truncation_cutoff=full["truncation_cutoff"],
        attention=full["attention"], attention_kwargs=akw, const_bias=full["const_bias"],
        axis_name=axis, **common)
  else:
    gen = msg.MSGDCGANGenerator(resolution=r, z_dim=full["z_dim"], width=full["g_width"],
                                equalized=full["equalized"], attention=full["attention"],
                                attention_kwargs=akw, axis_name=axis, **common)
  if name == "stylegan":
    disc = stylegan.StyleGANDiscriminator(resolution=r, width=full["d_width"],
                                          mbstd_group=full["mbstd_group"], **common)
  else:
    _checks.check_in(full["d_combine"], msg.COMBINE_FNS, "d_combine")
    if name == "msg_dcgan" and full["d_combine"] == "cat":
      disc = msg.MSGDCGANDiscriminator(resolution=r, width=full["d_width"],
                                       equalized=full["equalized"],
                                       mbstd_group=full["mbstd_group"], **common)
    else:
      disc = msg.MSGDiscriminator(resolution=r, width=full["d_width"], combine=full["d_combine"],
                                  equalized=name == "msg_stylegan" or full["equalized"],
                                  mbstd_group=full["mbstd_group"], **common)
  return gen, disc


def is_style_host(cfg: Any) -> bool:
  return cfg.get("name") in STYLE_HOSTS
