"""Gradient regularisers of the discriminator: R1 and the WGAN-GP penalty.

Both take `d_apply_fn`, a function of the images alone returning logits
(e.g. `lambda x: disc.apply(variables, x, y, train=True)`), and
differentiate the sum of its outputs with respect to the images. That sum's
gradient is the per-sample input gradient as long as samples do not interact
inside D (true for the spectrally-normalised discriminators here, which have
no batch norm). Close over the variables without marking 'batch_stats'
mutable so the spectral-norm power iteration is not advanced by the penalty
pass. All arithmetic is float32.
"""

from typing import Any, Callable, Tuple, Union

import jax
import jax.numpy as jnp
import optax

from genattn_jax._dtypes import wide

Array = jax.Array


def _input_grads(d_apply_fn: Callable[..., Any], x: Array, has_aux: bool):
  def total(v):
    out = d_apply_fn(v)
    logits, aux = out if has_aux else (out, None)
    return jnp.sum(wide(logits)), aux
  grads, aux = jax.grad(total, has_aux=True)(x)
  return wide(grads), aux


def r1_penalty(d_apply_fn: Callable[[Array], Any], real_images: Array,
               has_aux: bool = False) -> Union[Array, Tuple[Array, Any]]:
  """R1 penalty: E_x[ ||grad_x D(x)||^2 ] over real images.

  Mescheder et al., "Which Training Methods for GANs do actually Converge?"
  (ICML 2018), Eq. 9, defines the regulariser as (gamma / 2) * E[||grad D||^2];
  this function returns the expectation only, so the caller adds
  `0.5 * gamma * r1_penalty(...)` to the discriminator loss. With lazy
  regularisation (StyleGAN2, Karras et al. 2020, Sec. 3.1) the trainer
  evaluates it every k-th D step and scales it by k to keep its overall
  weight; that schedule belongs to the trainer, not here.

  Args:
    d_apply_fn: x -> logits (any shape with leading batch dim, e.g. [B]) or,
      when `has_aux`, x -> (logits, aux).
    real_images: [B, H, W, C] (or any [B, ...]) float real images.
    has_aux: whether `d_apply_fn` also returns auxiliary data.

  Returns:
    Scalar float32 mean over the batch of the squared L2 norm of each
    sample's input gradient; with `has_aux`, `(penalty, aux)`.

  Raises:
    ValueError: if `real_images` has rank < 2 or is empty.
  """
  x = jnp.asarray(real_images)
  if x.ndim < 2 or x.size == 0:
    raise ValueError(f"`real_images` must be a non-empty [B, ...] array, got shape {x.shape}.")
  grads, aux = _input_grads(d_apply_fn, x, has_aux)
  penalty = jnp.mean(jnp.sum(jnp.square(grads).reshape(x.shape[0], -1), axis=-1))
  return (penalty, aux) if has_aux else penalty


def gradient_penalty(d_apply_fn: Callable[[Array], Any], real: Array, fake: Array,
                     rng: Array, target: float = 1.0,
                     has_aux: bool = False) -> Union[Array, Tuple[Array, Any]]:
  """WGAN-GP penalty: E[(||grad D(x_hat)||_2 - target)^2] on interpolates.

  Gulrajani et al., "Improved Training of Wasserstein GANs" (NeurIPS 2017),
  Eq. 3 / Algorithm 1: x_hat = eps * real + (1 - eps) * fake with one
  eps ~ U[0, 1] per sample. The caller multiplies by lambda (10 in the paper).
  The norm is `optax.safe_norm`, whose gradient is finite at zero.

  Args:
    d_apply_fn: x -> logits (or (logits, aux) with `has_aux`).
    real: [B, ...] float real images.
    fake: generated images of the same shape (gradients flow into them; wrap
      in `jax.lax.stop_gradient` for the usual D-only update).
    rng: PRNG key for eps.
    target: the target gradient norm (1 in the paper).
    has_aux: whether `d_apply_fn` also returns auxiliary data.

  Returns:
    Scalar float32 penalty; with `has_aux`, `(penalty, aux)`.

  Raises:
    ValueError: if `real` and `fake` differ in shape, or are not [B, ...].
  """
  real, fake = jnp.asarray(real), jnp.asarray(fake)
  if real.shape != fake.shape:
    raise ValueError(f"`real` {real.shape} and `fake` {fake.shape} must have the same shape.")
  if real.ndim < 2 or real.size == 0:
    raise ValueError(f"`real` must be a non-empty [B, ...] array, got shape {real.shape}.")
  eps = jax.random.uniform(rng, (real.shape[0],) + (1,) * (real.ndim - 1), jnp.float32)
  x_hat = (eps * wide(real) + (1.0 - eps) * wide(fake))
  x_hat = x_hat.astype(real.dtype)
  grads, aux = _input_grads(d_apply_fn, x_hat, has_aux)
  norms = optax.safe_norm(grads.reshape(real.shape[0], -1), 0.0, axis=-1)
  penalty = jnp.mean(jnp.square(norms - target))
  return (penalty, aux) if has_aux else penalty
