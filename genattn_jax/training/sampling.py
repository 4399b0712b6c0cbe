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


def load_run(workdir: str, step: Optional[int] = None
             ) -> Tuple[ml_collections.ConfigDict, state_lib.GANState, int]:
  """Reads `workdir/config.json` and restores a verified checkpoint (newest by default).

  Raises:
    FileNotFoundError: no config.json or no usable checkpoint in `workdir`.
  """
  workdir = os.path.abspath(os.path.expanduser(workdir))
  config_path = os.path.join(workdir, "config.json")
  if not os.path.exists(config_path):
    raise FileNotFoundError(f"`workdir` {workdir} has no config.json: is it a train.py run?")
  with open(config_path) as f:
    config = ml_collections.ConfigDict(json.load(f))
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
                               step: Optional[int] = None) -> Iterator[np.ndarray]:
  """Yields uint8 [b, R, R, 3] batches from the run's EMA generator.

  Args:
    workdir: a `train.py` workdir.
    num_images: how many images (default: the run's `config.eval.num_fake`).
    batch_size: generator batch size.
    seed: noise seed.
    step: checkpoint step (default: the newest that verifies).
  """
  config, state, _ = load_run(workdir, step)
  num_images = num_images or config.eval.num_fake
  generator, _ = models.build_gan(config.model)
  num_classes = config.model.get("num_classes", 0)
  sample_fn = evaluation.make_sample_fn(generator, num_classes)
  yield from evaluation.sample_batches(
      sample_fn, state.ema_params, state.g_state, num_images=num_images, batch_size=batch_size,
      z_dim=config.model.z_dim, num_classes=num_classes, seed=seed)
