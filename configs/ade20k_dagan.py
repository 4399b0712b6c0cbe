"""DAGAN (Tang et al., ACM MM 2020) on ADE20K at 256x256.

The SPADE / GauGAN system of `ade20k_spade.py` (data: 150 classes + don't care, 286 → 256 crops,
flips; batch 32, 200 epochs; hinge + feature matching λ 10 + VGG perceptual λ 10 = DAGAN
Eq. 10) with DAGAN's generator (`models/dagan.py`, Sec. 3, Fig. 2: CAM on the last SPADE block's
input + SAM on its output, LeakyReLU 0.2 → 3x3 conv → tanh). Init xavier-normal gain 0.02, zero
bias. Adam β2 0.9 (the SPADE-based code's default; the text's 0.999:
`--config.optimizer.b2=0.999`); spectral norm as the code (`model.sn_scope`, 'all' = LGGAN's
text; DAGAN's does not mention it).
Table 4 rows are selectable as in `cityscapes_dagan.py` (`:B1` ... `:B6`, default B6 = DAGAN).

Paper (ADE20K, DAGAN Table 2): DAGAN mIoU 40.5, Acc 81.6, FID 31.9; GauGAN 38.5 / 79.9 / 33.9. Parameters: G 96.58M, D 5.84M
built here (eval_shape), paper Table 3: DAGAN G 96.6M, D 5.8M.
Command: python train.py --config=configs/ade20k_dagan.py --workdir=runs/ade20k_dagan
  --config.data.source=/path/to/ADEChallengeData2016
Hardware / wall time / result: not yet measured.
"""

from configs import ade20k_spade, pairs_demo
from genattn_jax.training import semantic_experiments


def get_config(row: str = "B6"):
  return semantic_experiments.with_dagan(ade20k_spade.get_config(), row)


def get_test_config(row: str = "B6"):
  return pairs_demo.shrink_semantic_for_tests(get_config(row), label_source="ade20k")
