"""Tests of LGGAN's local class-specific generation, classification and fusion."""

import functools

from absl.testing import parameterized
import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genattn_jax.layers import lggan
from genattn_jax.layers import lggan_fusion
from tests.layers._util import np_conv, np_normal, np_random_init

K = 4  # classes
N = 3  # feature channels


def np_local_generation(params, features, masks, fusion):
  """Per-class loop of Eq. 1 and the branch convs, then Eq. 3 or Eq. 4."""
  features = np.asarray(features, np.float64)
  branch = params["branches"]["conv_out"]
  class_images = []
  for k in range(masks.shape[-1]):
    filtered = features * masks[..., k:k + 1]  # Eq. 1
    class_images.append(np.tanh(np_conv(filtered, branch["kernel"][k], branch["bias"][k],
                                        mode="reflect")))
  if fusion == "sum":
    local = sum(class_images)
  else:
    fuse = params["fuse"]
    local = np.tanh(np_conv(np.concatenate(class_images, -1), fuse["kernel"], fuse["bias"]))
  return local, np.stack(class_images, axis=1)


def np_merge(masks, m):
  """Classes >= m share one merged mask (the authors' ADE20K local branches)."""
  return np.concatenate([masks[..., :m], masks[..., m:].sum(-1, keepdims=True)], -1)


def np_conv_transpose_torch(x, kernel, bias, stride, padding, output_padding):
  """Scatter form of PyTorch's ConvTranspose2d: input pixel i adds
  `x[i] * weight[u]` to output `stride * i + u - padding`; the output keeps
  `(H - 1) * stride - 2 * padding + k + output_padding` rows (likewise
  columns). `weight` is the Flax kernel flipped in space."""
  x = np.asarray(x, np.float64)
  weight = np.asarray(kernel, np.float64)[::-1, ::-1]
  b, h, w, _ = x.shape
  kh, kw, _, cout = weight.shape
  full = np.zeros((b, (h - 1) * stride + kh + output_padding,
                   (w - 1) * stride + kw + output_padding, cout))
  for i in range(h):
    for j in range(w):
      full[:, stride * i:stride * i + kh, stride * j:stride * j + kw] += np.einsum(
          "bc,uvco->buvo", x[:, i, j], weight)
  oh = (h - 1) * stride - 2 * padding + kh + output_padding
  ow = (w - 1) * stride - 2 * padding + kw + output_padding
  return full[:, padding:padding + oh, padding:padding + ow] + np.asarray(bias, np.float64)


def np_instance_norm(x, eps=1e-5):
  mean = x.mean(axis=(1, 2), keepdims=True)
  var = x.var(axis=(1, 2), keepdims=True)
  return (x - mean) / np.sqrt(var + eps)


def np_log_softmax(z):
  z = z - z.max(-1, keepdims=True)
  return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _uniform(seed, shape):
  """Uniform [-1, 1) float32 input drawn with NumPy (no PRNG compile)."""
  return jnp.asarray(np.random.default_rng(seed).uniform(-1, 1, shape), jnp.float32)


def _inputs(seed, batch, h, w, absent=None):
  """Features [B, H, W, N] and int labels [B, H, W] in [0, K), with class
  `absent` removed from sample 0 when given."""
  rng = np.random.default_rng(seed)
  features = jnp.asarray(rng.standard_normal((batch, h, w, N)), jnp.float32)
  labels = rng.integers(0, K, (batch, h, w))
  labels[:, 0, :K] = np.arange(K)  # every class present...
  if absent is not None:
    labels[0][labels[0] == absent] = (absent + 1) % K  # ...except `absent` in sample 0
  return features, jnp.asarray(labels, jnp.int32)


def _one_hot(labels):
  return np.eye(K, dtype=np.float32)[np.asarray(labels)]


class ClassSpecificLocalGenerationTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.named_parameters(
      ("sum_square_b1_int", "sum", 1, 8, 8, False, None, None),
      ("conv_nonsquare_b3_onehot", "conv", 3, 8, 12, True, None, None),
      ("conv_chunk3_of_4_padded", "conv", 2, 8, 12, False, 3, None),
      ("sum_merged_top2_chunk2", "sum", 2, 8, 8, True, 2, 2))
  def test_matches_per_class_numpy_loop(self, fusion, batch, h, w, one_hot, chunk, top):
    features, labels = _inputs(0, batch, h, w)
    label_input = jnp.asarray(_one_hot(labels)) if one_hot else labels
    module = lggan.ClassSpecificLocalGeneration(num_classes=K, fusion=fusion, kernel_size=5,
                                                class_chunk_size=chunk, max_local_classes=top)
    params = np_random_init(module, features, label_input)["params"]
    local, class_images = self.variant(
        lambda p, f, l: module.apply({"params": p}, f, l))(params, features, label_input)
    branches = K if top is None else top + 1
    chex.assert_shape(local, (batch, h, w, 3))
    chex.assert_shape(class_images, (batch, branches, h, w, 3))
    masks = _one_hot(labels) if top is None else np_merge(_one_hot(labels), top)
    ref_local, ref_class = np_local_generation(params, features, masks, fusion)
    chex.assert_trees_all_close(np.asarray(class_images), ref_class, atol=1e-5)
    chex.assert_trees_all_close(np.asarray(local), ref_local, atol=1e-5)

  def test_branches_have_independent_params(self):
    features, labels = _inputs(1, 2, 8, 12)
    module = lggan.ClassSpecificLocalGeneration(num_classes=K, hidden_features=(2,),
                                                kernel_size=3)
    params = np_random_init(module, features, labels)["params"]
    kernels = params["branches"]["conv_out"]["kernel"]
    chex.assert_shape(kernels, (K, 3, 3, 2, 3))
    chex.assert_shape(params["branches"]["conv_0"]["kernel"], (K, 3, 3, N, 2))
    # The real initialiser gives every class its own draw (split 'params' rngs).
    tiny = lggan.ClassSpecificLocalGeneration(num_classes=K, kernel_size=1, fusion="sum")
    init_kernels = jax.jit(tiny.init)(
        jax.random.PRNGKey(0), features[:1, :4, :4], labels[:1, :4, :4])["params"]
    init_kernels = init_kernels["branches"]["conv_out"]["kernel"]
    chex.assert_shape(init_kernels, (K, 1, 1, N, 3))
    for k in range(1, K):
      assert not np.allclose(init_kernels[0], init_kernels[k])
    # Chunked with remat: same values and gradients as all classes at once.
    chunked = module.clone(class_chunk_size=3)

    def loss(m, p):
      local, class_images = m.apply({"params": p}, features, labels)
      return jnp.mean(local ** 2) + jnp.mean(class_images ** 2)

    g_all = jax.jit(jax.grad(functools.partial(loss, module)))(params)
    g_chunk = jax.jit(jax.grad(functools.partial(loss, chunked)))(params)
    chex.assert_trees_all_close(g_chunk, g_all, atol=1e-6)
    apply = jax.jit(module.apply)
    _, before = apply({"params": params}, features, labels)
    k = 2
    perturbed = jax.tree_util.tree_map(lambda x: x, params)
    perturbed["branches"]["conv_0"]["kernel"] = (
        params["branches"]["conv_0"]["kernel"].at[k].add(0.5))
    _, after = apply({"params": perturbed}, features, labels)
    changed = np.abs(np.asarray(after - before)).max(axis=(0, 2, 3, 4)) > 1e-6
    np.testing.assert_array_equal(changed, np.arange(K) == k)

  def test_gradients_finite_and_bfloat16(self):
    features, labels = _inputs(2, 3, 8, 12)
    module = lggan.ClassSpecificLocalGeneration(num_classes=K, kernel_size=3)
    params = np_random_init(module, features, labels)["params"]

    def loss(p, f):
      local, class_images = module.apply({"params": p}, f, labels)
      return jnp.mean(local ** 2) + jnp.mean(class_images ** 2)

    grads = jax.jit(jax.grad(loss, argnums=(0, 1)))(params, features)
    chex.assert_tree_all_finite(grads)
    # Every class is present, so every branch gets a gradient.
    branch_grad = np.abs(np.asarray(grads[0]["branches"]["conv_out"]["kernel"]))
    assert np.all(branch_grad.max(axis=(1, 2, 3, 4)) > 0)
    bf16 = module.clone(dtype=jnp.bfloat16)
    local, class_images = jax.jit(bf16.apply)({"params": params},
                                              features.astype(jnp.bfloat16), labels)
    assert local.dtype == jnp.bfloat16 and class_images.dtype == jnp.bfloat16
    chex.assert_tree_all_finite((local, class_images))
    ref, _ = jax.jit(module.apply)({"params": params}, features, labels)
    chex.assert_trees_all_close(local.astype(jnp.float32), ref, atol=0.05)

  @parameterized.named_parameters(
      ("features_rank", lambda f, l: (f[0], l), "`features` must have rank 4"),
      ("int_labels_rank", lambda f, l: (f, l[..., None]), "`labels` must have rank 3"),
      ("labels_size", lambda f, l: (f, l[:, :, :-1]), r"`labels` has \[B, H, W\]"),
      ("labels_batch", lambda f, l: (f, l[:1]), r"`labels` has \[B, H, W\]"),
      ("num_classes", lambda f, l: (f, np.eye(K + 1, dtype=np.float32)[l]), "`labels` has 5 class"),
  )
  def test_bad_input(self, make, message):
    features, labels = _inputs(3, 2, 8, 8)
    module = lggan.ClassSpecificLocalGeneration(num_classes=K, kernel_size=3)
    with pytest.raises(ValueError, match=message):
      module.init(jax.random.PRNGKey(0), *make(features, labels))

  def test_bad_fusion(self):
    features, labels = _inputs(3, 2, 8, 8)
    module = lggan.ClassSpecificLocalGeneration(num_classes=K, fusion="max")
    with pytest.raises(ValueError, match="`fusion` must be one of"):
      module.init(jax.random.PRNGKey(0), features, labels)


class LabelMasksTest(parameterized.TestCase):

  def test_int_ids_out_of_range_are_void(self):
    labels = jnp.array([[[0, 3], [-1, 255]]], jnp.int32)
    masks = lggan.label_masks(labels, K)
    chex.assert_shape(masks, (1, 2, 2, K))
    np.testing.assert_array_equal(masks.sum(-1), [[[1, 1], [0, 0]]])
    np.testing.assert_array_equal(masks[0, 0, 1], [0, 0, 0, 1])


class SemanticClassificationTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.named_parameters(
      ("mask_pool_b3", "mask", 3, 8, 12, None), ("default_global_pool_b1", None, 1, 8, 8, None),
      ("global_pool_merged_top3", "global", 2, 8, 8, 3))
  def test_matches_numpy(self, pooling, batch, h, w, top):
    features, labels = _inputs(4, batch, h, w, absent=1)
    kwargs = {} if pooling is None else {"pooling": pooling}
    module = lggan_fusion.SemanticClassificationModule(num_classes=K, max_local_classes=top, **kwargs)
    pooling = pooling or "global"  # Eq. 5 as the authors' code computes it
    params = np_random_init(module, features, labels)["params"]
    loss, logits = self.variant(
        lambda p, f, l: module.apply({"params": p}, f, l))(params, features, labels)
    branches = K if top is None else top + 1
    chex.assert_shape(logits, (batch, branches, branches))
    chex.assert_shape(loss, ())
    masks = _one_hot(labels) if top is None else np_merge(_one_hot(labels), top)
    pack = np.asarray(features)[:, None] * np.moveaxis(masks, -1, 1)[..., None]  # F_k
    area = masks.sum(axis=(1, 2))
    denom = np.maximum(area, 1) if pooling == "mask" else np.full_like(area, h * w)
    pooled = pack.sum(axis=(2, 3)) / denom[..., None]
    dense = params["classifier"]
    ref_logits = pooled @ np.asarray(dense["kernel"]) + np.asarray(dense["bias"])
    chex.assert_trees_all_close(np.asarray(logits), ref_logits, atol=1e-5)
    log_p = np_log_softmax(ref_logits.astype(np.float64))
    ce = -np.stack([log_p[:, k, k] for k in range(branches)], axis=1)  # [B, K'], target k
    present = area > 0
    assert not present[0, 1] and present.sum() == batch * branches - 1
    ref_loss = (ce * present).sum() / present.sum()
    np.testing.assert_allclose(float(loss), ref_loss, rtol=1e-5)
    # The pre-filtered pack [B, K, H, W, N] gives the same result.
    loss_pack, logits_pack = jax.jit(module.apply)({"params": params}, jnp.asarray(pack), labels)
    chex.assert_trees_all_close((loss_pack, logits_pack), (loss, logits), atol=1e-5)

  def test_absent_class_logits_do_not_count(self):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, K, K)).astype(np.float32)
    present = np.ones((2, K), bool)
    present[0, 1] = False
    present[1, 3] = False
    loss = lggan_fusion.filtered_class_cross_entropy(logits, present)
    garbage = logits.copy()
    garbage[0, 1] = rng.normal(size=K) * 100.0
    garbage[1, 3] = rng.normal(size=K) * 100.0
    np.testing.assert_allclose(lggan_fusion.filtered_class_cross_entropy(garbage, present), loss,
                               rtol=1e-6)
    changed = logits.copy()
    changed[0, 2] += rng.normal(size=K) * 10.0  # a present class does count
    assert abs(float(lggan_fusion.filtered_class_cross_entropy(changed, present)) - float(loss)) > 1e-3
    assert float(lggan_fusion.filtered_class_cross_entropy(logits, np.zeros((2, K)))) == 0.0

  def test_axis_name_averages_over_the_global_batch(self):
    # Two devices with unequal counts of present classes: the pmean of the per-device values
    # is the mean over the global batch's present rows (not the mean of per-device means).
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(4, K, K)).astype(np.float32)
    present = np.ones((4, K), bool)
    present[:2, 1:] = False  # device 0 counts 2 rows, device 1 counts 2 * K
    per_device = jax.pmap(
        lambda l, p: jax.lax.pmean(lggan_fusion.filtered_class_cross_entropy(l, p, "d"), "d"),
        axis_name="d", devices=jax.devices()[:2])(logits.reshape(2, 2, K, K),
                                                   present.reshape(2, 2, K))
    want = lggan_fusion.filtered_class_cross_entropy(logits, present)
    np.testing.assert_allclose(np.asarray(per_device), [want, want], rtol=1e-5)

  def test_gradients_finite(self):
    features, labels = _inputs(5, 3, 8, 12, absent=2)
    module = lggan_fusion.SemanticClassificationModule(num_classes=K)
    params = np_random_init(module, features, labels)["params"]
    grads = jax.jit(jax.grad(lambda p, f: module.apply({"params": p}, f, labels)[0],
                             argnums=(0, 1)))(params, features)
    chex.assert_tree_all_finite(grads)

  @parameterized.named_parameters(
      ("features_rank", lambda f: f[0], "`features` must have rank 4"),
      ("pack_classes", lambda f: jnp.zeros((2, K + 1, 8, 8, N)), "pack has 5 classes"),
  )
  def test_bad_input(self, make, message):
    features, labels = _inputs(6, 2, 8, 8)
    module = lggan_fusion.SemanticClassificationModule(num_classes=K)
    with pytest.raises(ValueError, match=message):
      module.init(jax.random.PRNGKey(0), make(features), labels)


class ClassMaskedL1Test(parameterized.TestCase):

  def test_matches_numpy(self):
    _, labels = _inputs(7, 3, 8, 12)
    target = _uniform(1, (3, 8, 12, 3))
    class_images = _uniform(2, (3, K, 8, 12, 3))
    loss = jax.jit(lggan.class_masked_l1)(target, class_images, labels)
    masks = _one_hot(labels)
    ref = sum(np.mean(np.abs(np.asarray(target) * masks[..., k:k + 1]
                             - np.asarray(class_images[:, k]))) for k in range(K))
    np.testing.assert_allclose(float(loss), ref, rtol=1e-5)
    loss_one_hot = lggan.class_masked_l1(target, class_images, jnp.asarray(masks))
    np.testing.assert_allclose(float(loss_one_hot), ref, rtol=1e-5)
    # Perfect class images (the masked target itself) give zero loss.
    perfect = jnp.moveaxis(jnp.asarray(masks), -1, 1)[..., None] * target[:, None]
    np.testing.assert_allclose(float(lggan.class_masked_l1(target, perfect, labels)), 0.0,
                               atol=1e-7)

  def test_removed_class_changes_losses_and_only_present_classes_count(self):
    """Eq. 2 and Eq. 5 on a label map with and without class 1 in sample 0."""
    features, labels = _inputs(8, 2, 8, 12)
    _, labels_wo = _inputs(8, 2, 8, 12, absent=1)
    target = _uniform(3, (2, 8, 12, 3))
    class_images = _uniform(4, (2, K, 8, 12, 3))
    l1 = jax.jit(lggan.class_masked_l1, static_argnames="present_only")
    assert abs(float(l1(target, class_images, labels)) -
               float(l1(target, class_images, labels_wo))) > 1e-4
    # present_only: sample 0's class-1 image no longer counts...
    garbage = class_images.at[0, 1].set(5.0)
    np.testing.assert_allclose(l1(target, garbage, labels_wo, present_only=True),
                               l1(target, class_images, labels_wo, present_only=True), rtol=1e-6)
    # ...but does by default (Eq. 2 and the code pull an absent class's image to 0).
    assert float(l1(target, garbage, labels_wo)) > float(l1(target, class_images, labels_wo))
    masks = np.moveaxis(_one_hot(labels_wo), -1, 1)[..., None]  # [B, K, H, W, 1]
    diff = np.abs(np.asarray(target)[:, None] * masks - np.asarray(class_images))
    present = masks.sum(axis=(2, 3, 4)) > 0  # [B, K]
    ref = sum(diff[present[:, k], k].mean() for k in range(K))
    np.testing.assert_allclose(float(l1(target, class_images, labels_wo, present_only=True)),
                               ref, rtol=1e-5)
    # Eq. 5: removing the class changes the loss; the absent row does not count.
    module = lggan_fusion.SemanticClassificationModule(num_classes=K)
    params = np_random_init(module, features, labels)["params"]
    apply = jax.jit(module.apply)
    loss_all, logits_all = apply({"params": params}, features, labels)
    loss_wo, logits_wo = apply({"params": params}, features, labels_wo)
    assert abs(float(loss_all) - float(loss_wo)) > 1e-4
    ref_wo = lggan_fusion.filtered_class_cross_entropy(logits_wo, np.asarray(present))
    np.testing.assert_allclose(float(loss_wo), float(ref_wo), rtol=1e-6)
    ref_all = lggan_fusion.filtered_class_cross_entropy(logits_all, np.ones((2, K), bool))
    np.testing.assert_allclose(float(loss_all), float(ref_all), rtol=1e-6)

  def test_bad_shapes(self):
    _, labels = _inputs(7, 2, 8, 8)
    target = jnp.zeros((2, 8, 8, 3))
    with pytest.raises(ValueError, match="`class_images` must have rank 5"):
      lggan.class_masked_l1(target, jnp.zeros((2, 8, 8, 3)), labels)
    with pytest.raises(ValueError, match="`class_images` must be"):
      lggan.class_masked_l1(target, jnp.zeros((2, K, 8, 6, 3)), labels)
    with pytest.raises(ValueError, match="`labels` has 3 class"):
      lggan.class_masked_l1(target, jnp.zeros((2, K, 8, 8, 3)), jnp.zeros((2, 8, 8, 3)))


class AttentionFusionTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.named_parameters(("square_b1", 1, 2, 2), ("nonsquare_b3", 3, 2, 3))
  def test_weights_sum_to_one_and_fuse(self, batch, h, w):
    features = np_normal(3, (batch, h, w, 5))
    global_image = _uniform(4, (batch, 4 * h, 4 * w, 3))
    local_image = _uniform(5, (batch, 4 * h, 4 * w, 3))
    module = lggan_fusion.AttentionFusion(hidden_features=(6, 4))
    params = np_random_init(module, features, global_image, local_image)["params"]
    fused, weights = self.variant(functools.partial(module.apply, return_weights=True))(
        {"params": params}, features, global_image, local_image)
    chex.assert_shape(fused, (batch, 4 * h, 4 * w, 3))
    chex.assert_shape(weights, (batch, 4 * h, 4 * w, 2))
    np.testing.assert_allclose(np.asarray(weights).sum(-1), 1.0, atol=1e-6)
    assert np.all((np.asarray(weights) >= 0) & (np.asarray(weights) <= 1))
    weights = np.asarray(weights)
    expected = (np.asarray(global_image) * weights[..., 1:2]
                + np.asarray(local_image) * weights[..., 0:1])
    chex.assert_trees_all_close(np.asarray(fused), expected, atol=1e-6)

  def test_matches_numpy_scatter_transposed_convs(self):
    """G_w (Eq. 6) and the fusion (Eq. 7) with PyTorch's transposed-conv layout
    (k=3, s=2, p=1, output_padding=1), instance norm eps 1e-5, ReLU, 1x1 conv."""
    features = np_normal(8, (2, 3, 4, 5))
    global_image = _uniform(9, (2, 12, 16, 3))
    local_image = _uniform(10, (2, 12, 16, 3))
    module = lggan_fusion.AttentionFusion(hidden_features=(6, 4))
    params = np_random_init(module, features, global_image, local_image, seed=4)["params"]
    apply = jax.jit(functools.partial(module.apply, return_weights=True))

    def reference(feats, params):
      x = np.asarray(feats, np.float64)
      for i in range(2):
        p = params[f"up_{i}"]
        x = np.maximum(np_instance_norm(np_conv_transpose_torch(
            x, p["kernel"], p["bias"], 2, 1, 1)), 0.0)
      logits = np_conv(x, params["weights"]["kernel"], params["weights"]["bias"])
      e = np.exp(logits - logits.max(-1, keepdims=True))
      weights = e / e.sum(-1, keepdims=True)
      fused = (np.asarray(global_image) * weights[..., 1:2]
               + np.asarray(local_image) * weights[..., 0:1])
      return fused, weights

    # Scaling the input and the first bias scales the first block's output, so
    # its variance becomes comparable to eps and eps matters.
    for scale in (1.0, 3e-3):
      scaled = jax.tree_util.tree_map(lambda x: x, params)
      scaled["up_0"]["bias"] = params["up_0"]["bias"] * scale
      fused, weights = apply({"params": scaled}, features * scale, global_image, local_image)
      ref_fused, ref_weights = reference(np.asarray(features) * scale, scaled)
      chex.assert_trees_all_close(np.asarray(weights), ref_weights, atol=1e-5)
      chex.assert_trees_all_close(np.asarray(fused), ref_fused, atol=1e-5)

  @parameterized.named_parameters(
      ("k3_s2_p1_op1", 3, 2, 1, 1), ("k4_s2_p1_op0", 4, 2, 1, 0), ("k5_s3_p2_op2", 5, 3, 2, 2))
  def test_transposed_conv_layout_is_pytorchs(self, k, stride, padding, output_padding):
    x = np_normal(11, (2, 3, 5, 2))
    pad = lggan.torch_conv_transpose_padding(k, stride, padding, output_padding)
    layer = nn.ConvTranspose(features=3, kernel_size=(k, k), strides=(stride, stride),
                             padding=(pad, pad))
    params = np_random_init(layer, x, seed=5)["params"]
    out = jax.jit(layer.apply)({"params": params}, x)
    ref = np_conv_transpose_torch(x, params["kernel"], params["bias"], stride, padding,
                                  output_padding)
    assert out.shape == ref.shape
    chex.assert_trees_all_close(np.asarray(out), ref, atol=1e-5)
    if (k, stride, padding, output_padding) == (3, 2, 1, 1):
      same = nn.ConvTranspose(features=3, kernel_size=(3, 3), strides=(2, 2), padding="SAME")
      out_same = jax.jit(same.apply)({"params": params}, x)
      assert out_same.shape == ref.shape and not np.allclose(out_same, ref, atol=1e-3)
    with pytest.raises(ValueError, match="`output_padding` must be in"):
      lggan.torch_conv_transpose_padding(3, 2, 1, 2)

  def test_gradients_finite_and_bfloat16(self):
    features = np_normal(6, (3, 4, 6, 5))
    images = _uniform(7, (2, 3, 8, 12, 3))
    module = lggan_fusion.AttentionFusion(hidden_features=(4,))
    params = np_random_init(module, features, images[0], images[1])["params"]
    grads = jax.jit(jax.grad(lambda p: jnp.mean(
        module.apply({"params": p}, features, images[0], images[1]) ** 2)))(params)
    chex.assert_tree_all_finite(grads)
    bf16 = module.clone(dtype=jnp.bfloat16)
    out = jax.jit(bf16.apply)({"params": params}, features.astype(jnp.bfloat16),
                              images[0].astype(jnp.bfloat16), images[1].astype(jnp.bfloat16))
    assert out.dtype == jnp.bfloat16
    chex.assert_shape(out, (3, 8, 12, 3))
    # Against float32 on the same bfloat16-rounded inputs (bfloat16: ~3 significant digits).
    up = lambda t: t.astype(jnp.bfloat16).astype(jnp.float32)
    ref = jax.jit(module.apply)({"params": params}, up(features), up(images[0]), up(images[1]))
    np.testing.assert_allclose(np.asarray(out, np.float32), ref, atol=0.05, rtol=0.05)

  @parameterized.named_parameters(
      ("feature_size", (2, 3, 3, 5), (2, 8, 12, 3), (2, 8, 12, 3), "`features` is"),
      ("feature_batch", (1, 2, 3, 5), (2, 8, 12, 3), (2, 8, 12, 3), "`features` is"),
      ("image_mismatch", (2, 2, 3, 5), (2, 8, 12, 3), (2, 8, 12, 1), "`local_image` shape"),
      ("image_rank", (2, 2, 3, 5), (8, 12, 3), (8, 12, 3), "`global_image` must have rank 4"),
  )
  def test_bad_input(self, f_shape, g_shape, l_shape, message):
    module = lggan_fusion.AttentionFusion(hidden_features=(4, 4))
    with pytest.raises(ValueError, match=message):
      module.init(jax.random.PRNGKey(0), jnp.zeros(f_shape), jnp.zeros(g_shape),
                  jnp.zeros(l_shape))
