"""LSUN Bedroom 256², MSG-StyleGAN, a LAP block (learned shape combination, `lap_levels_for_resolution` depths) after every generator conv at 8² … 256².

Settings: the LAP paper's (25M real images, non-saturating loss + R1 γ = 10 over the real pyramid,
no flips, FID of 50k samples vs 50k real) and, for the rest, the official MSG-StyleGAN code's
defaults (Adam 0.003, β = (0, 0.99), φ_lin, style mixing 0.9, EMA half-life 10k images; batch 32);
sources in genattn_jax/training/lap_experiments.py.
Table 1 target (LSUN Bedroom 256², 25M images): FID 5.9 / FSD 49.1 with LAP (baseline 6.5 / 54.4).
Ours: not yet measured (needs an accelerator; 256² MSG-StyleGAN on the 2-core CPU of this project
runs at minutes per step).

Progressive growing is not used (every host trains at full resolution from step 0): the
reason is in genattn_jax/training/lap_experiments.py.

Data: LSUN Bedroom as tfds `lsun/bedroom` or a local image folder; see
genattn_jax/training/lap_experiments.py.

Command:
  .venv/bin/python train.py --config=configs/lsun_bedroom256_msg_stylegan_lap.py --workdir=runs/lsun_bedroom256_msg_stylegan_lap
Hardware / wall time / result: not yet measured.
"""

from genattn_jax.training.lap_experiments import host_config, host_test_config


def get_config():
  return host_config("msg_stylegan", "lsun_bedroom", "lap")


def get_test_config():
  return host_test_config(get_config())
