"""`NoiseTask`: unconditional / class-conditional noise → image GANs (SNDCGAN, ResNet SNGAN).

G's inputs are drawn: z ~ N(0, I) of size `model.z_dim` and, with `model.num_classes` > 0,
fake labels uniform over the classes, both for the global batch from the step's key (so every
backend and one device see the same numbers). D sees (image, label) for real and fake. Losses:
`training.loss` (hinge, non-saturating, WGAN, relativistic, ...), plus the shared regularisers.
Evaluated by FID of the EMA or raw generator (`eval.fid_params`, both with `eval.fid_both`;
`training/evaluation.py`).
"""

from typing import Dict

import jax
import jax.numpy as jnp
import numpy as np

from genattn_jax.training import evaluation
from genattn_jax.training.tasks.base import Task


class NoiseTask(Task):
  """Noise (+ label) → image. Batch keys: 'image' [b, R, R, C] in [-1, 1], 'label' [b] int32."""

  name = "noise"

  def __init__(self, config, generator, discriminator, axis_name=None):
    super().__init__(config, generator, discriminator, axis_name)
    self.z_dim = int(config.model.z_dim)
    self.num_classes = int(config.model.get("num_classes", 0))
    self._sample_fn = None
    self._real_stats = None

  def _y(self, y):
    return y if self.num_classes else None

  def draw_latents(self, rng: jax.Array, local_b: int):
    """(z [local_b, z_dim], fake labels [local_b]) for this device, drawn for the global batch."""
    z_rng, y_rng = jax.random.split(rng)
    z = jax.random.normal(z_rng, (self.global_batch, self.z_dim), jnp.float32)
    y = (jax.random.randint(y_rng, (self.global_batch,), 0, self.num_classes)
         if self.num_classes else jnp.zeros((self.global_batch,), jnp.int32))
    return self.own_rows(z, local_b), self.own_rows(y, local_b)

  def init_variables(self, rng):
    res = self.config.model.resolution
    channels = self.config.data.get("channels", 3)
    g_rng, d_rng, s_rng = jax.random.split(rng, 3)
    z = jnp.zeros((2, self.z_dim), jnp.float32)
    y = jnp.zeros((2,), jnp.int32)
    x = jnp.zeros((2, res, res, channels), jnp.float32)
    g_vars = self.generator.init({"params": g_rng, "sampling": s_rng}, z, y, train=False)
    d_vars = self.discriminator.init({"params": d_rng, "sampling": s_rng}, x, y, train=False)
    return g_vars, d_vars

  def d_loss(self, d_params, st, batch, rng, d_index):
    real, real_y = batch["image"], batch["label"]
    z_rng, g_rng, d_rng, gp_rng = jax.random.split(rng, 4)
    z, fake_y = self.draw_latents(z_rng, real.shape[0])
    fake, _ = self.apply_g(st.g_params, st.g_state, z, self._y(fake_y), rng=g_rng)
    fake = jax.lax.stop_gradient(fake)
    real_logits, d_state = self.apply_d(d_params, st.d_state, real, self._y(real_y), rng=d_rng)
    fake_logits, d_state = self.apply_d(d_params, d_state, fake, self._y(fake_y), rng=d_rng)
    loss = self.d_adv_loss(real_logits, fake_logits)
    aux = {"d_adv_loss": loss, "d_real": real_logits.mean(), "d_fake": fake_logits.mean()}
    d_fn = lambda x: self.apply_d(d_params, st.d_state, x, self._y(real_y), rng=d_rng)[0]
    loss = self.regularize_d(loss, aux, d_fn, real, fake, d_index, gp_rng)
    aux["d_loss"] = loss
    return loss, aux, d_state

  def g_loss(self, g_params, st, batch, rng):
    real, real_y = batch["image"], batch["label"]
    z_rng, g_rng, d_rng = jax.random.split(rng, 3)
    z, fake_y = self.draw_latents(z_rng, real.shape[0])
    fake, g_state = self.apply_g(g_params, st.g_state, z, self._y(fake_y), rng=g_rng)
    fake_logits, _ = self.apply_d(st.d_params, st.d_state, fake, self._y(fake_y), rng=d_rng)
    real_logits = None
    if self.relativistic:
      real_logits, _ = self.apply_d(st.d_params, st.d_state, real, self._y(real_y), rng=d_rng)
    loss = self.g_adv_loss(fake_logits, real_logits)
    aux = {"g_adv_loss": loss}
    loss = self.regularize_g(loss, aux, g_params)
    aux["g_loss"] = loss
    return loss, aux, g_state

  # ------------------------------------------------------------------ evaluation ----

  @property
  def sample_fn(self):
    if self._sample_fn is None:
      self._sample_fn = evaluation.make_sample_fn(self.generator, self.num_classes)
    return self._sample_fn

  def evaluate(self, state, workdir: str) -> Dict[str, float]:
    """{'fid': FID of `eval.num_fake` generator samples vs the real statistics, ...}.

    `eval.fid_params`: 'ema' (default; the EMA generator) or 'raw' (the trained G, what the
    an paper reports); with `eval.fid_both` both are computed and reported as 'fid_ema' and
    'fid_raw' ('fid' is the one `fid_params` names). Class-conditional generators with
    `eval.intra_fid_classes` > 0 also report 'intra_fid' (`metrics/intra_fid.py`).

    Raises:
      ValueError: `eval.fid_params` is neither 'ema' nor 'raw'.
    """
    if self._real_stats is None:
      self._real_stats = evaluation.real_statistics(workdir, self.config,
                                                    progress=self.show_progress)
    names = evaluation.scored_generators(self.config.eval)
    which = self.config.eval.get("fid_params", "ema")
    params = {n: evaluation.generator_params(state, n) for n in names}
    out = {f"fid_{n}": evaluation.generator_fid(self.sample_fn, params[n], state.g_state,
                                                self.config, self._real_stats) for n in names}
    out["fid"] = out[f"fid_{which}"]
    if len(names) == 1:
      del out[f"fid_{which}"]
    if self.num_classes and self.config.eval.get("intra_fid_classes", 0):
      from genattn_jax.metrics import intra_fid  # pylint: disable=g-import-not-at-top
      out.update(intra_fid.evaluate_intra_fid(self.sample_fn, params[which], state.g_state,
                                              self.config, workdir))
    return out

  def sample_grid(self, state, rows: int) -> np.ndarray:
    return evaluation.fixed_noise_grid(self.sample_fn, state, self.config, rows=rows)
