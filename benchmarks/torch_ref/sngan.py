"""SNGAN ResNet (CIFAR-10, projection D) and SNDCGAN in PyTorch, for the speed comparison.

Written from the papers, in the parameter layout of the project's Flax models
(`genattn_jax.models.resnet` / `sndcgan` with their default config fields), so both sides
have the same number of trainable parameters:

ResNet, 32x32 (Miyato et al., ICLR 2018, Appendix B.4 / Table 4; Miyato & Koyama, ICLR
2018, Eq. 3 for the projection head):
  G: z [B, 128] -> SN linear -> [256, 4, 4] -> 3 up-blocks (256) -> BN -> ReLU -> SN 3x3
     conv -> tanh. Up-block: CBN -> ReLU -> nearest x2 -> SN 3x3 conv -> CBN -> ReLU -> SN
     3x3 conv, plus shortcut nearest x2 -> SN 1x1 conv; the block convs have no bias (each
     feeds a batch norm: the Flax default `g_block_bias=False`).
  D: optimized block (SN 3x3 -> ReLU -> SN 3x3 -> avg-pool; shortcut avg-pool -> SN 1x1),
     a downsampling block and two plain blocks of 128 channels, ReLU, global sum pooling,
     SN linear + <SN embed(y), h>.
  CBN = batch norm without affine parameters times gamma[y] plus beta[y] (class embeddings
  initialised to 1 and 0); running statistics momentum 0.1 (Flax 0.9), epsilon 1e-5.

SNDCGAN, 32x32 (Miyato et al. 2018, Table 3, unconditional, spectral norm in G too as in
the SPAP paper):
  G: z -> SN linear (no bias) -> [512, 4, 4] -> BN -> ReLU -> 3 x (SN 4x4 stride-2
     transposed conv, no bias -> BN -> ReLU; 256, 128, 64) -> SN 3x3 conv -> tanh.
  D: SN convs 3x3 64 | 4x4/2 64, 3x3 128 | 4x4/2 128, 3x3 256 | 4x4/2 256, 3x3 512, each
     followed by LeakyReLU(0.1), flatten, SN linear -> logit.

Spectral norm is `torch.nn.utils.parametrizations.spectral_norm` (one power iteration per
training-mode forward; the `u`/`v` vectors are buffers, not parameters, as in Flax where
they live in 'batch_stats').
"""

from typing import Optional

import torch
from torch import nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import spectral_norm


def sn(module: nn.Module) -> nn.Module:
  return spectral_norm(module)


def param_count(module: nn.Module) -> int:
  """Number of trainable parameters (spectral-norm vectors and BN statistics excluded)."""
  return sum(p.numel() for p in module.parameters() if p.requires_grad)


class ConditionalBatchNorm2d(nn.Module):
  """BN (no affine) * gamma[y] + beta[y]; gamma, beta [num_classes, C] init 1 and 0."""

  def __init__(self, channels: int, num_classes: int):
    super().__init__()
    self.bn = nn.BatchNorm2d(channels, affine=False, momentum=0.1, eps=1e-5)
    self.gamma = nn.Embedding(num_classes, channels)
    self.beta = nn.Embedding(num_classes, channels)
    nn.init.ones_(self.gamma.weight)
    nn.init.zeros_(self.beta.weight)

  def forward(self, x, y):
    h = self.bn(x)
    return h * self.gamma(y)[:, :, None, None] + self.beta(y)[:, :, None, None]


class GBlock(nn.Module):
  """SNGAN up-sampling residual block (conditional BN, bias-free convs)."""

  def __init__(self, cin: int, cout: int, num_classes: int):
    super().__init__()
    self.bn1 = ConditionalBatchNorm2d(cin, num_classes)
    self.conv1 = sn(nn.Conv2d(cin, cout, 3, padding=1, bias=False))
    self.bn2 = ConditionalBatchNorm2d(cout, num_classes)
    self.conv2 = sn(nn.Conv2d(cout, cout, 3, padding=1, bias=False))
    self.shortcut = sn(nn.Conv2d(cin, cout, 1, bias=False))

  def forward(self, x, y):
    h = F.interpolate(F.relu(self.bn1(x, y)), scale_factor=2, mode="nearest")
    h = self.conv2(F.relu(self.bn2(self.conv1(h), y)))
    return h + self.shortcut(F.interpolate(x, scale_factor=2, mode="nearest"))


class DBlock(nn.Module):
  """SNGAN D residual block; `optimized` = the first block (no leading ReLU, pool first)."""

  def __init__(self, cin: int, cout: int, downsample: bool, optimized: bool = False):
    super().__init__()
    hidden = cout if optimized else cin
    self.optimized, self.downsample = optimized, downsample or optimized
    self.conv1 = sn(nn.Conv2d(cin, hidden, 3, padding=1))
    self.conv2 = sn(nn.Conv2d(hidden, cout, 3, padding=1))
    self.learnable_sc = optimized or cin != cout or self.downsample
    self.shortcut = sn(nn.Conv2d(cin, cout, 1)) if self.learnable_sc else None

  def forward(self, x):
    h = x if self.optimized else F.relu(x)
    h = self.conv2(F.relu(self.conv1(h)))
    if self.downsample:
      h = F.avg_pool2d(h, 2)
    if self.optimized:
      sc = self.shortcut(F.avg_pool2d(x, 2))
    elif self.learnable_sc:
      sc = self.shortcut(x)
      sc = F.avg_pool2d(sc, 2) if self.downsample else sc
    else:
      sc = x
    return h + sc


class ResNetGenerator32(nn.Module):
  """CIFAR-10 SNGAN generator: [B, 128] latents, [B] labels -> [B, 3, 32, 32] in [-1, 1]."""

  def __init__(self, z_dim: int = 128, ch: int = 256, num_classes: int = 10):
    super().__init__()
    self.ch = ch
    self.linear = sn(nn.Linear(z_dim, 16 * ch))
    self.blocks = nn.ModuleList([GBlock(ch, ch, num_classes) for _ in range(3)])
    self.bn_out = nn.BatchNorm2d(ch, momentum=0.1, eps=1e-5)
    self.conv_out = sn(nn.Conv2d(ch, 3, 3, padding=1))

  def forward(self, z, y):
    h = self.linear(z).view(z.shape[0], self.ch, 4, 4)
    for block in self.blocks:
      h = block(h, y)
    return torch.tanh(self.conv_out(F.relu(self.bn_out(h))))


class ResNetDiscriminator32(nn.Module):
  """CIFAR-10 SNGAN projection discriminator: [B, 3, 32, 32], [B] labels -> [B] logits."""

  def __init__(self, ch: int = 128, num_classes: int = 10):
    super().__init__()
    self.blocks = nn.Sequential(
        DBlock(3, ch, downsample=True, optimized=True),
        DBlock(ch, ch, downsample=True),
        DBlock(ch, ch, downsample=False),
        DBlock(ch, ch, downsample=False))
    self.linear = sn(nn.Linear(ch, 1))
    self.embed = sn(nn.Embedding(num_classes, ch))

  def forward(self, x, y: Optional[torch.Tensor] = None):
    h = torch.sum(F.relu(self.blocks(x)), dim=(2, 3))
    out = self.linear(h)[:, 0]
    if y is not None:
      out = out + torch.sum(self.embed(y) * h, dim=1)
    return out


class SNDCGANGenerator(nn.Module):
  """Unconditional SNDCGAN generator, 32x32 (M = 4), transposed-conv upsampling."""

  def __init__(self, z_dim: int = 128, resolution: int = 32, width: float = 1.0):
    super().__init__()
    self.m = resolution // 8
    widths = [scale_width(c, width) for c in (512, 256, 128, 64)]
    self.linear = sn(nn.Linear(z_dim, self.m * self.m * widths[0], bias=False))
    self.bn0 = nn.BatchNorm2d(widths[0], momentum=0.1, eps=1e-5)
    self.deconvs = nn.ModuleList([
        sn(nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1, bias=False))
        for cin, cout in zip(widths[:-1], widths[1:])])
    self.bns = nn.ModuleList([nn.BatchNorm2d(c, momentum=0.1, eps=1e-5) for c in widths[1:]])
    self.conv_out = sn(nn.Conv2d(widths[-1], 3, 3, padding=1))

  def forward(self, z, y=None):
    del y
    h = self.linear(z).view(z.shape[0], -1, self.m, self.m)
    h = F.relu(self.bn0(h))
    for deconv, bn in zip(self.deconvs, self.bns):
      h = F.relu(bn(deconv(h)))
    return torch.tanh(self.conv_out(h))


class SNDCGANDiscriminator(nn.Module):
  """Unconditional SNDCGAN discriminator, 32x32 -> [B] logits, LeakyReLU(0.1)."""

  def __init__(self, resolution: int = 32, leak: float = 0.1, width: float = 1.0):
    super().__init__()
    self.leak = leak
    w = [scale_width(c, width) for c in (64, 64, 128, 128, 256, 256, 512)]
    layers = [sn(nn.Conv2d(3, w[0], 3, padding=1))]
    for k in (1, 2, 3):
      layers.append(sn(nn.Conv2d(w[2 * k - 2], w[2 * k - 1], 4, stride=2, padding=1)))
      layers.append(sn(nn.Conv2d(w[2 * k - 1], w[2 * k], 3, padding=1)))
    self.convs = nn.ModuleList(layers)
    m = resolution // 8
    self.linear = sn(nn.Linear(m * m * w[-1], 1))

  def forward(self, x, y=None):
    del y
    h = x
    for conv in self.convs:
      h = F.leaky_relu(conv(h), self.leak)
    return self.linear(h.flatten(1))[:, 0]


def scale_width(channels: int, width: float) -> int:
  """`channels * width` rounded, at least 1 (as `genattn_jax.models.sndcgan.scale_width`)."""
  return max(1, int(round(channels * width)))


def build(name: str, width: float = 1.0):
  """('resnet' | 'sndcgan', channel multiplier) -> (G, D, num_classes)."""
  if name == "resnet":
    return (ResNetGenerator32(ch=scale_width(256, width)),
            ResNetDiscriminator32(ch=scale_width(128, width)), 10)
  if name == "sndcgan":
    return SNDCGANGenerator(width=width), SNDCGANDiscriminator(width=width), 0
  raise ValueError(f"model name must be 'resnet' or 'sndcgan', got {name!r}.")
