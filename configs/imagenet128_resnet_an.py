"""ImageNet 128x128 class-conditional ResNet SNGAN + AN, the an paper's setting (Sec. 4.1).

Five residual up-blocks in G with AN (n=16) after the third (32x32 map), AN in D's first
block; spectral norm in G and D; hinge loss; TTUR Adam G 1e-4 / D 4e-4, β=(0, 0.999);
batch 256. The paper reports FID 17.84 / IS 46.57 after 880k iterations.

Command (tfds `imagenet_resized`-style data or a local class-folder copy at 128²):
  python train.py --config=configs/imagenet128_resnet_an.py --workdir=runs/imagenet128_an \
      --config.data.source=/path/to/imagenet128
Hardware / wall time / result: not yet measured (needs a TPU pod slice or a multi-GPU host).
"""

from genattn_jax.training.config import base_config, shrink_for_tests


def get_config():
  c = base_config("resnet", 128)
  c.name = "imagenet128_resnet_an"
  c.model.num_classes = 1000
  c.model.g_blocks = [{"block": "an", "resolutions": [32]}]
  c.model.d_blocks = [{"block": "an", "resolutions": [64]}]
  c.data.source = "imagenet2012"
  c.data.split = "train"
  c.eval.real_split = "validation"
  c.eval.num_real = c.eval.num_fake = 50_000
  c.training.batch_size = 256
  c.training.num_steps = 1_000_000
  c.training.loss = "hinge"
  c.training.ortho_weight = 1e-4
  c.optimizer.g_lr, c.optimizer.d_lr = 1e-4, 4e-4
  c.optimizer.b1, c.optimizer.b2 = 0.0, 0.999
  return c


def get_test_config():
  c = shrink_for_tests(get_config())
  c.model.resolution = c.data.image_size = 32
  c.model.num_classes = 10
  c.model.g_blocks = [{"block": "an", "resolutions": [16]}]
  c.model.d_blocks = [{"block": "an", "resolutions": [16]}]
  return c
