"""One conversion at a time: an inter-process lock around tfds `download_and_prepare`.

Two runs started together on a fresh machine (a baseline and its pair, or the processes of a
multi-process job) would otherwise both convert the same local source into the same tfds
directory; tfds prepares into a temporary directory and renames it at the end, so the second
rename fails with `FileExistsError` ("Destination ... already exists") and that run dies.
`prepare_once` takes an OS file lock (`filelock`, `fcntl.flock` on POSIX: released by the OS if
the holder dies) named after the dataset and config under the data directory, and lets the
caller re-check `is_prepared()` after it is acquired, so that the process that waited reuses
the finished conversion instead of converting again.
"""

import os
from typing import Callable, Tuple

from absl import logging
import filelock
import tensorflow_datasets as tfds


def lock_path(data_dir: str, builder: tfds.core.DatasetBuilder) -> str:
  """`<data_dir>/<dataset name>-<config name>.prepare.lock` (the directory is created)."""
  data_dir = os.path.expanduser(data_dir)
  os.makedirs(data_dir, exist_ok=True)
  config = builder.builder_config.name if builder.builder_config else "default"
  return os.path.join(data_dir, f"{builder.name}-{config}.prepare.lock")


def prepare_once(data_dir: str, make_builder: Callable[[], tfds.core.DatasetBuilder],
                 prepare: Callable[[tfds.core.DatasetBuilder], None]
                 ) -> Tuple[tfds.core.DatasetBuilder, bool]:
  """Prepares the dataset of `make_builder()` unless it is (or becomes) prepared.

  Args:
    data_dir: the tfds data directory that holds the conversion (and the lock file).
    make_builder: returns a fresh builder (called again after waiting for the lock, so that
      it sees a conversion that another process just finished).
    prepare: converts, given a builder that is not prepared (e.g. calls
      `builder.download_and_prepare()` and reports).

  Returns:
    (a prepared builder, whether this call converted it).
  """
  builder = make_builder()
  if builder.is_prepared():
    return builder, False
  path = lock_path(data_dir, builder)
  lock = filelock.FileLock(path)
  try:
    lock.acquire(timeout=0)
  except filelock.Timeout:
    logging.info("waiting for another process to finish converting (lock %s)", path)
    print(f"[data] waiting for another process converting the same source (lock {path})",
          flush=True)
    lock.acquire()
  try:
    builder = make_builder()
    if builder.is_prepared():
      return builder, False
    prepare(builder)
    return builder, True
  finally:
    lock.release()
