"""The pure GAN train step: EMA, n_critic routing, lazy R1, WGAN-GP, AN's penalty, losses.

Most tests drive `make_train_step` with a tiny dense G / D pair (the step is generic over
flax modules), so each configuration compiles in seconds; the AN test uses the generator of
the `cifar10_sngan_an` test config. The tiny D records, in its 'batch_stats' collection, the
maximum of every batch it sees in training mode, so the test can read back which rows of the
step's batch reached which discriminator update.
"""

import functools
import math

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import cifar10_sngan_an
from genattn_jax import losses
from genattn_jax.layers import attentive_norm
from genattn_jax.training import config as config_lib
from genattn_jax.training import state as state_lib
from genattn_jax.training import step as step_lib
from genattn_jax.training import trainer

RES = 4         # tiny images: [B, 4, 4, 3]
Z_DIM = 4
B = 4           # rows per D update
HISTORY = 64    # slots of the recording discriminator


class TinyGenerator(nn.Module):
  """z [B, Z] -> tanh images [B, RES, RES, 3]; BatchNorm gives it a 'batch_stats' state."""

  @nn.compact
  def __call__(self, z, y=None, train=True):
    del y
    h = nn.Dense(8)(z)
    h = nn.BatchNorm(use_running_average=not train, momentum=0.9)(h)
    h = nn.leaky_relu(h, 0.2)
    return jnp.tanh(nn.Dense(RES * RES * 3)(h)).reshape(z.shape[0], RES, RES, 3)


class RecordingDiscriminator(nn.Module):
  """x -> [B] logits; in training mode appends max(x) of each call to `history`."""

  @nn.compact
  def __call__(self, x, y=None, train=True):
    del y
    history = self.variable("batch_stats", "history", jnp.zeros, (HISTORY,), jnp.float32)
    calls = self.variable("batch_stats", "calls", jnp.zeros, (), jnp.int32)
    if train and not self.is_initializing():
      history.value = history.value.at[calls.value % HISTORY].set(jnp.max(x))
      calls.value = calls.value + 1
    h = nn.leaky_relu(nn.Dense(8)(x.reshape(x.shape[0], -1)), 0.2)
    return nn.Dense(1)(h)[:, 0]


def tiny_config(**training):
  c = config_lib.base_config("sndcgan", 8)
  c.model.resolution = c.data.image_size = RES
  c.model.z_dim = Z_DIM
  c.model.num_classes = 0
  c.training.batch_size = B
  c.training.ema_warmup_steps = 0
  c.optimizer.g_lr = c.optimizer.d_lr = 1e-2
  for key, value in training.items():
    c.training[key] = value
  return c


@functools.lru_cache(maxsize=None)
def compiled(**training):
  """(config, initial state, jitted train_step) for a tiny config; built once per setting."""
  config = tiny_config(**training)
  g, d = TinyGenerator(), RecordingDiscriminator()
  state = state_lib.create_gan_state(config, g, d, jax.random.PRNGKey(0))
  return config, state, jax.jit(step_lib.make_train_step(config, g, d))


def random_batch(seed: int, n_critic: int = 1, b: int = B):
  rng = np.random.default_rng(seed)
  return {"image": rng.uniform(-1, 1, (n_critic * b, RES, RES, 3)).astype(np.float32),
          "label": np.zeros((n_critic * b,), np.int32)}


def run(state, step_fn, batches, rng=jax.random.PRNGKey(7)):
  """Runs the steps; returns (final state, [host state after each step], [metrics])."""
  states, metrics = [], []
  for batch in batches:
    state, m = step_fn(state, batch, rng)
    states.append(jax.device_get(state))
    metrics.append({k: float(v) for k, v in jax.device_get(m).items()})
  return state, states, metrics


def adam_count(opt_state) -> int:
  return int(optax.tree_utils.tree_get(opt_state, "count"))


class EmaScheduleTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_decay_schedule_hand_values(self):
    decay_at = self.variant(functools.partial(state_lib.ema_decay_at, ema_decay=0.999,
                                              warmup_steps=5))
    # Warm-up (steps 0..4): decay 0, i.e. the EMA copies the generator.
    for step in range(5):
      self.assertEqual(float(decay_at(jnp.int32(step))), 0.0)
    # Ramp (1 + t) / (10 + t), t = step - 5.
    np.testing.assert_allclose(float(decay_at(jnp.int32(5))), 1 / 10, rtol=1e-6)
    np.testing.assert_allclose(float(decay_at(jnp.int32(6))), 2 / 11, rtol=1e-6)
    np.testing.assert_allclose(float(decay_at(jnp.int32(95))), 91 / 100, rtol=1e-6)
    # Capped by ema_decay once the ramp passes it.
    np.testing.assert_allclose(float(decay_at(jnp.int32(100_000))), 0.999, rtol=1e-6)

  @chex.variants(with_jit=True, without_jit=True)
  def test_decay_cap_reached_early_for_small_decay(self):
    decay_at = self.variant(functools.partial(state_lib.ema_decay_at, ema_decay=0.2,
                                              warmup_steps=0))
    got = [float(decay_at(jnp.int32(s))) for s in range(4)]
    np.testing.assert_allclose(got, [0.1, 2 / 11, 0.2, 0.2], rtol=1e-6)

  @chex.variants(with_jit=True, without_jit=True)
  def test_ema_update_formula(self):
    rng = np.random.default_rng(0)
    ema = {"a": rng.normal(size=(3, 2)).astype(np.float32), "b": {"c": np.float32(2.0)}}
    params = {"a": rng.normal(size=(3, 2)).astype(np.float32), "b": {"c": np.float32(-1.0)}}
    out = self.variant(state_lib.ema_update)(ema, params, 0.75)
    expected = jax.tree_util.tree_map(lambda e, p: 0.75 * e + 0.25 * p, ema, params)
    chex.assert_trees_all_close(out, expected, rtol=1e-6)
    chex.assert_trees_all_close(self.variant(state_lib.ema_update)(ema, params, 0.0), params)


def test_ema_trajectory_matches_numpy():
  # Two warm-up steps (decay 0: copies of G), then the ramp 0.1, 2/11, then the cap 0.2.
  _, state, step_fn = compiled(ema_decay=0.2, ema_warmup_steps=2)
  _, states, _ = run(state, step_fn, [random_batch(s) for s in range(5)])
  for st in states[:2]:
    chex.assert_trees_all_close(st.ema_params, st.g_params, atol=1e-7, rtol=0)
  ema = jax.tree_util.tree_map(np.asarray, jax.device_get(state.ema_params))
  for s, st in enumerate(states):
    t = s - 2
    decay = 0.0 if t < 0 else min(0.2, (1 + t) / (10 + t))
    ema = jax.tree_util.tree_map(lambda e, p, d=decay: d * e + (1 - d) * np.asarray(p),
                                 ema, st.g_params)
    chex.assert_trees_all_close(st.ema_params, ema, atol=1e-6, rtol=1e-5)
  diff = jax.tree_util.tree_map(lambda a, b: np.abs(a - b).max(), states[-1].ema_params,
                                states[-1].g_params)
  assert max(jax.tree_util.tree_leaves(diff)) > 1e-6  # no longer a copy after warm-up


N_CRITIC = 3
# ema_decay=0: the EMA must equal G after every step.
CRITIC = dict(n_critic=N_CRITIC, r1_gamma=3.0, r1_interval=2, ema_decay=0.0)


def routed_batch(step: int):
  """Row i of step `step` is the constant 100 * step + 10 * (i % n_critic + 1)."""
  rows = np.arange(N_CRITIC * B)
  values = 100.0 * step + 10.0 * (rows % N_CRITIC + 1)
  image = np.broadcast_to(values[:, None, None, None], (len(rows), RES, RES, 3))
  return {"image": image.astype(np.float32), "label": np.zeros((len(rows),), np.int32)}


@pytest.fixture(scope="module")
def critic_run():
  _, state, step_fn = compiled(**CRITIC)
  return state, run(state, step_fn, [routed_batch(s) for s in range(3)])


def test_n_critic_adam_counts(critic_run):
  _, (_, states, _) = critic_run
  assert adam_count(states[1].d_opt_state) == 2 * N_CRITIC
  assert adam_count(states[1].g_opt_state) == 2
  assert adam_count(states[2].d_opt_state) == 3 * N_CRITIC
  assert adam_count(states[2].g_opt_state) == 3
  assert [int(s.step) for s in states] == [1, 2, 3]


def test_d_update_j_sees_rows_j_mod_n_critic(critic_run):
  _, (final, _, _) = critic_run
  d_state = jax.device_get(final.d_state)["batch_stats"]
  calls = int(d_state["calls"])
  assert calls == 3 * 2 * N_CRITIC  # each D update: one real and one fake call, in order
  history = np.asarray(d_state["history"])[:calls].reshape(3, N_CRITIC, 2)
  expected_real = 100.0 * np.arange(3)[:, None] + 10.0 * (np.arange(N_CRITIC)[None] + 1)
  np.testing.assert_array_equal(history[..., 0], expected_real)
  assert np.all(np.abs(history[..., 1]) <= 1.0)  # the fakes: tanh outputs of G


def test_lazy_r1_every_other_d_update(critic_run):
  _, (_, _, metrics) = critic_run
  # The reported r1 is the one of the last D update of each step: global D update index
  # step * n_critic + (n_critic - 1) = 2, 5, 8 -> applied, skipped, applied.
  r1 = [m["r1"] for m in metrics]
  assert r1[0] > 0 and r1[2] > 0
  assert r1[1] == 0.0
  for m in metrics:
    # Added as gamma / 2 * interval * r1 = 0.5 * 3 * 2 * r1.
    np.testing.assert_allclose(m["d_loss"] - m["d_adv_loss"], 3.0 * m["r1"], rtol=1e-5,
                               atol=1e-6)
    assert all(math.isfinite(v) for v in m.values())


def test_ema_with_zero_decay_equals_generator(critic_run):
  init, (_, states, _) = critic_run
  for st in states:
    chex.assert_trees_all_close(st.ema_params, st.g_params, atol=1e-7, rtol=0)
  moved = jax.tree_util.tree_map(lambda a, b: np.abs(a - b).max(), states[-1].g_params,
                                 jax.device_get(init.g_params))
  assert max(jax.tree_util.tree_leaves(moved)) > 1e-4


# One compiled step per loss; the hinge one also carries R1 (interval 1) and the
# Wasserstein one the gradient penalty, so those paths cost no extra compile.
LOSS_EXTRAS = {"hinge": dict(r1_gamma=1.0, r1_interval=1), "wasserstein": dict(gp_weight=10.0)}


def loss_step(loss: str):
  return compiled(loss=loss, **LOSS_EXTRAS.get(loss, {}))


@pytest.mark.parametrize("loss", sorted(losses.LOSSES))
def test_every_loss_runs_one_step(loss):
  _, state, step_fn = loss_step(loss)
  final, _, metrics = run(state, step_fn, [random_batch(0)])
  final = jax.device_get(final)
  assert int(final.step) == 1
  for key in ("d_loss", "g_loss", "d_adv_loss", "g_adv_loss", "d_grad_norm", "g_grad_norm"):
    assert math.isfinite(metrics[0][key]), (loss, key, metrics[0][key])
  assert metrics[0]["d_grad_norm"] > 0 and metrics[0]["g_grad_norm"] > 0
  for before, after in ((state.g_params, final.g_params), (state.d_params, final.d_params)):
    moved = jax.tree_util.tree_map(lambda a, b: np.abs(np.asarray(a) - b).max(), before, after)
    assert max(jax.tree_util.tree_leaves(moved)) > 1e-4
  if loss not in LOSS_EXTRAS:  # no regulariser: the D loss is the adversarial loss alone
    assert metrics[0]["d_loss"] == metrics[0]["d_adv_loss"]
    assert "r1" not in metrics[0] and "gp" not in metrics[0] and "ortho" not in metrics[0]


def test_r1_value_against_independent_gradient():
  config, state, step_fn = loss_step("hinge")
  batch = random_batch(3)
  _, _, metrics = run(state, step_fn, [batch])
  d = RecordingDiscriminator()
  variables = {"params": state.d_params, **state.d_state}
  grad_one = jax.grad(lambda x: d.apply(variables, x[None], train=False)[0])
  grads = np.stack([np.asarray(grad_one(x)) for x in batch["image"]])
  expected = np.mean(np.sum(grads.reshape(len(grads), -1) ** 2, axis=-1))
  np.testing.assert_allclose(metrics[0]["r1"], expected, rtol=1e-4)
  np.testing.assert_allclose(metrics[0]["d_loss"] - metrics[0]["d_adv_loss"],
                             0.5 * config.training.r1_gamma * metrics[0]["r1"], rtol=1e-5)


def test_wgan_gp_path():
  _, state, step_fn = loss_step("wasserstein")
  _, _, metrics = run(state, step_fn, [random_batch(s) for s in range(2)])
  for m in metrics:
    assert math.isfinite(m["gp"]) and m["gp"] > 0
    np.testing.assert_allclose(m["d_loss"] - m["d_adv_loss"], 10.0 * m["gp"], rtol=1e-5,
                               atol=1e-6)
    # Wasserstein critic loss E[f] - E[r] from the reported logit means.
    np.testing.assert_allclose(m["d_adv_loss"], m["d_fake"] - m["d_real"], rtol=1e-5,
                               atol=1e-6)
  assert "r1" not in metrics[0] and "ortho" not in metrics[0]


def test_non_finite_loss_raises():
  _, state, step_fn = loss_step("hinge")
  batch = random_batch(0)
  batch["image"][0, 0, 0, 0] = np.nan
  _, _, metrics = run(state, step_fn, [batch])
  assert not math.isfinite(metrics[0]["d_loss"])
  check_finite = trainer._check_finite  # pylint: disable=protected-access
  with pytest.raises(trainer.NonFiniteLossError, match="d_loss"):
    check_finite(5, metrics[0])
  with pytest.raises(FloatingPointError, match="step 5"):
    check_finite(5, {"g_loss": float("inf"), "d_loss": 0.5})
  check_finite(5, {"g_loss": 1.0, "d_loss": -2.0})


def test_batch_not_split_by_n_critic_is_an_error():
  _, state, step_fn = compiled(**CRITIC)
  with pytest.raises(ValueError, match="n_critic"):
    step_fn(state, random_batch(0, n_critic=1, b=4), jax.random.PRNGKey(0))


def test_an_orthogonal_penalty_path():
  config = cifar10_sngan_an.get_test_config()
  assert config.training.ortho_weight > 0
  g = trainer.build(config)[0]
  # The config's AN generator; the tiny D keeps the compile short (the penalty is on G).
  d = RecordingDiscriminator()
  train_step = step_lib.make_train_step(config, g, d)
  state = state_lib.create_gan_state(config, g, d, jax.random.PRNGKey(0))
  rng = np.random.default_rng(0)
  n = config.training.batch_size * config.training.n_critic
  batch = {"image": rng.uniform(-1, 1, (n, 32, 32, 3)).astype(np.float32),
           "label": rng.integers(0, 10, (n,)).astype(np.int32)}
  new_state, metrics = jax.jit(train_step)(state, batch, jax.random.PRNGKey(1))
  metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
  assert metrics["ortho"] > 0 and math.isfinite(metrics["g_loss"])
  # The penalty of the G parameters before the update (AN paper Eq. 1, summed over ANs).
  expected = float(attentive_norm.orthogonal_penalty(state.g_params))
  np.testing.assert_allclose(metrics["ortho"], expected, rtol=1e-4)
  np.testing.assert_allclose(metrics["g_loss"] - metrics["g_adv_loss"],
                             config.training.ortho_weight * metrics["ortho"], rtol=1e-3,
                             atol=1e-7)
  assert int(new_state.step) == 1
