"""Tests of DAGAN's generator head (SAM + CAM + LeakyReLU -> conv -> tanh)."""

from absl.testing import parameterized
import chex
import jax
import numpy as np
import pytest

from genattn_jax.models import dagan_heads
from tests.layers._util import np_conv, np_normal, np_random_init
from tests.layers.test_dagan import np_cam, np_sam


def np_head(params, last, earlier, use_sam, cam_variant):
  """Sec. 3 / Fig. 2: sum of the attention outputs, LeakyReLU 0.2, 3x3 conv, tanh."""
  last64 = np.asarray(last, np.float64)
  terms = []
  if use_sam:
    terms.append(np_sam(params["sam"], last64))
  if cam_variant is not None:
    terms.append(np_cam(params["cam"], [earlier, last], cam_variant))
  x = sum(terms) if terms else last64
  x = np.where(x > 0, x, 0.2 * x)
  return np.tanh(np_conv(x, params["conv_img"]["kernel"], params["conv_img"]["bias"]))


class DAGANHeadTest(parameterized.TestCase):

  @parameterized.named_parameters(
      ("B1_baseline", "B1", set()), ("B2_sam", "B2", {"sam"}), ("B3_cam_I", "B3", {"cam"}),
      ("B6_sam_cam_II", "B6", {"sam", "cam"}))
  def test_table4_rows_match_numpy(self, row, modules):
    last = np_normal(0, (2, 8, 12, 4))
    earlier = np_normal(1, (2, 8, 12, 8))  # the official code's 2C-channel map
    head = dagan_heads.DAGANHead.from_table4(row)
    params = np_random_init(head, last, earlier, seed=2)["params"]
    assert set(params) == modules | {"conv_img"}
    out = jax.jit(head.apply)({"params": params}, last, earlier)
    chex.assert_shape(out, (2, 8, 12, 3))
    use_sam, cam_variant = dagan_heads.TABLE4_ROWS[row]
    chex.assert_trees_all_close(np.asarray(out), np_head(params, last, earlier, use_sam,
                                                         cam_variant), atol=1e-5)

  def test_errors(self):
    last = np_normal(0, (1, 4, 4, 4))
    with pytest.raises(ValueError, match="`earlier` .* is required"):
      np_random_init(dagan_heads.DAGANHead(), last)
    with pytest.raises(ValueError, match="`row` must be one of"):
      dagan_heads.DAGANHead.from_table4("B7")
    with pytest.raises(ValueError, match="`cam_variant` must be one of"):
      np_random_init(dagan_heads.DAGANHead(cam_variant="III"), last, last)
