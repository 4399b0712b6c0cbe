"""SPADE / GauGAN on ADE20K at 256x256 (Park et al. 2019; the DAGAN / LGGAN baseline).

Data: `ADEChallengeData2016/images|annotations/{training,validation}` (`config.data.source`);
150 classes stored as 1..150 with 0 = don't care, shifted so that don't care is class 150
(`contain_dontcare_label`, 151 one-hot channels), no instance maps. SPADE's 'resize_and_crop':
load 286x286, random 256x256 crop, random flips. Official SPADE generator and multi-scale
discriminator (as cityscapes_spade.py), hinge + feature matching (λ 10) + VGG perceptual (λ 10;
VGG16 by default, SPADE's is VGG19). Adam β = (0, 0.9), G 1e-4 / D 4e-4. Batch 32 (our choice for
8 devices; the batch is not stated in the DAGAN / LGGAN texts), 200 epochs (LGGAN Sec. 6.1) of 20,210 images = 126,200 steps, linear decay over the
second half. Evaluated on the 2,000 validation images; mIoU / accuracy with a user-supplied
UperNet-101 (`eval.segmenter`, 150 classes, don't care ignored).

Paper (GauGAN, DAGAN Table 2 / LGGAN Table 3): mIoU 38.5, Acc 79.9, FID 33.9; G 96.5M and D 5.8M
parameters (DAGAN Table 3).
Command: python train.py --config=configs/ade20k_spade.py --workdir=runs/ade20k_spade
  --config.data.source=/path/to/ADEChallengeData2016
Hardware / wall time / result: not yet measured.
"""

from configs import pairs_demo
from genattn_jax.training.config import semantic_config

STEPS_PER_EPOCH = 20210 // 32


def get_config():
  c = semantic_config("~/data/ADEChallengeData2016", "ade20k", 150, True, False, (256, 256),
                      load_size=(286, 286))
  c.name = "ade20k_spade"
  c.training.batch_size = 32
  c.training.num_steps = 200 * STEPS_PER_EPOCH
  c.optimizer.decay_start = 100 * STEPS_PER_EPOCH
  c.log_every_steps = 100
  c.checkpoint.every_steps = 5 * STEPS_PER_EPOCH
  c.eval.every_steps = 20 * STEPS_PER_EPOCH
  c.eval.split = "val"
  c.eval.num_fake = 2000
  c.eval.batch_size = 32
  c.eval.segment_num_classes = 151
  c.eval.segment_ignore_index = 150
  return c


def get_test_config():
  return pairs_demo.shrink_semantic_for_tests(get_config(), label_source="ade20k")
