"""CelebA-HQ 128x128 vanilla SNDCGAN, row 1 of the spap paper's Table 1 (Sec. 4.3-4.4).

SNDCGAN-128 (compare_gan layout, `models/sndcgan.py`) with spectral norm in G and D, no SPAP,
no atrous convs; Adam D 2e-4 / G 1e-4, batch 64, 100k steps (Sec. 4.3). The paper gives no
β and no loss for these runs: β=(0.5, 0.999) and the non-saturating loss are compare_gan's
SNDCGAN settings (the setting Sec. 4.3 says it follows), our choice. Paper (Table 1): G 20.065M parameters, FID best 25.42 / median 26.11 on 27k/3k
train/test images. This library's G has 19.53M (the gap is explained in `models/sndcgan.py`).

Four of Table 1's five rows (SELF-MOD, 22.51, is another paper's method, not reproduced) are
`celebahq128_sndcgan.py` (25.42), `celebahq128_sndcgan_aspp.py`
(20.07), `celebahq128_sndcgan_spap_f2c.py` (19.73) and `celebahq128_sndcgan_spap.py`
(coarse-to-fine, 18.47); they differ only in `model.g_blocks`, the D atrous convs and the
delayed update.

Command (tfds `celeb_a_hq/128` prepared as ArrayRecord, or a local folder of 128² images):
  .venv/bin/python train.py --config=configs/celebahq128_sndcgan.py \
      --workdir=runs/celebahq128_sndcgan --config.data.source=/path/to/celeba_hq_128
Hardware / wall time / result: not yet measured (needs an accelerator).
"""

from genattn_jax.training.config import base_config, shrink_for_tests


def get_config():
  c = base_config("sndcgan", 128)
  c.name = "celebahq128_sndcgan"
  c.model.num_classes = 0
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
  return c
