"""CIFAR-10 32², MSG-DCGAN (no attention block): the CPU-scale twin of
configs/lsun_bedroom256_msg_dcgan.py.

Settings: the LAP paper's (25M real images, relativistic hinge loss, no flips) and, for the rest,
the official MSG-GAN code's (its network, see genattn_jax/models/msg.py: 41,777,494 parameters at
256², Table 2: 41.77M; Adam 0.003, β = (0, 0.99), no R1, EMA 0.999; batch 32, the code's is 20);
sources in genattn_jax/training/lap_experiments.py.
FID against the CIFAR-10 test split. The paper reports no CIFAR-10 numbers; its LSUN Bedroom
figures for this host are FID 60.9 → 24.9 with LAP (Table 1).

Progressive growing is not used (every host trains at full resolution from step 0): the
reason is in genattn_jax/training/lap_experiments.py.

Command (real CIFAR-10 copy beside the repo):
  .venv/bin/python train.py --config=configs/cifar10_msg_dcgan.py --workdir=runs/cifar10_msg_dcgan \
      --config.data.source=../shared/data/cifar10-jpeg.tar.gz
Hardware / wall time / result: 2-core x86_64 CPU, 2026-11-28, at 1/8 width
(--config.model.g_width=0.125 --config.model.d_width=0.125), batch 32, EMA decay 0.99778
(--config.training.ema_decay=0.9977843871238888), run beside its pair: 35.6 min to step 400 (0.192 steps/s); FID at step 400,
1,000 samples vs 5,000 test images: 461.3 (EMA G) / 472.6 (raw G). Both runs of the pair had collapsed to one image by
then (README, issue-12 section), so this says nothing about LAP; the paper-scale result (25M
images, full width) needs an accelerator.
"""

from genattn_jax.training.lap_experiments import host_config, host_test_config


def get_config():
  return host_config("msg_dcgan", "cifar10", "")


def get_test_config():
  return host_test_config(get_config())
