"""Cityscapes labels ↔ photo, CycleGAN + vanilla ASPP (the spap paper's ASPP baseline, Table 2).

`cityscapes_cyclegan.py` plus ASPP at SPAP's place (after G's first upsampling) and the same
atrous D. The paper cites DeepLab [5] for ASPP and describes only "concatenated together,
followed by a 1 × 1 convolution"; our reading is the DeepLab v3 module (1x1, 3x3 rates
(6, 12, 18), image pooling, concatenation + 1x1 fuse, no norm; `layers/aspp.py`), which
differs from the CelebA-HQ ASPP config's reading (see `layers/aspp.py`). ASPP / atrous are
frozen for 100 epochs as SPAP is: Sec. 4.3 says this of "SPAP and Atrous convolution" "for all
experiments" without naming ASPP, so freezing ASPP is carried over by analogy.
Paper (Table 2): ASPP labels → photo pixel acc. 0.52, class acc. 0.17, IoU 0.12 (CycleGAN
0.52 / 0.17 / 0.11, SPAP coarse-to-fine 0.73 / 0.22 / 0.17); photo → labels 0.53 / 0.18 / 0.13.
Command:
  .venv/bin/python train.py --config=configs/cityscapes_cyclegan_aspp.py \
      --workdir=runs/cityscapes_cyclegan_aspp --config.data.source=/path/to/cityscapes_unpaired
Hardware / wall time / result: not yet measured (needs an accelerator).
"""

from configs import cityscapes_cyclegan as base


def get_config():
  c = base.cyclegan_config("cityscapes_cyclegan_aspp", base.TRAIN_IMAGES)
  c = base.spap_settings(c, 100 * base.TRAIN_IMAGES)
  c.model.pyramid = "aspp"
  c.optimizer.delayed_update.patterns = ["aspp", "atrous_d"]
  return c


def get_test_config():
  return base.test_config(get_config())
