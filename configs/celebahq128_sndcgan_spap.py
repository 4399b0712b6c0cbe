"""CelebA-HQ 128x128 SNDCGAN + SPAP coarse-to-fine, the spap paper's best row (Sec. 4.3, Table 1).

SNDCGAN-128 with spectral norm in G and D, SPAP (rates (3, 5, 7), coarse-to-fine, the
paper-sized attention nets: +672,901 parameters against Table 1's +0.691M, derivation in
`layers/spap.py`) after G's 64x64 feature map, `AtrousConvBlock` (rates (3, 5, 7)) in D's
second down-sampling layer; Adam D 2e-4 / G 1e-4, batch 64, 100k steps. SPAP and the atrous
branches are frozen for the first 40k steps (Sec. 4.3: "we start to update the parameters of
SPAP and Atrous convolution after ... 40k steps"), `optimizer.delayed_update`; the patterns
'spap' and 'atrous_d' name the G block and D's atrous branches (the original 4x4 conv of the
atrous block trains from step 0, as in the vanilla model).

Paper (Table 1): G 20.756M parameters, FID best 18.47 / median 20.11 (vanilla SNDCGAN 25.42,
ASPP 20.07, SPAP fine-to-coarse 19.73) on 27k/3k train/test images. Twins:
`celebahq128_sndcgan.py`, `celebahq128_sndcgan_aspp.py`, `celebahq128_sndcgan_spap_f2c.py`.

Command (tfds `celeb_a_hq/128` prepared as ArrayRecord, or a local folder of 128² images):
  .venv/bin/python train.py --config=configs/celebahq128_sndcgan_spap.py \
      --workdir=runs/celebahq128_spap --config.data.source=/path/to/celeba_hq_128
Hardware / wall time / result: not yet measured (needs an accelerator).
"""

import ml_collections

from configs import celebahq128_sndcgan as base

ORDER = "coarse_to_fine"
NAME = "celebahq128_sndcgan_spap"


def spap_settings(c, order, name):
  """SPAP in G at 64², atrous D, delayed update (shared by the two SPAP rows)."""
  c.name = name
  c.model.g_blocks = [{"block": "spap", "resolutions": [64], "rates": [3, 5, 7],
                       "order": order}]
  c.model.d_atrous = True
  c.model.d_atrous_stages = [2]
  c.model.d_atrous_rates = [3, 5, 7]
  c.optimizer.delayed_update = ml_collections.ConfigDict(
      {"steps": 40_000, "patterns": ["spap", "atrous_d"]})
  return c


def get_config():
  return spap_settings(base.get_config(), ORDER, NAME)


def get_test_config():
  c = spap_settings(base.get_test_config(), ORDER, NAME)
  c.model.g_blocks = [{"block": "spap", "resolutions": [16], "rates": [3, 5, 7],
                       "order": ORDER}]
  c.optimizer.delayed_update.steps = 1
  return c
