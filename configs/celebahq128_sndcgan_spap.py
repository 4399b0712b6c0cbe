"""CelebA-HQ 128x128 SNDCGAN + SPAP, the spap paper's setting (Sec. 4.2, Table 1).

SNDCGAN-128 with spectral norm in G and D, SPAP (rates (3, 5, 7), coarse-to-fine) after G's
64x64 feature map, `AtrousConvBlock` in D's second down-sampling layer; Adam D 2e-4 / G 1e-4,
batch 64, 100k steps. The paper reports best FID 18.47 (vanilla SNDCGAN 25.42) on 27k/3k
train/test images.

Command (tfds `celeb_a_hq/128` prepared as ArrayRecord, or a local folder of 128² images):
  .venv/bin/python train.py --config=configs/celebahq128_sndcgan_spap.py \
      --workdir=runs/celebahq128_spap --config.data.source=/path/to/celeba_hq_128
Hardware / wall time / result: not yet measured (needs an accelerator).
"""

from genattn_jax.training.config import base_config, shrink_for_tests


def get_config():
  c = base_config("sndcgan", 128)
  c.name = "celebahq128_sndcgan_spap"
  c.model.num_classes = 0
  c.model.g_blocks = [{"block": "spap", "resolutions": [64], "rates": [3, 5, 7],
                       "order": "coarse_to_fine"}]
  c.model.d_atrous = True
  c.model.d_atrous_stages = [2]
  c.model.d_atrous_rates = [3, 5, 7]
  c.data.source = "celeb_a_hq/128"
  c.data.split = "train[:27000]"
  c.eval.real_split = "train[27000:]"
  c.eval.num_real = c.eval.num_fake = 3000
  c.training.batch_size = 64
  c.training.num_steps = 100_000
  c.training.loss = "non_saturating"
  c.optimizer.g_lr, c.optimizer.d_lr = 1e-4, 2e-4
  c.optimizer.b1, c.optimizer.b2 = 0.5, 0.999
  return c


def get_test_config():
  c = shrink_for_tests(get_config())
  c.model.resolution = c.data.image_size = 32
  c.model.g_blocks = [{"block": "spap", "resolutions": [16], "rates": [3, 5, 7]}]
  return c
