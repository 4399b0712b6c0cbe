"""LSUN Bedroom 256², StyleGAN, CBAM after every generator conv at 8² … 256² (LAP's positions; Table 4 does not say where the paper put them).

Parameter count: CBAM (reduction 16, 7×7 spatial conv) at these 12 positions adds
Σ (C²/8 + 17C/16 + 99) = 223,516 parameters to G; Table 4 implies 49.36M − 49.13M = 0.23M.

Settings: the LAP paper's (25M real images, non-saturating loss + R1 γ = 10, no flips, FID of 50k
samples vs 50k real) and, for the rest, the official StyleGAN code's defaults at 256² (Adam 0.002, β
= (0, 0.99), mapping lr × 0.01, style mixing 0.9, batch 32, EMA half-life 10k images); sources in
genattn_jax/training/lap_experiments.py.
Table 4 target (LSUN Bedroom 256², 25M images): FID 4.9 / FSD 45.6, 49.36M parameters (StyleGAN 4.2, with LAP 3.4).
Ours: not yet measured (needs an accelerator; 256² StyleGAN on the 2-core CPU of this project
runs at minutes per step).

Progressive growing is not used (every host trains at full resolution from step 0): the
reason is in genattn_jax/training/lap_experiments.py.

Data: LSUN Bedroom as tfds `lsun/bedroom` or a local image folder; see
genattn_jax/training/lap_experiments.py.

Command:
  .venv/bin/python train.py --config=configs/lsun_bedroom256_stylegan_cbam.py --workdir=runs/lsun_bedroom256_stylegan_cbam
Hardware / wall time / result: not yet measured.
"""

from genattn_jax.training.lap_experiments import host_config, host_test_config


def get_config():
  return host_config("stylegan", "lsun_bedroom", "cbam")


def get_test_config():
  return host_test_config(get_config())
