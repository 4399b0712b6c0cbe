"""FCN score of translated images (Isola et al. 2017, Sec. 4.2; the spap paper's Table 2).

A segmentation network trained on real photos labels the generated photos; its per-pixel
accuracy, per-class accuracy and class IoU against the input label maps measure how
recognisable the translation is. The network plugs in through the library's segmentation
interface (`metrics.segmentation`: a `segment_fn(uint8 [B, H, W, 3]) -> int [B, H, W]`, e.g.
from `make_segment_fn`); the scores come from its confusion matrix.
"""

from typing import Callable, Dict

import numpy as np

from genattn_jax.metrics import segmentation


def fcn_score(segment_fn: Callable[[np.ndarray], np.ndarray], images: np.ndarray,
              labels: np.ndarray, num_classes: int, batch_size: int = 16,
              ignore_index: int = 255) -> Dict[str, float]:
  """Scores generated photos against the label maps they were made from.

  Args:
    segment_fn: the segmentation network (see module doc).
    images: uint8 [N, H, W, 3] generated photos.
    labels: int [N, H, W] ground-truth class ids (0..num_classes-1, `ignore_index` skipped),
      e.g. Cityscapes train ids (`data.cityscapes.to_train_ids`).
    num_classes: classes of the evaluation (19 for Cityscapes).
    batch_size: images per `segment_fn` call.

  Returns:
    `segmentation.evaluate_segmentation`'s dict (pixel accuracy, class accuracy, mean IoU,
    num_images).

  Raises:
    ValueError: `images` is not uint8 [N, H, W, 3] or `labels` is not [N, H, W] of the same
      N, H, W.
  """
  images, labels = np.asarray(images), np.asarray(labels)
  if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
    raise ValueError(f"`images` must be uint8 [N, H, W, 3], got {images.dtype} {images.shape}.")
  if labels.shape != images.shape[:3]:
    raise ValueError(f"`labels` must be [N, H, W] = {images.shape[:3]}, got {labels.shape}.")
  batches = ((images[i:i + batch_size], labels[i:i + batch_size])
             for i in range(0, len(images), batch_size))
  return segmentation.evaluate_segmentation(segment_fn, batches, num_classes, ignore_index)
