"""FID InceptionV3 in PyTorch (NCHW), batch norm folded, loadable from Flax variables.

The same network as `genattn_jax.metrics.inception.FIDInceptionV3(fold_bn=True)`:
Szegedy et al., "Rethinking the Inception Architecture for Computer Vision" (CVPR 2016),
Fig. 5-7 / Table 1, with the FID graph's peculiarities (average pools inside the A, C and
first E blocks exclude the zero padding; the last E block pools its fourth branch with a
3x3 max pool; no auxiliary head). Every conv carries its folded batch norm as a bias and is
followed by a ReLU. Module names equal the Flax ones, so `load_flax_params` maps
`<path>/conv/kernel` [kh, kw, I, O] to `<path>.conv.weight` [O, I, kh, kw] one to one.

Used by benchmarks/gpu_suite.py to time the Inception forward in PyTorch on exactly the
weights the JAX side runs (randomly initialised ones when the real weights are not there).
"""

from typing import Dict, Mapping, Tuple

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

INCEPTION_SIZE = 299


class BasicConv(nn.Module):
  """Conv (bias = folded batch norm) + ReLU; symmetric zero padding like the Flax module."""

  def __init__(self, cin: int, cout: int, kernel: Tuple[int, int],
               stride: int = 1, padding: Tuple[int, int] = (0, 0)):
    super().__init__()
    self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=True)

  def forward(self, x):
    return F.relu(self.conv(x))


def _avg_excl_pad(x):
  return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
  """35x35: 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avgpool(excl. pad)-1x1."""

  def __init__(self, cin: int, pool_features: int):
    super().__init__()
    self.branch1x1 = BasicConv(cin, 64, (1, 1))
    self.branch5x5_1 = BasicConv(cin, 48, (1, 1))
    self.branch5x5_2 = BasicConv(48, 64, (5, 5), padding=(2, 2))
    self.branch3x3dbl_1 = BasicConv(cin, 64, (1, 1))
    self.branch3x3dbl_2 = BasicConv(64, 96, (3, 3), padding=(1, 1))
    self.branch3x3dbl_3 = BasicConv(96, 96, (3, 3), padding=(1, 1))
    self.branch_pool = BasicConv(cin, pool_features, (1, 1))

  def forward(self, x):
    return torch.cat([
        self.branch1x1(x),
        self.branch5x5_2(self.branch5x5_1(x)),
        self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
        self.branch_pool(_avg_excl_pad(x))], 1)


class InceptionB(nn.Module):
  """35 -> 17 reduction: 3x3/2 | 1x1-3x3-3x3/2 | maxpool 3x3/2."""

  def __init__(self, cin: int):
    super().__init__()
    self.branch3x3 = BasicConv(cin, 384, (3, 3), stride=2)
    self.branch3x3dbl_1 = BasicConv(cin, 64, (1, 1))
    self.branch3x3dbl_2 = BasicConv(64, 96, (3, 3), padding=(1, 1))
    self.branch3x3dbl_3 = BasicConv(96, 96, (3, 3), stride=2)

  def forward(self, x):
    return torch.cat([
        self.branch3x3(x),
        self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
        F.max_pool2d(x, 3, stride=2)], 1)


class InceptionC(nn.Module):
  """17x17 with factorised 7x7 convs, avg pool excluding padding."""

  def __init__(self, cin: int, c7: int):
    super().__init__()
    self.branch1x1 = BasicConv(cin, 192, (1, 1))
    self.branch7x7_1 = BasicConv(cin, c7, (1, 1))
    self.branch7x7_2 = BasicConv(c7, c7, (1, 7), padding=(0, 3))
    self.branch7x7_3 = BasicConv(c7, 192, (7, 1), padding=(3, 0))
    self.branch7x7dbl_1 = BasicConv(cin, c7, (1, 1))
    self.branch7x7dbl_2 = BasicConv(c7, c7, (7, 1), padding=(3, 0))
    self.branch7x7dbl_3 = BasicConv(c7, c7, (1, 7), padding=(0, 3))
    self.branch7x7dbl_4 = BasicConv(c7, c7, (7, 1), padding=(3, 0))
    self.branch7x7dbl_5 = BasicConv(c7, 192, (1, 7), padding=(0, 3))
    self.branch_pool = BasicConv(cin, 192, (1, 1))

  def forward(self, x):
    b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
    bd = self.branch7x7dbl_1(x)
    for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4,
                  self.branch7x7dbl_5):
      bd = layer(bd)
    return torch.cat([self.branch1x1(x), b7, bd, self.branch_pool(_avg_excl_pad(x))], 1)


class InceptionD(nn.Module):
  """17 -> 8 reduction: 1x1-3x3/2 | 1x1-1x7-7x1-3x3/2 | maxpool 3x3/2."""

  def __init__(self, cin: int):
    super().__init__()
    self.branch3x3_1 = BasicConv(cin, 192, (1, 1))
    self.branch3x3_2 = BasicConv(192, 320, (3, 3), stride=2)
    self.branch7x7x3_1 = BasicConv(cin, 192, (1, 1))
    self.branch7x7x3_2 = BasicConv(192, 192, (1, 7), padding=(0, 3))
    self.branch7x7x3_3 = BasicConv(192, 192, (7, 1), padding=(3, 0))
    self.branch7x7x3_4 = BasicConv(192, 192, (3, 3), stride=2)

  def forward(self, x):
    b7 = self.branch7x7x3_1(x)
    for layer in (self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
      b7 = layer(b7)
    return torch.cat([self.branch3x3_2(self.branch3x3_1(x)), b7,
                      F.max_pool2d(x, 3, stride=2)], 1)


class InceptionE(nn.Module):
  """8x8 with expanded 1x3 / 3x1 outputs; `pool` 'avg' (excl. pad, Mixed_7b) or 'max'."""

  def __init__(self, cin: int, pool: str):
    super().__init__()
    if pool not in ("avg", "max"):
      raise ValueError(f"`pool` must be 'avg' or 'max', got {pool!r}.")
    self.pool = pool
    self.branch1x1 = BasicConv(cin, 320, (1, 1))
    self.branch3x3_1 = BasicConv(cin, 384, (1, 1))
    self.branch3x3_2a = BasicConv(384, 384, (1, 3), padding=(0, 1))
    self.branch3x3_2b = BasicConv(384, 384, (3, 1), padding=(1, 0))
    self.branch3x3dbl_1 = BasicConv(cin, 448, (1, 1))
    self.branch3x3dbl_2 = BasicConv(448, 384, (3, 3), padding=(1, 1))
    self.branch3x3dbl_3a = BasicConv(384, 384, (1, 3), padding=(0, 1))
    self.branch3x3dbl_3b = BasicConv(384, 384, (3, 1), padding=(1, 0))
    self.branch_pool = BasicConv(cin, 192, (1, 1))

  def forward(self, x):
    b3 = self.branch3x3_1(x)
    b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
    bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
    bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
    pooled = (_avg_excl_pad(x) if self.pool == "avg"
              else F.max_pool2d(x, 3, stride=1, padding=1))
    return torch.cat([self.branch1x1(x), b3, bd, self.branch_pool(pooled)], 1)


class FIDInceptionV3(nn.Module):
  """[B, 3, H, W] in [-1, 1] (H, W = 299 for FID) -> [B, 2048] pool features."""

  def __init__(self):
    super().__init__()
    self.Conv2d_1a_3x3 = BasicConv(3, 32, (3, 3), stride=2)
    self.Conv2d_2a_3x3 = BasicConv(32, 32, (3, 3))
    self.Conv2d_2b_3x3 = BasicConv(32, 64, (3, 3), padding=(1, 1))
    self.Conv2d_3b_1x1 = BasicConv(64, 80, (1, 1))
    self.Conv2d_4a_3x3 = BasicConv(80, 192, (3, 3))
    self.Mixed_5b = InceptionA(192, 32)
    self.Mixed_5c = InceptionA(256, 64)
    self.Mixed_5d = InceptionA(288, 64)
    self.Mixed_6a = InceptionB(288)
    self.Mixed_6b = InceptionC(768, 128)
    self.Mixed_6c = InceptionC(768, 160)
    self.Mixed_6d = InceptionC(768, 160)
    self.Mixed_6e = InceptionC(768, 192)
    self.Mixed_7a = InceptionD(768)
    self.Mixed_7b = InceptionE(1280, "avg")
    self.Mixed_7c = InceptionE(2048, "max")

  def forward(self, x):
    x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
    x = F.max_pool2d(x, 3, stride=2)
    x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
    x = F.max_pool2d(x, 3, stride=2)
    for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b,
                  self.Mixed_6c, self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b,
                  self.Mixed_7c):
      x = block(x)
    return x.mean(dim=(2, 3))


def to_inception_input(images_uint8: torch.Tensor, size: int = INCEPTION_SIZE) -> torch.Tensor:
  """pytorch-fid's input: [B, H, W, 3] uint8 -> x/255, bilinear to 299 (no antialias), 2x-1.

  Returns [B, 3, size, size] float32 on the images' device (size 299 for FID).
  """
  x = images_uint8.permute(0, 3, 1, 2).float() / 255.0
  x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
  return 2.0 * x - 1.0


def state_dict_from_flax(flat_params: Mapping[str, np.ndarray]) -> Dict[str, torch.Tensor]:
  """Flax folded-BN params, flattened as {'Mixed_5b/branch1x1/conv/kernel': array, ...},
  to this module's state dict (kernels [kh, kw, I, O] -> [O, I, kh, kw]).

  Raises:
    ValueError: a key that is not `<path>/conv/kernel` or `<path>/conv/bias`.
  """
  out = {}
  for key, value in flat_params.items():
    parts = key.split("/")
    if len(parts) < 3 or parts[-2] != "conv" or parts[-1] not in ("kernel", "bias"):
      raise ValueError(f"unexpected Flax Inception parameter {key!r} (folded-BN convs only).")
    name = ".".join(parts[:-1]) + (".weight" if parts[-1] == "kernel" else ".bias")
    array = np.asarray(value, np.float32)
    if parts[-1] == "kernel":
      array = array.transpose(3, 2, 0, 1)
    out[name] = torch.from_numpy(np.ascontiguousarray(array))
  return out


def load_flax_params(model: FIDInceptionV3, flat_params: Mapping[str, np.ndarray]) -> None:
  """Copies flattened Flax params into `model` (strict: every tensor, every shape)."""
  model.load_state_dict(state_dict_from_flax(flat_params), strict=True)
