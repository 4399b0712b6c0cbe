"""CIFAR-10 32x32 ResNet SNGAN with Attentive Normalization in G and D (an paper, Sec. 4.1).

As `cifar10_sngan.py` plus AN (n=16 semantic entities, self-sampling in training) after G's
16x16 up-block and after D's first (32→16) down-block — the paper puts AN in G's third of
five blocks (32² of 128²) and in D's first block; at CIFAR scale the middle G stage is 16².
AN's orthogonal regulariser (Eq. 1) is added to the G loss with weight 1e-4 (the paper gives
no value; ablation in its Table 4).

Command:
  .venv/bin/python train.py --config=configs/cifar10_sngan_an.py --workdir=runs/cifar10_sngan_an \
      --config.data.source=../shared/data/cifar10-jpeg.tar.gz
Hardware / wall time / result: 2-core x86_64 CPU, no GPU (2026-11-26): 781 of 100k steps in
131.3 min: steps 1-200 in 61.3 min sharing the cores with the other CIFAR-10 run (0.054 steps/s,
FID 240.6 at step 201), steps 201-781 in 70.0 min alone (0.147 steps/s), FID 87.8 at step 781
(EMA G; 5,000 real CIFAR-10 test images, 500 per class / 2,000 samples). A short CPU run: the
paper-scale result needs an accelerator, and at this length the gap to cifar10_sngan.py (76.7 at
821 steps) is not a comparison of the methods. Flags used: --config.checkpoint.every_steps=10
--config.eval.num_fake=2000 --config.eval.real_stats=runs/cifar10_test5000_stats.npz (from
benchmarks/cifar10_fid.py --save_test_stats) --config.model.g_block_bias=True (that run had G's
up-block conv biases, the official layout; the default now leaves them out).
"""

from configs import cifar10_sngan  # pylint: disable=g-bad-import-order
from genattn_jax.training.config import shrink_for_tests


def get_config():
  c = cifar10_sngan.get_config()
  c.name = "cifar10_sngan_an"
  c.model.g_blocks = [{"block": "an", "resolutions": [16]}]
  c.model.d_blocks = [{"block": "an", "resolutions": [16]}]
  c.training.ortho_weight = 1e-4
  return c


def get_test_config():
  return shrink_for_tests(get_config())
