"""Maps aerial ↔ map, CycleGAN + SPAP coarse-to-fine (the spap paper, Sec. 4.3, Table 3).

`cityscapes_cyclegan_spap.py`'s model and schedule on CycleGAN's `maps` dataset (1096
training pairs, used unpaired; the 1098 test pairs are aligned by file name, so
`eval.paired` scores A→B against testB). A = aerial photo, B = map (CycleGAN's layout).

Paper (Table 3): aerial → map PSNR 24.68 → 25.02, SSIM 0.63 → 0.66 (CycleGAN → SPAP
coarse-to-fine); map → aerial PSNR 14.39 → 14.40, SSIM 0.20 → 0.22.
Command:
  .venv/bin/python train.py --config=configs/maps_cyclegan_spap.py \
      --workdir=runs/maps_cyclegan_spap --config.data.source=/path/to/maps
Hardware / wall time / result: not yet measured (needs an accelerator).
"""

from configs import cityscapes_cyclegan as base

TRAIN_IMAGES = 1096


def get_config():
  c = base.cyclegan_config("maps_cyclegan_spap", TRAIN_IMAGES)
  return base.spap_settings(c, 100 * TRAIN_IMAGES)


def get_test_config():
  return base.test_config(get_config())
