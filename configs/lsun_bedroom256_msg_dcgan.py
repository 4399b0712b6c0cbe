"""LSUN Bedroom 256², MSG-DCGAN, no attention block (the baseline).

LAP paper (Shim et al., CVPR 2022) setting: Adam lr 0.003 (G and D), β = (0, 0.99), relativistic average hinge loss, combine φ_simple; batch 32; 25M real images
(781,250 steps); no flips; EMA of G (half-life 10k images); FID of 50k samples vs 50k real.
Table 1 target (LSUN Bedroom 256², 25M images): FID 60.9 / FSD 303.4 (baseline; 24.9 / 238.6 with LAP).
Ours: not yet measured (needs an accelerator; 256² StyleGAN on the 2-core CPU of this project
runs at minutes per step).

Progressive growing: not used. Every host trains at full resolution from step 0. MSG-GAN's
premise (Karnewar & Wang 2020) is that multi-scale gradients replace progressive growing, and
two of the three hosts are MSG; training StyleGAN the same way keeps all three in the one
train step of this library (growing would need a changing network, fade-in schedule and a
recompile per phase, i.e. a second trainer). This departs from the official StyleGAN
training that produced the paper's StyleGAN numbers, so those are a target, not a promise.

Data: tfds `lsun/bedroom` prepared as ArrayRecord under `data.data_dir`, or a local folder of
images (`--config.data.source=/path/to/bedroom_jpgs`); images are resized (bicubic) to 256²
without cropping, so prepare centre-cropped images for StyleGAN's protocol.

Command:
  .venv/bin/python train.py --config=configs/lsun_bedroom256_msg_dcgan.py --workdir=runs/lsun_bedroom256_msg_dcgan
Hardware / wall time / result: not yet measured.
"""

from genattn_jax.training.lap_experiments import host_config, host_test_config


def get_config():
  return host_config("msg_dcgan", "lsun_bedroom", "")


def get_test_config():
  return host_test_config(get_config())
