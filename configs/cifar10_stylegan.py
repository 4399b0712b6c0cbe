"""CIFAR-10 32², StyleGAN (no attention block): the CPU-scale twin of
configs/lsun_bedroom256_stylegan.py.

Settings: the LAP paper's (25M real images, non-saturating loss + R1 γ = 10, no flips) and, for the
rest, the official StyleGAN code's defaults at 32² (Adam 0.001, β = (0, 0.99), mapping lr × 0.01,
style mixing 0.9, batch 32, EMA half-life 10k images); sources in
genattn_jax/training/lap_experiments.py.
FID against the CIFAR-10 test split. The paper reports no CIFAR-10 numbers; its LSUN Bedroom
figures for this host are FID 4.2 → 3.4 with LAP (Table 1).

Progressive growing is not used (every host trains at full resolution from step 0): the
reason is in genattn_jax/training/lap_experiments.py.

Command (real CIFAR-10 copy beside the repo):
  .venv/bin/python train.py --config=configs/cifar10_stylegan.py --workdir=runs/cifar10_stylegan \
      --config.data.source=../shared/data/cifar10-jpeg.tar.gz
Hardware / wall time / result: not yet measured.
"""

from genattn_jax.training.lap_experiments import host_config, host_test_config


def get_config():
  return host_config("stylegan", "cifar10", "")


def get_test_config():
  return host_test_config(get_config())
