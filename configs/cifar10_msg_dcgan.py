"""CIFAR-10 32², MSG-DCGAN (no attention block): the CPU-scale twin of
configs/lsun_bedroom256_msg_dcgan.py.

Same host, loss and optimiser as the paper's LSUN setting (Adam lr 0.003 (G and D), β = (0, 0.99), relativistic average hinge loss, combine φ_simple); batch 32; no flips;
FID against the CIFAR-10 test split. The paper reports no CIFAR-10 numbers; its LSUN Bedroom
figures for this host are FID 60.9 → 24.9 with LAP (Table 1).

Progressive growing is not used (every host trains at full resolution from step 0): the
reason is in genattn_jax/training/lap_experiments.py.

Command (real CIFAR-10 copy beside the repo):
  .venv/bin/python train.py --config=configs/cifar10_msg_dcgan.py --workdir=runs/cifar10_msg_dcgan \
      --config.data.source=../shared/data/cifar10-jpeg.tar.gz
Hardware / wall time / result: 2-core x86_64 CPU shared with ~7 other jobs, 2026-11-28, at 1/16
width and batch 16 (--config.model.g_width=0.0625 --config.model.d_width=0.0625
--config.training.batch_size=16): 170 steps in 22.3 min (run side by side with its pair); FID not
measured (see the README's issue-12 section); the paper-scale result needs an accelerator.
"""

from genattn_jax.training.lap_experiments import host_config, host_test_config


def get_config():
  return host_config("msg_dcgan", "cifar10", "")


def get_test_config():
  return host_test_config(get_config())
