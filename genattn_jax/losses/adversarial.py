"""Adversarial losses as pure functions of discriminator logits.

Every loss comes as a pair

  d_loss(real_logits, fake_logits) -> scalar   (minimised by D)
  g_loss(fake_logits, real_logits=None) -> scalar   (minimised by G)

where the logits are the raw discriminator outputs (any shape, typically
[B] float32; real and fake batches may differ in size) and E[.] below is the
mean over all elements. Losses are computed in float32 whatever the input
dtype. `get_loss(name)` returns the pair as a `GANLoss` named tuple.

Notation: r = D(x_real), f = D(G(z)), sp(t) = softplus(t) = log(1 + e^t).
"""

from typing import Callable, Dict, NamedTuple, Optional, Tuple

import jax
import jax.numpy as jnp

from genattn_jax._dtypes import wide

Array = jax.Array


def _logits(x, name: str) -> Array:
  x = jnp.asarray(x)
  if x.size == 0:
    raise ValueError(f"`{name}` must be a non-empty array of logits, got shape {x.shape}.")
  if not jnp.issubdtype(x.dtype, jnp.floating):
    raise ValueError(f"`{name}` must be a floating-point array, got dtype {x.dtype}.")
  return wide(x)


def non_saturating_d_loss(real_logits: Array, fake_logits: Array) -> Array:
  """Standard GAN discriminator loss (Goodfellow et al. 2014, Eq. 1).

  L_D = E[sp(-r)] + E[sp(f)], the binary cross-entropy of a sigmoid
  classifier with real = 1, fake = 0.
  """
  r, f = _logits(real_logits, "real_logits"), _logits(fake_logits, "fake_logits")
  return jnp.mean(jax.nn.softplus(-r)) + jnp.mean(jax.nn.softplus(f))


def non_saturating_g_loss(fake_logits: Array, real_logits: Optional[Array] = None) -> Array:
  """Non-saturating generator loss (Goodfellow et al. 2014, Sec. 3).

  L_G = E[sp(-f)] = -E[log sigmoid(f)]; `real_logits` is unused.
  """
  del real_logits
  return jnp.mean(jax.nn.softplus(-_logits(fake_logits, "fake_logits")))


def hinge_d_loss(real_logits: Array, fake_logits: Array) -> Array:
  """Hinge discriminator loss (Lim & Ye 2017; Miyato et al. 2018; AN paper Eq. 8).

  L_D = E[max(0, 1 - r)] + E[max(0, 1 + f)].
  """
  r, f = _logits(real_logits, "real_logits"), _logits(fake_logits, "fake_logits")
  return jnp.mean(jax.nn.relu(1.0 - r)) + jnp.mean(jax.nn.relu(1.0 + f))


def hinge_g_loss(fake_logits: Array, real_logits: Optional[Array] = None) -> Array:
  """Hinge generator loss (AN paper Eq. 7): L_G = -E[f]; `real_logits` unused."""
  del real_logits
  return -jnp.mean(_logits(fake_logits, "fake_logits"))


def wasserstein_d_loss(real_logits: Array, fake_logits: Array) -> Array:
  """Wasserstein critic loss (Arjovsky et al. 2017): L_D = E[f] - E[r].

  Needs a Lipschitz constraint on D (`regularizers.gradient_penalty`, weight
  clipping or spectral norm).
  """
  r, f = _logits(real_logits, "real_logits"), _logits(fake_logits, "fake_logits")
  return jnp.mean(f) - jnp.mean(r)


def wasserstein_g_loss(fake_logits: Array, real_logits: Optional[Array] = None) -> Array:
  """Wasserstein generator loss: L_G = -E[f]; `real_logits` unused."""
  del real_logits
  return -jnp.mean(_logits(fake_logits, "fake_logits"))


def relativistic_hinge_d_loss(real_logits: Array, fake_logits: Array) -> Array:
  """Relativistic average hinge discriminator loss (Jolicoeur-Martineau 2018).

  With r~ = r - E[f] and f~ = f - E[r] (how much more real than the average
  of the other batch each sample looks):
    L_D = E[max(0, 1 - r~)] + E[max(0, 1 + f~)].
  This is the loss MSG-GAN (Karnewar & Wang 2020) trains with.
  """
  r, f = _logits(real_logits, "real_logits"), _logits(fake_logits, "fake_logits")
  r_rel, f_rel = r - jnp.mean(f), f - jnp.mean(r)
  return jnp.mean(jax.nn.relu(1.0 - r_rel)) + jnp.mean(jax.nn.relu(1.0 + f_rel))


def relativistic_hinge_g_loss(fake_logits: Array, real_logits: Optional[Array] = None) -> Array:
  """Relativistic average hinge generator loss: the D loss with roles swapped.

  L_G = E[max(0, 1 + r~)] + E[max(0, 1 - f~)], r~ = r - E[f], f~ = f - E[r].

  Raises:
    ValueError: if `real_logits` is None (the relativistic loss needs them).
  """
  if real_logits is None:
    raise ValueError("`real_logits` is required by the relativistic hinge generator loss.")
  r, f = _logits(real_logits, "real_logits"), _logits(fake_logits, "fake_logits")
  r_rel, f_rel = r - jnp.mean(f), f - jnp.mean(r)
  return jnp.mean(jax.nn.relu(1.0 + r_rel)) + jnp.mean(jax.nn.relu(1.0 - f_rel))


def least_squares_d_loss(real_logits: Array, fake_logits: Array) -> Array:
  """Least-squares discriminator loss (Mao et al. 2017, Eq. 2 with a=0, b=c=1).

  L_D = 1/2 E[(r - 1)^2] + 1/2 E[f^2].
  """
  r, f = _logits(real_logits, "real_logits"), _logits(fake_logits, "fake_logits")
  return 0.5 * jnp.mean(jnp.square(r - 1.0)) + 0.5 * jnp.mean(jnp.square(f))


def least_squares_g_loss(fake_logits: Array, real_logits: Optional[Array] = None) -> Array:
  """Least-squares generator loss (Mao et al. 2017): L_G = 1/2 E[(f - 1)^2]."""
  del real_logits
  return 0.5 * jnp.mean(jnp.square(_logits(fake_logits, "fake_logits") - 1.0))


class GANLoss(NamedTuple):
  """A (d_loss, g_loss) pair; unpacks as `d_loss_fn, g_loss_fn = loss`."""
  d_loss: Callable[[Array, Array], Array]
  g_loss: Callable[..., Array]


non_saturating_loss = GANLoss(non_saturating_d_loss, non_saturating_g_loss)
hinge_loss = GANLoss(hinge_d_loss, hinge_g_loss)
wasserstein_loss = GANLoss(wasserstein_d_loss, wasserstein_g_loss)
relativistic_hinge_loss = GANLoss(relativistic_hinge_d_loss, relativistic_hinge_g_loss)
least_squares_loss = GANLoss(least_squares_d_loss, least_squares_g_loss)

LOSSES: Dict[str, GANLoss] = {
    "non_saturating": non_saturating_loss,
    "hinge": hinge_loss,
    "wasserstein": wasserstein_loss,
    "relativistic_hinge": relativistic_hinge_loss,
    "least_squares": least_squares_loss,
}
ALIASES: Dict[str, str] = {
    "ns": "non_saturating", "standard": "non_saturating", "wgan": "wasserstein",
    "rahinge": "relativistic_hinge", "relativistic_average_hinge": "relativistic_hinge",
    "lsgan": "least_squares",
}


def get_loss(name: str) -> GANLoss:
  """Returns the `(d_loss_fn, g_loss_fn)` pair for `name`.

  Args:
    name: one of `LOSSES` ('non_saturating', 'hinge', 'wasserstein',
      'relativistic_hinge', 'least_squares') or an alias in `ALIASES`
      ('ns', 'standard', 'wgan', 'rahinge', 'relativistic_average_hinge',
      'lsgan').

  Raises:
    ValueError: for an unknown name.
  """
  key = ALIASES.get(name, name)
  if key not in LOSSES:
    raise ValueError(f"`name` must be one of {tuple(LOSSES) + tuple(ALIASES)}, got {name!r}.")
  return LOSSES[key]


def loss_names() -> Tuple[str, ...]:
  """Canonical loss names."""
  return tuple(LOSSES)
