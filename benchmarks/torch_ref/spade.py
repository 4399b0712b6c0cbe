"""SPADE / GauGAN (Park et al., CVPR 2019) in PyTorch, and its train step, for the speed comparison.

Written from the architecture as `genattn_jax.models.spade` implements it, in the same layer
layout and module names (so both sides have the same trainable-parameter count and the Flax
variables load here one to one, `load_flax_variables`), NCHW:

  Generator (seg [B, S, H, W] = one-hot labels ⊕ instance edge -> [B, 3, H, W] in [-1, 1]):
    'fc': 3x3 conv S -> 16·ngf on the label map resized (nearest) to (H, W) / 2^u (u = 5 / 6 / 7
    for 'normal' / 'more' / 'most'), no bias (`g_block_bias` False: a SPADE norm follows);
    SPADE residual blocks head_0, G_middle_0, G_middle_1 (16·ngf), up_0..up_3 (8, 4, 2, 1 ·ngf)
    (+ up_4, ngf / 2, for 'most') with nearest x2 upsampling between them; LeakyReLU(0.2);
    'conv_img' 3x3 -> 3 (bias); tanh.
  SPADE residual block: x_s + conv_1(lrelu(norm_1(conv_0(lrelu(norm_0(x)))))), fmiddle =
    min(C_in, C_out); learned shortcut x_s = conv_s(norm_s(x)) (1x1, no bias) iff C_in != C_out;
    spectral norm on conv_0, conv_1, conv_s; conv_0 without bias, conv_1 with a bias only in the
    last block (the JAX model drops the biases a SPADE norm removes).
  SPADE layer: BN(x) (no affine parameters; batch statistics in training) · (1 + gamma(m))
    + beta(m), m = the label map resized (nearest) to x, gamma / beta 3x3 convs (bias) on
    relu(shared 3x3 conv (bias, `spade_hidden` channels) of m); no spectral norm inside.
  Multi-scale discriminator: `num_d` PatchGANs on seg ⊕ image, the input halved between them
    by a 3x3 stride-2 average pool that does not count padding; each: 'conv0' 4x4 stride 2
    (bias) + LeakyReLU(0.2), then conv1..conv{n-1} (4x4, padding 2, stride 2 but 1 for the last,
    channels doubling up to 512, spectral norm, no bias) + instance norm (no affine, eps 1e-5)
    + LeakyReLU(0.2), then 'conv{n}' 4x4 stride 1 -> 1 channel (bias); returns all n + 1 maps.
  Initialisation: every conv normal with std 0.02 · sqrt(2 / (fan_in + fan_out)) (xavier
    normal, gain 0.02, as the JAX model and the official code), biases 0.

Spectral norm is `torch.nn.utils.parametrizations.spectral_norm`: one power iteration per
training-mode forward, `u` / `v` buffers (Flax: 'batch_stats'). Differences from the JAX step
that do not change the work done: the D calls of the G update run in training mode here and
keep their power-iteration update of D's `u` (JAX computes it and discards it); BN running
variances are unbiased here (PyTorch) and biased in Flax (neither is used in training).

`SPADETrainer` is the JAX 'semantic' task's step (`genattn_jax.training.tasks.semantic`,
`training.step.make_train_step`) in PyTorch, with the VGG perceptual term left out
(lambda_vgg = 0 on both sides of the benchmark) and no VAE:
  * D update (n_critic of them, rows i mod n_critic as in JAX): G (training mode, no gradient)
    on the label map; D on seg ⊕ real, then on seg ⊕ fake; hinge loss per scale, averaged
    over the scales; Adam step on D.
  * G update: G -> D(seg ⊕ fake); D(seg ⊕ real) without a gradient (only its features are
    matched); -mean D(fake) averaged over scales + lambda_feat · feature matching (mean over
    scales of Σ over layers but the last of mean |f − r|); Adam step on G with D frozen; the
    EMA of G's parameters with the config's decay (0 for SPADE: ema = params, as JAX computes).
  * The global gradient norms of D and G, which the JAX step computes as metrics.
The one-hot map is built inside the step, as the JAX step builds it from 'label' / 'edge'.
"""

from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import spectral_norm

from benchmarks.torch_ref import train_step

NUM_UP = {"normal": 5, "more": 6, "most": 7}


def param_count(module: nn.Module) -> int:
  """Number of trainable parameters (spectral-norm vectors and BN statistics excluded)."""
  return sum(p.numel() for p in module.parameters() if p.requires_grad)


def lrelu(x: torch.Tensor) -> torch.Tensor:
  return F.leaky_relu(x, 0.2)


def conv(cin: int, cout: int, kernel: int, *, bias: bool = True, sn: bool = False,
         stride: int = 1, padding: Optional[int] = None) -> nn.Module:
  """Conv2d with xavier-normal (gain 0.02) weights and zero bias, optionally spectral-normed.

  `padding` defaults to kernel // 2 ('SAME' for the odd kernels and stride 1).
  """
  layer = nn.Conv2d(cin, cout, kernel, stride=stride,
                    padding=kernel // 2 if padding is None else padding, bias=bias)
  nn.init.xavier_normal_(layer.weight, gain=0.02)
  if bias:
    nn.init.zeros_(layer.bias)
  return spectral_norm(layer) if sn else layer


def resize_nearest(x: torch.Tensor, size) -> torch.Tensor:
  """PyTorch nearest resize (index floor(i · in / out)), as the JAX `nearest_resize`."""
  if tuple(x.shape[2:]) == tuple(size):
    return x
  return F.interpolate(x, size=tuple(size), mode="nearest")


class SPADE(nn.Module):
  """Parameter-free BN of x, modulated by (1 + gamma(m), beta(m)) of the label map m."""

  def __init__(self, channels: int, label_channels: int, hidden: int):
    super().__init__()
    self.bn = nn.BatchNorm2d(channels, affine=False, momentum=0.1, eps=1e-5)
    self.shared = conv(label_channels, hidden, 3)
    self.gamma = conv(hidden, channels, 3)
    self.beta = conv(hidden, channels, 3)

  def forward(self, x, seg):
    m = resize_nearest(seg, x.shape[2:])
    actv = F.relu(self.shared(m))
    return self.bn(x) * (1 + self.gamma(actv)) + self.beta(actv)


class SPADEResBlock(nn.Module):
  """SPADE residual block (see the module doc)."""

  def __init__(self, cin: int, cout: int, label_channels: int, hidden: int, *,
               sn: bool = True, bias_0: bool = False, bias_1: bool = False):
    super().__init__()
    fmid = min(cin, cout)
    self.learned_shortcut = cin != cout
    self.norm_0 = SPADE(cin, label_channels, hidden)
    self.conv_0 = conv(cin, fmid, 3, bias=bias_0, sn=sn)
    self.norm_1 = SPADE(fmid, label_channels, hidden)
    self.conv_1 = conv(fmid, cout, 3, bias=bias_1, sn=sn)
    if self.learned_shortcut:
      self.norm_s = SPADE(cin, label_channels, hidden)
      self.conv_s = conv(cin, cout, 1, bias=False, sn=sn)

  def forward(self, x, seg):
    x_s = self.conv_s(self.norm_s(x, seg)) if self.learned_shortcut else x
    dx = self.conv_0(lrelu(self.norm_0(x, seg)))
    dx = self.conv_1(lrelu(self.norm_1(dx, seg)))
    return x_s + dx


class SPADEGenerator(nn.Module):
  """SPADE generator without the VAE: seg [B, S, H, W] -> image [B, 3, H, W] in [-1, 1]."""

  def __init__(self, height: int, width: int, label_channels: int, *, ngf: int = 64,
               spade_hidden: int = 128, num_upsampling_layers: str = "normal",
               sn: bool = True, block_bias: bool = False):
    super().__init__()
    f = 2 ** NUM_UP[num_upsampling_layers]
    if height % f or width % f:
      raise ValueError(f"output size {height}x{width} must be divisible by {f}.")
    self.bottom = (height // f, width // f)
    self.mode = num_upsampling_layers
    nf, s, h = ngf, label_channels, spade_hidden
    self.fc = conv(s, 16 * nf, 3, bias=block_bias)
    ups = [(16 * nf, 8 * nf), (8 * nf, 4 * nf), (4 * nf, 2 * nf), (2 * nf, nf)]
    if num_upsampling_layers == "most":
      ups.append((nf, nf // 2))
    self.up_names = [f"up_{i}" for i in range(len(ups))]
    last = self.up_names[-1]

    def block(cin, cout, name):
      return SPADEResBlock(cin, cout, s, h, sn=sn, bias_0=block_bias,
                           bias_1=block_bias or name == last)

    self.head_0 = block(16 * nf, 16 * nf, "head_0")
    self.G_middle_0 = block(16 * nf, 16 * nf, "G_middle_0")  # pylint: disable=invalid-name
    self.G_middle_1 = block(16 * nf, 16 * nf, "G_middle_1")  # pylint: disable=invalid-name
    for name, (cin, cout) in zip(self.up_names, ups):
      self.add_module(name, block(cin, cout, name))
    self.conv_img = conv(ups[-1][1], 3, 3)

  def forward(self, seg):
    x = self.fc(resize_nearest(seg, self.bottom))
    x = self.head_0(x, seg)
    x = F.interpolate(x, scale_factor=2, mode="nearest")
    x = self.G_middle_0(x, seg)
    if self.mode in ("more", "most"):
      x = F.interpolate(x, scale_factor=2, mode="nearest")
    x = self.G_middle_1(x, seg)
    for name in self.up_names:
      x = getattr(self, name)(F.interpolate(x, scale_factor=2, mode="nearest"), seg)
    return torch.tanh(self.conv_img(lrelu(x)))


class NLayerDiscriminator(nn.Module):
  """One PatchGAN scale; returns its n_layers + 1 feature maps (the last: the logits)."""

  def __init__(self, cin: int, ndf: int = 64, n_layers: int = 4, sn: bool = True):
    super().__init__()
    self.n_layers = n_layers
    self.conv0 = conv(cin, ndf, 4, stride=2, padding=2)
    nf = ndf
    for n in range(1, n_layers):
      prev, nf = nf, min(nf * 2, 512)
      stride = 1 if n == n_layers - 1 else 2
      self.add_module(f"conv{n}", conv(prev, nf, 4, stride=stride, padding=2, bias=not sn,
                                       sn=sn))
    self.add_module(f"conv{n_layers}", conv(nf, 1, 4, stride=1, padding=2))

  def forward(self, x) -> List[torch.Tensor]:
    x = lrelu(self.conv0(x))
    feats = [x]
    for n in range(1, self.n_layers):
      x = lrelu(F.instance_norm(getattr(self, f"conv{n}")(x), eps=1e-5))
      feats.append(x)
    feats.append(getattr(self, f"conv{self.n_layers}")(x))
    return feats


class MultiscaleDiscriminator(nn.Module):
  """`num_d` PatchGANs (D_0, D_1, ...) on successively halved seg ⊕ image."""

  def __init__(self, label_channels: int, *, ndf: int = 64, n_layers: int = 4, num_d: int = 2,
               sn: bool = True):
    super().__init__()
    self.num_d = num_d
    for i in range(num_d):
      self.add_module(f"D_{i}", NLayerDiscriminator(label_channels + 3, ndf, n_layers, sn))

  def forward(self, seg, image) -> List[List[torch.Tensor]]:
    x = torch.cat([seg, image], dim=1)
    out = []
    for i in range(self.num_d):
      out.append(getattr(self, f"D_{i}")(x))
      if i + 1 < self.num_d:
        x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
    return out


def label_channels(fields: Mapping[str, Any]) -> int:
  """S = label_nc + contain_dontcare_label + use_instance (`models.spade.semantic_nc`)."""
  return (int(fields["label_nc"]) + int(bool(fields["contain_dontcare_label"]))
          + int(bool(fields["use_instance"])))


def build(fields: Mapping[str, Any]):
  """(G, D) from the benchmark's SPADE fields (image_size [H, W], label_nc,
  contain_dontcare_label, use_instance, ngf, ndf, spade_hidden, num_d, n_layers_d,
  num_upsampling_layers, g_block_bias; spectral norm in G and D)."""
  h, w = (int(v) for v in fields["image_size"])
  s = label_channels(fields)
  gen = SPADEGenerator(h, w, s, ngf=int(fields["ngf"]), spade_hidden=int(fields["spade_hidden"]),
                       num_upsampling_layers=fields["num_upsampling_layers"],
                       block_bias=bool(fields["g_block_bias"]))
  disc = MultiscaleDiscriminator(s, ndf=int(fields["ndf"]), n_layers=int(fields["n_layers_d"]),
                                 num_d=int(fields["num_d"]))
  return gen, disc


# ------------------------------------------------------------------------------------
# Flax variables -> this module (the layout check of tests/test_spade_bench.py)


def state_dict_from_flax(flat_params: Mapping[str, np.ndarray],
                         flat_stats: Mapping[str, np.ndarray]) -> Dict[str, torch.Tensor]:
  """Flattened Flax SPADE variables ('up_0/conv_0/conv/kernel', ...) -> state-dict entries.

  params: '<m>/conv/{kernel,bias}' (spectral-normed conv <m>) -> '<m>.parametrizations.weight.
  original' / '<m>.bias'; '<m>/{kernel,bias}' -> '<m>.weight' / '<m>.bias'; kernels [kh, kw,
  I, O] -> [O, I, kh, kw]. batch_stats: '<m>/sn/conv/kernel/u' [1, O] -> '<m>.parametrizations.
  weight.0._u' [O], and `_v` = normalize(Wᵀu) (W [O, I·kh·kw]); '<m>/bn/{mean,var}' -> running
  statistics; 'sigma' is not stored here.

  The two power iterations are mirror images: Flax keeps u and steps v = N(Wᵀu), u' = N(Wv),
  sigma = u'·Wv; PyTorch keeps v and steps u' = N(Wv), v' = N(Wᵀu'), sigma = u'·Wv'. With
  v = N(Wᵀu) both reach the same u' (PyTorch's sigma then uses v' instead of v: equal once the
  iteration has converged, as it has after some training steps or from the top singular
  vector).
  """
  out = {}
  for key, value in flat_params.items():
    parts = key.split("/")
    leaf, array = parts[-1], np.asarray(value, np.float32)
    if leaf not in ("kernel", "bias"):
      raise ValueError(f"unexpected Flax SPADE parameter {key!r}.")
    if leaf == "kernel":
      array = array.transpose(3, 2, 0, 1)
    if len(parts) >= 3 and parts[-2] == "conv":
      base = ".".join(parts[:-2])
      name = base + (".parametrizations.weight.original" if leaf == "kernel" else ".bias")
    else:
      name = ".".join(parts[:-1]) + (".weight" if leaf == "kernel" else ".bias")
    out[name] = torch.from_numpy(np.ascontiguousarray(array))
  for key, value in flat_stats.items():
    parts = key.split("/")
    array = np.asarray(value, np.float32)
    if parts[-1] == "sigma":
      continue
    if parts[-1] == "u" and parts[-4:-1] == ["sn", "conv", "kernel"]:
      base = ".".join(parts[:-4])
      u = array.reshape(-1)
      kernel = np.asarray(flat_params["/".join(parts[:-4]) + "/conv/kernel"], np.float32)
      v = kernel.transpose(3, 2, 0, 1).reshape(u.shape[0], -1).T @ u
      v = v / max(float(np.linalg.norm(v)), 1e-12)
      out[base + ".parametrizations.weight.0._u"] = torch.from_numpy(np.ascontiguousarray(u))
      out[base + ".parametrizations.weight.0._v"] = torch.from_numpy(np.ascontiguousarray(v))
    elif parts[-1] in ("mean", "var") and parts[-2] == "bn":
      out[".".join(parts[:-1]) + ".running_" + parts[-1]] = torch.from_numpy(array)
    else:
      raise ValueError(f"unexpected Flax SPADE batch_stats entry {key!r}.")
  return out


def load_flax_variables(module: nn.Module, flat_params: Mapping[str, np.ndarray],
                        flat_stats: Mapping[str, np.ndarray]) -> None:
  """Copies flattened Flax G or D variables into `module`, strictly: every trainable
  parameter and every spectral-norm vector must be set, with its shape; nothing may be left
  over (see `state_dict_from_flax`).

  Raises:
    ValueError: a Flax entry without a counterpart, a shape mismatch, or a parameter / `u`
      of `module` that the Flax variables do not set.
  """
  new = state_dict_from_flax(flat_params, flat_stats)
  state = module.state_dict()
  for name, value in new.items():
    if name not in state:
      raise ValueError(f"{name!r} (from the Flax variables) is not in the module.")
    if tuple(state[name].shape) != tuple(value.shape):
      raise ValueError(f"{name!r}: module {tuple(state[name].shape)}, Flax "
                       f"{tuple(value.shape)}.")
  wanted = {n for n, p in module.named_parameters() if p.requires_grad}
  wanted |= {n for n in state if n.endswith(("._u", "._v"))}
  missing = sorted(wanted - set(new))
  if missing:
    raise ValueError(f"not set by the Flax variables: {missing[:5]} ({len(missing)} in all).")
  state.update(new)
  module.load_state_dict(state, strict=True)


# ------------------------------------------------------------------------------------
# the train step


def hinge_d(real_logits, fake_logits):
  return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()


def feature_matching(fake_feats: Sequence[Sequence[torch.Tensor]],
                     real_feats: Sequence[Sequence[torch.Tensor]]) -> torch.Tensor:
  """Mean over scales of Σ over the layers but the logits of mean |f − r| (r detached)."""
  total = 0.0
  for f_scale, r_scale in zip(fake_feats, real_feats):
    for f, r in zip(f_scale[:-1], r_scale[:-1]):
      total = total + (f - r.detach()).abs().mean()
  return total / len(fake_feats)


def grad_norm(module: nn.Module) -> torch.Tensor:
  """Global L2 norm of `module`'s gradients (the JAX step's 'd_grad_norm' / 'g_grad_norm')."""
  grads = [p.grad for p in module.parameters() if p.grad is not None]
  norms = torch._foreach_norm(grads)  # pylint: disable=protected-access
  return torch.linalg.vector_norm(torch.stack(norms)).detach()


class SPADETrainer:
  """G, D, their Adam optimisers and the EMA copy of G; `step(image, label, edge)`.

  Args:
    generator, discriminator: modules from `build`.
    num_labels: one-hot channels (label_nc + contain_dontcare_label).
    use_instance: append the instance-edge channel to the label map.
    n_critic: D updates per G update.
    g_lr, d_lr, betas: Adam settings (TTUR).
    lambda_feat: weight of the feature-matching loss.
    ema_decay: decay of the EMA of G's parameters (0: the EMA equals G, as SPADE).
  """

  def __init__(self, generator, discriminator, *, num_labels: int, use_instance: bool,
               n_critic: int, g_lr: float, d_lr: float, betas, lambda_feat: float,
               ema_decay: float):
    self.g, self.d = generator, discriminator
    self.num_labels, self.use_instance = num_labels, use_instance
    self.n_critic, self.lambda_feat, self.ema_decay = n_critic, float(lambda_feat), ema_decay
    self.g_opt, self.d_opt, self.ema = train_step.adam_pair_and_ema(
        self.g, self.d, g_lr, d_lr, betas)
    self.g.train()
    self.d.train()

  def seg(self, label: torch.Tensor, edge: torch.Tensor) -> torch.Tensor:
    """[B, S, H, W] float: one-hot of `label` [B, H, W] (⊕ `edge` [B, H, W])."""
    b, h, w = label.shape
    onehot = torch.zeros(b, self.num_labels, h, w, device=label.device)
    onehot.scatter_(1, label[:, None].long(), 1.0)
    if self.use_instance:
      onehot = torch.cat([onehot, edge[:, None].float()], dim=1)
    return onehot

  def step(self, image: torch.Tensor, label: torch.Tensor,
           edge: torch.Tensor) -> Dict[str, torch.Tensor]:
    """One step on [n_critic · b, 3, H, W] photos, [n_critic · b, H, W] labels and edges."""
    n = self.n_critic
    b = image.shape[0] // n
    split = lambda x: x.view(b, n, *x.shape[1:]).transpose(0, 1)  # noqa: E731
    images, labels, edges = split(image), split(label), split(edge)
    out = {}
    for j in range(n):
      real, seg = images[j], self.seg(labels[j], edges[j])
      with torch.no_grad():
        fake = self.g(seg)
      self.d_opt.zero_grad(set_to_none=True)
      real_out = self.d(seg, real)
      fake_out = self.d(seg, fake)
      d_loss = sum(hinge_d(r[-1], f[-1]) for r, f in zip(real_out, fake_out)) / len(real_out)
      d_loss.backward()
      out["d_grad_norm"] = grad_norm(self.d)
      self.d_opt.step()
      out["d_loss"] = d_loss.detach()
    for p in self.d.parameters():
      p.requires_grad_(False)
    real, seg = images[n - 1], self.seg(labels[n - 1], edges[n - 1])
    self.g_opt.zero_grad(set_to_none=True)
    fake_out = self.d(seg, self.g(seg))
    with torch.no_grad():
      real_out = self.d(seg, real)
    adv = sum(-f[-1].mean() for f in fake_out) / len(fake_out)
    fm = feature_matching(fake_out, real_out)
    g_loss = adv + self.lambda_feat * fm
    g_loss.backward()
    out["g_grad_norm"] = grad_norm(self.g)
    self.g_opt.step()
    for p in self.d.parameters():
      p.requires_grad_(True)
    train_step.ema_update(self.ema, self.g, self.ema_decay)
    out.update(g_loss=g_loss.detach(), g_adv_loss=adv.detach(), g_feat_loss=fm.detach())
    return out
