"""Segmentation scores against per-pixel loops, and the Flax network interface."""

import flax.linen as nn
import jax
import numpy as np
import pytest

from genattn_jax.metrics import segmentation


def _loop_scores(pred, label, k, ignore):
  pred, label = pred.ravel(), label.ravel()
  keep = label != ignore
  pred, label = pred[keep], label[keep]
  acc = float(np.mean(pred == label))
  class_acc, ious = [], []
  for c in range(k):
    in_gt, in_pred = label == c, pred == c
    if in_gt.any():
      class_acc.append(np.sum(in_gt & in_pred) / np.sum(in_gt))
    union = np.sum(in_gt | in_pred)
    if union:
      ious.append(np.sum(in_gt & in_pred) / union)
  return acc, float(np.mean(class_acc)), float(np.mean(ious))


def test_scores_equal_pixel_loops():
  rs = np.random.RandomState(0)
  label = rs.randint(0, 5, (3, 16, 12))
  label[0, :4] = 255
  pred = np.where(rs.rand(3, 16, 12) < 0.6, label, rs.randint(0, 6, (3, 16, 12)))
  pred = np.where(pred == 255, 0, pred)
  conf = segmentation.confusion_matrix(pred, label, 6, ignore_index=255)
  assert conf.sum() == np.sum(label != 255)
  got = segmentation.segmentation_scores(conf)
  acc, cacc, miou = _loop_scores(pred, label, 6, 255)
  np.testing.assert_allclose(
      [got["pixel_accuracy"], got["mean_class_accuracy"], got["mean_iou"]], [acc, cacc, miou],
      rtol=1e-12)


def test_out_of_range_ids_are_named():
  with pytest.raises(ValueError, match="label holds class id 7"):
    segmentation.confusion_matrix(np.zeros((2, 2)), np.full((2, 2), 7), 5)
  with pytest.raises(ValueError, match="counts no pixel"):
    segmentation.segmentation_scores(np.zeros((3, 3)))


class _PixelNet(nn.Module):
  """1x1 conv 'segmenter': class = argmax of a linear map of normalised RGB."""

  @nn.compact
  def __call__(self, x):
    return nn.Conv(4, (1, 1))(x)


def test_flax_segment_fn_matches_manual_argmax():
  net = _PixelNet()
  variables = net.init(jax.random.PRNGKey(0), np.zeros((1, 8, 8, 3), np.float32))
  images = np.random.RandomState(1).randint(0, 256, (2, 8, 8, 3)).astype(np.uint8)
  segment_fn = segmentation.make_segment_fn(net, variables, mean=(0.5,) * 3, std=(0.25,) * 3)
  pred = segment_fn(images)
  kernel = np.asarray(variables["params"]["Conv_0"]["kernel"])[0, 0]
  bias = np.asarray(variables["params"]["Conv_0"]["bias"])
  manual = np.argmax(((images / 255.0 - 0.5) / 0.25) @ kernel + bias, -1)
  np.testing.assert_array_equal(pred, manual)
  scores = segmentation.evaluate_segmentation(segment_fn, [(images, manual)], num_classes=4)
  assert scores["pixel_accuracy"] == 1.0 and scores["num_images"] == 2
  with pytest.raises(ValueError, match="uint8"):
    segment_fn(images.astype(np.float32))
