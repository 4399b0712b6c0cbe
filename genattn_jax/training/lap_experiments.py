"""Shared settings of the LAP paper's experiment configs (configs/*stylegan*, *msg_*).

`host_config(host, dataset, attention)` returns a complete config for one of the paper's
three hosts on LSUN Bedroom 256² or CIFAR-10 32², with the optimiser settings of the
official code each baseline was trained with (LAP paper Sec. 5.2: "we follow the default
training settings in the official implementation of StyleGAN and MSG-GAN"):

  =============  ===================  =======================  ===========  ==========
  host           loss                 Adam lr (G = D), β       R1 γ         task
  =============  ===================  =======================  ===========  ==========
  stylegan       non-saturating       0.002 at 256², (0, 0.99) 10           noise
  msg_stylegan   non-saturating       0.003, (0, 0.99)         10           multiscale
  msg_dcgan      relativistic hinge   0.003, (0, 0.99)         0            multiscale
  =============  ===================  =======================  ===========  ==========

The LAP paper itself states only the training length, "non-saturating loss with R1
regularization using γ = 10", no flips (Sec. 5.2) and 50K-image FID (Sec. 5.3); learning
rates, β, batch and EMA are the official codes' defaults, which it defers to. StyleGAN's lr:
the official code's per-resolution rates (`G_lrate_dict`: 0.0015 at 128², 0.002 at 256², 0.003
from 512², its base 0.001 below 128²), taken at the resolution we train at from step 0
(`STYLEGAN_LR`). MSG-DCGAN: Sec. 5.4 says it "trains ... with a relativistic-hinge loss", which
we read as overriding Sec. 5.2's non-saturating + R1 (the StyleGAN hosts' setting); the MSG-GAN
code has no R1, hence γ = 0 (set `training.r1_gamma` for the other reading).

Batch 32 (the official StyleGAN 8-GPU preset's minibatch at 128² and 256²; the LAP paper
trained on 2 GPUs and does not state its batch), training length 25M real images
(25e6 / 32 = 781,250 G steps; n_critic = 1), no horizontal flips (Sec. 5.2). EMA of G: the
official StyleGAN half-life of 10k images per step, β = 0.5^(32 / 10,000) ≈ 0.99778, for
StyleGAN and MSG-StyleGAN (whose official code is StyleGAN's); β = 0.999 per step for MSG-DCGAN
(the MSG-GAN code's default `ema_decay`). That code's default batch is 20 and it flips images
horizontally by default; we keep batch 32 for all hosts and, as the LAP paper states, no
flips. FID on 50,000 generated images against 50,000 real training images (StyleGAN's
protocol; LAP Sec. 5.3: "50K of real and fake images"), configurable through `eval.num_fake`
/ `eval.num_real`.

Progressive growing: not used. Every host trains at full resolution from step 0. MSG-GAN's
premise (Karnewar & Wang 2020) is that multi-scale gradients replace progressive growing, and
two of the three hosts are MSG; training StyleGAN the same way keeps all three in the one
train step of this library (growing would need a changing network, fade-in schedule and a
recompile per phase, i.e. a second trainer). This departs from the official StyleGAN
training that produced the paper's StyleGAN numbers, so those are a target, not a promise.

LSUN data: tfds `lsun/bedroom` prepared as ArrayRecord under `data.data_dir`, or a local folder of
images (`--config.data.source=/path/to/bedroom_jpgs`); images are resized (bicubic) to 256²
without cropping, so prepare centre-cropped images for StyleGAN's protocol.
"""

import ml_collections

from genattn_jax.training.config import base_config, shrink_for_tests

# The official StyleGAN code's learning rate by resolution (its `G_lrate_dict`, also D's), base
# rate 0.001 for resolutions not listed.
STYLEGAN_LR = {128: 0.0015, 256: 0.002, 512: 0.003, 1024: 0.003}
HOST_SETTINGS = {
    "stylegan": dict(loss="non_saturating", lr=1e-3, r1=10.0, task="noise"),
    "msg_stylegan": dict(loss="non_saturating", lr=3e-3, r1=10.0, task="multiscale"),
    "msg_dcgan": dict(loss="relativistic_hinge", lr=3e-3, r1=0.0, task="multiscale",
                      ema_decay=0.999),
}
DATASETS = {"lsun_bedroom": 256, "cifar10": 32}


def host_config(host: str, dataset: str, attention: str = "") -> ml_collections.ConfigDict:
  """A full experiment config (see the module doc).

  Args:
    host: 'stylegan', 'msg_stylegan' or 'msg_dcgan'.
    dataset: 'lsun_bedroom' (tfds `lsun/bedroom`, or a local folder via
      `--config.data.source=DIR`) or 'cifar10'.
    attention: '' (baseline), 'lap', 'self_attention', 'memory_efficient_self_attention'
      (the same SAGAN block, evaluated in query chunks: 256² maps would need a 65,536² attention
      matrix otherwise) or 'cbam'.

  Raises:
    ValueError: unknown host or dataset.
  """
  if host not in HOST_SETTINGS:
    raise ValueError(f"`host` must be one of {sorted(HOST_SETTINGS)}, got {host!r}.")
  if dataset not in DATASETS:
    raise ValueError(f"`dataset` must be one of {sorted(DATASETS)}, got {dataset!r}.")
  res = DATASETS[dataset]
  s = HOST_SETTINGS[host]
  c = base_config(host, res)
  c.name = ("lsun_bedroom256" if dataset == "lsun_bedroom" else "cifar10") + f"_{host}" + (
      f"_{attention}" if attention else "")
  c.model.attention = attention
  c.task.name = s["task"]
  c.data.source = "lsun/bedroom" if dataset == "lsun_bedroom" else "cifar10"
  c.data.random_flip = False
  c.training.batch_size = 32
  c.training.num_steps = 25_000_000 // 32
  c.training.loss = s["loss"]
  c.training.r1_gamma = s["r1"]
  c.training.r1_interval = 1
  c.training.ema_decay = s.get("ema_decay", 0.5**(32 / 10_000))
  c.training.ema_warmup_steps = 0
  lr = STYLEGAN_LR.get(res, s["lr"]) if host == "stylegan" else s["lr"]
  c.optimizer.g_lr = c.optimizer.d_lr = lr
  c.optimizer.b1, c.optimizer.b2 = 0.0, 0.99
  c.checkpoint.every_steps = 5000
  if dataset == "lsun_bedroom":
    c.eval.real_split = "train"
    c.eval.num_real = c.eval.num_fake = 50_000
    c.eval.every_steps = 50_000
    c.eval.batch_size = 50
  else:
    c.eval.real_split = "test"
    c.eval.num_real = c.eval.num_fake = 10_000
  return c


def host_test_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The tiny twin: 32² (16² for CIFAR-sized), widths / 16, fixture images."""
  c = shrink_for_tests(config)
  c.model.resolution = c.data.image_size = 16
  return c
