"""LSUN Bedroom 256², MSG-DCGAN, a LAP block (learned shape combination, `lap_levels_for_resolution` depths) after every generator conv at 8² … 256².

LAP paper (Shim et al., CVPR 2022) setting: Adam lr 0.003 (G and D), β = (0, 0.99), relativistic average hinge loss; batch 32;
the official MSG-GAN code's network (equalised lr; its D concatenates FromRGB features at every
scale, φ_cat; G + D 41.78M parameters at 256², Table 2's 41.77M); 25M real images
(781,250 steps); no flips; EMA of G with decay 0.999 per step (the code's); FID of 50k samples vs 50k real.
Table 1 target (LSUN Bedroom 256², 25M images): FID 24.9 / FSD 238.6 with LAP (baseline 60.9 / 303.4).
Ours: not yet measured (needs an accelerator; 256² StyleGAN on the 2-core CPU of this project
runs at minutes per step).

Progressive growing is not used (every host trains at full resolution from step 0): the
reason is in genattn_jax/training/lap_experiments.py.

Data: LSUN Bedroom as tfds `lsun/bedroom` or a local image folder; see
genattn_jax/training/lap_experiments.py.

Command:
  .venv/bin/python train.py --config=configs/lsun_bedroom256_msg_dcgan_lap.py --workdir=runs/lsun_bedroom256_msg_dcgan_lap
Hardware / wall time / result: not yet measured.
"""

from genattn_jax.training.lap_experiments import host_config, host_test_config


def get_config():
  return host_config("msg_dcgan", "lsun_bedroom", "lap")


def get_test_config():
  return host_test_config(get_config())
