"""One training run per workdir: an OS file lock (`filelock`) plus a note naming its holder.

`WorkdirLock(workdir)` takes `<workdir>/.train.lock` with `filelock.FileLock` (an `fcntl.flock`
on POSIX, which the kernel releases when the holding process dies, however it dies) and then
writes `<workdir>/.train.lock.json` with the holder's host, pid and start time. A second run
on the same workdir fails at once with `WorkdirLockedError` quoting that note. When the lock
is free but a note is still there, the process that wrote it died without releasing (e.g.
SIGKILL); the new run takes the lock over and logs whose lock it took.

On multi-host runs only process 0 takes the lock (the other processes write no checkpoints of
their own: orbax coordinates the save through process 0). `flock` does not work across hosts
on every network file system; two runs started on different machines over such a mount are
not caught.
"""

import datetime
import json
import os
import socket
from typing import Any, Dict, Optional

from absl import logging
import filelock
import jax

LOCK_NAME = ".train.lock"
HOLDER_NAME = ".train.lock.json"


class WorkdirLockedError(RuntimeError):
  """Another live process holds the workdir's lock."""


def _read_holder(path: str) -> Optional[Dict[str, Any]]:
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


def describe_holder(holder: Optional[Dict[str, Any]]) -> str:
  if not holder:
    return "an unknown process (no holder note)"
  return (f"pid {holder.get('pid')} on host {holder.get('host')!r}, started "
          f"{holder.get('start_time')}")


class WorkdirLock:
  """Exclusive lock on a training workdir (see module doc); a context manager.

  Args:
    workdir: the run directory (created when missing).
    enabled: take the lock; None means only on `jax.process_index() == 0`.
  """

  def __init__(self, workdir: str, enabled: Optional[bool] = None):
    self.workdir = os.path.abspath(os.path.expanduser(workdir))
    self.enabled = jax.process_index() == 0 if enabled is None else enabled
    self.lock_path = os.path.join(self.workdir, LOCK_NAME)
    self.holder_path = os.path.join(self.workdir, HOLDER_NAME)
    self._lock = filelock.FileLock(self.lock_path, timeout=0)
    self.took_over: Optional[Dict[str, Any]] = None

  def acquire(self) -> "WorkdirLock":
    """Takes the lock without waiting.

    Raises:
      WorkdirLockedError: another live process holds it; the message names that process.
    """
    if not self.enabled:
      return self
    os.makedirs(self.workdir, exist_ok=True)
    try:
      self._lock.acquire(timeout=0)
    except filelock.Timeout:
      holder = _read_holder(self.holder_path)
      raise WorkdirLockedError(
          f"workdir {self.workdir} is in use by another training run: "
          f"{describe_holder(holder)} holds {self.lock_path}. Wait for it to finish, stop it, "
          "or train in another --workdir.") from None
    stale = _read_holder(self.holder_path)
    if stale is not None:
      self.took_over = stale
      msg = (f"taking over the lock of workdir {self.workdir} left by "
             f"{describe_holder(stale)}, which is no longer running.")
      logging.warning(msg)
      print(f"[train] {msg}", flush=True)
    note = {"host": socket.gethostname(), "pid": os.getpid(),
            "start_time": datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds")}
    tmp = self.holder_path + f".tmp{os.getpid()}"
    with open(tmp, "w") as f:
      json.dump(note, f)
    os.replace(tmp, self.holder_path)
    return self

  def release(self) -> None:
    if not self.enabled or not self._lock.is_locked:
      return
    holder = _read_holder(self.holder_path)
    if holder and holder.get("pid") == os.getpid():
      try:
        os.remove(self.holder_path)
      except OSError:
        pass
    self._lock.release()

  def __enter__(self) -> "WorkdirLock":
    return self.acquire()

  def __exit__(self, *exc) -> None:
    self.release()
