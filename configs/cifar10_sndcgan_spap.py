"""CIFAR-10 32x32 unconditional SNDCGAN with SPAP in G and the atrous D (spap paper, Sec. 4).

SNDCGAN (Miyato et al. 2018) with spectral norm in G and D; SPAP (rates (3, 5, 7),
coarse-to-fine) after G's 16x16 map and `AtrousConvBlock` in D's second down-sampling layer,
the spap paper's placement scaled from 128² to 32². Adam D 2e-4 / G 1e-4, batch 64 (Sec. 4.3);
β=(0.5, 0.999) and the non-saturating loss are compare_gan's SNDCGAN settings (the paper
gives neither for these runs).

Command:
  .venv/bin/python train.py --config=configs/cifar10_sndcgan_spap.py \
      --workdir=runs/cifar10_sndcgan_spap --config.data.source=../shared/data/cifar10-jpeg.tar.gz
Hardware / wall time / result: not yet measured.
"""

from genattn_jax.training.config import base_config, shrink_for_tests


def get_config():
  c = base_config("sndcgan", 32)
  c.name = "cifar10_sndcgan_spap"
  c.model.num_classes = 0
  c.model.g_blocks = [{"block": "spap", "resolutions": [16], "rates": [3, 5, 7],
                       "order": "coarse_to_fine"}]
  c.model.d_atrous = True
  c.model.d_atrous_stages = [2]
  c.model.d_atrous_rates = [3, 5, 7]
  c.training.loss = "non_saturating"
  c.optimizer.g_lr, c.optimizer.d_lr = 1e-4, 2e-4
  c.optimizer.b1, c.optimizer.b2 = 0.5, 0.999
  c.training.ema_decay = 0.999
  return c


def get_test_config():
  return shrink_for_tests(get_config())
