"""LSUN Bedroom 256², MSG-DCGAN, a LAP block (learned shape combination, `lap_levels_for_resolution` depths) after every generator conv at 8² … 256².

Settings: the LAP paper's (25M real images, relativistic hinge loss, no flips, FID of 50k samples vs
50k real) and, for the rest, the official MSG-GAN code's (its network, see
genattn_jax/models/msg.py: 41,777,494 parameters at 256², Table 2: 41.77M; Adam 0.003, β = (0,
0.99), no R1, EMA 0.999; batch 32, the code's is 20); sources in
genattn_jax/training/lap_experiments.py.
Table 1 target (LSUN Bedroom 256², 25M images): FID 24.9 / FSD 238.6 with LAP (baseline 60.9 / 303.4).
Ours: not yet measured (needs an accelerator; 256² MSG-DCGAN on the 2-core CPU of this project
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
