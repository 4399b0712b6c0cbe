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
