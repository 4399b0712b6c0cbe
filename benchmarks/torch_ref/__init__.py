"""PyTorch reference networks for the side-by-side speed benchmarks (this project's own code).

Written from the papers' descriptions, in the same layouts as the project's Flax models so that
both sides have the same parameter count (each benchmark prints both):

  inception.py:  the FID InceptionV3 (Szegedy et al. 2016, in the TF 2015-12-05 graph form that
                 FID uses), batch norm folded into the convs, loadable from the Flax variables.
  sngan.py:      SNGAN / projection-cGAN ResNet G and D for CIFAR-10 (Miyato et al. 2018,
                 Appendix B.4; Miyato & Koyama 2018, Eq. 3), and SNDCGAN (Miyato et al. 2018,
                 Table 3).
  train_step.py: the GAN update of `genattn_jax.training.step` (n_critic D steps, one G step,
                 Adam, EMA of G) in PyTorch.
  spade.py:      SPADE / GauGAN G and multi-scale PatchGAN D (Park et al. 2019) in the layout of
                 `genattn_jax.models.spade` (the Flax variables load into it one to one), and
                 the 'semantic' task's step (hinge + feature matching, no VGG term).

Only `torch` and `numpy` are needed; nothing here imports JAX or genattn_jax.
"""
