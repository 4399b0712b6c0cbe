"""The project's GAN update in PyTorch: `n_critic` D steps, one G step, Adam, EMA of G.

Mirrors `genattn_jax.training.step.make_train_step` for the losses used in the speed
comparison (hinge, non-saturating):
  * D update j (j < n_critic): new z ~ N(0, I) and fake labels; fakes from G in training
    mode without a gradient (JAX: `stop_gradient`); D on the real rows of update j and on
    the fakes; loss; Adam step on D.
  * G update: new z and labels; G (training mode) -> D -> loss; Adam step on G with D's
    parameters frozen (JAX differentiates with respect to G's parameters only).
  * EMA of G's parameters: ema <- d * ema + (1 - d) * params (`torch._foreach_*`).

A step consumes `n_critic * b` real images already on the device, like the JAX step's
[n_critic * b, ...] batch.
"""

import copy
from typing import Dict

import torch
import torch.nn.functional as F


def hinge_d(real_logits, fake_logits):
  return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()


def hinge_g(fake_logits):
  return -fake_logits.mean()


def non_saturating_d(real_logits, fake_logits):
  return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def non_saturating_g(fake_logits):
  return F.softplus(-fake_logits).mean()


LOSSES = {"hinge": (hinge_d, hinge_g), "non_saturating": (non_saturating_d, non_saturating_g)}


class GANTrainer:
  """Holds G, D, their Adam optimisers and the EMA copy of G; `step(images, labels)`.

  Args:
    generator, discriminator: modules from `sngan.build`.
    num_classes: > 0 for class-conditional models (labels fed to G and D).
    loss: 'hinge' or 'non_saturating'.
    n_critic: D updates per G update.
    g_lr, d_lr, betas: Adam settings (TTUR when the rates differ).
    ema_decay: decay of the EMA of G's parameters.
    z_dim: latent size.
  """

  def __init__(self, generator, discriminator, *, num_classes: int, loss: str, n_critic: int,
               g_lr: float, d_lr: float, betas, ema_decay: float, z_dim: int = 128):
    if loss not in LOSSES:
      raise ValueError(f"`loss` must be one of {sorted(LOSSES)}, got {loss!r}.")
    self.g, self.d = generator, discriminator
    self.num_classes, self.n_critic, self.z_dim = num_classes, n_critic, z_dim
    self.d_loss, self.g_loss = LOSSES[loss]
    self.g_opt, self.d_opt, self.ema = adam_pair_and_ema(self.g, self.d, g_lr, d_lr, betas)
    self.ema_decay = ema_decay
    self.g.train()
    self.d.train()

  def _latents(self, b: int, device):
    z = torch.randn(b, self.z_dim, device=device)
    y = (torch.randint(0, self.num_classes, (b,), device=device) if self.num_classes
         else None)
    return z, y

  def step(self, images: torch.Tensor, labels: torch.Tensor) -> Dict[str, torch.Tensor]:
    """One GAN step on [n_critic * b, 3, R, R] images (row i -> D update i mod n_critic)."""
    n = self.n_critic
    b = images.shape[0] // n
    chunks = images.view(b, n, *images.shape[1:]).transpose(0, 1)
    chunk_y = labels.view(b, n).transpose(0, 1)
    device = images.device
    d_loss = None
    for j in range(n):
      real, real_y = chunks[j], (chunk_y[j] if self.num_classes else None)
      z, fake_y = self._latents(b, device)
      with torch.no_grad():
        fake = self.g(z, fake_y)
      self.d_opt.zero_grad(set_to_none=True)
      d_loss = self.d_loss(self.d(real, real_y), self.d(fake, fake_y))
      d_loss.backward()
      self.d_opt.step()
    for p in self.d.parameters():
      p.requires_grad_(False)
    z, fake_y = self._latents(b, device)
    self.g_opt.zero_grad(set_to_none=True)
    g_loss = self.g_loss(self.d(self.g(z, fake_y), fake_y))
    g_loss.backward()
    self.g_opt.step()
    for p in self.d.parameters():
      p.requires_grad_(True)
    ema_update(self.ema, self.g, self.ema_decay)
    return {"d_loss": d_loss.detach(), "g_loss": g_loss.detach()}


def ema_update(ema, model, decay: float) -> None:
  """ema <- decay * ema + (1 - decay) * model, parameter by parameter, in place."""
  with torch.no_grad():
    ema_p = list(ema.parameters())
    torch._foreach_mul_(ema_p, decay)  # pylint: disable=protected-access
    torch._foreach_add_(ema_p, [p.detach() for p in model.parameters()],  # pylint: disable=protected-access
                        alpha=1.0 - decay)


def adam_pair_and_ema(g, d, g_lr: float, d_lr: float, betas):
  """Adam for G and for D (shared betas) and a frozen copy of G for its EMA."""
  betas = tuple(float(v) for v in betas)
  g_opt = torch.optim.Adam(g.parameters(), lr=g_lr, betas=betas)
  d_opt = torch.optim.Adam(d.parameters(), lr=d_lr, betas=betas)
  ema = copy.deepcopy(g).eval()
  for p in ema.parameters():
    p.requires_grad_(False)
  return g_opt, d_opt, ema
