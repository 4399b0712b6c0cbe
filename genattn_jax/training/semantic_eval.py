"""Evaluation of a label map → photo generator (the 'semantic' task) and of its workdir.

Protocol (SPADE, Park et al. 2019, Sec. 4, with this library's metrics):
  * the `eval.split` examples of `config.data` (photo, label map, instance map) at the
    training crop (centre crop, no flip), at most `eval.num_fake` of them;
  * G (eval mode: running batch-norm statistics) synthesises one photo per label map;
  * FID (`metrics/fid.py`, FID Inception) between the synthesised and the real photos of the
    split; PSNR, SSIM (`metrics/image_similarity.py`) and LPIPS (VGG, v0.1) per pair, averaged;
  * mIoU / pixel accuracy / mean class accuracy (`metrics/segmentation.py`) when
    `eval.segmenter` names a factory `'package.module:function'` that returns a
    `segment_fn(images uint8 [B, H, W, 3]) -> int [B, H, W]`. The papers' networks
    (DRN-D-105 for Cityscapes, UperNet-101 for ADE20K, DeepLab-v2 for COCO-Stuff) are not
    shipped; the user supplies them. Protocol in the papers: the network runs on the
    synthesised image at the evaluation resolution; Cityscapes scores the 19 train ids
    (labelIds mapped with the official table, the rest ignored), ADE20K its 150 classes
    (0 ignored), COCO-Stuff its 182 (255 ignored). `eval.segment_label_map` (a factory name,
    optional) maps the stored label map to the network's ids; otherwise labels are compared
    as stored, ignoring `eval.segment_ignore_index`.
"""

import importlib
import json
import os
from typing import Dict, Optional

import jax
import jax.numpy as jnp
import numpy as np

from genattn_jax.data import paired
from genattn_jax.losses import perceptual
from genattn_jax.metrics import image_similarity
from genattn_jax.metrics import segmentation
from genattn_jax.training import evaluation
from genattn_jax.training.tasks import semantic


def _import(spec: str):
  module, _, name = spec.partition(":")
  if not name:
    raise ValueError(f"expected 'package.module:function', got {spec!r}.")
  return getattr(importlib.import_module(module), name)


class SemanticEvaluator:
  """Holds the evaluation split and the jitted generator (see module doc)."""

  def __init__(self, config, generator, task):
    self.config, self.generator, self.task = config, generator, task
    self._data = None
    self._lpips = None

    @jax.jit
    def sample(params, g_state, seg, image, rng):
      out, _ = generator.apply({"params": params, **g_state}, seg,
                               image=image if task.use_vae else None, train=False,
                               rngs={"sampling": rng})
      return semantic.final_image(out)  # LGGAN: the final (fused) image

    self._sample = sample

  @property
  def data(self) -> Dict[str, np.ndarray]:
    if self._data is None:
      ecfg = self.config.eval
      loader = paired.create_paired_loader(
          self.config.data, global_batch_size=1, seed=0,
          split=ecfg.get("split", "val"), shuffle=False, num_epochs=1, augment=False,
          drop_remainder=False)
      rows = []
      for batch in loader:
        rows.append(batch)
        if len(rows) >= int(ecfg.num_fake):
          break
      self._data = {k: np.concatenate([r[k] for r in rows]) for k in rows[0]}
    return self._data

  def generate(self, params, g_state, label, edge, image=None, seed: int = 0) -> np.ndarray:
    """uint8 [N, H, W, 3] synthesised from label [N, H, W] / edge [N, H, W]."""
    bs = int(self.config.eval.batch_size)
    out = []
    for i in range(0, label.shape[0], bs):
      seg = self.task.seg({"label": jnp.asarray(label[i:i + bs]),
                           "edge": jnp.asarray(edge[i:i + bs])})
      img = None if image is None else jnp.asarray(image[i:i + bs])
      fake = self._sample(params, g_state, seg, img, jax.random.PRNGKey(seed + i))
      out.append(evaluation.to_uint8(np.asarray(fake)))
    return np.concatenate(out)

  def lpips(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    if self._lpips is None:
      from genattn_jax.losses import vgg_weights  # pylint: disable=g-import-not-at-top
      params, lins = vgg_weights.load_vgg16_lpips()
      self._lpips = jax.jit(lambda a, b: perceptual.lpips(params, lins, a, b))
    f = lambda a: jnp.asarray(a, jnp.float32) / 127.5 - 1  # pylint: disable=unnecessary-lambda-assignment
    return np.concatenate([np.asarray(self._lpips(f(x[i:i + 4]), f(y[i:i + 4])))
                           for i in range(0, x.shape[0], 4)])

  def evaluate(self, params, g_state, fakes_out: Optional[list] = None) -> Dict[str, float]:
    d = self.data
    real = evaluation.to_uint8(d["image"])
    fake = self.generate(params, g_state, d["label"], d["edge"],
                         d["image"] if self.task.use_vae else None)
    if fakes_out is not None:
      fakes_out.append(fake)
    out = {"num_eval_images": float(len(fake)),
           "psnr": float(np.mean(image_similarity.psnr(fake, real))),
           "ssim": float(np.mean(image_similarity.ssim(fake, real))),
           "lpips": float(np.mean(self.lpips(fake, real)))}
    if len(fake) >= 2:
      from genattn_jax.metrics import features, fid  # pylint: disable=g-import-not-at-top
      bs = int(self.config.eval.batch_size)
      fr = features.extract_features(real, batch_size=bs, progress=False)["pool"]
      ff = features.extract_features(fake, batch_size=bs, progress=False)["pool"]
      out["fid"] = float(fid.fid_from_features(fr, ff))
    ecfg = self.config.eval
    if ecfg.get("segmenter", ""):
      segment_fn = _import(ecfg.segmenter)()
      labels = d["label"]
      if ecfg.get("segment_label_map", ""):
        labels = _import(ecfg.segment_label_map)(labels)
      ignore = ecfg.get("segment_ignore_index", 255)
      out.update(segmentation.evaluate_segmentation(
          segment_fn, [(fake, labels)], num_classes=int(ecfg.segment_num_classes),
          ignore_index=None if ignore < 0 else ignore))
    return out

  def grid(self, params, g_state, rows: int) -> np.ndarray:
    """uint8 grid: one row per example, label colours | synthesised | real."""
    d = self.data
    n = min(rows, len(d["label"]))
    fake = self.generate(params, g_state, d["label"][:n], d["edge"][:n],
                         d["image"][:n] if self.task.use_vae else None)
    return label_fake_real_grid(d["label"][:n], fake, evaluation.to_uint8(d["image"][:n]),
                                self.task.num_labels)


def label_fake_real_grid(label, fake, real, num_labels: int) -> np.ndarray:
  """[n·H, 3·W, 3] uint8: per row the coloured label map, the synthesised and the real photo."""
  colours = paired.colorize_labels(label, num_labels)
  rows = [np.concatenate([c, f, r], axis=1) for c, f, r in zip(colours, fake, real)]
  return np.concatenate(rows, axis=0)


def is_semantic_workdir(workdir: str) -> bool:
  """Whether `workdir/config.json` names the 'semantic' task."""
  path = os.path.join(os.path.expanduser(workdir), "config.json")
  if not os.path.exists(path):
    return False
  with open(path) as f:
    return json.load(f).get("task", {}).get("name", "noise") == "semantic"


def evaluate_workdir(workdir: str, *, save_images: Optional[str] = None) -> Dict[str, float]:
  """Scores the newest checkpoint of a 'semantic' `train.py` run (`eval.py --workdir`).

  Args:
    workdir: the run directory (its `config.json` and `checkpoints/`).
    save_images: a folder to write the synthesised evaluation images to (PNG), optional.

  Returns:
    {'step', 'fid', 'psnr', 'ssim', 'lpips', ...} as `SemanticEvaluator.evaluate`.
  """
  from genattn_jax.training import sampling  # pylint: disable=g-import-not-at-top
  config, state, step = sampling.load_run(workdir)
  from genattn_jax import models  # pylint: disable=g-import-not-at-top
  from genattn_jax.training import tasks  # pylint: disable=g-import-not-at-top
  gen, disc = models.build_gan(config.model)
  task = tasks.get_task(config, gen, disc)
  fakes = []
  out = task.evaluator.evaluate(task.eval_params(state), state.g_state, fakes_out=fakes)
  out["step"] = float(step)
  if save_images:
    os.makedirs(save_images, exist_ok=True)
    for i, img in enumerate(fakes[0]):
      evaluation.save_png(os.path.join(save_images, f"{i:04d}.png"), img)
    with open(os.path.join(save_images, "metrics.json"), "w") as f:
      json.dump(out, f, indent=2, sort_keys=True)
  return out


def synthesize_split(workdir: str, split: str, out_dir: str, seed: int = 0) -> Dict[str, str]:
  """Synthesises a photo for every label map of `split` (photos not needed, e.g. Cityscapes
  `test_label` / `test_inst`) with the newest checkpoint of `workdir`.

  Writes `<key>.png` (the synthesised photo) per label map and `grid.png` (label colours |
  synthesised, one row each) to `out_dir`. Returns {key: path}.
  """
  from genattn_jax import models  # pylint: disable=g-import-not-at-top
  from genattn_jax.training import sampling, tasks  # pylint: disable=g-import-not-at-top
  config, state, _ = sampling.load_run(workdir)
  gen, disc = models.build_gan(config.model)
  task = tasks.get_task(config, gen, disc)
  keys, maps = paired.load_label_maps(config.data, split)
  fake = task.evaluator.generate(task.eval_params(state), state.g_state, maps["label"],
                                 maps["edge"], seed=seed)
  os.makedirs(out_dir, exist_ok=True)
  paths = {}
  for key, img in zip(keys, fake):
    paths[key] = evaluation.save_png(os.path.join(out_dir, f"{key}.png"), img)
  colours = paired.colorize_labels(maps["label"], task.num_labels)
  grid = np.concatenate([np.concatenate([c, f], axis=1) for c, f in zip(colours, fake)], axis=0)
  evaluation.save_png(os.path.join(out_dir, "grid.png"), grid)
  return paths
