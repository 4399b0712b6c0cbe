"""Demo: a small SNDCGAN on real Fashion-MNIST (28x28 padded to 32, gray → RGB), CPU minutes.

Data: Debian's `dataset-fashion-mnist` (IDX files in /usr/share/datasets/fashion-mnist),
converted once to a tfds ArrayRecord dataset in `runs/tfds`. SNDCGAN at width 1/4 with
nearest-upsample + conv (≈10x faster than transposed convs on XLA:CPU), hinge loss, Adam
2e-4 / β=(0.5, 0.999), batch 64, 600 steps; FID of the EMA generator on 500 samples vs 500
test images at the end.

Command: ./scripts/demo.sh   (= python train.py --config=configs/demo.py --workdir=runs/demo)
Hardware / wall time / result: 2-core x86_64 CPU (no GPU), fresh clone, 2026-11-26: 600 steps,
FID 267.8 (500 real test / 500 fake), 45 min wall including set-up, with three other jobs
sharing the two cores (about 0.2-0.4 steps/s); an idle machine is several times faster.
Sample grid: runs/demo/samples/step_0000600.png.
"""

from genattn_jax.training.config import base_config, shrink_for_tests


def get_config():
  c = base_config("sndcgan", 32)
  c.name = "demo_fashion_mnist"
  c.model.num_classes = 0
  c.model.g_width = c.model.d_width = 0.25
  c.model.upsample = "nearest"
  c.model.g_spectral_norm = False   # BN-only G (DCGAN); SN in D only. SN in G learned slowly.
  c.data.source = "/usr/share/datasets/fashion-mnist"
  c.data.data_dir = "runs/tfds"
  c.data.random_flip = False
  c.training.batch_size = 64
  c.training.num_steps = 2500
  c.training.loss = "hinge"
  c.training.ema_decay = 0.995
  c.training.ema_warmup_steps = 500
  c.optimizer.g_lr = c.optimizer.d_lr = 2e-4
  c.optimizer.b1, c.optimizer.b2 = 0.5, 0.999
  c.log_every_steps = 100
  c.checkpoint.every_steps = 250
  c.eval.every_steps = 2500
  c.eval.num_real = c.eval.num_fake = 500
  c.eval.batch_size = 50
  c.eval.real_split = "test"
  return c


def get_test_config():
  return shrink_for_tests(get_config())
