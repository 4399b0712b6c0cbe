"""SPADE / GauGAN on Cityscapes at 512x256 (Park et al. 2019; the DAGAN / LGGAN baseline).

Data: Cityscapes in SPADE's layout (`train_img|train_label|train_inst`, `val_*`) or the official
tree (`leftImg8bit/`, `gtFine/`), `config.data.source`; 35 label ids (labelIds, no don't-care
class) + the instance-edge channel, resized to 256x512 (H x W, SPADE's 'fixed' preprocessing:
load_size 512, aspect ratio 2, no crop), random horizontal flips. Model: the official SPADE
generator (ngf 64, 'normal' upsampling, segmentation-map input, no VAE) and multi-scale
discriminator (num_D 2, n_layers 4, ndf 64). Losses: hinge + feature matching (λ 10) + VGG
perceptual (λ 10; VGG16 by default, SPADE uses VGG19: set `task.vgg_arch='vgg19'` and
`task.vgg_weights` to a torchvision vgg19 .pth). Adam β = (0, 0.9), G 1e-4 / D 4e-4, global
batch 8, 200 epochs of the 2,975 training images = 74,200 G steps (371 a epoch), constant for
100 epochs then linear decay to 0 (SPADE's niter 100 + niter_decay 100). Evaluated on the 500
validation images: FID, PSNR, SSIM, LPIPS; mIoU / accuracy with a user-supplied DRN-D-105
(`eval.segmenter`, 19 train ids; see training/semantic_eval.py).

Paper (GauGAN, as reported in DAGAN Table 2 and LGGAN Table 3): mIoU 62.3, Acc 81.9, FID 71.8;
G 93.0M and D 5.6M parameters (DAGAN Table 3; this config builds the same layer shapes).
Command: python train.py --config=configs/cityscapes_spade.py --workdir=runs/cityscapes_spade
  --config.data.source=/path/to/cityscapes
Hardware / wall time / result: not yet measured (the paper used 8 V100 GPUs).
"""

from configs import pairs_demo
from genattn_jax.training.config import semantic_config

STEPS_PER_EPOCH = 2975 // 8


def get_config():
  c = semantic_config("~/data/cityscapes", "cityscapes", 35, False, True, (256, 512))
  c.name = "cityscapes_spade"
  c.training.batch_size = 8
  c.training.num_steps = 200 * STEPS_PER_EPOCH
  c.optimizer.decay_start = 100 * STEPS_PER_EPOCH
  c.log_every_steps = 100
  c.checkpoint.every_steps = 5 * STEPS_PER_EPOCH
  c.eval.every_steps = 20 * STEPS_PER_EPOCH
  c.eval.split = "val"
  c.eval.num_fake = 500
  c.eval.batch_size = 16
  c.eval.grid_rows = 4
  c.eval.segment_num_classes = 19
  return c


def get_test_config():
  return pairs_demo.shrink_semantic_for_tests(get_config(), label_source="cityscapes")
