"""ImageNet 128x128 class-conditional ResNet SNGAN, the an paper's SN-GAN* baseline (Table 1).

`imagenet128_resnet_an.py` without AN: the same five-block G and five-block D, spectral norm
in G and D (the paper's SN-GAN*; SN-GAN proper has it in D only: `model.g_spectral_norm =
False`), hinge loss, TTUR Adam G 1e-4 / D 4e-4, β=(0, 0.999), batch 256.
Paper (Table 1): SN-GAN FID 27.62, intra-FID 92.4, IS 36.80; SN-GAN* FID 22.96, IS 42.87
(1000k iterations).
Command:
  python train.py --config=configs/imagenet128_resnet_sngan.py \
      --workdir=runs/imagenet128_sngan --config.data.source=/path/to/imagenet128
Hardware / wall time / result: not yet measured (needs a TPU pod slice or a multi-GPU host).
"""

from configs import imagenet128_resnet_an as an


def get_config():
  c = an.get_config()
  c.name = "imagenet128_resnet_sngan"
  c.model.g_blocks = []
  c.model.d_blocks = []
  c.training.ortho_weight = c.training.d_ortho_weight = 0.0
  return c


def get_test_config():
  c = an.get_test_config()
  c.name = "imagenet128_resnet_sngan"
  c.model.g_blocks = []
  c.model.d_blocks = []
  c.training.ortho_weight = c.training.d_ortho_weight = 0.0
  return c
