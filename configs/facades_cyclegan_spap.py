"""CMP Facades labels ↔ photo, CycleGAN + SPAP coarse-to-fine (the spap paper, Table 3).

`cityscapes_cyclegan_spap.py`'s model and schedule on CycleGAN's `facades` dataset (400
training pairs used unpaired; aligned test pairs for PSNR / SSIM). A = facade photo, B =
colour label map (CycleGAN's layout), so A→B is "facades → labels".

Paper (Table 3): facades → labels PSNR 8.73 → 9.21, SSIM 0.33 → 0.35; labels → facades PSNR
11.72 → 12.20, SSIM 0.20 → 0.21 (CycleGAN → SPAP coarse-to-fine).
Command:
  .venv/bin/python train.py --config=configs/facades_cyclegan_spap.py \
      --workdir=runs/facades_cyclegan_spap --config.data.source=/path/to/facades
Hardware / wall time / result: not yet measured (needs an accelerator).
"""

from configs import cityscapes_cyclegan as base

TRAIN_IMAGES = 400


def get_config():
  c = base.cyclegan_config("facades_cyclegan_spap", TRAIN_IMAGES)
  return base.spap_settings(c, 100 * TRAIN_IMAGES)


def get_test_config():
  return base.test_config(get_config())
