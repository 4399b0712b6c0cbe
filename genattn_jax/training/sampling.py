"""Sampling from a finished or running training workdir (used by `eval.py --workdir`)."""

import json
import os
from typing import Iterator, Optional, Tuple

import jax
import ml_collections
import numpy as np

from genattn_jax import models
from genattn_jax.training import checkpoint as ckpt_lib
from genattn_jax.training import evaluation
from genattn_jax.training import state as state_lib


GENERATOR_CHOICES: Tuple[str, ...] = ("config",) + evaluation.GENERATORS + ("both",)


def load_run_config(workdir: str) -> ml_collections.ConfigDict:
  """The config a `train.py` run saved (`workdir/config.json`).

  Raises:
    FileNotFoundError: `workdir` has no config.json.
  """
  workdir = os.path.abspath(os.path.expanduser(workdir))
  config_path = os.path.join(workdir, "config.json")
  if not os.path.exists(config_path):
    raise FileNotFoundError(f"`workdir` {workdir} has no config.json: is it a train.py run?")
  with open(config_path) as f:
    return ml_collections.ConfigDict(json.load(f))


def generators_to_score(config: ml_collections.ConfigDict, choice: str = "config"
                        ) -> Tuple[str, ...]:
  """Which generators to score: ('ema',), ('raw',) or ('ema', 'raw').

  Args:
    config: the run's config.
    choice: 'ema', 'raw', 'both', or 'config' (the run's `eval.fid_both` / `eval.fid_params`,
      as its in-training evaluation did).

  Raises:
    ValueError: an unknown `choice`, or (with 'config') a bad `eval.fid_params`.
  """
  if choice not in GENERATOR_CHOICES:
    raise ValueError(f"`generator` must be one of {GENERATOR_CHOICES}, got {choice!r}.")
  if choice == "config":
    return evaluation.scored_generators(config.eval)
  return evaluation.GENERATORS if choice == "both" else (choice,)


def load_run(workdir: str, step: Optional[int] = None
             ) -> Tuple[ml_collections.ConfigDict, state_lib.GANState, int]:
  """Reads `workdir/config.json` and restores a verified checkpoint (newest by default).

  Raises:
    FileNotFoundError: no config.json or no usable checkpoint in `workdir`.
  """
  workdir = os.path.abspath(os.path.expanduser(workdir))
  config = load_run_config(workdir)
  generator, discriminator = models.build_gan(config.model)
  target = state_lib.create_gan_state(config, generator, discriminator, jax.random.PRNGKey(0))
  checkpointer = ckpt_lib.Checkpointer(os.path.join(workdir, "checkpoints"), async_save=False)
  try:
    if step is None:
      found, state = checkpointer.restore_latest(target)
    else:
      found, state = step, checkpointer.restore(step, target)
  finally:
    checkpointer.close()
  if found is None:
    raise FileNotFoundError(f"no usable checkpoint under {workdir}/checkpoints.")
  return config, state, int(found)


def sample_images_from_workdir(workdir: str, num_images: Optional[int] = None,
                               batch_size: int = 100, seed: int = 1234,
                               step: Optional[int] = None, generator: str = "ema"
                               ) -> Iterator[np.ndarray]:
  """Yields uint8 [b, R, R, 3] batches from the run's EMA or raw generator.

  Args:
    workdir: a `train.py` workdir.
    num_images: how many images (default: the run's `config.eval.num_fake`).
    batch_size: generator batch size.
    seed: noise seed.
    step: checkpoint step (default: the newest that verifies).
    generator: 'ema' (the EMA of G's weights) or 'raw' (G as trained).

  Raises:
    ValueError: `generator` is neither 'ema' nor 'raw'.
  """
  if generator not in evaluation.GENERATORS:  # before the checkpoint is restored
    raise ValueError(f"`generator` must be 'ema' or 'raw', got {generator!r}.")
  config, state, _ = load_run(workdir, step)
  num_images = num_images or config.eval.num_fake
  params = evaluation.generator_params(state, generator)
  g_module, _ = models.build_gan(config.model)
  num_classes = config.model.get("num_classes", 0)
  sample_fn = evaluation.make_sample_fn(g_module, num_classes)
  yield from evaluation.sample_batches(
      sample_fn, params, state.g_state, num_images=num_images, batch_size=batch_size,
      z_dim=config.model.z_dim, num_classes=num_classes, seed=seed)
