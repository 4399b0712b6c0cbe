"""LGGAN (Tang et al., CVPR 2020) on Cityscapes at 512x256, and its Table 3 (right) ablation.

The SPADE / GauGAN system of `cityscapes_spade.py` (data, widths, schedule: 200 epochs, LGGAN
supplementary Sec. 6.1; batch 8, our choice: the paper states none) with LGGAN's generator (`models/lggan.py`): shared encoder E(S) (Sec. 3.1), the
SPADE generator as the global branch fed by E(S), the local class-specific branch (Sec. 3.2:
res blocks + two transposed convs to f′, Eq. 1 filtering, one branch per each of the 35 label
ids, Eq. 4 conv fusion) and the weight-map fusion G_w (Eq. 6-7). Losses (task 'semantic', see
`training/tasks/semantic.py`): hinge adversarial + feature matching (λ 10) + VGG perceptual
(λ 10) on each of the final, global and local images, D playing one game per output; +
class-masked L1 (Eq. 2, λ 1) + classification loss over the classes present (Eq. 5, λ 1; the
paper gives no weights for these two). Init xavier-normal gain 0.02, zero bias.
Paper vs. code (`training/semantic_experiments.py`): Adam β2 0.9 (code default; the text's 0.999:
`--config.optimizer.b2=0.999`); spectral norm as the code (`model.sn_scope='code'`, 'all' = the
text). Eq. 5 pooling divides by H·W as the code (`model.class_pooling='global'`; 'mask' = by
the class area).

Variants = Table 3 rows (the config string): `:S1` global generator only (GauGAN), `:S2` +local
(Eq. 3 sum), `:S3` +local (Eq. 4 conv), `:S4` +classification loss (Eq. 5), `:S5` +weight map =
LGGAN (default). Paper (Cityscapes mIoU / FID): S1 62.3/71.8, S2 64.6/66.1, S3 65.8/65.6,
S4 67.0/61.3, S5 68.4/57.7 (Table 3 left: LGGAN mIoU 68.4, Acc 83.0, FID 57.7; GauGAN
62.3/81.9/71.8).
Command: python train.py --config=configs/cityscapes_lggan.py:S5 --workdir=runs/cityscapes_lggan
  --config.data.source=/path/to/cityscapes
Hardware / wall time / result: not yet measured (the paper used 8 V100 GPUs).
"""

from configs import cityscapes_spade, pairs_demo
from genattn_jax.training import semantic_experiments


def get_config(row: str = "S5"):
  return semantic_experiments.with_lggan(cityscapes_spade.get_config(), row)


def get_test_config(row: str = "S5"):
  return semantic_experiments.shrink_lggan_for_tests(
      pairs_demo.shrink_semantic_for_tests(get_config(row), label_source="cityscapes"))
