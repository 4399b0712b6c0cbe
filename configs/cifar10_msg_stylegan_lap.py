"""CIFAR-10 32², MSG-StyleGAN with LAP after every generator conv at 8² … 32²: the CPU-scale twin of
configs/lsun_bedroom256_msg_stylegan_lap.py.

Settings: the LAP paper's (25M real images, non-saturating loss + R1 γ = 10 over the real pyramid,
no flips) and, for the rest, the official MSG-StyleGAN code's defaults (Adam 0.003, β = (0, 0.99),
φ_lin, style mixing 0.9, EMA half-life 10k images; batch 32); sources in
genattn_jax/training/lap_experiments.py.
FID against the CIFAR-10 test split. The paper reports no CIFAR-10 numbers; its LSUN Bedroom
figures for this host are FID 6.5 → 5.9 with LAP (Table 1).

Progressive growing is not used (every host trains at full resolution from step 0): the
reason is in genattn_jax/training/lap_experiments.py.

Command (real CIFAR-10 copy beside the repo):
  .venv/bin/python train.py --config=configs/cifar10_msg_stylegan_lap.py --workdir=runs/cifar10_msg_stylegan_lap \
      --config.data.source=../shared/data/cifar10-jpeg.tar.gz
Hardware / wall time / result: not yet measured.
"""

from genattn_jax.training.lap_experiments import host_config, host_test_config


def get_config():
  return host_config("msg_stylegan", "cifar10", "lap")


def get_test_config():
  return host_test_config(get_config())
