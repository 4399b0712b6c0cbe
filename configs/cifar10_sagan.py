"""CIFAR-10 32x32 ResNet SNGAN with SAGAN self-attention in G and D (the an paper's baseline).

As `cifar10_sngan.py` plus `SelfAttention` (θ/φ/g with c/8, c/8, c/2 channels, σ=0 at init)
after G's 16x16 up-block and after D's first down-block (the same places as AN in
`cifar10_sngan_an.py`).

Command:
  .venv/bin/python train.py --config=configs/cifar10_sagan.py --workdir=runs/cifar10_sagan \
      --config.data.source=../shared/data/cifar10-jpeg.tar.gz
Hardware / wall time / result: not yet measured.
"""

from configs import cifar10_sngan  # pylint: disable=g-bad-import-order
from genattn_jax.training.config import shrink_for_tests


def get_config():
  c = cifar10_sngan.get_config()
  c.name = "cifar10_sagan"
  c.model.g_blocks = [{"block": "self_attention", "resolutions": [16]}]
  c.model.d_blocks = [{"block": "self_attention", "resolutions": [16]}]
  return c


def get_test_config():
  return shrink_for_tests(get_config())
