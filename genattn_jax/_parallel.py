"""Per-example random draws that come out the same on one device and under `pmap`.

Convention shared by the train step and the layers: with the batch split over a pmap axis,
device i holds global rows [i * b, (i + 1) * b) (b = rows per device). A draw made for the
global batch from a replicated key, then cut to this device's rows, equals the draw one device
makes for the whole batch.
"""

from typing import Optional

import jax


def global_rows(local: int, axis_name: Optional[str]) -> int:
  """Rows of the global batch: `local` times the size of `axis_name` (None: `local`)."""
  return local if axis_name is None else local * jax.lax.axis_size(axis_name)


def own_rows(x: jax.Array, local: int, axis_name: Optional[str]) -> jax.Array:
  """This device's `local` rows of `x`, an array drawn for the global batch (axis 0).

  With `axis_name` None, `x` is returned as it is. Call inside `pmap` / `shard_map` over
  `axis_name` otherwise.
  """
  if axis_name is None:
    return x
  return jax.lax.dynamic_slice_in_dim(x, jax.lax.axis_index(axis_name) * local, local, axis=0)


_BARRIERS = {"count": 0}


def wait_for_processes(name: str, timeout_s: int = 3600) -> None:
  """Blocks until every process of a `jax.distributed` run reached this call (else returns).

  A barrier of the coordination service, not a device collective: on CPU, gloo gives a peer
  only 30 s to join a collective's first run, so processes that reach it at different times
  (one still compiling, or preparing data) must first meet here. Call it in the same order
  on every process; `name` only labels the barrier in error messages.
  """
  if jax.process_count() == 1:
    return
  from jax._src import distributed  # pylint: disable=g-import-not-at-top
  if distributed.global_state.client is None:  # no coordination service: nothing to meet
    return
  _BARRIERS["count"] += 1
  distributed.global_state.client.wait_at_barrier(
      f"genattn_{_BARRIERS['count']}_{name}", timeout_in_ms=int(timeout_s * 1000))
