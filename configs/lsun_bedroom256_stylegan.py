"""LSUN Bedroom 256², StyleGAN, no attention block (the baseline).

LAP paper (Shim et al., CVPR 2022) setting: Adam lr 0.001 (G and D), β = (0, 0.99), non-saturating loss + R1 γ = 10 every D step, mapping-network lr multiplier 0.01, style mixing 0.9; batch 32; 25M real images
(781,250 steps); no flips; EMA of G (half-life 10k images); FID of 50k samples vs 50k real.
Table 1 target (LSUN Bedroom 256², 25M images): FID 4.2 / FSD 38.4 (baseline; 3.4 / 34.5 with LAP).
Ours: not yet measured (needs an accelerator; 256² StyleGAN on the 2-core CPU of this project
runs at minutes per step).

Progressive growing is not used (every host trains at full resolution from step 0): the
reason is in genattn_jax/training/lap_experiments.py.

Data: LSUN Bedroom as tfds `lsun/bedroom` or a local image folder; see
genattn_jax/training/lap_experiments.py.

Command:
  .venv/bin/python train.py --config=configs/lsun_bedroom256_stylegan.py --workdir=runs/lsun_bedroom256_stylegan
Hardware / wall time / result: not yet measured.
"""

from genattn_jax.training.lap_experiments import host_config, host_test_config


def get_config():
  return host_config("stylegan", "lsun_bedroom", "")


def get_test_config():
  return host_test_config(get_config())
