"""Writes tests/fixtures/vgg19_tiny.pth and vgg19_tiny_expected.npz (a torchvision-layout VGG19).

Run with a separate CPU-PyTorch environment (the project itself never needs torch):

  python3 -m venv .venv-ref && .venv-ref/bin/pip install torch==2.13.0 numpy
  .venv-ref/bin/python scripts/make_vgg19_fixture.py

The state dict has torchvision `vgg19`'s keys (`features.{i}.weight|bias` at the sixteen conv
positions of its `features` Sequential, `classifier.{0,3,6}.*`) with the channel widths of
`TINY_STAGES` instead of 64..512 (the real file is 548 MB). The .npz holds the weights, a
[2, 3, 32, 32] input in [-1, 1] and torch's ReLU outputs after every conv, so the test checks
the reader and `VGGFeatures` against PyTorch.
"""

import pathlib

import numpy as np
import torch
from torch import nn

TINY_STAGES = ((3, 3), (4, 4), (5, 5, 5, 5), (6, 6, 6, 6), (6, 6, 6, 6))


def build():
  layers, cin = [], 3
  for s, stage in enumerate(TINY_STAGES):
    if s:
      layers.append(nn.MaxPool2d(2, 2))
    for w in stage:
      layers += [nn.Conv2d(cin, w, 3, padding=1), nn.ReLU(inplace=False)]
      cin = w
  return nn.Sequential(*layers)


def main():
  torch.manual_seed(0)
  features = build()
  classifier = nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Dropout(), nn.Linear(4, 4),
                             nn.ReLU(), nn.Dropout(), nn.Linear(4, 3))
  sd = {f"features.{k}": v for k, v in features.state_dict().items()}
  sd.update({f"classifier.{k}": v for k, v in classifier.state_dict().items()})
  out = pathlib.Path(__file__).resolve().parents[1] / "tests" / "fixtures"
  torch.save(sd, out / "vgg19_tiny.pth")
  x = torch.rand(2, 3, 32, 32) * 2 - 1
  relus, h = [], x
  with torch.no_grad():
    for layer in features:
      h = layer(h)
      if isinstance(layer, nn.ReLU):
        relus.append(h.permute(0, 2, 3, 1).numpy())
  arrays = {k: v.numpy() for k, v in sd.items()}
  arrays.update({"input": x.permute(0, 2, 3, 1).numpy()})
  arrays.update({f"relu_{i}": r for i, r in enumerate(relus)})
  np.savez(out / "vgg19_tiny_expected.npz", **arrays)


if __name__ == "__main__":
  main()
