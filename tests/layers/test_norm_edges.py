"""Normalisation helpers on near-constant inputs, where the placement of eps decides the output.

With a patch / instance variance close to eps, `(x - mean) / sqrt(var + eps)` (eps on the
variance: Patch-IN, instance norm, PixelNorm) and `(x - mean) / (sigma + eps)` (eps on the
standard deviation: AN's regional instance norm, its Eq. 5) differ by a large factor, so each
function is compared with a float64 NumPy reference of its own formula on inputs whose
variances straddle eps.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genattn_jax.layers import attentive_norm, lap, norms

EPS = 1e-5


def _near_constant(shape, stds, seed=0, patch=4):
  """[B, H, W, C] float32: 0.25 plus noise of std stds[c] in channel c of every patch."""
  b, h, w, c = shape
  rng = np.random.default_rng(seed)
  noise = rng.standard_normal((b, h // patch, patch, w // patch, patch, c))
  noise = ((noise - noise.mean(axis=(2, 4), keepdims=True))
           / noise.std(axis=(2, 4), keepdims=True))
  return (0.25 + noise.reshape(shape) * np.asarray(stds)).astype(np.float32)


def _np_patch_in(x, ph, pw, eps):
  b, h, w, c = x.shape
  xp = x.astype(np.float64).reshape(b, h // ph, ph, w // pw, pw, c)
  mean = xp.mean(axis=(2, 4), keepdims=True)
  var = ((xp - mean) ** 2).mean(axis=(2, 4), keepdims=True)
  return ((xp - mean) / np.sqrt(var + eps)).reshape(b, h, w, c)


# Channel stds: var = 1e-8 (far below eps), 1e-5 (= eps), 1e-4, 1 (far above).
STDS = [1e-4, np.sqrt(EPS), 1e-2, 1.0]


def test_patch_in_eps_on_variance_near_constant_patches():
  x = _near_constant((2, 8, 8, 4), STDS)
  # 4x4 patches: every patch has a variance near the channel's.
  got = np.asarray(lap.patch_instance_norm(jnp.asarray(x), (4, 4), eps=EPS), np.float64)
  want = _np_patch_in(x, 4, 4, EPS)
  np.testing.assert_allclose(got, want, rtol=2e-3, atol=2e-4)
  # The channel with var = eps comes out with std sqrt(1/2) (= sqrt(var / (var + eps))),
  # the one far below eps with std ~0.01, the one far above with std ~1.
  std = got.reshape(2, 2, 4, 2, 4, 4).std(axis=(2, 4)).mean(axis=(0, 1, 2))
  np.testing.assert_allclose(std, [np.sqrt(1e-8 / (1e-8 + EPS)), np.sqrt(0.5),
                                   np.sqrt(1e-4 / (1e-4 + EPS)), 1.0], rtol=2e-2)
  # A constant patch maps to zeros (not NaN).
  const = np.asarray(lap.patch_instance_norm(jnp.full((1, 4, 4, 1), 3.0), (2, 2)))
  np.testing.assert_array_equal(const, 0.0)


def test_patch_in_full_map_is_instance_norm_and_gradient_finite():
  x = _near_constant((2, 4, 4, 4), STDS, seed=1)
  got = np.asarray(lap.patch_instance_norm(jnp.asarray(x), (4, 4), eps=EPS), np.float64)
  np.testing.assert_allclose(got, _np_patch_in(x, 4, 4, EPS), rtol=2e-3, atol=2e-4)
  grad = jax.grad(lambda v: jnp.sum(lap.patch_instance_norm(v, (2, 2)) ** 2))(jnp.asarray(x))
  assert np.all(np.isfinite(np.asarray(grad)))


def test_instance_norm_eps_on_variance():
  x = _near_constant((2, 4, 4, 4), STDS, seed=2)
  module = norms.InstanceNorm(epsilon=EPS)
  variables = module.init(jax.random.PRNGKey(0), jnp.asarray(x))
  # Non-trivial affine so that the scale and shift are checked too.
  scale = np.array([0.5, 2.0, -1.0, 1.5], np.float32)
  bias = np.array([0.1, -0.2, 0.3, 0.0], np.float32)
  variables = {"params": {"norm": {"scale": jnp.asarray(scale), "bias": jnp.asarray(bias)}}}
  got = np.asarray(module.apply(variables, jnp.asarray(x)), np.float64)
  want = _np_patch_in(x, 4, 4, EPS) * scale + bias
  np.testing.assert_allclose(got, want, rtol=2e-3, atol=2e-4)


def test_adain_uses_instance_norm_with_eps_on_variance():
  x = _near_constant((2, 4, 4, 4), STDS, seed=3)
  style = np.random.default_rng(3).standard_normal((2, 3)).astype(np.float32)
  module = norms.AdaIN(epsilon=EPS)
  params = module.init(jax.random.PRNGKey(1), jnp.asarray(x), jnp.asarray(style))["params"]
  got = np.asarray(module.apply({"params": params}, jnp.asarray(x), jnp.asarray(style)),
                   np.float64)
  kernel = np.asarray(params["style_affine"]["kernel"], np.float64)
  bias = np.asarray(params["style_affine"]["bias"], np.float64)
  st = style.astype(np.float64) @ kernel + bias
  s, t = st[:, :4], st[:, 4:]
  want = _np_patch_in(x, 4, 4, EPS) * (1 + s[:, None, None]) + t[:, None, None]
  np.testing.assert_allclose(got, want, rtol=2e-3, atol=2e-4)


def test_pixel_norm_eps_inside_root():
  rng = np.random.default_rng(4)
  # Feature RMS of 1e-5, 1e-4 (mean square = eps = 1e-8) and 1 per row.
  x = rng.standard_normal((3, 8)).astype(np.float64)
  x /= np.sqrt((x ** 2).mean(axis=-1, keepdims=True))
  x = (x * np.array([[1e-5], [1e-4], [1.0]])).astype(np.float32)
  got = np.asarray(norms.PixelNorm().apply({}, jnp.asarray(x)), np.float64)
  x64 = x.astype(np.float64)
  want = x64 / np.sqrt((x64 ** 2).mean(axis=-1, keepdims=True) + 1e-8)
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-9)
  rms = np.sqrt((got ** 2).mean(axis=-1))
  np.testing.assert_allclose(rms, [np.sqrt(1 / 101), np.sqrt(0.5), 1.0], rtol=1e-3)


def _np_regional_in(x, s, beta, alpha, eps):
  x, s = x.astype(np.float64), s.astype(np.float64)
  b, h, w, c = x.shape
  n = s.shape[-1]
  xf, sf = x.reshape(b, h * w, c), s.reshape(b, h * w, n)
  out = np.zeros_like(xf)
  for i in range(n):
    wgt = sf[:, :, i:i + 1]
    mass = wgt.sum(axis=1, keepdims=True)
    mu = (wgt * xf).sum(axis=1, keepdims=True) / mass
    sigma = np.sqrt((wgt * (xf - mu) ** 2).sum(axis=1, keepdims=True) / mass)
    out += ((xf - mu) / (sigma + eps) * beta[i] + alpha[i]) * wgt
  return out.reshape(b, h, w, c)


@pytest.mark.parametrize("hard", [True, False])
def test_regional_instance_norm_eps_on_sigma_near_constant_regions(hard):
  rng = np.random.default_rng(5)
  b, h, w, c, n = 2, 4, 4, 3, 2
  # Region 0 (left half) is near-constant with sigma ~ eps, region 1 (right half) varies.
  # Both have mean 0.25: the one-pass variance is exact only to ~1e-7 (region mean - map
  # mean)^2 in float32 (see the function's docstring), so the regions share their mean here.
  def zero_mean(v):
    return v - v.mean(axis=(1, 2), keepdims=True)
  x = np.full((b, h, w, c), 0.25)
  x[:, :, :2] += zero_mean(rng.standard_normal((b, h, 2, c))) * EPS
  x[:, :, 2:] += zero_mean(rng.standard_normal((b, h, 2, c)))
  x = x.astype(np.float32)
  s = np.zeros((b, h, w, n))
  s[:, :, :2, 0] = s[:, :, 2:, 1] = 1.0
  if not hard:
    s = 0.9 * s + 0.1 * rng.uniform(size=s.shape)
  s = s.astype(np.float32)
  beta = rng.uniform(0.5, 1.5, (n, c)).astype(np.float32)
  alpha = rng.standard_normal((n, c)).astype(np.float32) * 0.1
  got = np.asarray(attentive_norm.regional_instance_norm(
      jnp.asarray(x), jnp.asarray(s), jnp.asarray(beta), jnp.asarray(alpha), epsilon=EPS),
                   np.float64)
  want = _np_regional_in(x, s, beta, alpha, EPS)
  np.testing.assert_allclose(got, want, rtol=2e-2, atol=2e-2)
  if hard:
    # In the near-constant region (x - mu) / (sigma + eps) is about half of (x - mu) / sigma.
    region0 = (got[:, :, :2] - alpha[0]) / beta[0]
    assert 0.3 < np.std(region0) < 0.8


def test_default_eps_values_are_documented_ones():
  x = _near_constant((1, 4, 4, 4), STDS, seed=6)
  got = np.asarray(lap.patch_instance_norm(jnp.asarray(x), (4, 4)), np.float64)
  np.testing.assert_allclose(got, _np_patch_in(x, 4, 4, 1e-5), rtol=2e-3, atol=2e-4)
  s = np.ones((1, 4, 4, 1), np.float32)
  beta, alpha = np.ones((1, 4), np.float32), np.zeros((1, 4), np.float32)
  got = np.asarray(attentive_norm.regional_instance_norm(jnp.asarray(x), jnp.asarray(s),
                                                         jnp.asarray(beta), jnp.asarray(alpha)))
  np.testing.assert_allclose(got, _np_regional_in(x, s, beta, alpha, 1e-5), rtol=2e-2,
                             atol=2e-3)


def test_patch_in_bfloat16_statistics_in_float32():
  # A large offset: bfloat16 statistics would lose the mean (bf16 spacing at 100 is 0.5);
  # float32 statistics keep the result within bfloat16 output rounding of the float64 answer.
  rng = np.random.default_rng(7)
  x16 = jnp.asarray(100.0 + 4.0 * rng.standard_normal((2, 8, 8, 3)), jnp.bfloat16)
  got = lap.patch_instance_norm(x16, (4, 4))
  assert got.dtype == jnp.bfloat16
  want = _np_patch_in(np.asarray(x16.astype(jnp.float32)), 4, 4, 1e-5)
  np.testing.assert_allclose(np.asarray(got.astype(jnp.float32)), want, rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("name", ["instance_norm", "adain"])
def test_default_epsilon_is_1e_5(name):
  # Near-constant maps, where eps decides the output: the default must act as 1e-5 exactly.
  x = jnp.asarray(_near_constant((2, 4, 4, 4), STDS, seed=4))
  style = jnp.asarray(np.random.default_rng(4).standard_normal((2, 3)), jnp.float32)
  inputs = (x,) if name == "instance_norm" else (x, style)
  make = norms.InstanceNorm if name == "instance_norm" else norms.AdaIN
  variables = make().init(jax.random.PRNGKey(0), *inputs)
  out = lambda **kw: np.asarray(make(**kw).apply(variables, *inputs))
  np.testing.assert_array_equal(out(), out(epsilon=1e-5))
  assert np.abs(out() - out(epsilon=2e-5)).max() > 1e-3
