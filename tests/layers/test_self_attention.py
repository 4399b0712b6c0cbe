"""Tests for genattn_jax.layers.self_attention (SAGAN self-attention)."""

import functools

from absl.testing import parameterized
import chex
import jax
import jax.numpy as jnp
import numpy as np

from genattn_jax.layers.norms import SpectralConv
from genattn_jax.layers.self_attention import MemoryEfficientSelfAttention, SelfAttention


def _np_sagan(params, x):
  """Independent float64 NumPy re-computation of the SAGAN block."""
  p = {"/".join(e.key for e in path): np.asarray(leaf, np.float64)
       for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]}
  x = np.asarray(x, np.float64)
  b, h, w, c = x.shape

  def conv1x1(name, t):
    out = t @ p[f"{name}/kernel"][0, 0]
    return out + p[f"{name}/bias"] if f"{name}/bias" in p else out

  def pool(t):
    return t.reshape(b, h // 2, 2, w // 2, 2, -1).max(axis=(2, 4))

  theta = conv1x1("theta", x).reshape(b, h * w, -1)
  phi = pool(conv1x1("phi", x)).reshape(b, h * w // 4, -1)
  g = pool(conv1x1("g", x)).reshape(b, h * w // 4, -1)
  logits = np.einsum("bnc,bmc->bnm", theta, phi)
  logits -= logits.max(axis=-1, keepdims=True)
  beta = np.exp(logits)
  beta /= beta.sum(axis=-1, keepdims=True)
  o = conv1x1("o", (beta @ g).reshape(b, h, w, c // 2))
  return x + p["gamma"] * o


def _init_with_gamma(module, x, gamma=0.7, seed=0):
  variables = module.init(jax.random.PRNGKey(seed), x)
  params = dict(variables["params"])
  params["gamma"] = jnp.asarray(gamma, jnp.float32)
  return {**variables, "params": params}


class SelfAttentionTest(parameterized.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_identity_at_init_and_not_after_gamma_change(self):
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 8, 8, 16))
    module = SelfAttention()
    variables = module.init(jax.random.PRNGKey(0), x)
    apply = self.variant(module.apply)
    np.testing.assert_array_equal(variables["params"]["gamma"], 0.0)
    chex.assert_trees_all_close(apply(variables, x), x, atol=0, rtol=0)
    changed = {"params": {**variables["params"], "gamma": jnp.float32(0.5)}}
    y = apply(changed, x)
    chex.assert_shape(y, x.shape)
    self.assertGreater(float(jnp.max(jnp.abs(y - x))), 1e-3)

  @parameterized.named_parameters(
      ("square_b2", (2, 8, 8, 16), False),
      ("nonsquare_b1_bias", (1, 8, 12, 8), True),
      ("odd_batch_tall", (3, 12, 4, 16), False),
  )
  def test_matches_numpy(self, shape, use_bias):
    x = jax.random.normal(jax.random.PRNGKey(2), shape)
    module = SelfAttention(use_bias=use_bias)
    variables = _init_with_gamma(module, x)
    if use_bias:  # make the biases non-zero so that they are exercised
      variables = jax.tree_util.tree_map_with_path(
          lambda path, v: v + 0.3 if "bias" in jax.tree_util.keystr(path) else v, variables)
    y = module.apply(variables, x)
    chex.assert_shape(y, shape)
    np.testing.assert_allclose(y, _np_sagan(variables["params"], x), rtol=1e-5, atol=1e-5)

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.named_parameters(
      ("square_auto_chunks", (2, 8, 8, 16), dict(max_chunk_logits=2 * 16 * 7)),
      ("nonsquare_explicit_chunk", (1, 8, 12, 8), dict(query_chunk_size=5)),
      ("odd_batch_one_chunk", (3, 4, 6, 8), dict()),
  )
  def test_memory_efficient_equals_full(self, shape, kwargs):
    x = jax.random.normal(jax.random.PRNGKey(3), shape)
    full = SelfAttention()
    efficient = MemoryEfficientSelfAttention(**kwargs)
    variables = _init_with_gamma(full, x, gamma=1.3)
    # Same parameter tree: variables from one module work in the other.
    chex.assert_trees_all_equal_shapes_and_dtypes(
        variables, _init_with_gamma(efficient, x))
    y_full = full.apply(variables, x)
    y_eff = self.variant(efficient.apply)(variables, x)
    chex.assert_trees_all_close(y_eff, y_full, atol=1e-5, rtol=1e-5)

  def test_memory_efficient_grads_match_and_are_finite(self):
    x = jax.random.normal(jax.random.PRNGKey(4), (2, 4, 8, 8))
    full = SelfAttention()
    efficient = MemoryEfficientSelfAttention(query_chunk_size=3)
    variables = _init_with_gamma(full, x, gamma=0.9)

    def loss(module, params, inp):
      return jnp.sum(jnp.sin(module.apply({"params": params}, inp)))

    g_full = jax.jit(jax.grad(functools.partial(loss, full), argnums=(0, 1)))(
        variables["params"], x)
    g_eff = jax.jit(jax.grad(functools.partial(loss, efficient), argnums=(0, 1)))(
        variables["params"], x)
    chex.assert_tree_all_finite(g_full)
    chex.assert_trees_all_close(g_eff, g_full, atol=1e-4, rtol=1e-4)
    # Every parameter, gamma included, receives a non-zero gradient.
    for leaf in jax.tree_util.tree_leaves(g_full[0]):
      self.assertGreater(float(jnp.max(jnp.abs(leaf))), 0.0)

  @parameterized.parameters(SelfAttention, MemoryEfficientSelfAttention)
  def test_bfloat16(self, cls):
    x = jax.random.normal(jax.random.PRNGKey(5), (1, 8, 8, 16))
    variables = _init_with_gamma(cls(), x, gamma=0.8)
    y32 = cls().apply(variables, x)
    y16 = jax.jit(cls(dtype=jnp.bfloat16).apply)(variables, x.astype(jnp.bfloat16))
    self.assertEqual(y16.dtype, jnp.bfloat16)
    chex.assert_tree_all_finite(y16)
    np.testing.assert_allclose(np.asarray(y16, np.float32), y32, atol=0.1, rtol=0.05)

  def test_spectral_conv_injection(self):
    x = jax.random.normal(jax.random.PRNGKey(6), (2, 4, 4, 8))
    module = SelfAttention(conv=SpectralConv)
    variables = _init_with_gamma(module, x, gamma=1.0)
    self.assertEqual(set(variables["batch_stats"]), {"theta", "phi", "g", "o"})
    # Make the stored kernels non-normalised; spectral norm must undo the scaling.
    scaled = jax.tree_util.tree_map(lambda v: 4.0 * v if v.ndim == 4 else v,
                                    variables["params"])
    y = module.apply({**variables, "params": scaled}, x)
    y_ref = module.apply(variables, x)
    chex.assert_trees_all_close(y, y_ref, atol=1e-4, rtol=1e-4)
    # Efficient version shares the tree with spectral convs too.
    y_eff = MemoryEfficientSelfAttention(conv=SpectralConv, query_chunk_size=4).apply(
        variables, x)
    chex.assert_trees_all_close(y_eff, y_ref, atol=1e-5, rtol=1e-5)

  @parameterized.named_parameters(
      ("channels", (1, 8, 8, 12), "channels of x"),
      ("odd_height", (1, 7, 8, 16), "height of x"),
      ("odd_width", (1, 8, 5, 16), "width of x"),
      ("rank3", (8, 8, 16), "`x` must have rank 4"),
  )
  def test_bad_input_raises(self, shape, message):
    for cls in (SelfAttention, MemoryEfficientSelfAttention):
      with self.assertRaisesRegex(ValueError, message):
        cls().init(jax.random.PRNGKey(0), jnp.zeros(shape))
