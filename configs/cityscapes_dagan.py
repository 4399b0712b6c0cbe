"""DAGAN (Tang et al., ACM MM 2020) on Cityscapes at 512x256, and its Table 4 ablation.

The SPADE / GauGAN system of `cityscapes_spade.py` (data, widths, losses, schedule: 200 epochs,
batch 8, hinge + feature matching λ 10 + VGG perceptual λ 10 = DAGAN Eq. 10) with DAGAN's
generator (`models/dagan.py`): CAM (Eq. 5-9) on the last SPADE block's input and SAM (Eq. 2-4)
on its output, summed, LeakyReLU 0.2 → 3x3 conv → tanh (Sec. 3, Fig. 2). Init: xavier-normal
gain 0.02, zero bias (`model.init_scheme='spade'`; 'default' = Flax's).
Paper vs. code (see `training/semantic_experiments.py`): Adam β2 0.9 (the SPADE-based code's
TTUR default; the paper's text says 0.999: `--config.optimizer.b2=0.999`); spectral norm as the
code (`model.sn_scope='code'`; 'all' = LGGAN's "all layers"; the DAGAN text does not mention
spectral norm).

Variants = Table 4 rows (the config string): `:B1` the baseline (plain SPADE), `:B2` +SAM,
`:B3` +CAM-I (Eq. 8), `:B4` +CAM-II (Eq. 9), `:B5` +SAM+CAM-I, `:B6` +SAM+CAM-II = DAGAN (default).
Paper (Cityscapes, mIoU / Acc / FID): B1 61.3/81.5/71.8, B2 64.2/82.2/64.5, B3 64.6/82.4/63.5,
B4 65.6/82.4/62.8, B5 65.8/82.6/60.2, B6 66.1/82.6/60.3 (Table 2 reports DAGAN 66.1/82.6/60.3,
GauGAN 62.3/81.9/71.8). Parameters: G 93.13M, D 5.60M built here (eval_shape), paper Table 3:
DAGAN G 93.1M, D 5.6M.
Command: python train.py --config=configs/cityscapes_dagan.py:B6 --workdir=runs/cityscapes_dagan
  --config.data.source=/path/to/cityscapes
Hardware / wall time / result: not yet measured (the paper used 8 V100 GPUs).
"""

from configs import cityscapes_spade, pairs_demo
from genattn_jax.training import semantic_experiments


def get_config(row: str = "B6"):
  return semantic_experiments.with_dagan(cityscapes_spade.get_config(), row)


def get_test_config(row: str = "B6"):
  return pairs_demo.shrink_semantic_for_tests(get_config(row), label_source="cityscapes")
