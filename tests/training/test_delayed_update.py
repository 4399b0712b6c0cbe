"""`optimizer.delayed_update`: the named parameter group stays fixed until the switch step."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from genattn_jax.training import state as state_lib


def _config(steps, patterns, n_critic=1):
  c = ml_collections.ConfigDict()
  c.training = ml_collections.ConfigDict({"n_critic": n_critic})
  c.optimizer = ml_collections.ConfigDict(
      {"g_lr": 0.1, "d_lr": 0.1, "b1": 0.5, "b2": 0.999, "grad_clip": 0.0})
  c.optimizer.delayed_update = ml_collections.ConfigDict({"steps": steps, "patterns": patterns})
  return c


def _params():
  return {"conv0": {"kernel": jnp.ones((3,))},
          "spap_0_r16": {"branch_k3_d3": {"kernel": jnp.ones((2,))}, "gamma": jnp.zeros(())},
          "atrous3": {"conv": {"kernel": jnp.ones((2,))},
                      "atrous_d3": {"kernel": jnp.ones((2,))}}}


def _run(tx, params, n):
  opt = tx.init(params)
  history = []
  for _ in range(n):
    grads = jax.tree_util.tree_map(jnp.ones_like, params)
    updates, opt = tx.update(grads, opt, params)
    params = optax.apply_updates(params, updates)
    history.append(params)
  return history


def test_frozen_before_switch_and_updated_after():
  g_tx, d_tx = state_lib.make_optimizers(_config(3, ["spap", "atrous_d"], n_critic=2))
  p0 = _params()
  g_hist = _run(g_tx, p0, 4)
  for t in range(3):  # updates 1..3: frozen group unchanged, the rest moves
    np.testing.assert_array_equal(g_hist[t]["spap_0_r16"]["branch_k3_d3"]["kernel"], 1.0)
    np.testing.assert_array_equal(g_hist[t]["spap_0_r16"]["gamma"], 0.0)
    assert np.all(np.asarray(g_hist[t]["conv0"]["kernel"]) < 1.0)
    assert np.all(np.asarray(g_hist[t]["atrous3"]["conv"]["kernel"]) < 1.0)
  assert np.all(np.asarray(g_hist[3]["spap_0_r16"]["branch_k3_d3"]["kernel"]) < 1.0)
  assert float(g_hist[3]["spap_0_r16"]["gamma"]) < 0.0
  # D is updated n_critic = 2 times per step: frozen for 3 * 2 updates.
  d_hist = _run(d_tx, p0, 7)
  np.testing.assert_array_equal(d_hist[5]["atrous3"]["atrous_d3"]["kernel"], 1.0)
  assert np.all(np.asarray(d_hist[6]["atrous3"]["atrous_d3"]["kernel"]) < 1.0)


def test_no_delay_is_plain_adam():
  g_tx, _ = state_lib.make_optimizers(_config(0, []))
  p0 = _params()
  ref = optax.adam(0.1, b1=0.5, b2=0.999)
  got, want = _run(g_tx, p0, 2)[-1], _run(ref, p0, 2)[-1]
  jax.tree_util.tree_map(np.testing.assert_allclose, got, want)


def test_empty_patterns_raise():
  with pytest.raises(ValueError) as err:
    state_lib.make_optimizers(_config(5, []))
  assert str(err.value) == ("`optimizer.delayed_update.patterns` must name at least one "
                            "parameter group (substrings of parameter paths) when `steps` > 0.")


def test_lr_decay_schedule():
  c = _config(0, [])
  c.optimizer.lr_decay = ml_collections.ConfigDict({"constant_steps": 2, "decay_steps": 4})
  sched = state_lib.lr_schedule(1.0, c.optimizer)
  np.testing.assert_allclose([float(sched(i)) for i in range(8)],
                             [1, 1, 1, .75, .5, .25, 0, 0], atol=1e-6)


def test_patterns_match_slash_joined_paths_and_the_default_is_one_update_per_step():
  """A pattern may name a path ('atrous3/conv': that module only, not its sibling); fields
  of a NamedTuple count as path parts too; without `updates_per_step` the freeze lasts
  `steps` updates."""
  import typing  # pylint: disable=g-import-not-at-top

  class Pair(typing.NamedTuple):
    a: jax.Array
    b: jax.Array

  params = {"atrous3": {"conv": {"kernel": jnp.ones((2,))},
                        "atrous_d3": {"kernel": jnp.ones((2,))}},
            "outer": Pair(a=jnp.ones((2,)), b=jnp.ones((2,)))}
  opt = _config(2, ["atrous3/conv", "outer/b"]).optimizer
  hist = _run(state_lib.delayed_update(optax.sgd(0.1), opt), params, 3)
  for t in range(2):
    np.testing.assert_array_equal(hist[t]["atrous3"]["conv"]["kernel"], 1.0)
    np.testing.assert_array_equal(hist[t]["outer"].b, 1.0)
    assert np.all(np.asarray(hist[t]["atrous3"]["atrous_d3"]["kernel"]) < 1.0)
    assert np.all(np.asarray(hist[t]["outer"].a) < 1.0)
  # After the switch the frozen group takes the optimiser's own update (SGD: 1 - 0.1 * 1).
  np.testing.assert_allclose(hist[2]["atrous3"]["conv"]["kernel"], 0.9, rtol=1e-6)
  np.testing.assert_allclose(hist[2]["outer"].b, 0.9, rtol=1e-6)


def test_spec_without_steps_is_off():
  opt = _config(0, ["spap"]).optimizer
  del opt.delayed_update["steps"]
  tx = optax.sgd(0.1)
  assert state_lib.delayed_update(tx, opt) is tx
