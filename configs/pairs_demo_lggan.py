"""Demo: LGGAN (shared encoder + SPADE global + 35 local class branches + G_w) on the 8 real
Cityscapes triplets of ../shared/data, CPU.

Everything as `configs/pairs_demo.py` (data at 128x256, 35 label ids + edges, flips; ngf 16,
SPADE hidden 32, ndf 16, num_D 2; Adam β = (0, 0.9), G 1e-4 / D 4e-4; batch 2; 400 steps, decay
over the second half) with LGGAN's generator (`models/lggan.py`, Table 3 row S5; other rows
`:S1` ... `:S4`): encoder widths 16..256, 9 residual blocks at 64 channels, f′ with 16 channels,
G_w widths (32, 16); and LGGAN's losses (task 'semantic': hinge + feature matching λ 10 + VGG16
perceptual λ 10 on 2x2 pooled images, each on the final, global and local images; class-masked
L1 Eq. 2 λ 1; classification loss Eq. 5 λ 1). Evaluated (final image) on the same 8 training
photos (FID, PSNR, SSIM, LPIPS).

Command: python train.py --config=configs/pairs_demo_lggan.py --workdir=runs/pairs_demo_lggan
Hardware / wall time / result: see the README section "SPADE vs. DAGAN vs. LGGAN on the shared
Cityscapes pairs" and benchmarks/results/pairs_demo_three.json (a shortened run, same steps and
batch as SPADE and DAGAN). Eight training images show the system learning, not the paper's
numbers (LGGAN Table 3, Cityscapes: mIoU 68.4, Acc 83.0, FID 57.7).
"""

from configs import pairs_demo
from genattn_jax.training import semantic_experiments


def get_config(row: str = "S5"):
  c = semantic_experiments.with_lggan(pairs_demo.get_config(), row)
  c.name = f"pairs_demo_cityscapes_lggan_{row or 'S5'}"
  return c


def get_test_config(row: str = "S5"):
  return semantic_experiments.shrink_lggan_for_tests(
      pairs_demo.shrink_semantic_for_tests(get_config(row)))
