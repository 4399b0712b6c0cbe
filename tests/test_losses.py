"""Adversarial losses and gradient regularisers against hand computations."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import parameterized

from genattn_jax import losses

R = np.array([0.5, -1.5, 2.0, 0.2], np.float32)
F = np.array([-0.3, 1.2, -2.0], np.float32)


def _np_softplus(t):
  return np.log1p(np.exp(t))


def _relu(t):
  return np.maximum(t, 0.0)


def _expected(name):
  """(d_loss, g_loss) recomputed in NumPy from the formulas."""
  r, f = R.astype(np.float64), F.astype(np.float64)
  if name == "non_saturating":
    return _np_softplus(-r).mean() + _np_softplus(f).mean(), _np_softplus(-f).mean()
  if name == "hinge":
    return _relu(1 - r).mean() + _relu(1 + f).mean(), -f.mean()
  if name == "wasserstein":
    return f.mean() - r.mean(), -f.mean()
  if name == "relativistic_hinge":
    rr, fr = r - f.mean(), f - r.mean()
    return (_relu(1 - rr).mean() + _relu(1 + fr).mean(),
            _relu(1 + rr).mean() + _relu(1 - fr).mean())
  if name == "least_squares":
    return 0.5 * ((r - 1) ** 2).mean() + 0.5 * (f ** 2).mean(), 0.5 * ((f - 1) ** 2).mean()
  raise AssertionError(name)


class AdversarialLossTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters("non_saturating", "hinge", "wasserstein", "relativistic_hinge",
                            "least_squares")
  def test_against_numpy(self, name):
    d_fn, g_fn = losses.get_loss(name)
    d = self.variant(d_fn)(jnp.asarray(R), jnp.asarray(F))
    g = self.variant(g_fn)(jnp.asarray(F), jnp.asarray(R))
    exp_d, exp_g = _expected(name)
    chex.assert_shape(d, ())
    self.assertEqual(d.dtype, jnp.float32)
    np.testing.assert_allclose(d, exp_d, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(g, exp_g, rtol=1e-6, atol=1e-6)

  def test_named_pairs_and_aliases(self):
    self.assertIs(losses.get_loss("hinge"), losses.hinge_loss)
    self.assertIs(losses.get_loss("rahinge"), losses.relativistic_hinge_loss)
    self.assertIs(losses.get_loss("lsgan"), losses.least_squares_loss)
    self.assertIs(losses.get_loss("ns").d_loss, losses.non_saturating_d_loss)
    d_fn, g_fn = losses.wasserstein_loss
    self.assertIs(d_fn, losses.wasserstein_d_loss)
    self.assertIs(g_fn, losses.wasserstein_g_loss)

  def test_unknown_name_raises(self):
    with self.assertRaisesRegex(ValueError, "`name`"):
      losses.get_loss("minimax_typo")

  def test_relativistic_g_needs_real(self):
    with self.assertRaisesRegex(ValueError, "real_logits"):
      losses.relativistic_hinge_g_loss(jnp.asarray(F))

  def test_bad_logits_raise(self):
    with self.assertRaisesRegex(ValueError, "fake_logits"):
      losses.hinge_d_loss(jnp.asarray(R), jnp.zeros((0,)))
    with self.assertRaisesRegex(ValueError, "real_logits"):
      losses.hinge_d_loss(jnp.array([1, 2]), jnp.asarray(F))

  def test_bfloat16_logits_give_float32(self):
    d = losses.hinge_d_loss(jnp.asarray(R, jnp.bfloat16), jnp.asarray(F, jnp.bfloat16))
    self.assertEqual(d.dtype, jnp.float32)
    np.testing.assert_allclose(d, _expected("hinge")[0], rtol=2e-2)

  def test_non_saturating_gradient_does_not_vanish(self):
    # d/df softplus(-f) at very negative f is -1 (non-saturating), not 0.
    g = jax.grad(lambda f: losses.non_saturating_g_loss(f))(jnp.array([-30.0]))
    np.testing.assert_allclose(g, [-1.0], atol=1e-6)


class RegularizerTest(chex.TestCase):

  def setUp(self):
    super().setUp()
    rs = np.random.RandomState(0)
    self.w = rs.randn(4, 4, 2).astype(np.float32)
    self.real = rs.randn(3, 4, 4, 2).astype(np.float32)
    self.fake = rs.randn(3, 4, 4, 2).astype(np.float32)

  def _linear_d(self, x):
    return jnp.sum(x * self.w, axis=(1, 2, 3))

  @chex.variants(with_jit=True, without_jit=True)
  def test_r1_linear_d_is_weight_norm(self):
    r1 = self.variant(lambda x: losses.r1_penalty(self._linear_d, x))(self.real)
    np.testing.assert_allclose(r1, np.sum(self.w.astype(np.float64) ** 2), rtol=1e-5)

  @chex.variants(with_jit=True, without_jit=True)
  def test_r1_quadratic_d(self):
    # D(x) = 1/2 ||x||^2 per sample: grad = x, so R1 = mean_b ||x_b||^2.
    quad = lambda x: 0.5 * jnp.sum(x ** 2, axis=(1, 2, 3))
    r1 = self.variant(lambda x: losses.r1_penalty(quad, x))(self.real)
    expected = np.mean(np.sum(self.real.astype(np.float64) ** 2, axis=(1, 2, 3)))
    np.testing.assert_allclose(r1, expected, rtol=1e-5)

  def test_r1_has_aux(self):
    r1, aux = losses.r1_penalty(lambda x: (self._linear_d(x), {"n": x.shape[0]}), self.real,
                                has_aux=True)
    self.assertEqual(aux["n"], 3)
    np.testing.assert_allclose(r1, np.sum(self.w ** 2), rtol=1e-5)

  @chex.variants(with_jit=True, without_jit=True)
  def test_gradient_penalty_linear_d(self, ):
    gp = self.variant(lambda r, f, k: losses.gradient_penalty(self._linear_d, r, f, k))(
        self.real, self.fake, jax.random.PRNGKey(3))
    expected = (np.linalg.norm(self.w.astype(np.float64)) - 1.0) ** 2
    np.testing.assert_allclose(gp, expected, rtol=1e-5)

  def test_gradient_penalty_quadratic_d_uses_interpolates(self):
    # grad of 1/2||x||^2 at x_hat is x_hat: recompute x_hat with the same eps draw.
    quad = lambda x: 0.5 * jnp.sum(x ** 2, axis=(1, 2, 3))
    key = jax.random.PRNGKey(7)
    gp = losses.gradient_penalty(quad, self.real, self.fake, key)
    eps = np.asarray(jax.random.uniform(key, (3, 1, 1, 1), jnp.float32), np.float64)
    x_hat = eps * self.real + (1 - eps) * self.fake
    norms = np.linalg.norm(x_hat.reshape(3, -1), axis=1)
    np.testing.assert_allclose(gp, np.mean((norms - 1.0) ** 2), rtol=1e-5)

  def test_gradient_penalty_grads_finite_at_zero_gradient(self):
    const = lambda x: jnp.zeros(x.shape[0]) * jnp.sum(x)
    g = jax.grad(lambda r: losses.gradient_penalty(const, r, self.fake, jax.random.PRNGKey(0)))(
        jnp.asarray(self.real))
    self.assertTrue(bool(jnp.all(jnp.isfinite(g))))

  def test_shape_mismatch_raises(self):
    with self.assertRaisesRegex(ValueError, "`real`"):
      losses.gradient_penalty(self._linear_d, self.real, self.fake[:2], jax.random.PRNGKey(0))
    with self.assertRaisesRegex(ValueError, "real_images"):
      losses.r1_penalty(self._linear_d, jnp.zeros((3,)))


class RegularizerEdgeTest(chex.TestCase):
  """Input-validation boundaries and the small-gradient regime of the penalties."""

  def test_rank_two_and_single_element_inputs_are_accepted(self):
    w = np.array([0.3, -0.2], np.float32)
    lin = lambda x: jnp.sum(x.reshape(x.shape[0], -1) * w, axis=-1)
    x = np.random.RandomState(1).randn(3, 2).astype(np.float32)   # [B, D]
    np.testing.assert_allclose(losses.r1_penalty(lin, x), np.sum(w.astype(np.float64) ** 2),
                               rtol=1e-6)
    gp = losses.gradient_penalty(lin, x, -x, jax.random.PRNGKey(0))
    np.testing.assert_allclose(gp, (np.linalg.norm(w.astype(np.float64)) - 1) ** 2, rtol=1e-6)
    one = lambda v: 2.0 * v[:, 0]
    single = np.ones((1, 1), np.float32)                            # one sample, one value
    np.testing.assert_allclose(losses.r1_penalty(one, single), 4.0, rtol=1e-6)
    np.testing.assert_allclose(
        losses.gradient_penalty(one, single, 0 * single, jax.random.PRNGKey(0)), 1.0, rtol=1e-6)

  def test_rank_one_inputs_raise(self):
    with self.assertRaisesRegex(ValueError, "`real`"):
      losses.gradient_penalty(jnp.sum, jnp.ones((3,)), jnp.ones((3,)), jax.random.PRNGKey(0))
    with self.assertRaisesRegex(ValueError, "`real`"):
      losses.gradient_penalty(jnp.sum, jnp.ones((0, 2)), jnp.ones((0, 2)), jax.random.PRNGKey(0))
    with self.assertRaisesRegex(ValueError, "real_images"):
      losses.r1_penalty(jnp.sum, jnp.ones((0, 2)))

  def test_gradient_penalty_below_unit_norm(self):
    # ||grad|| = 0.1 < 1: the penalty is (0.1 - 1)^2 (a floor on the norm would hide this).
    w = np.full((4,), 0.05, np.float32)
    lin = lambda x: x @ w
    x = np.random.RandomState(2).randn(3, 4).astype(np.float32)
    gp = losses.gradient_penalty(lin, x, x + 1.0, jax.random.PRNGKey(1))
    np.testing.assert_allclose(gp, (0.1 - 1.0) ** 2, rtol=1e-5)
    gp2 = losses.gradient_penalty(lin, x, x + 1.0, jax.random.PRNGKey(1), target=0.1)
    np.testing.assert_allclose(gp2, 0.0, atol=1e-10)
