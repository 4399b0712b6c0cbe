"""Inception Score (Salimans et al., "Improved Techniques for Training GANs", NeurIPS 2016).

IS = exp(E_x KL(p(y|x) || p(y))), where p(y|x) is the InceptionV3 class posterior of a
generated image and p(y) its marginal over the generated set, computed on each of
`num_splits` equal parts of the set; the mean and standard deviation over the parts
are reported. Used for class-conditional generation in the Attentive Normalization
paper (Sec. 5, with FID and intra-FID) and for cross-view translation in the LGGAN paper
(Sec. 4.1).

Class conventions. The FID Inception graph (TF `inception-2015-12-05`) has 1008 logits:
index 0 is a "background" class, 1..1000 are the ImageNet classes and 1001..1007 are
unused. The original TF code of Salimans et al. (and torch-fidelity) takes the softmax
over all 1008 logits; that is the default here (`classes='all'`). `classes='imagenet'`
keeps logits 1..1000 only before the softmax, i.e. the 1000-way posterior that a
torchvision-style 1000-class Inception produces. Scores of the two conventions differ
slightly, so report which one was used. Any other number of logits (e.g. a 1000-way
classifier) is accepted with `classes='all'`.

Splits are contiguous (rows [i N / S, (i + 1) N / S) as in the original code); shuffle
the logits beforehand if the order of the samples is not random. Computed in float64.
"""

from typing import Tuple

import numpy as np
import scipy.special

from genattn_jax import _checks


def inception_score(logits, num_splits: int = 10, *,
                    classes: str = "all") -> Tuple[float, float]:
  """Inception Score of generated images from their classifier logits.

  For each split s of n_s images: log p(y|x) = log_softmax(logits), log p_s(y) =
  logsumexp_x log p(y|x) - log n_s, score_s = exp(mean_x sum_y p(y|x) (log p(y|x) -
  log p_s(y))). Works in log space, so saturated posteriors give no NaN.

  Args:
    logits: [N, K] pre-softmax class scores (K = 1008 for the FID Inception graph),
      any real dtype, N >= num_splits.
    num_splits: number S of contiguous splits (> 0); 10 is the customary value.
    classes: 'all' (softmax over all K logits, TF / Salimans et al. convention) or
      'imagenet' (needs K = 1008: drop background class 0 and unused 1001..1007, softmax
      over the 1000 ImageNet classes).

  Returns:
    (is_mean, is_std): mean and population standard deviation (ddof=0) of the split
    scores; each score lies in [1, K].

  Raises:
    ValueError: `logits` is not [N, K] or not finite, N < num_splits, `num_splits`
      <= 0, or `classes` is unknown / 'imagenet' with K != 1008.
  """
  logits = np.asarray(logits, dtype=np.float64)
  _checks.check_rank(logits, 2, "logits", "[N, K]")
  _checks.check_in(classes, ("all", "imagenet"), "classes")
  _checks.check_positive(num_splits, "num_splits")
  n, k = logits.shape
  if n < num_splits:
    raise ValueError(f"`logits` has {n} rows, fewer than `num_splits` ({num_splits}).")
  if k < 2:
    raise ValueError(f"`logits` needs at least 2 classes, got shape {logits.shape}.")
  if not np.all(np.isfinite(logits)):
    raise ValueError("`logits` contains NaN or infinite values.")
  if classes == "imagenet":
    if k != 1008:
      raise ValueError(f"classes='imagenet' expects the 1008 logits of the FID Inception "
                       f"graph, got {k}.")
    logits = logits[:, 1:1001]
  log_p = scipy.special.log_softmax(logits, axis=1)
  scores = []
  for s in range(num_splits):
    part = log_p[s * n // num_splits:(s + 1) * n // num_splits]
    log_marginal = scipy.special.logsumexp(part, axis=0) - np.log(part.shape[0])
    kl = np.sum(np.exp(part) * (part - log_marginal), axis=1)
    scores.append(np.exp(np.mean(kl)))
  scores = np.asarray(scores)
  return float(scores.mean()), float(scores.std())
