"""`CycleGANTask`: unpaired image ↔ image translation (Zhu et al. 2017) on the shared step.

G is `models.cyclegan.GeneratorPair` (G_AB, G_BA), D is `DiscriminatorPair` (D_A, D_B and
their history pools), so the generic train step updates both generators with one optax
update and both discriminators with another, and the state, backends and checkpoints are the
ones every task uses. Batch keys: 'image_a', 'image_b' [b, R, R, 3] float32 in [-1, 1]
(`data/unpaired.py`).

Losses (Zhu et al. 2017, Eq. 1-3 and Sec. 4/7.1, least-squares GAN; the authors' code):
  D:  1/2 [(D_A(a) - 1)² + D_A(pool_A(G_BA(b)))²] + the same for D_B, each averaged over
      patches and rows (the two terms of the sum have disjoint parameters, so one update of
      the pair equals the two separate updates);
  G:  (D_B(G_AB(a)) - 1)² + (D_A(G_BA(b)) - 1)²
      + λ ( |G_BA(G_AB(a)) - a|₁ + |G_AB(G_BA(b)) - b|₁ )                (cycle, λ = 10)
      + λ · λ_idt ( |G_AB(b) - b|₁ + |G_BA(a) - a|₁ )                     (identity, λ_idt = 0.5)
  with means over pixels (PyTorch's `MSELoss` / `L1Loss`).

The history pools (50 images each) are updated on the global batch (all-gathered under pmap,
the whole batch under jit) with a replicated key, so every device keeps the same pools and
8 devices compute what 1 does. Order of updates: the shared step runs D's update first, from
fakes of the current G, then G's; the authors' code updates G first and feeds D the fakes of
G's forward pass from before that update.

Config: `task.lambda_cycle` (10), `task.lambda_identity` (0.5), `data.*` of `data/unpaired`,
`eval.paired` (score A→B against testB and B→A against testA by PSNR / SSIM: maps and
facades test sets are aligned by file name), `eval.use_ema` (translate with the EMA
generators; default False, the paper has no EMA).
"""

from typing import Dict

import jax
import jax.numpy as jnp
import numpy as np

from genattn_jax.training.tasks.base import Task


def lsgan_d_loss(real_logits: jnp.ndarray, fake_logits: jnp.ndarray) -> jnp.ndarray:
  """1/2 (mean (real - 1)² + mean fake²) over every patch logit."""
  return 0.5 * (jnp.mean(jnp.square(real_logits - 1.0)) + jnp.mean(jnp.square(fake_logits)))


def lsgan_g_loss(fake_logits: jnp.ndarray) -> jnp.ndarray:
  """mean (fake - 1)² over every patch logit (CycleGAN's G term has no 1/2)."""
  return jnp.mean(jnp.square(fake_logits - 1.0))


def l1(x: jnp.ndarray, y: jnp.ndarray) -> jnp.ndarray:
  return jnp.mean(jnp.abs(x - y))


class CycleGANTask(Task):
  """Unpaired translation A ↔ B with two generators and two discriminators."""

  name = "cyclegan"

  def __init__(self, config, generator, discriminator, axis_name=None):
    super().__init__(config, generator, discriminator, axis_name)
    if self.r1_gamma > 0 or self.gp_weight > 0:
      raise ValueError("`training.r1_gamma` / `training.gp_weight` are not supported by the "
                       "'cyclegan' task (CycleGAN uses neither); set them to 0.")
    task = config.get("task", {})
    self.lambda_cycle = float(task.get("lambda_cycle", 10.0))
    self.lambda_identity = float(task.get("lambda_identity", 0.5))
    self._test = None
    self._translate_fns = {}

  # ---------------------------------------------------------------- model calls ----

  def g_apply(self, g_params, x, method: str):
    return self.generator.apply({"params": g_params}, x, method=method)

  def d_apply(self, d_params, d_state, x, method: str):
    return self.discriminator.apply({"params": d_params, **d_state}, x, method=method)

  def _global(self, x):
    if self.axis_name is None:
      return x
    return jax.lax.all_gather(x, self.axis_name, axis=0, tiled=True)

  # ---------------------------------------------------------------- hooks ----

  def init_variables(self, rng):
    r = int(self.config.model.resolution)
    g_rng, d_rng = jax.random.split(rng)
    x = jnp.zeros((1, r, r, 3), jnp.float32)
    g_vars = self.generator.init({"params": g_rng}, x, x, train=False)
    d_vars = self.discriminator.init({"params": d_rng}, x, x, train=False)
    return g_vars, d_vars

  def d_loss(self, d_params, st, batch, rng, d_index):
    del d_index
    a, b = batch["image_a"], batch["image_b"]
    fake_b = jax.lax.stop_gradient(self.g_apply(st.g_params, a, "a_to_b"))
    fake_a = jax.lax.stop_gradient(self.g_apply(st.g_params, b, "b_to_a"))
    (pooled_a, pooled_b), new_state = self.discriminator.apply(
        {"params": d_params, **st.d_state}, self._global(fake_a), self._global(fake_b),
        method="query_pools", mutable=["history"], rngs={"pool": rng})
    pooled_a = self.own_rows(pooled_a, a.shape[0])
    pooled_b = self.own_rows(pooled_b, b.shape[0])
    loss_a = lsgan_d_loss(self.d_apply(d_params, st.d_state, a, "score_a"),
                          self.d_apply(d_params, st.d_state, pooled_a, "score_a"))
    loss_b = lsgan_d_loss(self.d_apply(d_params, st.d_state, b, "score_b"),
                          self.d_apply(d_params, st.d_state, pooled_b, "score_b"))
    loss = loss_a + loss_b
    aux = {"d_a_loss": loss_a, "d_b_loss": loss_b}
    aux["d_loss"] = loss
    return loss, aux, {**st.d_state, **dict(new_state)}

  def g_loss(self, g_params, st, batch, rng):
    del rng
    a, b = batch["image_a"], batch["image_b"]
    fake_b = self.g_apply(g_params, a, "a_to_b")
    fake_a = self.g_apply(g_params, b, "b_to_a")
    adv_b = lsgan_g_loss(self.d_apply(st.d_params, st.d_state, fake_b, "score_b"))
    adv_a = lsgan_g_loss(self.d_apply(st.d_params, st.d_state, fake_a, "score_a"))
    cycle = l1(self.g_apply(g_params, fake_b, "b_to_a"), a) + l1(
        self.g_apply(g_params, fake_a, "a_to_b"), b)
    loss = adv_a + adv_b + self.lambda_cycle * cycle
    aux = {"g_adv_a": adv_a, "g_adv_b": adv_b, "cycle_loss": cycle}
    if self.lambda_identity > 0:
      identity = l1(self.g_apply(g_params, b, "a_to_b"), b) + l1(
          self.g_apply(g_params, a, "b_to_a"), a)
      loss = loss + self.lambda_cycle * self.lambda_identity * identity
      aux["identity_loss"] = identity
    loss = self.regularize_g(loss, aux, g_params)
    aux["g_loss"] = loss
    return loss, aux, st.g_state

  def create_data_loader(self, *, global_batch_size: int, seed: int):
    from genattn_jax.data import unpaired  # pylint: disable=g-import-not-at-top
    return unpaired.create_data_loader(self.config.data, global_batch_size=global_batch_size,
                                       seed=seed)

  # ---------------------------------------------------------------- evaluation ----

  def _params(self, state):
    return state.ema_params if self.config.eval.get("use_ema", False) else state.g_params

  def translate(self, g_params, x: np.ndarray, method: str, batch_size: int = 8) -> np.ndarray:
    """Translates float32 [N, R, R, 3] images in [-1, 1] in batches (host arrays)."""
    if method not in self._translate_fns:
      self._translate_fns[method] = jax.jit(lambda p, t: self.g_apply(p, t, method))
    fn = self._translate_fns[method]
    return np.concatenate([np.asarray(fn(g_params, x[i:i + batch_size]))
                           for i in range(0, len(x), batch_size)])

  def test_images(self):
    if self._test is None:
      from genattn_jax.data import unpaired  # pylint: disable=g-import-not-at-top
      self._test = unpaired.load_split(self.config.data.source, "test",
                                       int(self.config.data.image_size))
    return self._test

  def evaluate(self, state, workdir: str) -> Dict[str, float]:
    """PSNR / SSIM of A→B vs testB and B→A vs testA when `eval.paired` (else {})."""
    del workdir
    if not self.config.eval.get("paired", False):
      return {}
    from genattn_jax.metrics import image_similarity as sim  # pylint: disable=g-import-not-at-top
    test_a, test_b = self.test_images()
    n = min(len(test_a), len(test_b), int(self.config.eval.get("num_test", 10**9)))
    params = self._params(state)
    to_u8 = lambda x: np.clip(np.round((x + 1.0) * 127.5), 0, 255)
    ab = to_u8(self.translate(params, test_a[:n], "a_to_b"))
    ba = to_u8(self.translate(params, test_b[:n], "b_to_a"))
    return {"psnr_a_to_b": float(np.mean(sim.psnr(ab, to_u8(test_b[:n])))),
            "ssim_a_to_b": float(np.mean(sim.ssim(ab, to_u8(test_b[:n])))),
            "psnr_b_to_a": float(np.mean(sim.psnr(ba, to_u8(test_a[:n])))),
            "ssim_b_to_a": float(np.mean(sim.ssim(ba, to_u8(test_a[:n]))))}

  def sample_grid(self, state, rows: int) -> np.ndarray:
    """uint8 grid, one test pair per row: A | G_AB(A) | B | G_BA(B)."""
    from genattn_jax.training import evaluation  # pylint: disable=g-import-not-at-top
    test_a, test_b = self.test_images()
    n = min(rows, len(test_a), len(test_b))
    params = self._params(state)
    a, b = test_a[:n], test_b[:n]
    ab, ba = self.translate(params, a, "a_to_b"), self.translate(params, b, "b_to_a")
    tiles = np.stack([a, ab, b, ba], axis=1).reshape((4 * n,) + a.shape[1:])
    return evaluation.image_grid(evaluation.to_uint8(tiles), rows=n)
