"""`GANState`: everything a GAN run carries from step to step, as one pytree."""

from typing import Any, Tuple

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
  optional `optimizer.eps` (Adam's denominator offset, default 1e-8 as in optax and
  `torch.optim.Adam`), optional `optimizer.grad_clip` (global norm, 0 = off), optional learning-rate decay
  (`optimizer.lr_decay` or `optimizer.decay_start`, see `lr_schedule`) and optional
  `optimizer.delayed_update` (see `delayed_update`).
  """
  opt = config.optimizer
  n_critic = int(config.training.get("n_critic", 1))
  total = int(config.training.get("num_steps", 0))

  def adam(lr, updates_per_step):
    tx = optax.adam(lr_schedule(lr, opt, updates_per_step, total), b1=opt.b1, b2=opt.b2,
                    eps=float(opt.get("eps", 1e-8)))
    if opt.get("grad_clip", 0.0):
      tx = optax.chain(optax.clip_by_global_norm(opt.grad_clip), tx)
    return tx

  g_tx = delayed_update(adam(opt.g_lr, 1), opt, 1)
  d_tx = delayed_update(adam(opt.d_lr, n_critic), opt, n_critic)
  return g_tx, d_tx


def lr_schedule(lr: float, opt, updates_per_step: int = 1, num_steps: int = 0):
  """`lr`, or a constant-then-linear-decay schedule when `opt.lr_decay` / `opt.decay_start` is set.

  `opt.lr_decay` = {'constant_steps': N, 'decay_steps': M} (in generator steps; a network
  updated `updates_per_step` times per step, D with n_critic, counts its own updates):
  lr for the first N steps, then linearly to 0 over the next M, then 0 (CycleGAN, Zhu et al.
  2017, Sec. 7.1: 100 epochs constant, 100 epochs decay). `opt.decay_start` = S > 0 is the
  same with N = S and M = `num_steps` − S (pix2pixHD / SPADE's `niter` / `niter_decay`:
  constant, then linear decay to 0 at the last step). Neither set: constant `lr`.

  Raises:
    ValueError: `decay_start` does not lie in (0, num_steps), or both fields are set.
  """
  decay = opt.get("lr_decay", None)
  start = int(opt.get("decay_start", 0) or 0)
  if start:
    if decay and int(decay.get("decay_steps", 0)):
      raise ValueError("set one of `optimizer.lr_decay` and `optimizer.decay_start`, not both.")
    if not 0 < start < num_steps:
      raise ValueError(f"`optimizer.decay_start` ({start}) must lie in (0, "
                       f"training.num_steps={num_steps}).")
    decay = {"constant_steps": start, "decay_steps": num_steps - start}
  if not decay or not int(decay.get("decay_steps", 0)):
    return lr
  n0 = int(decay["constant_steps"]) * updates_per_step
  n1 = int(decay["decay_steps"]) * updates_per_step
  return optax.join_schedules(
      [optax.constant_schedule(lr), optax.linear_schedule(lr, 0.0, n1)], [n0])


def _path_str(path) -> str:
  return "/".join(str(getattr(k, "key", getattr(k, "name", k))) for k in path)


def delayed_update(tx: optax.GradientTransformation, opt,
                   updates_per_step: int = 1) -> optax.GradientTransformation:
  """Freezes the parameters named by `opt.delayed_update` until a step (SPAP paper Sec. 4.3).

  `opt.delayed_update` = {'steps': S, 'patterns': ['spap', 'atrous', ...]}: every parameter
  whose path (module names joined by '/') contains one of the patterns gets a zero update for
  the network's first S · `updates_per_step` optimiser updates, then `tx`'s updates
  (`optax.multi_transform` over the two groups; the frozen group's Adam moments are those of
  its own gradients, accumulated during the freeze). The SPAP paper starts updating SPAP and
  the atrous convs after 40k steps (GAN) / 100 epochs (CycleGAN). Absent or S = 0: `tx`.

  Raises:
    ValueError: `patterns` is empty while `steps` > 0.
  """
  spec = opt.get("delayed_update", None)
  if not spec or not int(spec.get("steps", 0)):
    return tx
  start = int(spec["steps"]) * updates_per_step
  patterns = tuple(str(p) for p in spec.get("patterns", ()))
  if not patterns:
    raise ValueError("`optimizer.delayed_update.patterns` must name at least one parameter "
                     "group (substrings of parameter paths) when `steps` > 0.")

  def labels(params):
    return jax.tree_util.tree_map_with_path(
        lambda p, _: "delayed" if any(s in _path_str(p) for s in patterns) else "free", params)

  gate = optax.scale_by_schedule(lambda count: jnp.where(count < start, 0.0, 1.0))
  return optax.multi_transform({"free": tx, "delayed": optax.chain(tx, gate)}, labels)


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

