"""SPADE's generator losses beside the adversarial one, and LPIPS for evaluation.

  * `feature_matching_loss` (pix2pixHD Eq. 4, Wang et al. 2018; SPADE λ_feat = 10): L1 between
    D's intermediate features of fake and real, summed over layers (logits excluded) and
    averaged over the D scales.
  * `vgg_perceptual_loss` (SPADE's `VGGLoss`, λ_vgg = 10): Σ_i w_i · mean|φ_i(fake) − φ_i(real)|
    with w = (1/32, 1/16, 1/8, 1/4, 1) at relu1_1, relu2_1, relu3_1, relu4_1, relu5_1. SPADE uses
    VGG19; the default network here is VGG16 (the only ImageNet VGG weights reachable through
    the package registries, see `vgg_weights.py`), whose relu{k}_1 layers are the same stages.
    A user's torchvision `vgg19` `.pth` gives the paper's network (`read_torchvision_vgg`).
    Like the official code, images in [-1, 1] go in without ImageNet normalisation
    (`normalize='none'`); 'imagenet' maps them to torchvision's expected input instead.
  * `lpips` (Zhang et al. 2018, v0.1 VGG): Σ_l mean_hw ‖w_l ⊙ (φ̂_l(x) − φ̂_l(y))‖² with
    channel-unit-normalised VGG16 features at relu{1_2, 2_2, 3_3, 4_3, 5_3}, LPIPS' input
    scaling and its learned linear heads.
"""

from typing import Dict, List, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array

VGG_CFG = {  # conv widths per stage, as torchvision's `cfgs`
    "vgg16": ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512)),
    "vgg19": ((64, 64), (128, 128), (256,) * 4, (512,) * 4, (512,) * 4),
}
SPADE_VGG_WEIGHTS = (1.0 / 32, 1.0 / 16, 1.0 / 8, 1.0 / 4, 1.0)
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_LPIPS_SHIFT = (-0.030, -0.088, -0.188)
_LPIPS_SCALE = (0.458, 0.448, 0.450)


def feature_matching_loss(fake_feats: Sequence[Sequence[Array]],
                          real_feats: Sequence[Sequence[Array]]) -> Array:
  """pix2pixHD / SPADE feature matching: mean over scales of Σ_layers mean|f − stop_grad(r)|.

  Args:
    fake_feats, real_feats: per D scale, the list of feature maps; the last entry of each
      (the logits) is not matched, as in the official code.

  Returns:
    float32 scalar (multiply by λ_feat = 10).

  Raises:
    ValueError: the two structures differ in scales or layers.
  """
  if len(fake_feats) != len(real_feats):
    raise ValueError(f"{len(fake_feats)} fake vs {len(real_feats)} real discriminator scales.")
  total = jnp.zeros((), jnp.float32)
  for f_scale, r_scale in zip(fake_feats, real_feats):
    if len(f_scale) != len(r_scale):
      raise ValueError(f"{len(f_scale)} fake vs {len(r_scale)} real feature maps.")
    for f, r in zip(f_scale[:-1], r_scale[:-1]):
      total = total + jnp.mean(jnp.abs(f.astype(jnp.float32)
                                       - jax.lax.stop_gradient(r).astype(jnp.float32)))
  return total / len(fake_feats)


class VGGFeatures(nn.Module):
  """torchvision VGG convolutions (3x3, ReLU, 2x2 max pool between stages), NHWC.

  Parameters `conv_{k}/{kernel [3, 3, I, O], bias [O]}` numbered over all convolutions.
  `__call__(x, taps)` runs only as far as the deepest tap and returns the ReLU outputs of the
  (0-based) conv indices in `taps`.
  """
  arch: str = "vgg16"

  @nn.compact
  def __call__(self, x: Array, taps: Sequence[int]) -> List[Array]:
    out, k, last = {}, 0, max(taps)
    for s, stage in enumerate(VGG_CFG[self.arch]):
      if s:
        x = nn.max_pool(x, (2, 2), strides=(2, 2))
      for width in stage:
        x = nn.relu(nn.Conv(width, (3, 3), padding=((1, 1), (1, 1)), name=f"conv_{k}")(x))
        if k in taps:
          out[k] = x
        if k == last:
          return [out[t] for t in taps]
        k += 1
    raise ValueError(f"taps {taps} exceed the {k} convolutions of {self.arch}.")


def relu_first_of_stage(arch: str) -> Tuple[int, ...]:
  """Conv indices of relu1_1 … relu5_1 (SPADE's taps)."""
  idx, out = 0, []
  for stage in VGG_CFG[arch]:
    out.append(idx)
    idx += len(stage)
  return tuple(out)


def relu_last_of_stage(arch: str) -> Tuple[int, ...]:
  """Conv indices of relu1_2, 2_2, 3_3, 4_3, 5_3 (LPIPS' taps for VGG16)."""
  idx, out = 0, []
  for stage in VGG_CFG[arch]:
    idx += len(stage)
    out.append(idx - 1)
  return tuple(out)


def _prep(x: Array, normalize: str) -> Array:
  if normalize == "none":
    return x
  if normalize == "imagenet":
    return ((x + 1) / 2 - jnp.asarray(_IMAGENET_MEAN)) / jnp.asarray(_IMAGENET_STD)
  raise ValueError(f"`normalize` must be 'none' or 'imagenet', got {normalize!r}.")


def vgg_perceptual_loss(vgg_params: Dict, fake: Array, real: Array, *, arch: str = "vgg16",
                        weights: Sequence[float] = SPADE_VGG_WEIGHTS,
                        normalize: str = "none") -> Array:
  """SPADE's VGG loss (module doc). fake, real: [B, H, W, 3] float in [-1, 1].

  Returns a float32 scalar (multiply by λ_vgg = 10). `real`'s features are not
  differentiated. Both images go through the network in one batch.
  """
  if fake.shape != real.shape:
    raise ValueError(f"`fake` {fake.shape} and `real` {real.shape} must have the same shape.")
  taps = relu_first_of_stage(arch)
  if len(weights) != len(taps):
    raise ValueError(f"{len(weights)} weights for {len(taps)} VGG layers.")
  x = _prep(jnp.concatenate([fake, jax.lax.stop_gradient(real)]).astype(jnp.float32), normalize)
  feats = VGGFeatures(arch).apply({"params": vgg_params}, x, taps)
  b = fake.shape[0]
  loss = jnp.zeros((), jnp.float32)
  for w, f in zip(weights, feats):
    loss = loss + w * jnp.mean(jnp.abs(f[:b] - jax.lax.stop_gradient(f[b:])))
  return loss


def lpips(vgg_params: Dict, lin_params: Sequence[Array], x: Array, y: Array) -> Array:
  """LPIPS v0.1 (VGG) distance per pair. x, y: [B, H, W, 3] in [-1, 1]. Returns [B].

  `lin_params`: the five non-negative [C_l] heads (`vgg_weights.load_vgg16_lpips`).
  """
  if x.shape != y.shape:
    raise ValueError(f"`x` {x.shape} and `y` {y.shape} must have the same shape.")
  shift, scale = jnp.asarray(_LPIPS_SHIFT), jnp.asarray(_LPIPS_SCALE)
  inp = (jnp.concatenate([x, y]).astype(jnp.float32) - shift) / scale
  feats = VGGFeatures("vgg16").apply({"params": vgg_params}, inp, relu_last_of_stage("vgg16"))
  b = x.shape[0]
  total = jnp.zeros((b,), jnp.float32)
  for w, f in zip(lin_params, feats):
    f = f / (jnp.sqrt(jnp.sum(f ** 2, axis=-1, keepdims=True)) + 1e-10)
    total = total + jnp.mean(jnp.sum(w * (f[:b] - f[b:]) ** 2, axis=-1), axis=(1, 2))
  return total
