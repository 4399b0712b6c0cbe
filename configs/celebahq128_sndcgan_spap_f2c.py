"""CelebA-HQ 128x128 SNDCGAN + SPAP fine-to-coarse, row 4 of the spap paper's Table 1.

As `celebahq128_sndcgan_spap.py` (SPAP after G's 64x64 map, rates (3, 5, 7), atrous D,
SPAP / atrous frozen for 40k steps) with the cascade starting from the finest level
(`order='fine_to_coarse'`, Sec. 3.2). Paper (Table 1): G 20.756M parameters, FID best 19.73 /
median 20.73 (coarse-to-fine 18.47, vanilla 25.42).

Command:
  .venv/bin/python train.py --config=configs/celebahq128_sndcgan_spap_f2c.py \
      --workdir=runs/celebahq128_spap_f2c --config.data.source=/path/to/celeba_hq_128
Hardware / wall time / result: not yet measured (needs an accelerator).
"""

from configs import celebahq128_sndcgan as base
from configs import celebahq128_sndcgan_spap as spap

ORDER = "fine_to_coarse"
NAME = "celebahq128_sndcgan_spap_f2c"


def get_config():
  return spap.spap_settings(base.get_config(), ORDER, NAME)


def get_test_config():
  c = spap.spap_settings(base.get_test_config(), ORDER, NAME)
  c.model.g_blocks = [{"block": "spap", "resolutions": [16], "rates": [3, 5, 7],
                       "order": ORDER}]
  c.optimizer.delayed_update.steps = 1
  return c
