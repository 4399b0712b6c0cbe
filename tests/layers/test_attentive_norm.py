"""Tests for genattn_jax.layers.attentive_norm (AN paper, Sec. 3, Eqs. 1-6)."""

import functools

from absl.testing import parameterized
import chex
import flax.linen as nn
import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest

from genattn_jax.layers.attentive_norm import (
    ENTITY_CONV_NAME, AttentiveNormalization, orthogonal_penalty,
    orthogonal_regularization, regional_instance_norm)

N = 4  # entities used by most tests (kept small for speed)
C = 8


def _np_softmax(z):
  z = z - z.max(-1, keepdims=True)
  e = np.exp(z)
  return e / e.sum(-1, keepdims=True)


def _np_regional_norm(x, s, beta, alpha, eps):
  """Eq. 5 region by region, two-pass statistics, float64."""
  x = np.asarray(x, np.float64)
  s = np.asarray(s, np.float64)
  out = np.zeros_like(x)
  for i in range(s.shape[-1]):
    w = s[..., i:i + 1]  # [B, H, W, 1]
    mass = w.sum(axis=(1, 2), keepdims=True)
    mu = (w * x).sum(axis=(1, 2), keepdims=True) / mass
    var = (w * (x - mu) ** 2).sum(axis=(1, 2), keepdims=True) / mass
    out += ((x - mu) / (np.sqrt(var) + eps) * beta[i] + alpha[i]) * w
  return out


def _np_conv1x1(x, p):
  y = np.einsum("bhwc,cd->bhwd", x, np.asarray(p["kernel"])[0, 0])
  return y + np.asarray(p["bias"]) if "bias" in p else y


def _np_maxpool2(k):
  b, h, w, d = k.shape
  return k.reshape(b, h // 2, 2, w // 2, 2, d).max(axis=(2, 4))


def _np_orth(kernel):
  w = np.asarray(kernel, np.float64).reshape(-1, kernel.shape[-1]).T
  g = w @ w.T - np.eye(w.shape[0])
  return float((g ** 2).sum())


def _init(module, x, seed=1):
  return jax.jit(module.init)(jax.random.PRNGKey(seed), x)


def _with(variables, **updates):
  params = dict(variables["params"])
  params.update(updates)
  return {**variables, "params": params}


def _x(shape, seed=0, dtype=jnp.float32):
  return jax.random.normal(jax.random.PRNGKey(seed), shape, dtype) * 2.0 + 0.5


MODULE = AttentiveNormalization(num_entities=N)


@functools.partial(jax.jit, static_argnames="train")
def _run(v, x, train, seed=3):
  """Jitted apply of MODULE returning (y, intermediates); shared compiles."""
  y, st = MODULE.apply(v, x, train=train,
                       rngs={"sampling": jax.random.PRNGKey(seed)},
                       mutable=["intermediates"])
  return y, st["intermediates"]


@functools.partial(jax.jit, static_argnames="train")
def _grads(v, x, train):
  def loss(v, x):
    y = MODULE.apply(v, x, train=train,
                     rngs={"sampling": jax.random.PRNGKey(3)})
    return jnp.sum(y ** 2) + orthogonal_penalty(v["params"])
  return jax.grad(loss, argnums=(0, 1))(v, x)


class AttentiveNormalizationTest(parameterized.TestCase):

  def setUp(self):
    super().setUp()
    self.module = MODULE
    self.x = _x((3, 8, 12, C))
    v = _init(self.module, self.x)
    k1, k2 = jax.random.split(jax.random.PRNGKey(7))
    # Non-trivial parameters: rho != 0 and random per-region affine.
    self.v = _with(v, rho=jnp.asarray(0.7),
                   beta=1.0 + 0.3 * jax.random.normal(k1, (N, C)),
                   alpha=0.2 * jax.random.normal(k2, (N, C)))

  @parameterized.parameters(
      ((1, 8, 8, C), False), ((1, 8, 8, C), True),
      ((3, 8, 12, C), False), ((3, 8, 12, C), True),
      ((1, 3, 5, C), True),   # odd sizes, 'SAME' pooling
      ((1, 1, 1, C), True))   # pooled map smaller than n: with replacement
  def test_shapes(self, shape, train):
    x = _x(shape)
    v = jax.jit(functools.partial(MODULE.init, train=train))(
        {"params": jax.random.PRNGKey(1), "sampling": jax.random.PRNGKey(2)}, x)
    y, st = _run(v, x, train)
    chex.assert_shape(y, shape)
    chex.assert_shape(st["semantic_layout"][0],
                      shape[:3] + (N,))
    self.assertEqual(y.dtype, jnp.float32)
    chex.assert_tree_all_finite(y)

  def test_param_shapes_and_init(self):
    p = _init(AttentiveNormalization(), self.x)["params"]  # default n=16
    chex.assert_shape(p[ENTITY_CONV_NAME]["kernel"], (1, 1, C, 16))
    self.assertNotIn("bias", p[ENTITY_CONV_NAME])
    chex.assert_shape(p["key"]["kernel"], (1, 1, C, C // 8))
    chex.assert_trees_all_close(p["t"], jnp.full((16,), 0.1))
    chex.assert_trees_all_close(p["beta"], jnp.ones((16, C)))
    chex.assert_trees_all_close(p["alpha"], jnp.zeros((16, C)))
    chex.assert_trees_all_close(p["rho"], jnp.zeros(()))

  @parameterized.parameters(False, True)
  def test_identity_at_init_not_after_rho_change(self, train):
    v = _init(self.module, self.x)
    y, _ = _run(v, self.x, train)
    np.testing.assert_array_equal(np.asarray(y), np.asarray(self.x))
    y2, _ = _run(_with(v, rho=jnp.asarray(0.5)), self.x, train)
    self.assertGreater(float(jnp.abs(y2 - self.x).max()), 1e-2)

  @parameterized.parameters(False, True)
  def test_layout_is_distribution_over_entities(self, train):
    s = _run(self.v, self.x, train)[1]["semantic_layout"][0]
    chex.assert_trees_all_close(s.sum(-1), jnp.ones(s.shape[:-1]), atol=1e-5)
    self.assertTrue(bool(jnp.all((s >= 0) & (s <= 1))))

  def test_eval_layout_matches_numpy_eq4(self):
    st = {"intermediates": _run(self.v, self.x, False)[1]}
    f = _np_conv1x1(np.asarray(self.x), self.v["params"][ENTITY_CONV_NAME])
    expected = _np_softmax(0.1 * f)  # tau multiplies (Eq. 4), t = 0 at eval
    np.testing.assert_allclose(st["intermediates"]["semantic_layout"][0],
                               expected, atol=1e-5)

  def test_train_layout_matches_numpy_eq2_eq3(self):
    t = jnp.asarray([0.1, -0.5, 1.0, 2.0])
    v = _with(self.v, t=t)
    st = {"intermediates": _run(v, self.x, True, 11)[1]}
    idx = np.asarray(st["intermediates"]["sample_indices"][0])
    p, x = v["params"], np.asarray(self.x)
    chex.assert_shape(idx, (3, N))
    for row in idx:  # uniform without replacement inside the 4x6 pooled map
      self.assertLen(set(row.tolist()), N)
      self.assertTrue(np.all((row >= 0) & (row < 4 * 6)))
    self.assertFalse(np.array_equal(idx[0], idx[1]))  # per-example draws
    k = _np_maxpool2(_np_conv1x1(x, p["key"])).reshape(3, 24, -1)
    q = _np_conv1x1(x, p["query"])
    filt = np.take_along_axis(k, idx[..., None], axis=1)
    fast = np.einsum("bhwd,bnd->bhwn", q, filt)
    raw = np.asarray(t) * fast + _np_conv1x1(x, p[ENTITY_CONV_NAME])
    np.testing.assert_allclose(st["intermediates"]["semantic_layout"][0],
                               _np_softmax(0.1 * raw), atol=1e-5)

  @parameterized.parameters(False, True)
  def test_output_matches_numpy_eq5_eq6(self, train):
    y, st = _run(self.v, self.x, train)
    s = np.asarray(st["semantic_layout"][0])
    p = self.v["params"]
    x_bar = _np_regional_norm(self.x, s, np.asarray(p["beta"]),
                              np.asarray(p["alpha"]), 1e-5)
    np.testing.assert_allclose(y, np.asarray(self.x) + 0.7 * x_bar,
                               rtol=1e-4, atol=1e-4)

  def test_regional_instance_norm_function(self):
    rs = np.random.default_rng(0)
    x = rs.normal(size=(2, 5, 7, 3)).astype(np.float32) * 2 + 10.0  # big mean
    s = _np_softmax(rs.normal(size=(2, 5, 7, 6))).astype(np.float32)
    beta = rs.normal(size=(6, 3)).astype(np.float32)
    alpha = rs.normal(size=(6, 3)).astype(np.float32)
    rin = jax.jit(regional_instance_norm, static_argnums=4)
    got = rin(x, s, beta, alpha, 1e-3)
    np.testing.assert_allclose(
        got, _np_regional_norm(x, s, np.asarray(beta), np.asarray(alpha), 1e-3),
        rtol=1e-4, atol=1e-4)
    # One hard region everywhere = plain instance norm.
    ones = np.ones((2, 5, 7, 1), np.float32)
    inorm = rin(x, ones, np.ones((1, 3)), np.zeros((1, 3)), 1e-5)
    ref = (x - x.mean((1, 2), keepdims=True)) / (x.std((1, 2), keepdims=True)
                                                  + 1e-5)
    np.testing.assert_allclose(inorm, ref, atol=1e-4)

  def test_eval_deterministic_without_rng(self):
    y1 = self.module.apply(self.v, self.x)
    y2 = self.module.apply(self.v, self.x, train=False)
    y3 = self.module.apply(self.v, self.x,
                           rngs={"sampling": jax.random.PRNGKey(9)})
    chex.assert_trees_all_equal(y1, y2, y3)

  def test_train_uses_sampling_rng(self):
    def run(seed):
      return _run(self.v, self.x, True, seed)[0]
    chex.assert_trees_all_equal(run(1), run(1))
    self.assertGreater(float(jnp.abs(run(1) - run(2)).max()), 1e-4)
    self.assertGreater(
        float(jnp.abs(run(1) - self.module.apply(self.v, self.x)).max()), 1e-4)
    with self.assertRaisesRegex(ValueError, "sampling"):
      self.module.apply(self.v, self.x, train=True)

  def test_pmap_with_axis_name_equals_one_device(self):
    # Sampling under pmap: each device keeps its rows of the global draw.
    x = _x((4, 8, 12, C))
    rng = jax.random.PRNGKey(5)
    expected, st = _run(self.v, x, True, seed=5)

    def on_two_devices(module):
      out, inter = jax.pmap(lambda xs: module.apply(
          self.v, xs, train=True, rngs={"sampling": rng}, mutable=["intermediates"]),
                            axis_name="d", devices=jax.devices()[:2])(x.reshape(2, 2, 8, 12, C))
      return out.reshape(x.shape), np.asarray(
          inter["intermediates"]["sample_indices"][0]).reshape(4, N)

    out, indices = on_two_devices(AttentiveNormalization(num_entities=N, axis_name="d"))
    np.testing.assert_array_equal(indices, np.asarray(st["sample_indices"][0]))
    chex.assert_trees_all_close(out, expected, atol=1e-5, rtol=1e-5)
    # Without axis_name each device draws for its own 2 rows: other positions.
    _, plain_indices = on_two_devices(MODULE)
    self.assertFalse(np.array_equal(plain_indices, np.asarray(st["sample_indices"][0])))

  @chex.variants(with_jit=True, without_jit=True)
  def test_jit_and_nonjit_equal(self):
    rng = jax.random.PRNGKey(4)
    expected = self.module.apply(self.v, self.x, train=True,
                                 rngs={"sampling": rng})
    fn = self.variant(lambda v, x, r: self.module.apply(
        v, x, train=True, rngs={"sampling": r}))
    chex.assert_trees_all_close(fn(self.v, self.x, rng), expected,
                                rtol=1e-5, atol=1e-5)

  def test_gradients_finite(self):
    gv, gx = _grads(self.v, self.x, True)
    chex.assert_tree_all_finite((gv, gx))
    p = gv["params"]
    for name in ("rho", "t", "beta", "alpha"):
      self.assertGreater(float(jnp.abs(p[name]).max()), 0.0, name)
    for name in (ENTITY_CONV_NAME, "key", "query"):
      self.assertGreater(float(jnp.abs(p[name]["kernel"]).max()), 0.0, name)
    # At evaluation the self-sampling branch is off: no gradient reaches t.
    g_eval = _grads(self.v, self.x, False)[0]["params"]
    self.assertEqual(float(jnp.abs(g_eval["t"]).max()), 0.0)
    # A constant input region (zero variance) still gives finite gradients.
    g_const = _grads(self.v, jnp.ones_like(self.x), True)
    chex.assert_tree_all_finite(g_const)

  def test_bfloat16(self):
    m = AttentiveNormalization(num_entities=N, dtype=jnp.bfloat16)
    xb = self.x.astype(jnp.bfloat16)
    v = _with(_init(m, xb), rho=jnp.asarray(0.7))
    run = jax.jit(lambda v, x, train: m.apply(
        v, x, train=train, rngs={"sampling": jax.random.PRNGKey(3)}),
                  static_argnums=2)
    for train in (False, True):
      y = run(v, xb, train)
      self.assertEqual(y.dtype, jnp.bfloat16)
      chex.assert_tree_all_finite(y)
    ref, _ = _run(v, self.x, False)
    y = run(v, xb, False)
    np.testing.assert_allclose(np.asarray(y, np.float32), ref, atol=0.2)

  def test_injected_conv_is_used(self):
    m = AttentiveNormalization(
        num_entities=N,
        conv=functools.partial(nn.Conv, kernel_init=nn.initializers.zeros))
    _, st = m.apply(_init(m, self.x), self.x, mutable=["intermediates"])
    chex.assert_trees_all_close(st["intermediates"]["semantic_layout"][0],
                                jnp.full((3, 8, 12, N), 1.0 / N))

  def test_cost_linear_no_hw_by_hw_tensor(self):
    x = jnp.zeros((1, 32, 32, C))
    hw = 32 * 32
    jaxpr = jax.make_jaxpr(lambda v, x: self.module.apply(
        v, x, train=True, rngs={"sampling": jax.random.PRNGKey(0)}))(
            _init(self.module, x), x)

    def sizes(jx):
      for eqn in jx.eqns:
        for var in eqn.outvars:
          yield int(np.prod(var.aval.shape))
        for sub in jax.extend.core.jaxprs_in_params(eqn.params):
          yield from sizes(sub)
    self.assertLess(max(sizes(jaxpr.jaxpr)), hw * hw // 16)

  @parameterized.named_parameters(
      ("rank3", dict(), (8, 8, C), "`x`"),
      ("entities", dict(num_entities=0), (1, 8, 8, C), "num_entities"),
      ("temperature", dict(temperature=0.0), (1, 8, 8, C), "temperature"),
      ("pool", dict(pool_window=0), (1, 8, 8, C), "pool_window"),
      ("qk", dict(qk_features=-1), (1, 8, 8, C), "qk_features"))
  def test_bad_input_raises(self, kwargs, shape, message):
    m = AttentiveNormalization(**{"num_entities": N, **kwargs})
    with self.assertRaisesRegex(ValueError, message):
      m.init(jax.random.PRNGKey(0), jnp.zeros(shape))

  def test_regional_norm_bad_input_raises(self):
    x = jnp.zeros((2, 4, 4, 3))
    s = jnp.ones((2, 4, 4, 2)) / 2
    ok = jnp.ones((2, 3))
    with self.assertRaisesRegex(ValueError, "`layout`"):
      regional_instance_norm(x, jnp.ones((2, 4, 5, 2)), ok, ok)
    with self.assertRaisesRegex(ValueError, "`beta`"):
      regional_instance_norm(x, s, jnp.ones((3, 3)), ok)
    with self.assertRaisesRegex(ValueError, "`alpha`"):
      regional_instance_norm(x, s, ok, jnp.ones((2,)))
    with self.assertRaisesRegex(ValueError, "`epsilon`"):
      regional_instance_norm(x, s, ok, ok, epsilon=0.0)


class _TwoANs(nn.Module):

  @nn.compact
  def __call__(self, x):
    x = AttentiveNormalization(num_entities=N, name="first")(x)
    x = nn.Conv(C, (3, 3))(x)
    return AttentiveNormalization(num_entities=2, entity_kernel_size=3)(x)


class OrthogonalTest(parameterized.TestCase):

  def test_matches_numpy_for_kernel_and_params(self):
    m = AttentiveNormalization(num_entities=N, entity_kernel_size=3)
    p = _init(m, _x((1, 8, 8, C)))["params"]
    kernel = p[ENTITY_CONV_NAME]["kernel"]
    chex.assert_shape(kernel, (3, 3, C, N))
    expected = _np_orth(kernel)
    self.assertGreater(expected, 0.0)
    for arg in (kernel, p, {"params": p}, p[ENTITY_CONV_NAME]):
      got = orthogonal_regularization(arg)
      self.assertEqual(got.dtype, jnp.float32)
      chex.assert_shape(got, ())
      np.testing.assert_allclose(got, expected, rtol=1e-5)

  def test_zero_for_orthonormal_entities(self):
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(C, N)))
    kernel = jnp.asarray(q.reshape(1, 1, C, N), jnp.float32)  # rows of W: q.T
    self.assertLess(float(orthogonal_regularization(kernel)), 1e-10)
    self.assertGreater(float(orthogonal_regularization(2.0 * kernel)), 1.0)

  def test_penalty_sums_every_an(self):
    x = _x((1, 8, 8, C))
    params = _init(_TwoANs(), x)["params"]
    self.assertEqual(set(params) & {"first", "AttentiveNormalization_0"},
                     {"first", "AttentiveNormalization_0"})
    expected = (_np_orth(params["first"][ENTITY_CONV_NAME]["kernel"]) +
                _np_orth(params["AttentiveNormalization_0"][ENTITY_CONV_NAME]
                         ["kernel"]))
    penalty = jax.jit(orthogonal_penalty)
    np.testing.assert_allclose(penalty(params), expected, rtol=1e-5)
    np.testing.assert_allclose(penalty({"params": params}), expected, rtol=1e-5)
    grads = jax.jit(jax.grad(orthogonal_penalty))(params)
    self.assertEqual(float(jnp.abs(grads["Conv_0"]["kernel"]).max()), 0.0)
    self.assertGreater(
        float(jnp.abs(grads["first"][ENTITY_CONV_NAME]["kernel"]).max()), 0.0)
    # No AN in the tree -> 0; an entity kernel nested under a wrapper is found.
    self.assertEqual(float(orthogonal_penalty({"Conv_0": params["Conv_0"]})),
                     0.0)
    k = params["first"][ENTITY_CONV_NAME]["kernel"]
    nested = {"g": {"block": {ENTITY_CONV_NAME: {"layer_instance": {
        "kernel": k}}}}}
    np.testing.assert_allclose(penalty(nested), _np_orth(k), rtol=1e-5)

  def test_bad_input_raises(self):
    with self.assertRaisesRegex(ValueError, "params_or_kernel"):
      orthogonal_regularization(jnp.ones((3,)))
    with self.assertRaisesRegex(ValueError, "params_or_kernel"):
      orthogonal_regularization({"a": {"kernel": jnp.ones((2, 2))},
                                 "b": {"kernel": jnp.ones((2, 2))}})
    with self.assertRaisesRegex(ValueError, "`params`"):
      orthogonal_penalty(jnp.ones((3,)))


def test_default_module_with_fixture_rng(rng):
  """Default configuration (n=16, qk_features=C//8) end to end, train mode."""
  x = jax.random.normal(rng, (2, 8, 8, 16))
  m = AttentiveNormalization()
  v = jax.jit(functools.partial(m.init, train=True))(
      {"params": rng, "sampling": rng}, x)
  y = jax.jit(lambda v, x: m.apply(v, x, train=True, rngs={"sampling": rng}))(
      _with(v, rho=jnp.asarray(1.0)), x)
  chex.assert_shape(y, x.shape)
  chex.assert_tree_all_finite(y)
  assert float(jnp.abs(y - x).max()) > 1e-3
  with pytest.raises(ValueError, match="`x`"):
    m.apply(v, x[0])
