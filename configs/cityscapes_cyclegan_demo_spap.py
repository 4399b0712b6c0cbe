"""CPU demo twin of `cityscapes_cyclegan_demo.py` with SPAP in both generators and atrous D.

SPAP coarse-to-fine, rates (3, 6, 9) after G's first upsampling (the 64x64 map at 128²), three
stride-2 atrous convs (3, 5, 7) beside D's third conv; same data, widths, budget and
optimiser as the plain demo, no delayed update (see there).

Command:
  .venv/bin/python train.py --config=configs/cityscapes_cyclegan_demo_spap.py \
      --workdir=runs/cityscapes_cyclegan_demo_spap
Hardware / wall time / result: see README.
"""

from configs import cityscapes_cyclegan as base
from configs import cityscapes_cyclegan_demo as demo


def get_config():
  c = demo.demo_config("cityscapes_cyclegan_demo_spap")
  c = base.spap_settings(c, 0)
  c.model.pyramid_rates = [3, 6, 9]
  return c


def get_test_config():
  return base.test_config(get_config())
