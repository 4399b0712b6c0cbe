"""Tests for genattn_jax.layers.norms."""

import functools

from absl.testing import parameterized
import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from genattn_jax.layers import norms
from tests.layers._util import np_conv


def _np_instance_norm(x, eps):
  mean = x.mean(axis=(1, 2), keepdims=True)
  var = x.var(axis=(1, 2), keepdims=True)
  return (x - mean) / np.sqrt(var + eps)


def _np_batch_norm(x, eps):
  return (x - x.mean(axis=(0, 1, 2))) / np.sqrt(x.var(axis=(0, 1, 2)) + eps)


def _f64(tree):
  return jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), tree)


def _perturbed(params, seed=3, scale=0.3):
  leaves, tree = jax.tree_util.tree_flatten(params)
  keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
  return jax.tree_util.tree_unflatten(
      tree, [v + scale * jax.random.normal(k, v.shape) for v, k in zip(leaves, keys)])


def _train_apply(module, variables, *args):
  """Training-mode forward (batch statistics); returns the output only."""
  return module.apply(variables, *args, use_running_average=False,
                      mutable=["batch_stats"])[0]


def _top_singular_value(kernel):
  kernel = np.asarray(kernel, np.float64)
  return np.linalg.svd(kernel.reshape(-1, kernel.shape[-1]), compute_uv=False)[0]


class SpectralTest(parameterized.TestCase):

  @parameterized.named_parameters(
      ("conv", functools.partial(norms.SpectralConv, 6, (3, 3)), (2, 6, 5, 4), "conv"),
      ("dense", functools.partial(norms.SpectralDense, 7), (3, 5), "dense"),
      ("conv_transpose", functools.partial(norms.SpectralConvTranspose, 5, (3, 3), 2),
       (1, 4, 6, 3), "conv_transpose"),
  )
  def test_power_iteration_converges_to_top_singular_value(self, ctor, shape, inner):
    x = jax.random.normal(jax.random.PRNGKey(1), shape)
    module = ctor()
    variables = module.init(jax.random.PRNGKey(0), x)
    # Flax stores the kernel already normalised at init; re-scale it non-uniformly.
    kernel = variables["params"][inner]["kernel"]
    kernel = kernel * (1.0 + 2.0 * jnp.arange(kernel.shape[-1]) / kernel.shape[-1])
    params = {inner: {**variables["params"][inner], "kernel": kernel}}
    true_sigma = _top_singular_value(kernel)
    self.assertGreater(true_sigma, 1.5)

    step = jax.jit(functools.partial(module.apply, mutable=["batch_stats"]))
    stats = variables["batch_stats"]
    for _ in range(40):
      y, state = step({"params": params, "batch_stats": stats}, x)
      stats = state["batch_stats"]
    sigma = stats["sn"][f"{inner}/kernel/sigma"]
    np.testing.assert_allclose(sigma, true_sigma, rtol=1e-3)
    # The kernel actually used has largest singular value ~1.
    np.testing.assert_allclose(_top_singular_value(kernel / sigma), 1.0, rtol=1e-3)
    # The output equals the plain layer with the exactly normalised kernel.
    plain = {"conv": nn.Conv(6, (3, 3)), "dense": nn.Dense(7),
             "conv_transpose": nn.ConvTranspose(5, (3, 3), (2, 2))}[inner]
    expected = plain.apply({"params": {**params[inner], "kernel": kernel / true_sigma}}, x)
    chex.assert_trees_all_close(y, expected, atol=2e-4, rtol=2e-3)
    chex.assert_shape(y, expected.shape)

  def test_spectral_conv_matches_numpy(self):
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 5, 7, 3))
    module = norms.SpectralConv(4, (3, 3), n_steps=50)
    variables = module.init(jax.random.PRNGKey(0), x)
    params = _perturbed(variables["params"])
    y = module.apply({"params": params, "batch_stats": variables["batch_stats"]}, x)
    k = np.asarray(params["conv"]["kernel"], np.float64)
    ref = np_conv(np.asarray(x, np.float64), k / _top_singular_value(k),
                        np.asarray(params["conv"]["bias"], np.float64))
    np.testing.assert_allclose(y, ref, atol=1e-4, rtol=1e-4)

  def test_u_updates_only_when_batch_stats_mutable(self):
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 6, 6, 4))
    module = norms.SpectralConv(8, (3, 3))
    variables = module.init(jax.random.PRNGKey(0), x)
    variables = {**variables, "params": _perturbed(variables["params"])}
    u0 = variables["batch_stats"]["sn"]["conv/kernel/u"]

    y_frozen = module.apply(variables, x)  # immutable: nothing can be stored
    self.assertIsInstance(y_frozen, jax.Array)
    _, state = module.apply(variables, x, mutable=["batch_stats"])
    u1 = state["batch_stats"]["sn"]["conv/kernel/u"]
    self.assertGreater(float(jnp.max(jnp.abs(u1 - u0))), 1e-6)
    _, state = module.apply(variables, x, update_stats=False, mutable=["batch_stats"])
    chex.assert_trees_all_equal(state["batch_stats"], variables["batch_stats"])
    _, state = module.apply(variables, x, update_stats=True, mutable=["batch_stats"])
    chex.assert_trees_all_close(state["batch_stats"]["sn"]["conv/kernel/u"], u1)

  @parameterized.named_parameters(
      ("strided", dict(strides=(2, 2)), (1, 8, 6, 3)),
      ("valid_dilated", dict(padding="VALID", kernel_dilation=(2, 1)), (2, 8, 8, 3)),
      ("grouped_nobias", dict(feature_group_count=3, use_bias=False), (1, 4, 4, 3)),
  )
  def test_spectral_conv_is_drop_in_for_conv(self, kwargs, shape):
    x = jax.random.normal(jax.random.PRNGKey(1), shape)
    sn = norms.SpectralConv(features=6, kernel_size=(3, 3), **kwargs)
    plain = nn.Conv(features=6, kernel_size=(3, 3), **kwargs)
    variables = sn.init(jax.random.PRNGKey(0), x)
    chex.assert_trees_all_equal_shapes(
        variables["params"]["conv"], plain.init(jax.random.PRNGKey(0), x)["params"])
    chex.assert_equal_shape([sn.apply(variables, x), plain.apply(
        {"params": variables["params"]["conv"]}, x)])

  def test_bfloat16_and_grads(self):
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 4, 4, 3))
    module = norms.SpectralConv(4)
    variables = module.init(jax.random.PRNGKey(0), x)
    y16 = norms.SpectralConv(4, dtype=jnp.bfloat16).apply(variables, x.astype(jnp.bfloat16))
    self.assertEqual(y16.dtype, jnp.bfloat16)
    np.testing.assert_allclose(np.asarray(y16, np.float32), module.apply(variables, x),
                               atol=0.05, rtol=0.05)
    grads = jax.grad(lambda p: jnp.sum(module.apply(
        {"params": p, "batch_stats": variables["batch_stats"]}, x) ** 2))(variables["params"])
    chex.assert_tree_all_finite(grads)

  def test_bad_input_raises(self):
    with self.assertRaisesRegex(ValueError, "`x` must have rank 4"):
      norms.SpectralConv(4).init(jax.random.PRNGKey(0), jnp.zeros((4, 4, 3)))
    with self.assertRaisesRegex(ValueError, "n_steps"):
      norms.SpectralDense(4, n_steps=0).init(jax.random.PRNGKey(0), jnp.zeros((2, 3)))


class ConditionalBatchNormTest(parameterized.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_equals_batch_norm_at_init(self):
    x = 2.0 + 3.0 * jax.random.normal(jax.random.PRNGKey(1), (3, 4, 6, 5))
    y = jnp.array([0, 2, 2])
    cbn = norms.ConditionalBatchNorm(num_classes=4)
    bn = nn.BatchNorm(momentum=0.9, epsilon=1e-5)
    cvars = cbn.init(jax.random.PRNGKey(0), x, y)
    bvars = bn.init(jax.random.PRNGKey(0), x, use_running_average=False)
    out_c, st_c = self.variant(functools.partial(cbn.apply, mutable=["batch_stats"]))(
        cvars, x, y)
    out_b, st_b = bn.apply(bvars, x, use_running_average=False, mutable=["batch_stats"])
    chex.assert_trees_all_close(out_c, out_b, atol=1e-5)
    chex.assert_trees_all_close(st_c["batch_stats"]["bn"], st_b["batch_stats"])
    # Eval mode (immutable -> running averages) also matches.
    ev_c = self.variant(cbn.apply)({**cvars, **st_c}, x, y)
    ev_b = bn.apply({**bvars, **st_b}, x, use_running_average=True)
    chex.assert_trees_all_close(ev_c, ev_b, atol=1e-5)
    chex.assert_trees_all_close(cbn.apply({**cvars, **st_c}, x, y, True), ev_b, atol=1e-5)

  def test_matches_numpy_and_classes_differ(self):
    x = jax.random.normal(jax.random.PRNGKey(1), (4, 3, 5, 6))
    x = x.at[1].set(x[0])  # samples 0 and 1 are identical, with different labels
    y = jnp.array([1, 3, 1, 0])
    cbn = norms.ConditionalBatchNorm(num_classes=4, epsilon=1e-3)
    variables = cbn.init(jax.random.PRNGKey(0), x, y)
    params = _perturbed(variables["params"])
    out = _train_apply(cbn, {**variables, "params": params}, x, y)
    p = _f64(params)
    ref = (_np_batch_norm(np.asarray(x, np.float64), 1e-3)
           * p["gamma_embedding"][np.asarray(y)][:, None, None, :]
           + p["beta_embedding"][np.asarray(y)][:, None, None, :])
    np.testing.assert_allclose(out, ref, atol=1e-5, rtol=1e-5)
    self.assertGreater(float(jnp.max(jnp.abs(out[0] - out[1]))), 1e-2)
    # Soft (one-hot) labels give the same result as integer labels.
    soft = jax.nn.one_hot(y, 4)
    out_soft = _train_apply(cbn, {**variables, "params": params}, x, soft)
    chex.assert_trees_all_close(out_soft, out, atol=1e-6)
    grads = jax.grad(lambda q: jnp.sum(jnp.sin(_train_apply(
        cbn, {**variables, "params": q}, x, y))))(params)
    chex.assert_tree_all_finite(grads)
    # Only the rows of the classes present receive gradient.
    row_norm = jnp.abs(grads["gamma_embedding"]).sum(-1)
    self.assertEqual(float(row_norm[2]), 0.0)
    self.assertGreater(float(row_norm[1]), 0.0)

  def test_axis_name_averages_statistics_across_replicas(self):
    x = jax.random.normal(jax.random.PRNGKey(1), (8, 2, 3, 4)) * jnp.arange(1, 9)[:, None,
                                                                                None, None]
    y = jnp.arange(8) % 3
    synced = norms.ConditionalBatchNorm(num_classes=3, axis_name="replica")
    variables = synced.init(jax.random.PRNGKey(0), x, y)
    params = _perturbed(variables["params"])
    full = _train_apply(norms.ConditionalBatchNorm(num_classes=3),
                        {**variables, "params": params}, x, y)
    per_replica = jax.vmap(
        lambda xs, ys: _train_apply(synced, {**variables, "params": params}, xs, ys),
        axis_name="replica")(x.reshape(4, 2, 2, 3, 4), y.reshape(4, 2))
    chex.assert_trees_all_close(per_replica.reshape(full.shape), full, atol=1e-5)

  def test_bfloat16(self):
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 4, 4, 3))
    y = jnp.array([0, 1])
    module = norms.ConditionalBatchNorm(2, dtype=jnp.bfloat16)
    variables = module.init(jax.random.PRNGKey(0), x, y)
    out = _train_apply(module, variables, x.astype(jnp.bfloat16), y)
    self.assertEqual(out.dtype, jnp.bfloat16)
    # Against float32 on the same (bfloat16-rounded) input: bfloat16 keeps ~3 significant
    # digits, so 0.05 absolute / relative on unit-scale normalised outputs.
    ref = _train_apply(norms.ConditionalBatchNorm(2), variables,
                       x.astype(jnp.bfloat16).astype(jnp.float32), y)
    np.testing.assert_allclose(np.asarray(out, np.float32), ref, atol=0.05, rtol=0.05)

  @parameterized.named_parameters(
      ("wrong_batch", (3,), jnp.int32, "`y` must have shape"),
      ("float_1d", (2,), jnp.float32, "`y` must be int labels"),
      ("soft_wrong_classes", (2, 3), jnp.float32, "num_classes"),
  )
  def test_bad_labels_raise(self, y_shape, y_dtype, message):
    with self.assertRaisesRegex(ValueError, message):
      norms.ConditionalBatchNorm(4).init(jax.random.PRNGKey(0), jnp.zeros((2, 4, 4, 3)),
                                         jnp.zeros(y_shape, y_dtype))


class SPADETest(parameterized.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.named_parameters(
      ("instance_same_size", "instance", (2, 6, 4, 5), 1),
      ("batch_segmap_twice_as_large", "batch", (3, 4, 6, 2), 2),
  )
  def test_matches_numpy(self, norm, shape, factor):
    b, h, w, c = shape
    labels = 3
    seg = jax.nn.one_hot(
        jax.random.randint(jax.random.PRNGKey(2), (b, h * factor, w * factor), 0, labels),
        labels)
    x = jax.random.normal(jax.random.PRNGKey(1), shape)
    module = norms.SPADE(hidden_features=4, norm=norm)
    variables = module.init(jax.random.PRNGKey(0), x, seg)
    params = _perturbed(variables["params"])
    out = self.variant(functools.partial(_train_apply, module))(
        {**variables, "params": params}, x, seg)
    chex.assert_shape(out, shape)
    p = _f64(params)
    xd = np.asarray(x, np.float64)
    xn = _np_instance_norm(xd, 1e-5) if norm == "instance" else _np_batch_norm(xd, 1e-5)
    # PyTorch's F.interpolate(mode='nearest'), which SPADE uses, picks source pixel
    # floor(i · in / out) = factor · i.
    m = np.asarray(seg, np.float64)[:, ::factor, ::factor]
    actv = np.maximum(np_conv(m, p["shared"]["kernel"], p["shared"]["bias"]), 0)
    gamma = np_conv(actv, p["gamma"]["kernel"], p["gamma"]["bias"])
    beta = np_conv(actv, p["beta"]["kernel"], p["beta"]["bias"])
    np.testing.assert_allclose(out, xn * (1 + gamma) + beta, atol=1e-4, rtol=1e-4)

  def test_batch_mode_follows_mutability_and_grads_finite(self):
    x = 1.0 + jax.random.normal(jax.random.PRNGKey(1), (2, 4, 4, 3))
    seg = jnp.ones((2, 4, 4, 2))
    module = norms.SPADE(hidden_features=4)
    variables = module.init(jax.random.PRNGKey(0), x, seg)
    train_out, state = module.apply(variables, x, seg, mutable=["batch_stats"])
    self.assertGreater(float(jnp.abs(state["batch_stats"]["bn"]["mean"]).max()), 0.05)
    chex.assert_trees_all_close(
        train_out, _train_apply(module, variables, x, seg))
    eval_out = module.apply(variables, x, seg)  # immutable -> running averages
    chex.assert_trees_all_close(
        eval_out, module.apply(variables, x, seg, use_running_average=True))
    self.assertGreater(float(jnp.abs(eval_out - train_out).max()), 0.1)
    grads = jax.grad(lambda p: jnp.sum(_train_apply(
        module, {**variables, "params": p}, x, seg) ** 2))(variables["params"])
    chex.assert_tree_all_finite(grads)

  def test_bfloat16_and_spectral_conv(self):
    x = jax.random.normal(jax.random.PRNGKey(1), (1, 4, 4, 3))
    seg = jnp.ones((1, 8, 8, 2))
    module = norms.SPADE(hidden_features=4, norm="instance", conv=norms.SpectralConv,
                         dtype=jnp.bfloat16)
    variables = module.init(jax.random.PRNGKey(0), x, seg)
    self.assertEqual(set(variables["batch_stats"]), {"shared", "gamma", "beta"})
    out = module.apply(variables, x.astype(jnp.bfloat16), seg)
    self.assertEqual(out.dtype, jnp.bfloat16)
    chex.assert_shape(out, x.shape)
    ref = module.clone(dtype=None).apply(variables, x.astype(jnp.bfloat16).astype(jnp.float32),
                                         seg)
    np.testing.assert_allclose(np.asarray(out, np.float32), ref, atol=0.05, rtol=0.05)

  @parameterized.named_parameters(
      ("batch_mismatch", (2, 4, 4, 3), (1, 4, 4, 2), {}, "`segmap` batch"),
      ("segmap_rank", (2, 4, 4, 3), (2, 4, 4), {}, "`segmap` must have rank 4"),
      ("even_kernel", (2, 4, 4, 3), (2, 4, 4, 2), dict(kernel_size=2), "kernel_size"),
      ("unknown_norm", (2, 4, 4, 3), (2, 4, 4, 2), dict(norm="layer"), "norm"),
  )
  def test_bad_input_raises(self, x_shape, seg_shape, kwargs, message):
    with self.assertRaisesRegex(ValueError, message):
      norms.SPADE(**kwargs).init(jax.random.PRNGKey(0), jnp.zeros(x_shape),
                                 jnp.zeros(seg_shape))


class AdaINPixelInstanceNormTest(parameterized.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.named_parameters(("square", (2, 4, 4, 3)), ("nonsquare_b3", (3, 4, 6, 5)))
  def test_adain_matches_numpy(self, shape):
    x = jax.random.normal(jax.random.PRNGKey(1), shape)
    style = jax.random.normal(jax.random.PRNGKey(2), (shape[0], 7))
    module = norms.AdaIN()
    variables = module.init(jax.random.PRNGKey(0), x, style)
    params = _perturbed(variables["params"])
    out = self.variant(module.apply)({"params": params}, x, style)
    p = _f64(params)["style_affine"]
    st = np.asarray(style, np.float64) @ p["kernel"] + p["bias"]
    scale, shift = st[:, :shape[-1]], st[:, shape[-1]:]
    ref = (_np_instance_norm(np.asarray(x, np.float64), 1e-5) * (1 + scale[:, None, None])
           + shift[:, None, None])
    np.testing.assert_allclose(out, ref, atol=1e-5, rtol=1e-5)

  def test_adain_bfloat16_grads_and_bad_style(self):
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 4, 4, 3))
    style = jnp.ones((2, 5))
    module = norms.AdaIN(dtype=jnp.bfloat16)
    variables = module.init(jax.random.PRNGKey(0), x, style)
    out = module.apply(variables, x.astype(jnp.bfloat16), style)
    self.assertEqual(out.dtype, jnp.bfloat16)
    ref = norms.AdaIN().apply(variables, x.astype(jnp.bfloat16).astype(jnp.float32), style)
    np.testing.assert_allclose(np.asarray(out, np.float32), ref, atol=0.05, rtol=0.05)
    grads = jax.grad(lambda p, s: jnp.sum(norms.AdaIN().apply(p, x, s) ** 2),
                     argnums=(0, 1))(variables, style)
    chex.assert_tree_all_finite(grads)
    with self.assertRaisesRegex(ValueError, "`style` must have rank 2"):
      module.init(jax.random.PRNGKey(0), x, jnp.ones((2, 1, 5)))
    with self.assertRaisesRegex(ValueError, "`style` batch"):
      module.init(jax.random.PRNGKey(0), x, jnp.ones((3, 5)))

  @parameterized.named_parameters(
      ("map_f32", (2, 4, 6, 8), jnp.float32),
      ("latent_bf16", (3, 16), jnp.bfloat16),
  )
  def test_pixel_norm_unit_rms(self, shape, dtype):
    x = (5.0 * jax.random.normal(jax.random.PRNGKey(1), shape)).astype(dtype)
    out = jax.jit(norms.PixelNorm().apply)({}, x)
    self.assertEqual(out.dtype, dtype)
    chex.assert_shape(out, shape)
    rms = np.sqrt(np.mean(np.asarray(out, np.float64) ** 2, axis=-1))
    np.testing.assert_allclose(rms, 1.0, rtol=1e-2 if dtype == jnp.bfloat16 else 1e-6)
    xd = np.asarray(x, np.float64)
    ref = xd / np.sqrt(np.mean(xd ** 2, axis=-1, keepdims=True) + 1e-8)
    np.testing.assert_allclose(np.asarray(out, np.float64), ref,
                               rtol=1e-2 if dtype == jnp.bfloat16 else 1e-6)
    with self.assertRaisesRegex(ValueError, "`x` must have rank >= 2"):
      norms.PixelNorm().apply({}, jnp.ones((4,)))

  def test_instance_norm_matches_numpy(self):
    x = 3.0 + jax.random.normal(jax.random.PRNGKey(1), (3, 4, 6, 2))
    module = norms.InstanceNorm()
    variables = module.init(jax.random.PRNGKey(0), x)
    params = _perturbed(variables["params"])
    out = module.apply({"params": params}, x)
    p = _f64(params)["norm"]
    ref = _np_instance_norm(np.asarray(x, np.float64), 1e-5) * p["scale"] + p["bias"]
    np.testing.assert_allclose(out, ref, atol=1e-5, rtol=1e-5)
    free = norms.InstanceNorm(use_scale=False, use_bias=False)
    self.assertEqual(free.init(jax.random.PRNGKey(0), x), {})
    out16 = free.apply({}, x.astype(jnp.bfloat16))
    self.assertEqual(out16.dtype, jnp.bfloat16)
    with self.assertRaisesRegex(ValueError, "`x` must have rank 4"):
      module.init(jax.random.PRNGKey(0), jnp.ones((4, 6, 2)))
