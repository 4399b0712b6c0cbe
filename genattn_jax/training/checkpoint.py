"""Checkpoints: orbax `CheckpointManager` with checksums and the data iterator position.

Each step directory holds three items:
  * `state`: the `GANState` (orbax StandardSave; multi-host aware).
  * `data`: the grain iterator position of this process (grain's orbax handler), so a resumed
    run continues with exactly the batches it would have seen.
  * `meta`: JSON with the step, the config's name, a sha256 of every array of `state` and a
    sha256 of each process's iterator position file (`data_sha256`).

Orbax restores altered bytes without complaint, and takes an empty step directory for a
checkpoint; a checkpoint cut off mid-write keeps orbax's temporary name and is ignored.
`restore_latest` therefore verifies every array and the iterator position against `meta`
and falls back, newest first, to the previous checkpoint that restores and verifies, logging
why each newer one was refused. With `move_aside=True` (the trainer) a refused checkpoint is
renamed `<step>.corrupt-<UTC time>` (kept for inspection, ignored by orbax), so the resumed run
can write that step again. When checkpoints exist but none is usable, `require_usable=True`
raises `NoUsableCheckpointError` listing each one and why it was refused, and nothing is moved:
a run never starts again from step 0 over existing work unless asked to (then they are all
moved aside first).
A checkpoint whose arrays (paths, and shapes where `meta` records them) differ from the state
the current config builds is a different kind of failure: every checkpoint of the run would
differ the same way, and starting again from step 0 would in time overwrite them, so
`restore_latest` raises `CheckpointMismatchError` instead of falling back.

Retention: the newest `keep` checkpoints, plus the best one by FID (lowest) when FID metrics
are given to `save`.
"""

import hashlib
import os
import time
from typing import Any, Dict, List, Optional, Tuple

from absl import logging
import grain
import jax
import numpy as np
import orbax.checkpoint as ocp

PyTree = Any


class CheckpointError(RuntimeError):
  """A checkpoint that exists but must not be loaded (bad checksum, missing item)."""


class NoUsableCheckpointError(CheckpointError):
  """Checkpoints exist but none restores and verifies (see `Checkpointer.restore_latest`)."""


class CheckpointMismatchError(ValueError):
  """A checkpoint written for another model or config than the state it is restored into."""


def state_shapes(state: PyTree) -> Dict[str, list]:
  """Shape of every leaf, keyed by its tree path (as in `state_checksums`)."""
  leaves = jax.tree_util.tree_flatten_with_path(state)[0]
  return {jax.tree_util.keystr(path): list(np.shape(leaf)) for path, leaf in leaves}


def check_compatible(meta: Dict[str, Any], target: PyTree, step: int, directory: str) -> None:
  """Raises CheckpointMismatchError when `meta`'s arrays are not those of `target`."""
  saved = meta.get("shapes") or {k: None for k in meta.get("checksums", {})}
  if not saved:
    return
  wanted = state_shapes(target)
  extra, missing = sorted(set(saved) - set(wanted)), sorted(set(wanted) - set(saved))
  reshaped = sorted(k for k in set(saved) & set(wanted)
                    if saved[k] is not None and list(saved[k]) != wanted[k])
  if not (extra or missing or reshaped):
    return
  parts = []
  if extra:
    parts.append(f"{len(extra)} saved arrays the current config does not build, e.g. {extra[:3]}")
  if missing:
    parts.append(f"{len(missing)} arrays of the current config not in the checkpoint, e.g. "
                 f"{missing[:3]}")
  if reshaped:
    k = reshaped[0]
    parts.append(f"{len(reshaped)} arrays with other shapes, e.g. {k}: saved {saved[k]}, "
                 f"config {wanted[k]}")
  raise CheckpointMismatchError(
      f"checkpoint {step} in {directory} was written for a different model or config: "
      + "; ".join(parts) + ". Resume with the config the run was started with (the run "
      "directory's config.json holds it) or train in a new --workdir.")


def state_checksums(state: PyTree) -> Dict[str, str]:
  """sha256 of the bytes of every leaf, keyed by its tree path."""
  leaves = jax.tree_util.tree_flatten_with_path(jax.device_get(state))[0]
  return {jax.tree_util.keystr(path): hashlib.sha256(np.ascontiguousarray(leaf).tobytes()
                                                     ).hexdigest() for path, leaf in leaves}


def verify_checksums(state: PyTree, expected: Dict[str, str], step: int) -> None:
  """Raises CheckpointError naming the first array whose bytes differ from `expected`."""
  actual = state_checksums(state)
  if set(actual) != set(expected):
    missing = sorted(set(expected) ^ set(actual))[:3]
    raise CheckpointError(f"checkpoint {step}: arrays {missing} differ from the saved manifest.")
  for key, digest in expected.items():
    if actual[key] != digest:
      raise CheckpointError(f"checkpoint {step}: array {key} fails its sha256 check "
                            f"(saved {digest[:12]}…, read {actual[key][:12]}…); refusing it.")


def _data_file_name() -> str:
  # grain's orbax handler writes one JSON file per process under this name.
  return f"process_{jax.process_index()}-of-{jax.process_count()}.json"


def _data_checksums(data_iterator) -> Dict[str, str]:
  """sha256 of the iterator position file of every process, keyed by the file's name."""
  digest = hashlib.sha256(data_iterator.get_state()).digest()
  if jax.process_count() == 1:
    return {_data_file_name(): digest.hex()}
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  every = np.asarray(multihost_utils.process_allgather(np.frombuffer(digest, np.uint8)))
  n = jax.process_count()
  return {f"process_{i}-of-{n}.json": bytes(every[i]).hex() for i in range(n)}


class Checkpointer:
  """Saves and restores (state, data iterator) in `directory`; see module doc."""

  def __init__(self, directory: str, keep: int = 3, async_save: bool = True):
    policy = ocp.checkpoint_managers.AnyPreservationPolicy([
        ocp.checkpoint_managers.LatestN(n=keep),
        ocp.checkpoint_managers.BestN(get_metric_fn=lambda m: m["fid"], reverse=True, n=1,
                                      keep_checkpoints_without_metrics=False),
    ])
    options = ocp.CheckpointManagerOptions(preservation_policy=policy, create=True,
                                           enable_async_checkpointing=async_save)
    self.directory = os.path.abspath(os.path.expanduser(directory))
    self.refused: List[Tuple[int, str]] = []
    self.manager = ocp.CheckpointManager(self.directory, options=options,
                                         item_names=("state", "data", "meta"))

  def save(self, step: int, state: PyTree, data_iterator=None,
           fid: Optional[float] = None, extra_meta: Optional[Dict[str, Any]] = None) -> None:
    """Saves `state` (and the iterator position) as checkpoint `step`."""
    meta = {"step": int(step), "checksums": state_checksums(state),
            "shapes": state_shapes(state), **(extra_meta or {})}
    items = {"state": ocp.args.StandardSave(state), "meta": ocp.args.JsonSave(meta)}
    if data_iterator is not None:
      meta["data_sha256"] = _data_checksums(data_iterator)
      items["data"] = grain.checkpoint.CheckpointSave(data_iterator)
    metrics = {"fid": float(fid)} if fid is not None and np.isfinite(fid) else None
    self.manager.save(int(step), args=ocp.args.Composite(**items), metrics=metrics, force=True)

  def wait(self) -> None:
    self.manager.wait_until_finished()

  def all_steps(self):
    return sorted(self.manager.all_steps())

  def restore(self, step: int, target: PyTree, data_iterator=None) -> PyTree:
    """Restores and verifies checkpoint `step` into the structure of `target`.

    Raises:
      CheckpointMismatchError: the checkpoint's arrays are not those of `target`.
      CheckpointError: it has no manifest, an array or the iterator position fails its
        sha256 check, or the position is missing.
    """
    # The manifest first (small JSON): it decides whether the arrays are worth reading.
    meta = self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
    if not meta or "checksums" not in meta:
      raise CheckpointError(f"checkpoint {step} has no checksum manifest.")
    check_compatible(meta, target, step, self.directory)
    abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, target)
    items = {"state": ocp.args.StandardRestore(abstract)}
    if data_iterator is not None:
      self._verify_data_position(step, meta)
      items["data"] = grain.checkpoint.CheckpointRestore(data_iterator)
    restored = self.manager.restore(step, args=ocp.args.Composite(**items))
    verify_checksums(restored["state"], meta["checksums"], step)
    return restored["state"]

  def _verify_data_position(self, step: int, meta: Dict[str, Any]) -> None:
    """Checks this process's iterator position file against `meta['data_sha256']`."""
    path = os.path.join(self.directory, str(step), "data", _data_file_name())
    if not os.path.exists(path):
      raise CheckpointError(f"checkpoint {step} has no data iterator position ({path}).")
    expected = meta.get("data_sha256")
    if expected is None:  # written before positions were in the manifest
      logging.warning("checkpoint %d predates iterator checksums; its position is not verified.",
                      step)
      return
    with open(path, "rb") as f:
      actual = hashlib.sha256(f.read()).hexdigest()
    if expected.get(_data_file_name()) != actual:
      raise CheckpointError(f"checkpoint {step}: data iterator position {path} fails its sha256 "
                            "check; refusing it.")

  def move_aside(self, step: int) -> Optional[str]:
    """Renames checkpoint `step` to `<step>.corrupt-<UTC time>` (process 0); returns the path."""
    src = os.path.join(self.directory, str(step))
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    dst, n = os.path.join(self.directory, f"{step}.corrupt-{stamp}"), 1
    while os.path.exists(dst):
      n += 1
      dst = os.path.join(self.directory, f"{step}.corrupt-{stamp}-{n}")
    if jax.process_index() == 0 and os.path.exists(src):
      os.rename(src, dst)
      logging.warning("moved unusable checkpoint %d aside to %s", step, dst)
      print(f"[checkpoint] moved unusable checkpoint {step} aside to {dst}", flush=True)
    if jax.process_count() > 1:
      from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
      multihost_utils.sync_global_devices(f"genattn_move_aside_{step}")
    return dst

  def restore_latest(self, target: PyTree, data_iterator=None, *, move_aside: bool = False,
                     require_usable: bool = False) -> Tuple[Optional[int], PyTree]:
    """Newest checkpoint that restores and verifies, else (None, target).

    Args:
      target: a state of the structure to restore into.
      data_iterator: grain iterator whose position is restored too (and verified).
      move_aside: rename each refused checkpoint `<step>.corrupt-<time>` (see module doc).
        When none is usable they are moved only if `require_usable` is False.
      require_usable: raise when checkpoints exist and none is usable.

    The refused checkpoints are left in `self.refused` as (step, reason) pairs.

    Raises:
      CheckpointMismatchError: the newest readable checkpoint was written for another model
        or config (see the module doc).
      NoUsableCheckpointError: `require_usable` and no checkpoint of the directory is usable;
        the message lists every step and why it was refused.
    """
    self.manager.reload()
    self.refused = []
    found, restored = None, target
    for step in sorted(self.manager.all_steps(), reverse=True):
      try:
        restored, found = self.restore(step, target, data_iterator), step
        break
      except CheckpointMismatchError:
        raise
      except Exception as e:  # pylint: disable=broad-except
        reason = f"{type(e).__name__}: {e}"
        self.refused.append((step, reason))
        logging.error("checkpoint %d in %s is unusable (%s); trying the previous one.",
                      step, self.directory, reason)
    if found is None and self.refused and require_usable:
      listing = "\n".join(f"  step {s}: {r[:300]}" for s, r in self.refused)
      raise NoUsableCheckpointError(
          f"no usable checkpoint in {self.directory}; found {len(self.refused)}, all refused:\n"
          f"{listing}\nNothing was moved or deleted. Inspect or remove them, train in a new "
          "--workdir, or set --config.checkpoint.allow_restart_from_scratch=True to move them "
          "aside and start again from step 0.")
    if move_aside and self.refused:
      for step, _ in self.refused:
        self.move_aside(step)
      self.manager.reload()
    return found, restored

  def close(self) -> None:
    self.manager.wait_until_finished()
    self.manager.close()
