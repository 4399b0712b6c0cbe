"""LSUN Bedroom 256², StyleGAN, no attention block (the baseline).

LAP paper (Shim et al., CVPR 2022) setting: Adam lr 0.001 (G and D), β = (0, 0.99), non-saturating loss + R1 γ = 10 every D step, mapping-network lr multiplier 0.01, style mixing 0.9; batch 32; 25M real images
(781,250 steps); no flips; EMA of G (half-life 10k images); FID of 50k samples vs 50k real.
Table 1 target (LSUN Bedroom 256², 25M images): FID 4.2 / FSD 38.4 (baseline; 3.4 / 34.5 with LAP).
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
  .venv/bin/python train.py --config=configs/lsun_bedroom256_stylegan.py --workdir=runs/lsun_bedroom256_stylegan
Hardware / wall time / result: not yet measured.
"""

from genattn_jax.training.lap_experiments import host_config, host_test_config


def get_config():
  return host_config("stylegan", "lsun_bedroom", "")


def get_test_config():
  return host_test_config(get_config())
