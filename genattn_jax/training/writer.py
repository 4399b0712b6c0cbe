"""Metric writing behind one small interface: TensorBoard event files via tensorboardX.

`clu.metric_writers` imports TensorFlow when the package is imported; tensorboardX writes the
same event files without it. Only process 0 writes (the multi-host convention of clu);
other processes get a writer that drops everything.
"""

import sys
from typing import Callable, Mapping

from absl import logging
import jax
import numpy as np


class MetricWriter:
  """Scalars and images to TensorBoard event files in `logdir` (process 0 only)."""

  def __init__(self, logdir: str, enabled: bool = True):
    self._writer = None
    if enabled and jax.process_index() == 0:
      from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
      self._writer = SummaryWriter(logdir=logdir, flush_secs=30)

  def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
    if self._writer is None:
      return
    for name, value in scalars.items():
      self._writer.add_scalar(name, float(value), global_step=int(step))

  def write_image(self, step: int, name: str, image: np.ndarray) -> None:
    """image: [H, W, C] uint8."""
    if self._writer is not None:
      self._writer.add_image(name, np.asarray(image), global_step=int(step), dataformats="HWC")

  def flush(self) -> None:
    if self._writer is not None:
      self._writer.flush()

  def close(self) -> None:
    if self._writer is not None:
      self._writer.close()
      self._writer = None


def log_progress(step: int, total: int, scalars: Mapping[str, float],
                 echo: Callable[[str], None] = print, suffix: str = "") -> None:
  """One progress line per call, process 0 only, printed with `echo` (e.g. `tqdm.write`)."""
  if jax.process_index() != 0:
    return
  keys = ("d_loss", "g_loss", "d_real", "d_fake", "steps_per_sec", "fid")
  parts = [f"{k}={scalars[k]:.4g}" for k in keys if k in scalars] + ([suffix] if suffix else [])
  logging.info("step %d/%d  %s", step, total, "  ".join(parts))
  echo(f"[train] step {step}/{total}  " + "  ".join(parts))
  sys.stdout.flush()
