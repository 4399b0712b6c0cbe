"""SPADE / GauGAN on COCO-Stuff at 256x256 (Park et al. 2019).

Data: SPADE's COCO-Stuff layout (`train_img|train_label|train_inst`, `val_*`;
`config.data.source`): 182 classes, 255 = unlabeled → the don't-care class 182 (183 one-hot
channels) + the instance-edge channel; 'resize_and_crop' load 286, crop 256, random flips.
Official SPADE generator and multi-scale discriminator, hinge + feature matching (λ 10) + VGG
perceptual (λ 10; VGG16 by default, SPADE's is VGG19). Adam β = (0, 0.9), G 1e-4 / D 4e-4,
batch 32, 100 epochs of 118,287 images, 50 constant + 50 linear decay (our choice: the
epochs and batch SPADE used on COCO-Stuff are not stated in the DAGAN / LGGAN texts here).
Evaluated on the 5,000 validation images; mIoU / accuracy with a user-supplied DeepLab-v2
(`eval.segmenter`, 182 classes, 255 ignored).

Paper: SPADE reports COCO-Stuff in its Table 1; that paper is not among the texts here, so its
numbers are not quoted.
Command: python train.py --config=configs/coco_stuff_spade.py --workdir=runs/coco_stuff_spade
  --config.data.source=/path/to/coco_stuff
Hardware / wall time / result: not yet measured.
"""

from configs import pairs_demo
from genattn_jax.training.config import semantic_config

STEPS_PER_EPOCH = 118287 // 32


def get_config():
  c = semantic_config("~/data/coco_stuff", "coco_stuff", 182, True, True, (256, 256),
                      load_size=(286, 286))
  c.name = "coco_stuff_spade"
  c.training.batch_size = 32
  c.training.num_steps = 100 * STEPS_PER_EPOCH
  c.optimizer.decay_start = 50 * STEPS_PER_EPOCH
  c.log_every_steps = 100
  c.checkpoint.every_steps = 2 * STEPS_PER_EPOCH
  c.eval.every_steps = 10 * STEPS_PER_EPOCH
  c.eval.split = "val"
  c.eval.num_fake = 5000
  c.eval.batch_size = 32
  c.eval.segment_num_classes = 182
  return c


def get_test_config():
  return pairs_demo.shrink_semantic_for_tests(get_config(), label_source="coco_stuff")
