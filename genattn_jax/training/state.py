"""`GANState`: everything a GAN run carries from step to step, as one pytree."""

from typing import Any, Callable, Tuple

import flax
import flax.linen as nn
from flax import struct
import jax
import jax.numpy as jnp
import optax

PyTree = Any


@struct.dataclass
class GANState:
  """Generator and discriminator parameters, optimizer states and model state.

  Attributes:
    step: number of completed generator updates (int32 scalar).
    g_params, d_params: 'params' collections of G and D.
    g_state, d_state: the other mutable collections (BatchNorm running statistics and
      spectral-norm power-iteration vectors, both in 'batch_stats').
    g_opt_state, d_opt_state: optax states.
    ema_params: exponential moving average of `g_params` (the generator that is evaluated).
  """
  step: jnp.ndarray
  g_params: PyTree
  d_params: PyTree
  g_state: PyTree
  d_state: PyTree
  g_opt_state: PyTree
  d_opt_state: PyTree
  ema_params: PyTree


def make_optimizers(config) -> Tuple[optax.GradientTransformation, optax.GradientTransformation]:
  """Adam for G and D with the config's TTUR learning rates and betas.

  Fields: `optimizer.g_lr`, `optimizer.d_lr`, `optimizer.b1`, `optimizer.b2`,
  optional `optimizer.grad_clip` (global norm, 0 = off) and `optimizer.decay_start` (a G
  step, 0 = constant rates): from that G update on, both rates fall linearly to 0 at
  `training.num_steps` (pix2pixHD / SPADE: constant for `niter` epochs, then linear decay over
  `niter_decay`). D's schedule counts its own updates (n_critic per G update).
  """
  opt = config.optimizer
  start = int(opt.get("decay_start", 0))
  total = int(config.training.num_steps)
  n_critic = int(config.training.get("n_critic", 1))

  def schedule(lr, per_g):
    if not start:
      return lr
    if not 0 < start < total:
      raise ValueError(f"`optimizer.decay_start` ({start}) must lie in (0, training.num_steps="
                       f"{total}).")
    return optax.join_schedules(
        [optax.constant_schedule(lr),
         optax.linear_schedule(lr, 0.0, (total - start) * per_g)], [start * per_g])

  def adam(lr, per_g=1):
    tx = optax.adam(schedule(lr, per_g), b1=opt.b1, b2=opt.b2)
    if opt.get("grad_clip", 0.0):
      tx = optax.chain(optax.clip_by_global_norm(opt.grad_clip), tx)
    return tx

  return adam(opt.g_lr), adam(opt.d_lr, n_critic)


def _split_variables(variables) -> Tuple[PyTree, PyTree]:
  variables = flax.core.unfreeze(variables)
  params = variables.pop("params")
  return params, variables


def create_gan_state(config, generator: nn.Module, discriminator: nn.Module,
                     rng: jax.Array, task=None) -> GANState:
  """Initialises G and D (through the task's dummy inputs) and their optimizers.

  Args:
    config: the run's config.
    generator, discriminator: flax modules.
    rng: init key.
    task: a `training.tasks.Task`; default the one `config.task.name` names ('noise').
  """
  if task is None:
    from genattn_jax.training import tasks  # pylint: disable=g-import-not-at-top
    task = tasks.get_task(config, generator, discriminator)
  g_vars, d_vars = task.init_variables(rng)
  g_params, g_state = _split_variables(g_vars)
  d_params, d_state = _split_variables(d_vars)
  g_tx, d_tx = make_optimizers(config)
  return GANState(
      step=jnp.zeros((), jnp.int32), g_params=g_params, d_params=d_params,
      g_state=g_state, d_state=d_state, g_opt_state=g_tx.init(g_params),
      d_opt_state=d_tx.init(d_params),
      ema_params=jax.tree_util.tree_map(jnp.copy, g_params))


def ema_decay_at(step: jnp.ndarray, ema_decay: float, warmup_steps: int) -> jnp.ndarray:
  """EMA decay used after generator update number `step` (0-based).

  During warm-up (step < warmup_steps) the EMA copies the generator (decay 0), as in
  BigGAN's `ema_start`; afterwards it uses min(ema_decay, (1 + t) / (10 + t)) with
  t = step - warmup_steps, the Polyak-style ramp that keeps early averages from being
  dominated by the initial weights.
  """
  t = jnp.asarray(step, jnp.float32) - warmup_steps
  ramp = jnp.minimum(ema_decay, (1.0 + t) / (10.0 + t))
  return jnp.where(t < 0, 0.0, ramp)


def ema_update(ema_params: PyTree, params: PyTree, decay) -> PyTree:
  """ema ← decay · ema + (1 − decay) · params."""
  return jax.tree_util.tree_map(lambda e, p: decay * e + (1.0 - decay) * p, ema_params, params)


def param_count(tree: PyTree) -> int:
  return int(sum(x.size for x in jax.tree_util.tree_leaves(tree)))


def tree_global_norm(tree: PyTree) -> jnp.ndarray:
  return optax.global_norm(tree)


ApplyFn = Callable[..., Any]
