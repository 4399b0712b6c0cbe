"""`model.remat_blocks`: placed blocks wrapped in `nn.remat` give the same model.

Same parameter tree, same outputs and the same gradients (G and D together, through LAP, AN
and self-attention blocks in G and D), and the rematerialised program really contains the
`remat` (checkpoint) primitive around the blocks.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np

from genattn_jax import models
from tests.models._util import np_init

B = 4


def _build(remat: bool):
  c = models.default_model_config("sndcgan", 16)
  c.g_width = c.d_width = 1 / 16
  c.upsample = "nearest"
  c.g_blocks = [{"block": "lap", "resolutions": [8]}, {"block": "an", "resolutions": [16]}]
  c.d_blocks = [{"block": "self_attention", "resolutions": [8]},
                {"block": "an", "resolutions": [8]}]
  c.remat_blocks = remat
  return models.build_gan(c)


def _loss_fn(g, d):
  def loss(params, state, z, rng):
    g_rng, d_rng = jax.random.split(rng)
    fake, _ = g.apply({"params": params["g"], **state["g"]}, z, None, train=True,
                      rngs={"sampling": g_rng}, mutable=["batch_stats"])
    logits, _ = d.apply({"params": params["d"], **state["d"]}, fake, None, train=True,
                        rngs={"sampling": d_rng}, mutable=["batch_stats"])
    return jnp.mean(jax.nn.softplus(-logits)) + 0.1 * jnp.mean(jnp.square(fake))
  return loss


def _primitives(jaxpr, out=None):
  out = set() if out is None else out
  for eqn in jaxpr.eqns:
    out.add(eqn.primitive.name)
    for value in eqn.params.values():
      for v in value if isinstance(value, (list, tuple)) else (value,):
        sub = v if hasattr(v, "eqns") else getattr(v, "jaxpr", None)
        if sub is not None and hasattr(sub, "eqns"):
          _primitives(sub, out)
  return out


def test_remat_blocks_same_params_outputs_and_gradients():
  z = jax.random.normal(jax.random.PRNGKey(0), (B, 128))
  x = jnp.zeros((B, 16, 16, 3))
  g0, d0 = _build(False)
  g1, d1 = _build(True)
  g_vars, d_vars = dict(np_init(g0, z, None, False)), dict(np_init(d0, x, None, False))
  # The parameter trees are the same: checkpoints work with either setting.
  chex.assert_trees_all_equal_shapes_and_dtypes(
      jax.eval_shape(lambda: g1.init({"params": jax.random.PRNGKey(0),
                                      "sampling": jax.random.PRNGKey(1)}, z, None, False)),
      g_vars)
  chex.assert_trees_all_equal_shapes_and_dtypes(
      jax.eval_shape(lambda: d1.init({"params": jax.random.PRNGKey(0),
                                      "sampling": jax.random.PRNGKey(1)}, x, None, False)),
      d_vars)
  params = {"g": g_vars.pop("params"), "d": d_vars.pop("params")}
  state = {"g": g_vars, "d": d_vars}
  rng = jax.random.PRNGKey(5)
  results = {}
  for remat, (g, d) in ((False, (g0, d0)), (True, (g1, d1))):
    loss = _loss_fn(g, d)
    prims = _primitives(jax.make_jaxpr(loss)(params, state, z, rng).jaxpr)
    # jax.checkpoint's primitive ('remat2' in jax 0.10, 'checkpoint' in older versions).
    assert any(p.startswith(("remat", "checkpoint")) for p in prims) == remat, sorted(prims)
    results[remat] = jax.jit(jax.value_and_grad(loss))(params, state, z, rng)
  (v0, g0_), (v1, g1_) = results[False], results[True]
  np.testing.assert_allclose(v1, v0, rtol=1e-6)
  chex.assert_trees_all_close(g1_, g0_, rtol=1e-5, atol=1e-7)
  # Gradients reach the blocks' own parameters.
  # (Some of LAP's inner gradients are exactly 0 at init when a zero-initialised scale gates
  # the block's output; the block as a whole must receive gradient.)
  lap_grads = jax.tree_util.tree_leaves(g0_["g"]["lap_0_r8"])
  assert max(float(jnp.abs(leaf).max()) for leaf in lap_grads) > 0
