"""CIFAR-10 32x32 ResNet SNGAN with Attentive Normalization in G and D (an paper, Sec. 4).

As `cifar10_sngan.py` plus AN (n=16 semantic entities, self-sampling in training) at the
paper's position, inside a residual block between its first conv and the activation (Sec. 4:
"between the convolutional layer and the activation layer", Fig. 6): in G's 16x16 up-block
and in D's first (32→16) block. The paper puts AN in G's third of five blocks (32² of 128²)
and in D's first block; at CIFAR scale the middle G stage is 16². AN's orthogonal regulariser
(Eq. 1) on G's and on D's AN, weight 1e-4 each (the paper gives no value; ablation in its
Table 4). FID of the EMA and of the raw generator (`eval.fid_both`; the paper does not
mention an EMA).

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
up-block conv biases, the official layout; the default now leaves them out). That run predates
the paper's position: it had AN after the whole residual block and Eq. 1 on G's AN only, i.e.
--config.model.g_blocks='[{"block": "an", "resolutions": [16]}]' (the same for d_blocks)
--config.training.d_ortho_weight=0 --config.eval.fid_both=False. The re-run with this config
has not been made: on the 2-core VM of 2026-11-28 one step took 55-64 s (47-54 s without AN;
the 2026-11-26 code the same), against 6.8 s on 2026-11-26, so 781 steps would need ~13 h.
With the CPU kernel gradient of layers/conv.py as the default (2026-11-29) one step took
15.2-15.3 s on that VM (15.0-17.0 s without AN): ~3.5 h per run.
"""

from configs import cifar10_sngan  # pylint: disable=g-bad-import-order
from genattn_jax.training.config import shrink_for_tests


def get_config():
  c = cifar10_sngan.get_config()
  c.name = "cifar10_sngan_an"
  # The paper's position (Sec. 4, Fig. 6): inside the residual block, after its first conv.
  c.model.g_blocks = [{"block": "an", "resolutions": [16], "position": "in_block"}]
  c.model.d_blocks = [{"block": "an", "resolutions": [16], "position": "in_block"}]
  c.training.ortho_weight = 1e-4
  c.training.d_ortho_weight = 1e-4
  c.eval.fid_both = True  # the library's EMA FID and the paper's raw-generator FID
  return c


def get_test_config():
  return shrink_for_tests(get_config())
