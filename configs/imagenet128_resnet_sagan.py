"""ImageNet 128x128 class-conditional SAGAN, the an paper's SA-GAN baseline (Table 1).

`imagenet128_resnet_sngan.py` (SN in G and D, five-block G and D) plus SAGAN self-attention
after G's 64x64 stage and after D's first block (64x64), the feature-map size SAGAN reports
as its best (Zhang et al. 2019, Sec. 5.1, "feat64"); hinge loss, TTUR G 1e-4 / D 4e-4.
Paper (Table 1, numbers quoted from SAGAN): FID 18.65, intra-FID 83.7, IS 52.52 (1000k
iterations).
Command:
  python train.py --config=configs/imagenet128_resnet_sagan.py \
      --workdir=runs/imagenet128_sagan --config.data.source=/path/to/imagenet128
Hardware / wall time / result: not yet measured (needs a TPU pod slice or a multi-GPU host).
"""

from configs import imagenet128_resnet_sngan as sngan


def get_config():
  c = sngan.get_config()
  c.name = "imagenet128_resnet_sagan"
  c.model.g_blocks = [{"block": "self_attention", "resolutions": [64]}]
  c.model.d_blocks = [{"block": "self_attention", "resolutions": [64]}]
  return c


def get_test_config():
  c = sngan.get_test_config()
  c.name = "imagenet128_resnet_sagan"
  c.model.g_blocks = [{"block": "self_attention", "resolutions": [16]}]
  c.model.d_blocks = [{"block": "self_attention", "resolutions": [16]}]
  return c
