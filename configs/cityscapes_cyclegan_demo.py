"""CPU demo: CycleGAN labels ↔ photo on the 8 real Cityscapes pairs of ../shared/data, 128².

The shared data hold 8 Cityscapes training photos with their labelIds maps (2048x1024);
`python -m genattn_jax.data.cityscapes ../shared/data/pairs/cityscapes
runs/cityscapes_unpaired_128 128` squashes them to 128x128 and writes A = colour label
images, B = photos (test = the same 8 pairs: there are no other photos). Reduced model for
2 shared CPU cores: ngf = ndf = 16, 3 residual blocks, nearest x2 + 3x3 conv upsampling
instead of transposed convs (XLA:CPU), history pools of 50, batch 1, Adam 2e-4 β=(0.5,
0.999) constant (no decay phase within the demo's budget). The `_spap` twin adds SPAP
(coarse-to-fine) after G's first upsampling (64x64 here) with rates (3, 6, 9), halved with
the resolution from the paper's (6, 12, 18) at 256², and the atrous D; no delayed update (the
demo is far shorter than 100 epochs). PSNR / SSIM of A→B and B→A are on the training pairs.

Command:
  .venv/bin/python train.py --config=configs/cityscapes_cyclegan_demo.py \
      --workdir=runs/cityscapes_cyclegan_demo
Hardware / wall time / result: see README (2-core CPU shared with other jobs). Those runs had
the conv biases before instance norm (the authors' layout); the default now leaves them out,
so evaluating their checkpoints needs --config.model.norm_bias=True.
"""

from configs import cityscapes_cyclegan as base


def demo_config(name: str):
  c = base.cyclegan_config(name, 8, resolution=128)
  c.data.source = "runs/cityscapes_unpaired_128"
  c.data.load_size = 0
  c.model.ngf = c.model.ndf = 16
  c.model.n_blocks = 3
  c.model.upsample = "nearest"
  c.model.pyramid_rates = [3, 6, 9]
  c.training.num_steps = 3000
  del c.optimizer["lr_decay"]
  c.log_every_steps = 25
  c.checkpoint.every_steps = 100
  c.checkpoint.keep = 2
  c.eval.every_steps = 250
  c.eval.grid_rows = 4
  return c


def get_config():
  return demo_config("cityscapes_cyclegan_demo")


def get_test_config():
  c = base.test_config(get_config())
  return c
