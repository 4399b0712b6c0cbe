"""DAGAN and LGGAN experiments as variants of a SPADE ('semantic' task) config.

A DAGAN or LGGAN config is the SPADE config of the same dataset (data, widths, schedule,
losses of `training.config.semantic_config`) with the generator swapped (`model.name` 'dagan'
/ 'lggan', `models/dagan.py`, `models/lggan.py`) and, for LGGAN, the extra loss terms of the
'semantic' task switched on. The papers' ablation rows are the `row` argument, which a config
file takes as its ml_collections config string: `--config=configs/cityscapes_dagan.py:B3`.

Paper vs. authors' code, as config fields (default = the code):
  * Adam β2 (`optimizer.b2`): both papers write β = (0, 0.999) (DAGAN Sec. 3 "Training
    Details", LGGAN supplementary Sec. 6.1); their SPADE-based training code inherits SPADE's two
    time-scale default β = (0, 0.9) (official `pix2pix_model.create_optimizers`: with TTUR,
    the default, β = (0, 0.9) whatever `--beta2` says). Default 0.9; `PAPER_B2` = 0.999.
  * Where spectral norm goes (`model.sn_scope`): LGGAN Sec. 6.1 writes "Spectral Norm to all
    the layers in both the generator and discriminator" (the DAGAN text does not mention
    spectral norm); the SPADE-based code puts it on
    the convs of G's SPADE residual blocks and of D only ('code', default). 'all' adds it to
    every conv DAGAN / LGGAN add (attention head, encoder, local branch, G_w; not LGGAN's
    per-class convs); SPADE's own first conv, output conv and SPADE-norm convs stay plain.
  * Initialisation (`model.init_scheme`): 'spade' = xavier-normal gain 0.02, zero bias (the
    code's `init_weights`; default) or 'default' (Flax's initialisers) for G.
"""

import ml_collections

from genattn_jax import _checks
from genattn_jax.models import dagan as dagan_lib
from genattn_jax.models import dagan_heads, lggan_heads
from genattn_jax.models import lggan as lggan_lib

PAPER_B2 = 0.999  # both papers' text; the code's TTUR default is 0.9

# Cityscapes results (mIoU, pixel accuracy, FID) of the ablation rows.
DAGAN_TABLE4 = {"B1": (61.3, 81.5, 71.8), "B2": (64.2, 82.2, 64.5), "B3": (64.6, 82.4, 63.5),
                "B4": (65.6, 82.4, 62.8), "B5": (65.8, 82.6, 60.2), "B6": (66.1, 82.6, 60.3)}
LGGAN_TABLE3 = {"S1": (62.3, None, 71.8), "S2": (64.6, None, 66.1), "S3": (65.8, None, 65.6),
                "S4": (67.0, None, 61.3), "S5": (68.4, 83.0, 57.7)}

_SHARED_FIELDS = ("resolution", "image_size", "ngf", "ndf", "num_upsampling_layers", "use_vae",
                  "z_dim", "spade_hidden", "num_d", "n_layers_d", "g_spectral_norm",
                  "d_spectral_norm", "bn_axis_name", "dtype", "param_dtype", "g_width",
                  "d_width")


def _swap_model(c: ml_collections.ConfigDict, new: ml_collections.ConfigDict):
  for k in _SHARED_FIELDS:
    new[k] = c.model[k]
  c.model = new
  c.optimizer.b2 = 0.9  # the code's TTUR default; PAPER_B2 is the papers' text


def with_dagan(c: ml_collections.ConfigDict, row: str = "B6") -> ml_collections.ConfigDict:
  """The SPADE config `c` with DAGAN's generator of Table 4 `row` (B1 = the baseline, plain
  SPADE ... B6 = DAGAN); losses unchanged (DAGAN Eq. 10 = SPADE's: λ_cgan 1, λ_f 10, λ_p 10).

  Raises:
    ValueError: if `row` is not a Table 4 row.
  """
  row = row or "B6"
  _checks.check_in(row, tuple(dagan_heads.TABLE4_ROWS), "row (DAGAN Table 4)")
  _swap_model(c, dagan_lib.dagan_model_config(int(c.model.resolution), row))
  c.name = f"{c.name.replace('_spade', '')}_dagan_{row}"
  return c


def with_lggan(c: ml_collections.ConfigDict, row: str = "S5",
               num_classes: int = 0) -> ml_collections.ConfigDict:
  """The SPADE config `c` with LGGAN's generator of Table 3 `row` (S1 = the global
  generator only ... S5 = LGGAN) and LGGAN's loss terms (task fields `lambda_l1_local`,
  `lambda_class`, `l1_present_only`, `output_loss_weights`; see `training/tasks/semantic.py`).

  `num_classes` (the label channels, label_nc + don't care) defaults to the data fields.

  Raises:
    ValueError: if `row` is not a Table 3 row.
  """
  row = row or "S5"
  _checks.check_in(row, tuple(lggan_heads.TABLE3_ROWS), "row (LGGAN Table 3)")
  _swap_model(c, lggan_lib.lggan_model_config(int(c.model.resolution), row))
  c.model.num_classes = num_classes or (int(c.data.label_nc)
                                        + int(c.data.contain_dontcare_label))
  c.task.lambda_l1_local = 1.0 if c.model.use_local else 0.0
  c.task.lambda_class = 1.0 if c.model.use_class_loss else 0.0
  c.task.l1_present_only = False
  c.task.output_loss_weights = [1.0, 1.0, 1.0]
  c.name = f"{c.name.replace('_spade', '')}_lggan_{row}"
  return c


def shrink_lggan_for_tests(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Fewer residual blocks for the test twins (the widths follow `ngf`)."""
  c.model.num_res_blocks = 1
  return c
