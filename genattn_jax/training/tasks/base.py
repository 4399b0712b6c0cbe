"""`Task`: what one kind of GAN experiment adds to the shared training machinery.

Every experiment (noise → image, label map → image, unpaired image ↔ image, multi-scale
outputs) trains through the same `GANState`, `make_train_step` (n_critic D updates, then one G
update, optax, EMA), jit/pmap backends, checkpoints, writers and trainer loop. A task supplies
only what differs:

  * `init_variables(rng)`: G's and D's variables, from dummy inputs of the configured shape;
  * `d_loss(d_params, st, batch, rng, d_index)` and `g_loss(g_params, st, batch, rng)`: how
    G's inputs come from the batch (drawn noise, a label map, the other domain's images), what
    D sees, and the extra losses (feature matching, perceptual, cycle, ...);
  * `create_data_loader(...)`, `evaluate(state, workdir)` and `sample_grid(state, rows)`: the
    data it reads and how it is scored and shown.

`batch` in the loss hooks is the dict of arrays of one D update (the step splits every array of
the loaded batch along axis 0 into `n_critic` chunks: row i goes to D update i mod n_critic, so
a batch sharded along axis 0 never moves between devices); `g_loss` gets the last chunk.
Randomness the step must reproduce across backends (noise, fake labels) is drawn for the global
batch and cut to this device's rows with `own_rows`, so jit, pmap and one device agree.

Shared regularisers live here so every task gets them from the same config fields: R1
(`training.r1_gamma`, lazily every `r1_interval` D updates, Karras et al. 2020), WGAN-GP
(`training.gp_weight`) and AN's orthogonal regulariser (an paper Eq. 1) on every AN of the
network being updated, with one weight per network: `training.ortho_weight` for G's ANs (added
by the task's `g_loss` through `regularize_g`) and `training.d_ortho_weight` for D's (added by
the train step through `regularize_d_params`).
"""

from typing import Any, Dict, Optional, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from genattn_jax import losses
from genattn_jax._parallel import own_rows

PyTree = Any
Aux = Dict[str, jnp.ndarray]


class Task:
  """Base class of the training tasks (see module doc). Subclasses set `name`.

  Args:
    config: the run's ml_collections config (model, data, training, optimizer, eval, task).
    generator, discriminator: the flax modules `models.build_gan`-style builders return.
    axis_name: the pmap axis name, or None (jit / one device).
  """

  name = ""

  def __init__(self, config, generator: nn.Module, discriminator: nn.Module,
               axis_name: Optional[str] = None):
    self.config = config
    self.generator = generator
    self.discriminator = discriminator
    self.axis_name = axis_name
    self.show_progress = False  # the trainer sets it: progress bars during evaluation
    tcfg = config.training
    self.d_adv_loss, self.g_adv_loss = losses.get_loss(tcfg.loss)
    self.relativistic = self.g_adv_loss.__name__.startswith("relativistic")
    self.n_critic = int(tcfg.n_critic)
    self.global_batch = int(tcfg.batch_size)
    self.r1_gamma = float(tcfg.get("r1_gamma", 0.0))
    self.r1_interval = max(int(tcfg.get("r1_interval", 1)), 1)
    self.gp_weight = float(tcfg.get("gp_weight", 0.0))
    self.ortho_weight = float(tcfg.get("ortho_weight", 0.0))
    self.d_ortho_weight = float(tcfg.get("d_ortho_weight", 0.0))

  # ---------------------------------------------------------------- hooks (override) ----

  def init_variables(self, rng: jax.Array) -> Tuple[PyTree, PyTree]:
    """(G variables, D variables) from dummy inputs (init mode, train=False)."""
    raise NotImplementedError(f"task {self.name!r} does not define init_variables")

  def d_loss(self, d_params: PyTree, st, batch: Dict[str, jnp.ndarray], rng: jax.Array,
             d_index: jnp.ndarray) -> Tuple[jnp.ndarray, Aux, PyTree]:
    """(scalar D loss, metrics, D's new non-param collections) for one D update."""
    raise NotImplementedError(f"task {self.name!r} does not define d_loss")

  def g_loss(self, g_params: PyTree, st, batch: Dict[str, jnp.ndarray],
             rng: jax.Array) -> Tuple[jnp.ndarray, Aux, PyTree]:
    """(scalar G loss, metrics, G's new non-param collections) for the G update."""
    raise NotImplementedError(f"task {self.name!r} does not define g_loss")

  def create_data_loader(self, *, global_batch_size: int, seed: int):
    """The training data iterator (a grain loader: resumable, sharded by process)."""
    from genattn_jax.data import pipeline  # pylint: disable=g-import-not-at-top
    return pipeline.create_data_loader(self.config.data, global_batch_size=global_batch_size,
                                       seed=seed)

  def evaluate(self, state, workdir: str) -> Dict[str, float]:
    """Scalar evaluation metrics of `state` (host copy), e.g. {'fid': ...}."""
    raise NotImplementedError(f"task {self.name!r} does not define evaluate")

  def sample_grid(self, state, rows: int) -> np.ndarray:
    """uint8 [H', W', 3] image grid shown in TensorBoard and saved as PNG."""
    raise NotImplementedError(f"task {self.name!r} does not define sample_grid")

  # ---------------------------------------------------------------- shared helpers ----

  def pmean(self, tree: PyTree) -> PyTree:
    return tree if self.axis_name is None else jax.lax.pmean(tree, self.axis_name)

  def own_rows(self, x: jax.Array, local: int) -> jax.Array:
    """This device's rows of `x`, drawn for the global batch (see `_parallel.own_rows`)."""
    return own_rows(x, local, self.axis_name)

  def apply_g(self, params: PyTree, g_state: PyTree, *inputs, rng: jax.Array,
              train: bool = True) -> Tuple[Any, PyTree]:
    """G(*inputs) with mutable 'batch_stats' → (output, new non-param collections)."""
    out, new_state = self.generator.apply(
        {"params": params, **g_state}, *inputs, train=train, rngs={"sampling": rng},
        mutable=["batch_stats"])
    return out, dict(new_state)

  def apply_d(self, params: PyTree, d_state: PyTree, *inputs, rng: jax.Array,
              train: bool = True) -> Tuple[Any, PyTree]:
    """D(*inputs) with mutable 'batch_stats' → (output, new non-param collections)."""
    out, new_state = self.discriminator.apply(
        {"params": params, **d_state}, *inputs, train=train, rngs={"sampling": rng},
        mutable=["batch_stats"])
    return out, dict(new_state)

  def regularize_d(self, loss: jnp.ndarray, aux: Aux, d_fn, real: jnp.ndarray,
                   fake: jnp.ndarray, d_index: jnp.ndarray, rng: jax.Array) -> jnp.ndarray:
    """Adds R1 and WGAN-GP (when configured) to a D loss; `d_fn(x) -> logits`."""
    if self.r1_gamma > 0:
      r1 = jax.lax.cond(d_index % self.r1_interval == 0,
                        lambda: losses.r1_penalty(d_fn, real), lambda: jnp.zeros(()))
      loss = loss + 0.5 * self.r1_gamma * self.r1_interval * r1
      aux["r1"] = r1
    if self.gp_weight > 0:
      gp = losses.gradient_penalty(d_fn, real, fake, rng)
      loss = loss + self.gp_weight * gp
      aux["gp"] = gp
    return loss

  def regularize_d_params(self, loss: jnp.ndarray, aux: Aux, d_params: PyTree) -> jnp.ndarray:
    """Adds AN's orthogonal regulariser (Eq. 1) on every AN of D, weight `d_ortho_weight`.

    Called by the train step after `d_loss` for every task, so the AN instances of the network
    being updated are regularised whichever task is trained (G's side: `regularize_g`).
    """
    if self.d_ortho_weight > 0:
      from genattn_jax.layers import attentive_norm  # pylint: disable=g-import-not-at-top
      ortho = attentive_norm.orthogonal_penalty(d_params)
      loss = loss + self.d_ortho_weight * ortho
      aux["d_ortho"] = ortho
    return loss

  def regularize_g(self, loss: jnp.ndarray, aux: Aux, g_params: PyTree) -> jnp.ndarray:
    """Adds AN's orthogonal regulariser (an paper Eq. 1) on G's AN blocks when configured."""
    if self.ortho_weight > 0:
      from genattn_jax.layers import attentive_norm  # pylint: disable=g-import-not-at-top
      ortho = attentive_norm.orthogonal_penalty(g_params)
      loss = loss + self.ortho_weight * ortho
      aux["ortho"] = ortho
    return loss
