"""Checkpoints: orbax `CheckpointManager` with checksums and the data iterator position.

Each step directory holds three items:
  * `state`: the `GANState` (orbax StandardSave; multi-host aware).
  * `data`: the grain iterator position of this process (grain's orbax handler), so a resumed
    run continues with exactly the batches it would have seen.
  * `meta`: JSON with the step, the config's name and a sha256 of every array of `state`.

Orbax restores altered bytes without complaint, and takes an empty step directory for a
checkpoint; a checkpoint cut off mid-write keeps orbax's temporary name and is ignored.
`restore_latest` therefore verifies every array against `meta` and falls back, newest first,
to the previous checkpoint that restores and verifies, logging why each newer one was refused.
A checkpoint whose arrays (paths, and shapes where `meta` records them) differ from the state
the current config builds is a different kind of failure: every checkpoint of the run would
differ the same way, and starting again from step 0 would in time overwrite them, so
`restore_latest` raises `CheckpointMismatchError` instead of falling back.

Retention: the newest `keep` checkpoints, plus the best one by FID (lowest) when FID metrics
are given to `save`.
"""

import hashlib
import os
from typing import Any, Dict, Optional, Tuple

from absl import logging
import grain
import jax
import numpy as np
import orbax.checkpoint as ocp

PyTree = Any


class CheckpointError(RuntimeError):
  """A checkpoint that exists but must not be loaded (bad checksum, missing item)."""


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
    self.manager = ocp.CheckpointManager(self.directory, options=options,
                                         item_names=("state", "data", "meta"))

  def save(self, step: int, state: PyTree, data_iterator=None,
           fid: Optional[float] = None, extra_meta: Optional[Dict[str, Any]] = None) -> None:
    """Saves `state` (and the iterator position) as checkpoint `step`."""
    meta = {"step": int(step), "checksums": state_checksums(state),
            "shapes": state_shapes(state), **(extra_meta or {})}
    items = {"state": ocp.args.StandardSave(state), "meta": ocp.args.JsonSave(meta)}
    if data_iterator is not None:
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
      CheckpointError: it has no manifest, or an array fails its sha256 check.
    """
    # The manifest first (small JSON): it decides whether the arrays are worth reading.
    meta = self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
    if not meta or "checksums" not in meta:
      raise CheckpointError(f"checkpoint {step} has no checksum manifest.")
    check_compatible(meta, target, step, self.directory)
    abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, target)
    items = {"state": ocp.args.StandardRestore(abstract)}
    if data_iterator is not None:
      items["data"] = grain.checkpoint.CheckpointRestore(data_iterator)
    restored = self.manager.restore(step, args=ocp.args.Composite(**items))
    verify_checksums(restored["state"], meta["checksums"], step)
    return restored["state"]

  def restore_latest(self, target: PyTree, data_iterator=None) -> Tuple[Optional[int], PyTree]:
    """Newest checkpoint that restores and verifies, else (None, target).

    Raises:
      CheckpointMismatchError: the newest readable checkpoint was written for another model
        or config (see the module doc).
    """
    self.manager.reload()
    for step in sorted(self.manager.all_steps(), reverse=True):
      try:
        return step, self.restore(step, target, data_iterator)
      except CheckpointMismatchError:
        raise
      except Exception as e:  # pylint: disable=broad-except
        logging.error("checkpoint %d in %s is unusable (%s: %s); trying the previous one.",
                      step, self.directory, type(e).__name__, e)
    return None, target

  def close(self) -> None:
    self.manager.wait_until_finished()
    self.manager.close()
