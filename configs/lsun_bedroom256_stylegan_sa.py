"""LSUN Bedroom 256², StyleGAN, SAGAN self-attention after every generator conv at 8² … 256² (LAP's positions; Table 4 does not say where the paper put them),
as `memory_efficient_self_attention` (same parameters and outputs as `self_attention`, computed in
query chunks so the 256² layers fit in memory).

Parameter count: at these 12 positions SAGAN's block (query/key C/8, value C/2, output C/2 → C)
adds 1.25 · Σ C² = 2.18M to G, while Table 4 implies 49.79M − 49.13M = 0.66M: the paper's
self-attention sits at fewer positions or is narrower, which it does not state. We keep LAP's
positions, as Sec. 5.6 describes the comparison ("we apply them to a baseline architecture of
StyleGAN"); `model.attention_kwargs` can change the block.

Settings: the LAP paper's (25M real images, non-saturating loss + R1 γ = 10, no flips, FID of 50k
samples vs 50k real) and, for the rest, the official StyleGAN code's defaults at 256² (Adam 0.002, β
= (0, 0.99), mapping lr × 0.01, style mixing 0.9, batch 32, EMA half-life 10k images); sources in
genattn_jax/training/lap_experiments.py.
Table 4 target (LSUN Bedroom 256², 25M images): FID 5.9 / FSD 46.9, 49.79M parameters (StyleGAN 4.2, with LAP 3.4).
Ours: not yet measured (needs an accelerator; 256² StyleGAN on the 2-core CPU of this project
runs at minutes per step).

Progressive growing is not used (every host trains at full resolution from step 0): the
reason is in genattn_jax/training/lap_experiments.py.

Data: LSUN Bedroom as tfds `lsun/bedroom` or a local image folder; see
genattn_jax/training/lap_experiments.py.

Command:
  .venv/bin/python train.py --config=configs/lsun_bedroom256_stylegan_sa.py --workdir=runs/lsun_bedroom256_stylegan_sa
Hardware / wall time / result: not yet measured.
"""

from genattn_jax.training.lap_experiments import host_config, host_test_config


def get_config():
  return host_config("stylegan", "lsun_bedroom", "memory_efficient_self_attention")


def get_test_config():
  return host_test_config(get_config())
