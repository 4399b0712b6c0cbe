"""Cityscapes labels ↔ photo, CycleGAN + SPAP coarse-to-fine (the spap paper, Sec. 4.3, Table 2).

`cityscapes_cyclegan.py` plus SPAP (rates (6, 12, 18), coarse-to-fine) in both generators
after the first upsampling (the 128x128 map at 256x256), three stride-2 atrous convs (rates
(3, 5, 7)) beside D's third conv (input 64x64), and SPAP / atrous parameters frozen for the
first 100 epochs (Sec. 4.3, `optimizer.delayed_update`).

Paper (Table 2): labels → photo pixel acc. 0.52 → 0.73, class acc. 0.17 → 0.22, IoU
0.11 → 0.17 (CycleGAN → SPAP coarse-to-fine); photo → labels 0.71 / 0.25 / 0.19.
Command:
  .venv/bin/python train.py --config=configs/cityscapes_cyclegan_spap.py \
      --workdir=runs/cityscapes_cyclegan_spap --config.data.source=/path/to/cityscapes_unpaired
Hardware / wall time / result: not yet measured (needs an accelerator).
"""

from configs import cityscapes_cyclegan as base


def get_config():
  c = base.cyclegan_config("cityscapes_cyclegan_spap", base.TRAIN_IMAGES)
  return base.spap_settings(c, 100 * base.TRAIN_IMAGES)


def get_test_config():
  return base.test_config(get_config())
