"""`state.make_optimizers` / `lr_schedule`: the defaults of optional fields and the learning
rate of every update of G and D, read back from Adam's first updates.

With a constant gradient g, Adam's update is -lr_t * g / (|g| + eps) at every step (its bias
corrections make m_hat = g and v_hat = g^2), so with g = 1 the update is -lr_t (up to float32
rounding, ~1e-5 here): the schedule can be read off the parameter's steps without looking
inside optax.
"""

import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from genattn_jax.training import state as state_lib


def _config(training=None, **optimizer):
  """Only the required fields unless given: the optional ones take their defaults."""
  c = ml_collections.ConfigDict()
  c.training = ml_collections.ConfigDict(training or {})
  c.optimizer = ml_collections.ConfigDict({"g_lr": 1.0, "d_lr": 1.0, "b1": 0.5, "b2": 0.999,
                                           **optimizer})
  return c


def _updates(tx, grads):
  """The update of each call, for a scalar parameter and the given gradient sequence."""
  params = jnp.zeros(())
  state = tx.init(params)
  out = []
  for g in grads:
    update, state = tx.update(jnp.asarray(g, jnp.float32), state, params)
    params = optax.apply_updates(params, update)
    out.append(float(update))
  return np.asarray(out)


def _expected_lr(n_updates, constant, decay):
  """Constant for `constant` updates, then linearly to 0 over `decay` (NumPy)."""
  c = np.arange(n_updates, dtype=np.float64)
  return np.clip(1.0 - np.maximum(c - constant, 0.0) / decay, 0.0, 1.0)


def test_adam_eps_defaults_to_1e_8():
  # g = 1e-8: the update is -lr * g / (g + eps) = -1/2 with eps 1e-8 (-1/3 with 2e-8).
  g_tx, d_tx = state_lib.make_optimizers(_config())
  for tx in (g_tx, d_tx):
    np.testing.assert_allclose(_updates(tx, [1e-8] * 3), -0.5, rtol=1e-5)
  g_tx, _ = state_lib.make_optimizers(_config(eps=1e-6))
  np.testing.assert_allclose(_updates(g_tx, [1e-8] * 3), -1e-8 / (1e-8 + 1e-6), rtol=1e-4)


def test_no_gradient_clipping_by_default():
  # Gradients 100 then 1: Adam alone gives a second update different from the one after
  # clipping both to norm 1 (then both are 1 and the update is -lr).
  grads = [100.0, 1.0, 1.0]
  g_tx, d_tx = state_lib.make_optimizers(_config())
  want = _updates(optax.adam(1.0, b1=0.5, b2=0.999), grads)
  for tx in (g_tx, d_tx):
    np.testing.assert_allclose(_updates(tx, grads), want, rtol=1e-6)
  assert abs(want[1] + 1.0) > 0.1
  g_tx, _ = state_lib.make_optimizers(_config(grad_clip=1.0))
  np.testing.assert_allclose(_updates(g_tx, grads), -1.0, rtol=1e-4)


@pytest.mark.parametrize("n_critic", [None, 1, 3])
def test_lr_decay_counts_each_network_in_its_own_updates(n_critic):
  """G decays over its own steps; D, updated n_critic times a step (1 when the field is
  absent), over n_critic times as many updates."""
  training = {} if n_critic is None else {"n_critic": n_critic}
  decay = ml_collections.ConfigDict({"constant_steps": 2, "decay_steps": 4})
  g_tx, d_tx = state_lib.make_optimizers(_config(training, lr_decay=decay))
  np.testing.assert_allclose(-_updates(g_tx, [1.0] * 8), _expected_lr(8, 2, 4), atol=1e-4)
  k = n_critic or 1
  np.testing.assert_allclose(-_updates(d_tx, [1.0] * 8 * k), _expected_lr(8 * k, 2 * k, 4 * k),
                             atol=1e-4)


def test_decay_start_decays_to_zero_at_training_num_steps():
  g_tx, d_tx = state_lib.make_optimizers(
      _config({"num_steps": 6, "n_critic": 2}, decay_start=2))
  np.testing.assert_allclose(-_updates(g_tx, [1.0] * 8), _expected_lr(8, 2, 4), atol=1e-4)
  np.testing.assert_allclose(-_updates(d_tx, [1.0] * 16), _expected_lr(16, 4, 8), atol=1e-4)


def test_decay_start_needs_training_num_steps():
  with pytest.raises(ValueError, match=r"^`optimizer.decay_start` \(2\) must lie in \(0, "
                                       r"training.num_steps=0\)\.$"):
    state_lib.make_optimizers(_config(decay_start=2))
  opt = _config(decay_start=1).optimizer
  with pytest.raises(ValueError, match=r"training.num_steps=0\)"):
    state_lib.lr_schedule(1.0, opt)  # num_steps defaults to 0
  np.testing.assert_allclose([float(state_lib.lr_schedule(1.0, opt, num_steps=3)(i))
                              for i in range(4)], [1.0, 1.0, 0.5, 0.0], atol=1e-4)


def test_lr_decay_and_decay_start_are_exclusive():
  both = _config({"num_steps": 6}, decay_start=2,
                 lr_decay=ml_collections.ConfigDict({"constant_steps": 1, "decay_steps": 2}))
  with pytest.raises(ValueError) as err:
    state_lib.make_optimizers(both)
  assert str(err.value) == ("set one of `optimizer.lr_decay` and `optimizer.decay_start`, "
                            "not both.")
  # An lr_decay without decay_steps is off: decay_start alone decides.
  off = _config({"num_steps": 6}, decay_start=2,
                lr_decay=ml_collections.ConfigDict({"constant_steps": 1}))
  g_tx, _ = state_lib.make_optimizers(off)
  np.testing.assert_allclose(-_updates(g_tx, [1.0] * 8), _expected_lr(8, 2, 4), atol=1e-4)
  no_decay_steps = _config(lr_decay=ml_collections.ConfigDict({"constant_steps": 2}))
  assert state_lib.lr_schedule(0.5, no_decay_steps.optimizer) == 0.5


def test_decay_start_must_be_before_the_last_step():
  with pytest.raises(ValueError, match=r"\(6\) must lie in \(0, training.num_steps=6\)"):
    state_lib.make_optimizers(_config({"num_steps": 6}, decay_start=6))
  state_lib.make_optimizers(_config({"num_steps": 6}, decay_start=5))
