"""CIFAR-10 32x32, class-conditional ResNet SNGAN (projection D), no attention block.

The baseline of the an paper's comparison, at CIFAR scale: ResNet G (3 up-blocks, 256 ch,
conditional BN) / D (4 blocks, 128 ch, projection head), spectral norm in G and D, hinge loss,
TTUR Adam (G 1e-4, D 4e-4, β=(0, 0.999)) as in the an paper, batch 64, EMA 0.999.

Command (real CIFAR-10 copy beside the repo):
  .venv/bin/python train.py --config=configs/cifar10_sngan.py --workdir=runs/cifar10_sngan \
      --config.data.source=../shared/data/cifar10-jpeg.tar.gz
Hardware / wall time / result: 2-core x86_64 CPU, no GPU (2026-11-26): 821 of 100k steps in
131.9 min: steps 1-200 in 60.1 min sharing the cores with the other CIFAR-10 run (0.055 steps/s,
FID 214.1 at step 201), steps 201-821 in 71.8 min alone (0.154 steps/s), FID 76.7 at step 821
(EMA G; 5,000 real CIFAR-10 test images, 500 per class / 2,000 samples). A short CPU run: the
paper-scale result needs an accelerator. Flags used: --config.checkpoint.every_steps=10
--config.eval.num_fake=2000 --config.eval.real_stats=runs/cifar10_test5000_stats.npz (from
benchmarks/cifar10_fid.py --save_test_stats) --config.model.g_block_bias=True (that run had G's
up-block conv biases, the official layout; the default now leaves them out).
"""

from genattn_jax.training.config import base_config, shrink_for_tests


def get_config():
  c = base_config("resnet", 32)
  c.name = "cifar10_sngan"
  c.model.num_classes = 10
  c.data.source = "cifar10"
  c.training.batch_size = 64
  c.training.num_steps = 100_000
  c.training.loss = "hinge"
  c.training.ema_decay = 0.999
  c.optimizer.g_lr, c.optimizer.d_lr = 1e-4, 4e-4
  c.optimizer.b1, c.optimizer.b2 = 0.0, 0.999
  c.eval.num_real = c.eval.num_fake = 10_000
  return c


def get_test_config():
  return shrink_for_tests(get_config())
