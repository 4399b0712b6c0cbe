"""Segmentation scores of generated images: the interface for a user's segmentation network.

Semantic image synthesis (SPADE, DAGAN, LGGAN), CycleGAN's FCN score and LAP's FSD all score
generated images by running a pretrained segmentation network on them. The networks the papers
used (DRN-D-105 for Cityscapes, UperNet-101 for ADE20K, DeepLab-v2 for COCO-Stuff, FCN-8s for
CycleGAN, a unified scene parser for FSD) ship weights this library cannot download, so the user
supplies one, as

  * any callable `segment_fn(images) -> labels`, images uint8 [B, H, W, 3], labels int
    [B, H, W] (class ids in [0, num_classes)), or
  * a Flax module with its variables, through `make_segment_fn` (which also resizes and
    normalises the input and takes the argmax of the logits).

Scores follow the usual definitions (Long et al. 2015, Sec. 5, as used by pix2pix / CycleGAN and
SPADE): from the confusion matrix C[i, j] = #pixels of true class i predicted as j over the
pixels whose label is not `ignore_index`,
  pixel accuracy      = Σ_i C_ii / Σ_ij C_ij,
  mean class accuracy = mean_i C_ii / Σ_j C_ij,
  mean IoU            = mean_i C_ii / (Σ_j C_ij + Σ_j C_ji − C_ii),
where the means run over the classes present in the labels or predicted (classes with an empty
union are left out, as SPADE's and pix2pix's evaluation scripts do).
"""

from typing import Callable, Dict, Iterable, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np

SegmentFn = Callable[[np.ndarray], np.ndarray]


def confusion_matrix(pred: np.ndarray, label: np.ndarray, num_classes: int,
                     ignore_index: Optional[int] = 255) -> np.ndarray:
  """Pixel confusion matrix.

  Args:
    pred: int [...] predicted class ids.
    label: int [...] true class ids, same shape as `pred`.
    num_classes: K; true ids must lie in [0, K) or equal `ignore_index`.
    ignore_index: label value that is skipped (None: none).

  Returns:
    int64 [K, K], rows = true class, columns = predicted class.

  Raises:
    ValueError: shapes differ, or a label / prediction id lies outside [0, K) (naming it).
  """
  pred = np.asarray(pred).astype(np.int64).ravel()
  label = np.asarray(label).astype(np.int64).ravel()
  if pred.shape != label.shape:
    raise ValueError(f"pred has {pred.size} pixels but label has {label.size}.")
  keep = np.ones_like(label, bool) if ignore_index is None else label != ignore_index
  pred, label = pred[keep], label[keep]
  for name, ids in (("label", label), ("pred", pred)):
    if ids.size and (ids.min() < 0 or ids.max() >= num_classes):
      bad = ids[(ids < 0) | (ids >= num_classes)][0]
      raise ValueError(f"{name} holds class id {bad}, outside [0, num_classes={num_classes}) "
                       f"(ignore_index={ignore_index}).")
  return np.bincount(label * num_classes + pred,
                     minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def segmentation_scores(conf: np.ndarray) -> Dict[str, float]:
  """{'pixel_accuracy', 'mean_class_accuracy', 'mean_iou'} from a confusion matrix (see module doc).

  Raises:
    ValueError: the matrix is not square or counts no pixel.
  """
  conf = np.asarray(conf, np.float64)
  if conf.ndim != 2 or conf.shape[0] != conf.shape[1]:
    raise ValueError(f"confusion matrix must be [K, K], got {conf.shape}.")
  total = conf.sum()
  if total == 0:
    raise ValueError("confusion matrix counts no pixel (every label ignored?).")
  tp = np.diag(conf)
  gt = conf.sum(1)
  union = gt + conf.sum(0) - tp
  present = union > 0
  with np.errstate(invalid="ignore", divide="ignore"):
    class_acc = tp[gt > 0] / gt[gt > 0]
    iou = tp[present] / union[present]
  return {"pixel_accuracy": float(tp.sum() / total),
          "mean_class_accuracy": float(class_acc.mean()),
          "mean_iou": float(iou.mean())}


def evaluate_segmentation(segment_fn: SegmentFn,
                          pairs: Iterable[Tuple[np.ndarray, np.ndarray]], num_classes: int,
                          ignore_index: Optional[int] = 255) -> Dict[str, float]:
  """Scores `segment_fn` on (images uint8 [B, H, W, 3], labels int [B, H, W]) batches.

  Returns:
    `segmentation_scores` of the summed confusion matrix, plus 'num_images'.

  Raises:
    ValueError: the network's output shape differs from the labels' (naming both).
  """
  conf = np.zeros((num_classes, num_classes), np.int64)
  n = 0
  for images, labels in pairs:
    pred = np.asarray(segment_fn(np.asarray(images)))
    if pred.shape != np.asarray(labels).shape:
      raise ValueError(f"segment_fn returned {pred.shape} for images {np.shape(images)}; "
                       f"expected the labels' shape {np.shape(labels)}.")
    conf += confusion_matrix(pred, labels, num_classes, ignore_index)
    n += len(images)
  return {**segmentation_scores(conf), "num_images": n}


def make_segment_fn(module, variables, *, input_size: Optional[Tuple[int, int]] = None,
                    mean: Sequence[float] = (0.485, 0.456, 0.406),
                    std: Sequence[float] = (0.229, 0.224, 0.225),
                    label_map: Optional[np.ndarray] = None) -> SegmentFn:
  """A `segment_fn` from a Flax segmentation network.

  Args:
    module: flax module, `module.apply(variables, x)` → logits [B, h, w, K] float (any h, w).
    variables: its variables.
    input_size: (H, W) the network expects; images are resized bilinearly to it (None: as
      given).
    mean, std: per-channel normalisation of [0, 1] RGB input (ImageNet's by default, the
      convention of the papers' DRN / UperNet / DeepLab networks).
    label_map: optional int [K] array mapping the network's class ids to the dataset's
      evaluation ids (e.g. Cityscapes train ids → label ids).

  Returns:
    `segment_fn(images uint8 [B, H, W, 3]) -> int32 [B, H, W]`: the argmax of the logits,
    resized (nearest) back to the input's H × W.
  """
  mean_a = jnp.asarray(mean, jnp.float32)
  std_a = jnp.asarray(std, jnp.float32)

  @jax.jit
  def run(images):
    b, h, w, _ = images.shape
    x = images.astype(jnp.float32) / 255.0
    if input_size is not None and tuple(input_size) != (h, w):
      x = jax.image.resize(x, (b, input_size[0], input_size[1], 3), "bilinear")
    logits = module.apply(variables, (x - mean_a) / std_a)
    logits = jax.image.resize(logits, (b, h, w, logits.shape[-1]), "nearest")
    return jnp.argmax(logits, -1).astype(jnp.int32)

  def segment_fn(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
      raise ValueError(f"segment_fn expects uint8 [B, H, W, 3] images, got {images.dtype} "
                       f"{images.shape}.")
    pred = np.asarray(run(images))
    return pred if label_map is None else np.asarray(label_map)[pred]

  return segment_fn
