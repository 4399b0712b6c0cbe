"""Evaluation during and after training: samples, sample grids and FID of the EMA generator."""

import hashlib
import json
import os
from typing import Callable, Iterator

from absl import logging
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from genattn_jax.training import state as state_lib


GENERATORS = ("ema", "raw")


def scored_generators(eval_config) -> tuple:
  """The generators a run's evaluation scores: `eval.fid_params` ('ema' default, or 'raw'),
  or both ('ema', 'raw') with `eval.fid_both`.

  Raises:
    ValueError: `eval.fid_params` is neither 'ema' nor 'raw'.
  """
  which = eval_config.get("fid_params", "ema")
  if which not in GENERATORS:
    raise ValueError(f"`config.eval.fid_params` must be 'ema' or 'raw', got {which!r}.")
  return GENERATORS if eval_config.get("fid_both", False) else (which,)


def generator_params(state: state_lib.GANState, which: str):
  """G's parameters to sample from: the EMA ('ema') or as trained ('raw').

  Raises:
    ValueError: `which` is neither 'ema' nor 'raw'.
  """
  if which not in GENERATORS:
    raise ValueError(f"`generator` must be 'ema' or 'raw', got {which!r}.")
  return state.ema_params if which == "ema" else state.g_params


def make_sample_fn(generator: nn.Module, num_classes: int) -> Callable:
  """Jitted `(params, g_state, z, y) -> images [B, R, R, C] in [-1, 1]` in eval mode."""

  @jax.jit
  def sample(params, g_state, z, y):
    return generator.apply({"params": params, **g_state}, z, y if num_classes else None,
                           train=False)

  return sample


class NonFiniteOutputError(FloatingPointError):
  """The generator produced NaN or infinite pixels (its parameters are not finite)."""


def sample_batches(sample_fn, params, g_state, *, num_images: int, batch_size: int,
                   z_dim: int, num_classes: int, seed: int) -> Iterator[np.ndarray]:
  """Yields uint8 [b, R, R, 3] batches, `num_images` in all, from a fixed seed.

  Raises:
    NonFiniteOutputError: a sample holds NaN or inf (casting it to uint8 would silently give
      black pixels and a meaningless FID).
  """
  rng = jax.random.PRNGKey(seed)
  done = 0
  while done < num_images:
    rng, z_rng, y_rng = jax.random.split(rng, 3)
    z = jax.random.normal(z_rng, (batch_size, z_dim), jnp.float32)
    y = (jax.random.randint(y_rng, (batch_size,), 0, num_classes) if num_classes
         else jnp.zeros((batch_size,), jnp.int32))
    raw = np.asarray(sample_fn(params, g_state, z, y))
    if not np.all(np.isfinite(raw)):
      bad = int(np.sum(~np.all(np.isfinite(raw.reshape(raw.shape[0], -1)), axis=1)))
      raise NonFiniteOutputError(
          f"the generator produced non-finite pixels in {bad} of {raw.shape[0]} samples "
          f"(batch starting at image {done}): its parameters are NaN/inf, so no FID or image "
          "can be computed from them.")
    images = to_uint8(raw)
    take = min(batch_size, num_images - done)
    done += take
    yield images[:take]


def to_uint8(images: np.ndarray) -> np.ndarray:
  """[-1, 1] float → uint8 [0, 255] (rounded), grayscale replicated to 3 channels."""
  out = np.clip(np.round((np.asarray(images, np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)
  if out.shape[-1] == 1:
    out = np.repeat(out, 3, axis=-1)
  return out


def image_grid(images: np.ndarray, rows: int) -> np.ndarray:
  """uint8 [N, H, W, C] → one uint8 [rows·H, cols·W, C] grid (N = rows · cols)."""
  n, h, w, c = images.shape
  cols = n // rows
  grid = images[:rows * cols].reshape(rows, cols, h, w, c).transpose(0, 2, 1, 3, 4)
  return grid.reshape(rows * h, cols * w, c)


def save_png(path: str, image: np.ndarray) -> str:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(image).save(path)
  return path


def _real_stats_path(workdir: str, data_config, split: str, num_images: int) -> str:
  # "order" names how the subset is drawn: statistics cached by a version that took the first N
  # examples (a class-sorted split gave a class-imbalanced subset) must not be reused.
  key = json.dumps({"source": str(data_config.source), "split": split, "n": int(num_images),
                    "size": int(data_config.image_size), "order": "shuffled-seed0"},
                   sort_keys=True)
  digest = hashlib.sha1(key.encode()).hexdigest()[:12]
  return os.path.join(workdir, "fid_stats", f"real_{digest}.npz")


def real_statistics(workdir: str, config, progress: bool = False) -> tuple:
  """FID statistics (mu, sigma) of the real data, computed once and cached in the workdir.

  With `config.eval.real_stats` set (a pytorch-fid compatible `.npz` with `mu` and `sigma`,
  e.g. written by `eval.py --save_stats`), those statistics are used as they are. Otherwise
  they are computed from `config.eval.real_split` (default the training split, without flips),
  at most `config.eval.num_real` images taken in a seeded shuffled order, so a subset of a
  class-sorted split is still a uniform sample.

  Raises:
    FileNotFoundError: `config.eval.real_stats` names a missing file.
  """
  from genattn_jax.data import pipeline  # pylint: disable=g-import-not-at-top
  from genattn_jax.metrics import features, fid  # pylint: disable=g-import-not-at-top
  ecfg = config.eval
  stats_file = ecfg.get("real_stats") or ""
  if stats_file:
    stats_file = os.path.expanduser(stats_file)
    if not os.path.exists(stats_file):
      raise FileNotFoundError(f"`config.eval.real_stats` = {stats_file!r} does not exist; give a "
                              "`.npz` with `mu` and `sigma` (eval.py --save_stats writes one) or "
                              "set it to '' to compute the statistics from the data.")
    return fid.load_statistics(stats_file)
  split = ecfg.get("real_split") or config.data.split
  path = _real_stats_path(workdir, config.data, split, ecfg.num_real)
  if os.path.exists(path):
    return fid.load_statistics(path)
  loader = pipeline.create_data_loader(
      config.data, global_batch_size=ecfg.batch_size * jax.process_count(), seed=0,
      split=split, shuffle=True, num_epochs=1, random_flip=False, drop_remainder=False)

  def batches():
    seen = 0
    for batch in loader:
      if seen >= ecfg.num_real:
        return
      images = to_uint8(batch["image"][:ecfg.num_real - seen])
      seen += len(images)
      yield images

  feats = features.extract_features(batches(), batch_size=ecfg.batch_size, progress=progress,
                                    num_images=ecfg.num_real)["pool"]
  mu, sigma = fid.feature_statistics(feats)
  if jax.process_index() == 0:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fid.save_statistics(path, mu, sigma)
  logging.info("real FID statistics of %d images cached at %s", len(feats), path)
  return mu, sigma


def generator_fid(sample_fn, params, g_state, config, real_stats, seed: int = 1234,
                  progress: bool = False) -> float:
  """FID of `config.eval.num_fake` samples of the generator against `real_stats`.

  Raises:
    NonFiniteOutputError: the generator produced NaN or infinite pixels.
  """
  from genattn_jax.metrics import features, fid  # pylint: disable=g-import-not-at-top
  ecfg = config.eval
  batches = sample_batches(sample_fn, params, g_state, num_images=ecfg.num_fake,
                           batch_size=ecfg.batch_size, z_dim=config.model.z_dim,
                           num_classes=config.model.get("num_classes", 0), seed=seed)
  feats = features.extract_features(batches, batch_size=ecfg.batch_size, progress=progress,
                                    num_images=ecfg.num_fake)["pool"]
  mu, sigma = fid.feature_statistics(feats)
  return float(fid.frechet_distance(real_stats[0], real_stats[1], mu, sigma))


def fixed_noise_grid(sample_fn, state: state_lib.GANState, config, rows: int = 8) -> np.ndarray:
  """uint8 grid of `rows²` EMA-generator samples from a fixed noise seed (the same every call)."""
  n = rows * rows
  z = jax.random.normal(jax.random.PRNGKey(config.seed + 1), (n, config.model.z_dim))
  num_classes = config.model.get("num_classes", 0)
  y = (jnp.arange(n) % num_classes).astype(jnp.int32) if num_classes else jnp.zeros((n,), jnp.int32)
  images = to_uint8(np.asarray(sample_fn(state.ema_params, state.g_state, z, y)))
  return image_grid(images, rows)
