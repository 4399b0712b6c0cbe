"""`MultiScaleTask`: noise → image pyramid GANs with multi-scale gradients (MSG-GAN hosts).

Karnewar & Wang (CVPR 2020): G (called with `multiscale=True`) returns its RGB output at
every stage r = 4 … R (coarse → fine); D receives the whole list at once. Real images are
given as the same pyramid, pooled from the batch's full-resolution image with 2×2 average
pooling per halving (`models.style_layers.image_pyramid`). Everything else is the noise
task's: unconditional z ~ N(0, I) of size `model.z_dim` drawn for the global batch, the
configured adversarial loss (`training.loss`: 'relativistic_hinge' for MSG-DCGAN,
'non_saturating' for MSG-StyleGAN), EMA of G (the step), FID of the final-resolution EMA
output and its sample grid (evaluation calls G without `multiscale`).

R1 (`training.r1_gamma`, lazily every `r1_interval` D updates) is taken over the real
pyramid: E[ Σ_r ||∂D/∂x_r||² ], the gradient with respect to every scale D sees (the
scales enter D as separate inputs). WGAN-GP is not defined for pyramids here and is refused.
Batch keys: 'image' [b, R, R, 3] in [-1, 1] (labels, if the loader yields them, are unused).
"""

from typing import Sequence, Tuple

import jax
import jax.numpy as jnp

from genattn_jax._dtypes import wide
from genattn_jax.models import style_layers
from genattn_jax.training.tasks.noise import NoiseTask


def pyramid_r1_penalty(d_fn, real_pyramid: Sequence[jax.Array]) -> jax.Array:
  """E_x[Σ_r ||∂D(x)/∂x_r||²] over the batch for D taking the list of scales.

  Args:
    d_fn: list of [B, r, r, C] arrays → [B] logits.
    real_pyramid: the real images' scales.

  Returns:
    Scalar float32.
  """
  xs = tuple(jnp.asarray(x) for x in real_pyramid)
  grads = jax.grad(lambda v: jnp.sum(wide(d_fn(list(v)))))(xs)
  b = xs[0].shape[0]
  per_sample = sum(jnp.sum(jnp.square(wide(g)).reshape(b, -1), axis=-1)
                   for g in grads)
  return jnp.mean(per_sample)


class MultiScaleTask(NoiseTask):
  """MSG-GAN training (see the module doc)."""

  name = "multiscale"

  def __init__(self, config, generator, discriminator, axis_name=None):
    super().__init__(config, generator, discriminator, axis_name)
    if self.gp_weight > 0:
      raise ValueError("`training.gp_weight` > 0 is not supported by task 'multiscale' "
                       "(use `training.r1_gamma`).")
    if self.num_classes:
      raise ValueError("task 'multiscale' is unconditional: set `model.num_classes` = 0.")
    if not hasattr(generator, "stage_resolutions"):
      raise ValueError("task 'multiscale' needs a generator with `stage_resolutions()` and a "
                       "`multiscale` call argument (model.name 'msg_dcgan' or 'msg_stylegan').")
    self.stages: Tuple[int, ...] = tuple(generator.stage_resolutions())

  def apply_g(self, params, g_state, *inputs, rng, train=True):
    """G(z, multiscale=True) → (list of [b, r, r, 3], new non-param collections)."""
    out, new_state = self.generator.apply(
        {"params": params, **g_state}, *inputs, train=train, multiscale=True,
        rngs={"sampling": rng}, mutable=["batch_stats"])
    return out, dict(new_state)

  def pyramid(self, real: jax.Array):
    return list(style_layers.image_pyramid(real, self.stages))

  def init_variables(self, rng):
    res = self.config.model.resolution
    g_rng, d_rng, s_rng = jax.random.split(rng, 3)
    z = jnp.zeros((2, self.z_dim), jnp.float32)
    x = self.pyramid(jnp.zeros((2, res, res, 3), jnp.float32))
    g_vars = self.generator.init({"params": g_rng, "sampling": s_rng}, z, None, train=False,
                                 multiscale=True)
    d_vars = self.discriminator.init({"params": d_rng, "sampling": s_rng}, x, None, train=False)
    return g_vars, d_vars

  def d_loss(self, d_params, st, batch, rng, d_index):
    real = self.pyramid(batch["image"])
    z_rng, g_rng, d_rng = jax.random.split(rng, 3)
    z, _ = self.draw_latents(z_rng, real[0].shape[0])
    fake, _ = self.apply_g(st.g_params, st.g_state, z, None, rng=g_rng)
    fake = jax.lax.stop_gradient(fake)
    real_logits, d_state = self.apply_d(d_params, st.d_state, real, None, rng=d_rng)
    fake_logits, d_state = self.apply_d(d_params, d_state, fake, None, rng=d_rng)
    loss = self.d_adv_loss(real_logits, fake_logits)
    aux = {"d_adv_loss": loss, "d_real": real_logits.mean(), "d_fake": fake_logits.mean()}
    if self.r1_gamma > 0:
      d_fn = lambda xs: self.apply_d(d_params, st.d_state, xs, None, rng=d_rng)[0]
      r1 = jax.lax.cond(d_index % self.r1_interval == 0,
                        lambda: pyramid_r1_penalty(d_fn, real), lambda: jnp.zeros(()))
      loss = loss + 0.5 * self.r1_gamma * self.r1_interval * r1
      aux["r1"] = r1
    aux["d_loss"] = loss
    return loss, aux, d_state

  def g_loss(self, g_params, st, batch, rng):
    z_rng, g_rng, d_rng = jax.random.split(rng, 3)
    z, _ = self.draw_latents(z_rng, batch["image"].shape[0])
    fake, g_state = self.apply_g(g_params, st.g_state, z, None, rng=g_rng)
    fake_logits, _ = self.apply_d(st.d_params, st.d_state, fake, None, rng=d_rng)
    real_logits = None
    if self.relativistic:
      real_logits, _ = self.apply_d(st.d_params, st.d_state, self.pyramid(batch["image"]),
                                    None, rng=d_rng)
    loss = self.g_adv_loss(fake_logits, real_logits)
    aux = {"g_adv_loss": loss}
    loss = self.regularize_g(loss, aux, g_params)
    aux["g_loss"] = loss
    return loss, aux, g_state
