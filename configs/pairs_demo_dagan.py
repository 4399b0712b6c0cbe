"""Demo: DAGAN (SPADE + SAM + CAM-II) on the 8 real Cityscapes triplets of ../shared/data, CPU.

Everything as `configs/pairs_demo.py` (data at 128x256, 35 label ids + edges, flips; ngf 16,
SPADE hidden 32, ndf 16, num_D 2; hinge + feature matching λ 10 + VGG16 perceptual λ 10 on 2x2
pooled images; Adam β = (0, 0.9), G 1e-4 / D 4e-4; batch 2; 400 steps, decay over the second
half) with DAGAN's generator (`models/dagan.py`, Table 4 row B6; other rows: `:B1` ... `:B5`).
Evaluated on the same 8 training photos (FID, PSNR, SSIM, LPIPS).

Command: python train.py --config=configs/pairs_demo_dagan.py --workdir=runs/pairs_demo_dagan
Hardware / wall time / result: see the README section "SPADE vs. DAGAN vs. LGGAN on the shared
Cityscapes pairs" and benchmarks/results/pairs_demo_three.json (a shortened run, same steps and
batch as SPADE and LGGAN). Eight training images show the system learning, not the paper's
numbers (DAGAN Table 2, Cityscapes: mIoU 66.1, Acc 82.6, FID 60.3).
"""

from configs import pairs_demo
from genattn_jax.training import semantic_experiments


def get_config(row: str = "B6"):
  c = semantic_experiments.with_dagan(pairs_demo.get_config(), row)
  c.name = f"pairs_demo_cityscapes_dagan_{row or 'B6'}"
  return c


def get_test_config(row: str = "B6"):
  return pairs_demo.shrink_semantic_for_tests(get_config(row))
