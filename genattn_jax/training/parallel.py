"""Data-parallel backends for the pure train step: jit over a Mesh (default) and pmap.

Both take host batches as each process loads them (its own shard of the global batch) and
the state as one pytree; both give the same numbers as one device on the same global batch.

* `JitBackend`: `jax.jit` with explicit `NamedSharding`s — state replicated (`P()`), batch
  split along axis `'data'` of a 1-D `Mesh` over every device of every process. Per-process
  batches become one global array with `jax.make_array_from_process_local_data`, so the same
  code runs on one host, a GPU box or a multi-host TPU pod slice.
* `PmapBackend`: `jax.pmap` over the local devices with axis name `'batch'`; the state is
  replicated on every device, gradients and BatchNorm statistics are averaged with
  `lax.pmean` (the models must be built with `bn_axis_name='batch'`).

Multi-host: `initialize_distributed(config.parallel)` starts `jax.distributed` before any
device is touched. Every process then runs the same program; the loader gives each process
its own shard of every global batch, `JitBackend` assembles the shards into one global array
over all processes' devices, and orbax writes each checkpoint once (see `checkpoint.py`).
"""

from typing import Any, Callable, Dict, Optional, Sequence, Tuple

from absl import logging
import jax
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P
import numpy as np

from genattn_jax._parallel import wait_for_processes

PMAP_AXIS = "batch"
DATA_AXIS = "data"


def initialize_distributed(parallel_config) -> bool:
  """Starts `jax.distributed` as `config.parallel` says; returns whether it did.

  Fields of `parallel_config` (`config.parallel`):
    distributed: False → single process, nothing is done.
    coordinator_address: 'host:port' of process 0's coordinator; '' = detected from the
      cluster environment (Cloud TPU pod slices, SLURM, Open MPI, or the
      `JAX_COORDINATOR_ADDRESS` / `JAX_NUM_PROCESSES` / `JAX_PROCESS_ID` variables).
    num_processes: number of processes (0 = detected).
    process_id: this process's index in [0, num_processes) (-1 = detected).
    cpu_collectives: cross-process collectives on CPU devices ('gloo' or 'mpi'; '' = JAX's
      default), set before the runtime starts.

  Must run before anything touches a device (`jax.devices()`, a `jit` call, ...).

  Raises:
    ValueError: `process_id` outside [0, num_processes), or only one of them given.
  """
  if not parallel_config.get("distributed", False):
    return False
  address = parallel_config.get("coordinator_address", "") or None
  num = int(parallel_config.get("num_processes", 0)) or None
  pid = int(parallel_config.get("process_id", -1))
  pid = None if pid < 0 else pid
  if (num is None) != (pid is None):
    raise ValueError("`config.parallel.num_processes` and `config.parallel.process_id` must be "
                     f"set together (or both left to detection), got {num} and {pid}.")
  if num is not None and not 0 <= pid < num:
    raise ValueError(f"`config.parallel.process_id` must be in [0, {num}), got {pid}.")
  collectives = parallel_config.get("cpu_collectives", "")
  if collectives:
    jax.config.update("jax_cpu_collectives_implementation", collectives)
  jax.distributed.initialize(coordinator_address=address, num_processes=num, process_id=pid)
  logging.info("jax.distributed: process %d of %d, %d local / %d global devices",
               jax.process_index(), jax.process_count(), jax.local_device_count(),
               jax.device_count())
  return True


def make_data_mesh(devices: Optional[Sequence[jax.Device]] = None) -> Mesh:
  """1-D mesh named 'data' over `devices` (default: every device of every process)."""
  devices = list(devices) if devices is not None else jax.devices()
  return jax.make_mesh((len(devices),), (DATA_AXIS,), axis_types=(AxisType.Auto,),
                       devices=devices)


def _check_divisible(batch: Dict[str, np.ndarray], n: int, what: str) -> None:
  for k, v in batch.items():
    if v.shape[0] % n:
      raise ValueError(f"batch['{k}'] has {v.shape[0]} rows on this process, not divisible "
                       f"by its {n} {what}: make the global batch a multiple of the device count.")


class JitBackend:
  """`jax.jit` of `train_step` with the batch sharded over a 'data' mesh axis."""

  axis_name: Optional[str] = None

  def __init__(self, train_step: Callable, mesh: Optional[Mesh] = None):
    self.mesh = mesh or make_data_mesh()
    self.replicated = NamedSharding(self.mesh, P())
    self.batch_sharding = NamedSharding(self.mesh, P(DATA_AXIS))
    self._step = jax.jit(train_step,
                         in_shardings=(self.replicated, self.batch_sharding, self.replicated),
                         out_shardings=(self.replicated, self.replicated),
                         donate_argnums=(0,))
    self._compiled = None

  def put_state(self, state):
    if jax.process_count() > 1:
      # Every process holds the whole state; hand it over from the host, so that arrays
      # committed to one local device (as orbax restores them) are not taken for a
      # cross-host device transfer.
      state = jax.device_get(state)
    return jax.device_put(state, self.replicated)

  def put_batch(self, batch: Dict[str, np.ndarray]):
    _check_divisible(batch, len(self.mesh.local_devices), "local devices")
    return {k: jax.make_array_from_process_local_data(self.batch_sharding, np.asarray(v))
            for k, v in batch.items()}

  def step(self, state, batch, rng) -> Tuple[Any, Dict[str, Any]]:
    if jax.process_count() == 1:
      return self._step(state, batch, rng)
    rng = jax.device_put(rng, self.replicated)  # the compiled step takes exact shardings
    if self._compiled is None:
      # Compile ahead of time, then let every process start the first step together: a
      # process still compiling would otherwise miss gloo's 30 s window on CPU.
      self._compiled = self._step.lower(state, batch, rng).compile()
      wait_for_processes("train_step_compiled")
    return self._compiled(state, batch, rng)

  def get_state(self, state):
    """The state as one (replicated) copy, ready for checkpointing or evaluation."""
    return state

  def get_metrics(self, metrics) -> Dict[str, float]:
    return {k: float(v) for k, v in jax.device_get(metrics).items()}


class PmapBackend:
  """`jax.pmap` of `train_step` over the local devices, axis name 'batch'."""

  axis_name: Optional[str] = PMAP_AXIS

  def __init__(self, train_step: Callable, devices: Optional[Sequence[jax.Device]] = None):
    self.devices = list(devices) if devices is not None else jax.local_devices()
    self._step = jax.pmap(train_step, axis_name=PMAP_AXIS, in_axes=(0, 0, None),
                          devices=self.devices, donate_argnums=(0,))

  def put_state(self, state):
    """One copy of `state` per device, stacked along a leading device axis."""
    n = len(self.devices)
    sharding = NamedSharding(Mesh(np.asarray(self.devices), (PMAP_AXIS,)), P(PMAP_AXIS))
    return jax.tree_util.tree_map(
        lambda x: jax.device_put(np.broadcast_to(np.asarray(x)[None], (n,) + np.shape(x)),
                                 sharding), state)

  def put_batch(self, batch: Dict[str, np.ndarray]):
    n = len(self.devices)
    _check_divisible(batch, n, "local devices")
    return {k: np.asarray(v).reshape((n, -1) + np.shape(v)[1:]) for k, v in batch.items()}

  def step(self, state, batch, rng):
    return self._step(state, batch, rng)

  def get_state(self, state):
    """The first local device's replica, read from that device's own shard.

    Each leaf is sliced on one device (`addressable_shards[0]`, shape [1, ...]), a new buffer
    that the next (donating) step does not free. Indexing the stacked array (`x[0]`) instead
    runs a program over all the devices for every leaf; on simulated CPU devices such programs
    racing the step's all-reduce aborted the process (XLA:CPU's collective termination
    timeout, seen in this project's 8-device test suite).
    """
    return jax.tree_util.tree_map(lambda x: x.addressable_shards[0].data[0], state)

  def get_metrics(self, metrics) -> Dict[str, float]:
    return {k: float(v[0]) for k, v in jax.device_get(metrics).items()}


def make_backend(name: str, train_step: Callable, devices=None):
  """'jit' → JitBackend (default), 'pmap' → PmapBackend.

  Raises:
    ValueError: unknown `config.parallel.backend`.
  """
  if name == "jit":
    return JitBackend(train_step, make_data_mesh(devices) if devices is not None else None)
  if name == "pmap":
    return PmapBackend(train_step, devices)
  raise ValueError(f"`config.parallel.backend` must be 'jit' or 'pmap', got {name!r}.")
