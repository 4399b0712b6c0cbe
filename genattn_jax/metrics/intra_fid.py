"""Intra-FID (Miyato & Koyama 2018, Sec. 5.1; the an paper's second metric, Table 1-2).

The FID between the generated and the real images of one class, averaged over the classes:
`intra_fid = mean_c FID(real_c, G(z, c))`. Real statistics per class are computed once from
the labelled real split and cached in the run's workdir (`fid_stats/intra_<digest>/c<k>.npz`,
pytorch-fid layout), so in-loop evaluation pays for the real side once.

Config fields (`config.eval`): `intra_fid_classes` (number of classes evaluated, the first
K labels; 0 = off), `intra_fid_per_class` (generated and at most real images per class; the
papers use 50 per class on ImageNet, i.e. 50k in all).
"""

import hashlib
import json
import os
from typing import Dict, Mapping, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from genattn_jax.metrics import fid

Stats = Tuple[np.ndarray, np.ndarray]


def intra_fid(real_stats: Mapping[int, Stats], fake_stats: Mapping[int, Stats]
              ) -> Tuple[float, Dict[int, float]]:
  """(mean over classes of the per-class FID, {class: FID}).

  Raises:
    ValueError: the class sets differ or are empty.
  """
  if not real_stats or set(real_stats) != set(fake_stats):
    raise ValueError(f"intra-FID needs the same non-empty classes on both sides, got "
                     f"{sorted(real_stats)} and {sorted(fake_stats)}.")
  per_class = {c: float(fid.frechet_distance(*real_stats[c], *fake_stats[c]))
               for c in sorted(real_stats)}
  return float(np.mean(list(per_class.values()))), per_class


def _cache_dir(workdir: str, config, classes: Sequence[int], per_class: int) -> str:
  key = json.dumps({"source": str(config.data.source), "split": str(config.eval.get(
      "real_split") or config.data.split), "size": int(config.data.image_size),
      "classes": list(classes), "n": int(per_class)}, sort_keys=True)
  return os.path.join(workdir, "fid_stats",
                      "intra_" + hashlib.sha1(key.encode()).hexdigest()[:12])


def real_class_statistics(workdir: str, config, classes: Sequence[int], per_class: int
                          ) -> Dict[int, Stats]:
  """{class: (mu, sigma)} of at most `per_class` real images per class, cached in `workdir`.

  Raises:
    ValueError: a class has fewer than 2 real images in the split.
  """
  from genattn_jax.data import pipeline  # pylint: disable=g-import-not-at-top
  from genattn_jax.metrics import features  # pylint: disable=g-import-not-at-top
  from genattn_jax.training.evaluation import to_uint8  # pylint: disable=g-import-not-at-top
  cache = _cache_dir(workdir, config, classes, per_class)
  paths = {c: os.path.join(cache, f"c{c}.npz") for c in classes}
  if all(os.path.exists(p) for p in paths.values()):
    return {c: fid.load_statistics(p) for c, p in paths.items()}
  wanted = set(classes)
  images = {c: [] for c in classes}
  loader = pipeline.create_data_loader(
      config.data, global_batch_size=int(config.eval.batch_size), seed=0,
      split=config.eval.get("real_split") or config.data.split, shuffle=True, num_epochs=1,
      random_flip=False, drop_remainder=False)
  for batch in loader:
    for img, label in zip(to_uint8(batch["image"]), np.asarray(batch["label"])):
      if int(label) in wanted and len(images[int(label)]) < per_class:
        images[int(label)].append(img)
    if all(len(v) >= per_class for v in images.values()):
      break
  out = {}
  for c in classes:
    if len(images[c]) < 2:
      raise ValueError(f"class {c} has {len(images[c])} real images in the split; intra-FID "
                       "needs at least 2 per class.")
    feats = features.extract_features(np.stack(images[c]), batch_size=int(config.eval.batch_size),
                                      progress=False)["pool"]
    out[c] = fid.feature_statistics(feats)
    if jax.process_index() == 0:
      os.makedirs(cache, exist_ok=True)
      fid.save_statistics(paths[c], *out[c])
  return out


def generator_class_statistics(sample_fn, params, g_state, config, classes: Sequence[int],
                               per_class: int, seed: int = 4321) -> Dict[int, Stats]:
  """{class: (mu, sigma)} of `per_class` samples of G(z, class) (z from a fixed seed)."""
  from genattn_jax.metrics import features  # pylint: disable=g-import-not-at-top
  from genattn_jax.training.evaluation import to_uint8  # pylint: disable=g-import-not-at-top
  bs = int(config.eval.batch_size)
  out = {}
  for c in classes:
    rng = jax.random.fold_in(jax.random.PRNGKey(seed), c)
    imgs = []
    for i in range(0, per_class, bs):
      z = jax.random.normal(jax.random.fold_in(rng, i), (bs, int(config.model.z_dim)))
      y = jnp.full((bs,), c, jnp.int32)
      imgs.append(to_uint8(np.asarray(sample_fn(params, g_state, z, y))))
    imgs = np.concatenate(imgs)[:per_class]
    out[c] = fid.feature_statistics(features.extract_features(imgs, batch_size=bs,
                                                              progress=False)["pool"])
  return out


def evaluate_intra_fid(sample_fn, params, g_state, config, workdir: str) -> Dict[str, float]:
  """{'intra_fid': ...} for `eval.intra_fid_classes` classes ({} when that is 0)."""
  k = int(config.eval.get("intra_fid_classes", 0))
  if k <= 0:
    return {}
  per_class = int(config.eval.get("intra_fid_per_class", 50))
  classes = list(range(k))
  real = real_class_statistics(workdir, config, classes, per_class)
  fake = generator_class_statistics(sample_fn, params, g_state, config, classes, per_class)
  return {"intra_fid": intra_fid(real, fake)[0]}


def intra_fid_for_run(workdir: str, num_classes: int) -> Dict[str, float]:
  """Intra-FID of a training run's newest checkpoint over its first `num_classes` classes.

  Uses the run's generator selected by `eval.fid_params` ('ema' default) and
  `eval.intra_fid_per_class` (default 50) images per class.

  Raises:
    ValueError: the run's generator is not class-conditional, or its `eval.fid_params` is
      neither 'ema' nor 'raw'.
  """
  from genattn_jax import models  # pylint: disable=g-import-not-at-top
  from genattn_jax.training import evaluation, sampling  # pylint: disable=g-import-not-at-top
  config, state, _ = sampling.load_run(workdir)
  n = int(config.model.get("num_classes", 0))
  if n <= 0:
    raise ValueError(f"the run in {workdir} is unconditional (model.num_classes = 0); "
                     "intra-FID needs a class-conditional generator.")
  generator = models.build_gan(config.model)[0]
  sample_fn = evaluation.make_sample_fn(generator, n)
  params = evaluation.generator_params(state, config.eval.get("fid_params", "ema"))
  with config.unlocked():
    config.eval.intra_fid_classes = min(int(num_classes), n)
  return evaluate_intra_fid(sample_fn, params, state.g_state, config, workdir)
