"""genattn_jax: attention and normalization blocks of GAN papers in JAX/Flax.

Subpackages:
  layers:   the papers' blocks (LAP, SPAP, AN, DAGAN SAM/CAM, LGGAN) and baselines.
  models:   GAN backbones the blocks were published on.
  losses:   adversarial losses and regularisers.
  metrics:  Inception features, FID, KID, Inception Score.
  data:     input pipelines (tensorflow-datasets / grain).
  training: data-parallel training loop, checkpoints, evaluation.
"""

__version__ = "0.1.0"
