"""Cityscapes labels ↔ photo, plain CycleGAN at 256x256 (the spap paper's baseline, Table 2).

CycleGAN (Zhu et al. 2017): ResNet G with 9 blocks (reflect padding, instance norm,
transposed-conv upsampling), 70x70 PatchGAN D, least-squares GAN loss, cycle λ = 10, identity
0.5 · λ, history pools of 50, Adam 2e-4 β = (0.5, 0.999), batch 1, 100 epochs at constant
learning rate then linear decay to 0 over 100 epochs (2975 training images → 297,500 steps
each). A = colour label images, B = photos (`genattn_jax/data/cityscapes.py` builds them from
the labelIds maps with the dataset's colour table), so A→B is labels → photo.

Paper (Table 2, labels → photo FCN score): CycleGAN pixel acc. 0.52, class acc. 0.17,
IoU 0.11; with SPAP coarse-to-fine 0.73 / 0.22 / 0.17 (`cityscapes_cyclegan_spap.py`).
The FCN score needs a segmentation network trained on Cityscapes photos
(`metrics/fcn_score.py` takes one through `metrics.segmentation`); none ships with the
library, so `evaluate` reports PSNR / SSIM of the aligned test pairs.

Data: `python -m genattn_jax.data.cityscapes CITYSCAPES_PAIRS OUT 256` (a SPADE-style
folder: train_img/, train_label/), or any trainA|trainB|testA|testB folder.
Command:
  .venv/bin/python train.py --config=configs/cityscapes_cyclegan.py \
      --workdir=runs/cityscapes_cyclegan --config.data.source=/path/to/cityscapes_unpaired
Hardware / wall time / result: not yet measured (needs an accelerator).
"""

import ml_collections

from genattn_jax import models
from genattn_jax.training.config import base_config

TRAIN_IMAGES = 2975  # Cityscapes training set


def cyclegan_config(name: str, train_images: int, resolution: int = 256, epochs: int = 100,
                    decay_epochs: int = 100):
  """The CycleGAN paper's training setup; `pyramid` etc. are set by the caller."""
  c = base_config("sndcgan", 32)
  c.name = name
  c.model = models.default_model_config("cyclegan", resolution)
  c.task.name = "cyclegan"
  c.task.lambda_cycle = 10.0
  c.task.lambda_identity = 0.5
  c.data = ml_collections.ConfigDict()
  c.data.source = ""
  c.data.image_size = resolution
  c.data.load_size = int(round(resolution * 286 / 256))  # resize to 286, random crop 256
  c.data.random_flip = True
  c.training.batch_size = 1
  c.training.num_steps = (epochs + decay_epochs) * train_images
  c.training.loss = "least_squares"
  c.training.ema_decay = 0.0  # no EMA in CycleGAN: the EMA copy equals G
  c.training.ema_warmup_steps = 0
  c.optimizer.g_lr = c.optimizer.d_lr = 2e-4
  c.optimizer.b1, c.optimizer.b2 = 0.5, 0.999
  c.optimizer.lr_decay = ml_collections.ConfigDict(
      {"constant_steps": epochs * train_images, "decay_steps": decay_epochs * train_images})
  c.checkpoint.every_steps = 5000
  c.eval.every_steps = 20_000
  c.eval.paired = True
  c.eval.use_ema = False
  c.eval.grid_rows = 4
  return c


def spap_settings(c, epochs_steps: int, order: str = "coarse_to_fine"):
  """SPAP (6, 12, 18) after G's first upsampling, atrous D (3, 5, 7), frozen for 100 epochs."""
  c.model.pyramid = "spap"
  c.model.pyramid_rates = [6, 12, 18]
  c.model.spap_order = order
  c.model.d_atrous = True
  c.model.d_atrous_rates = [3, 5, 7]
  c.optimizer.delayed_update = ml_collections.ConfigDict(
      {"steps": epochs_steps, "patterns": ["spap", "atrous_d"]})
  return c


def test_config(c):
  """Tiny twin: 32x32, narrow nets, 2 steps on a few Cityscapes-style images."""
  c.model.resolution = c.data.image_size = 32
  c.model.ngf = c.model.ndf = 4
  c.model.n_blocks = 1
  c.model.upsample = "nearest"
  c.model.pool_size = 2
  c.data.load_size = 0
  c.training.num_steps = 2
  if "lr_decay" in c.optimizer:
    c.optimizer.lr_decay.constant_steps = 1
    c.optimizer.lr_decay.decay_steps = 1
  if "delayed_update" in c.optimizer:
    c.optimizer.delayed_update.steps = 1
  c.log_every_steps = 1
  c.checkpoint.every_steps = 1
  c.checkpoint.async_save = False
  c.eval.every_steps = 2
  c.eval.grid_rows = 2
  return c


def get_config():
  return cyclegan_config("cityscapes_cyclegan", TRAIN_IMAGES)


def get_test_config():
  return test_config(get_config())
