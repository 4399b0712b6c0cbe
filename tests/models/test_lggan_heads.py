"""Tests of LGGAN's shared encoder, local branch and Table 3 heads."""

from absl.testing import parameterized
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genattn_jax.models import lggan_heads
from tests.layers._util import np_conv, np_normal, np_random_init

K = 3


def _labels(seed, b, h, w):
  ids = np.random.default_rng(seed).integers(0, K, (b, h, w))
  ids[:, 0, :K] = np.arange(K)
  return jnp.asarray(ids, jnp.int32)


class LabelEncoderTest(parameterized.TestCase):

  def test_shapes_and_pytorch_stride2_padding(self):
    ids = _labels(0, 2, 16, 8)
    one_hot = jax.nn.one_hot(ids, K)
    encoder = lggan_heads.LabelEncoder(features=(4, 6, 5), encode_index=1)
    params = np_random_init(encoder, one_hot)["params"]
    x_encode, x_deep = jax.jit(encoder.apply)({"params": params}, one_hot)
    chex.assert_shape(x_encode, (2, 8, 4, 6))
    chex.assert_shape(x_deep, (2, 4, 2, 5))
    # Stride-2 conv with PyTorch padding 1 on every side (Flax 'SAME' pads (0, 1)).
    _, inter = encoder.apply({"params": params}, one_hot, capture_intermediates=True,
                             mutable=["intermediates"])
    first = np.asarray(inter["intermediates"]["norm_0"]["__call__"][0])
    first = np.maximum(first, 0.0)
    p = params["conv_1"]
    # PyTorch: out[i] = sum_u pad1(x)[2i + u] w[u] = (stride-1 conv, padding 1)[2i].
    ref = np_conv(first, p["kernel"], p["bias"])[:, ::2, ::2]
    conv1 = np.asarray(inter["intermediates"]["conv_1"]["__call__"][0])
    chex.assert_trees_all_close(conv1, ref, atol=1e-5)
    with pytest.raises(ValueError, match="must be divisible by 4"):
      encoder.init(jax.random.PRNGKey(0), one_hot[:, :6])


class LGGANHeadTest(parameterized.TestCase):

  @parameterized.named_parameters(("S1", "S1"), ("S2", "S2"), ("S4", "S4"), ("S5", "S5"))
  def test_table3_rows(self, row):
    ids = _labels(1, 2, 8, 8)
    x_encode = np_normal(2, (2, 4, 4, 5))
    global_image = jnp.tanh(np_normal(3, (2, 8, 8, 3)))
    head = lggan_heads.LGGANHead.from_table3(
        row, num_classes=K, num_res_blocks=1, up_features=(4,), weight_features=(4,),
        class_chunk_size=2)
    variables = np_random_init(head, x_encode, ids, global_image)
    params = variables.get("params", {})
    out = jax.jit(head.apply)({"params": params}, x_encode, ids, global_image)
    chex.assert_shape(out["image"], (2, 8, 8, 3))
    use_local, fusion, use_class, use_weights = lggan_heads.TABLE3_ROWS[row]
    if not use_local:
      assert not params
      np.testing.assert_array_equal(out["image"], global_image)
      return
    chex.assert_shape(out["class_images"], (2, K, 8, 8, 3))
    assert ("fuse" in params["class_generation"]) == (fusion == "conv")
    assert ("classification" in params) == use_class
    assert ("weight_map" in params) == use_weights
    if use_class:
      chex.assert_shape(out["class_logits"], (2, K, K))
      assert float(out["class_loss"]) > 0
    else:
      assert float(out["class_loss"]) == 0.0
    if use_weights:
      w = np.asarray(out["weights"])
      expected = np.asarray(global_image) * w[..., 1:2] + np.asarray(out["local"]) * w[..., 0:1]
    else:  # mean of the two, as the line the official code leaves commented out
      expected = 0.5 * (np.asarray(global_image) + np.asarray(out["local"]))
    chex.assert_trees_all_close(np.asarray(out["image"]), expected, atol=1e-6)

  def test_bad_row(self):
    with pytest.raises(ValueError, match="`row` must be one of"):
      lggan_heads.LGGANHead.from_table3("S6", num_classes=K)
