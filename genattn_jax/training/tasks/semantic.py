"""`SemanticTask`: label map (+ instance edges) → photo, SPADE's training (Park et al. 2019).

Batch (from `data/paired.py`): 'image' [b, H, W, 3] float32 in [-1, 1], 'label' [b, H, W]
int32 in [0, label_nc + contain_dontcare_label), 'edge' [b, H, W] float32 in {0, 1}.

G's input is taken from the batch, not drawn: seg = one_hot(label) ⊕ edge ([b, H, W, S],
`models.spade.semantic_nc`), plus the photo for the VAE encoder when `model.use_vae`.
D (multi-scale PatchGAN) sees seg ⊕ image. Losses as the official `Pix2PixModel`:
  D: hinge, mean over scales of mean relu(1 − D(real)) + mean over scales of
     mean relu(1 + D(fake));
  G: −mean over scales of mean D(fake)
     + `task.lambda_feat` (10) · feature matching (pix2pixHD Eq. 4)
     + `task.lambda_vgg` (10) · VGG perceptual loss (VGG16 by default, see
       `losses/perceptual.py`; `task.vgg_weights` = a torchvision vgg19 .pth for the paper's;
       `task.vgg_downsample` k > 1 average-pools both images k×k first, a CPU-budget option)
     + `task.lambda_kld` (0.05) · KL of the style encoder (`model.use_vae` only).
Only 'hinge' (`training.loss`) is SPADE's default; other `training.loss` names apply per scale.

DAGAN (`model.name` 'dagan') trains with exactly these losses (dagan paper Eq. 10: λ_cgan 1,
λ_f 10, λ_p 10). LGGAN (`model.name` 'lggan') returns a dict of outputs (`models/lggan.py`);
then:
  * the adversarial, feature-matching and perceptual terms are applied to each of the final
    image I^C, the global I^G and the local I^L (S1: the final image only), weighted by
    `task.output_loss_weights` (1, 1, 1), and D plays one game per output: its loss is
    Σ_outputs weight · (real term + fake term), so D sees all three. This is our choice: the
    lggan paper's Eq. 8 (Sec. 3.2) writes the adversarial term for I^C only and names no
    feature-matching or perceptual loss (they come from SPADE); `(1, 0, 0)` scores the final
    image only;
  * + `task.lambda_l1_local` (1) · the class-masked L1 of Eq. 2 (`layers.lggan.class_masked_l1`,
    every class branch as Eq. 2 and the authors' code; `task.l1_present_only` counts only the
    classes present in each sample);
  * + `task.lambda_class` (1) · the classification loss of Eq. 5 over the classes present
    (cross-entropy averaged over the present (sample, class) pairs of the global batch).
  The paper gives no weights for Eq. 2 and Eq. 5; 1 is this library's reading.

Evaluation (`training/semantic_eval.py`): G (`task.eval_ema`: EMA or raw params) synthesises the
`eval.split` photos from their label maps; FID against those photos, PSNR, SSIM and LPIPS per
pair, and mIoU / accuracy when a segmentation network is configured (`eval.segmenter`).
"""

from typing import Dict, List, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from genattn_jax import _paired_settings
from genattn_jax.losses import perceptual
from genattn_jax.training.tasks.base import Task


def semantic_input(label: jax.Array, edge: jax.Array, num_labels: int,
                   use_instance: bool) -> jax.Array:
  """seg [b, H, W, num_labels (+1)] float32: one-hot labels (⊕ the edge channel)."""
  seg = jax.nn.one_hot(label, num_labels, dtype=jnp.float32)
  if use_instance:
    seg = jnp.concatenate([seg, edge[..., None].astype(jnp.float32)], axis=-1)
  return seg


def final_image(out) -> jax.Array:
  """G's image from a generator output: the array itself, or LGGAN's dict's 'image'."""
  return out["image"] if isinstance(out, dict) else out


def output_images(out) -> List[Tuple[str, jax.Array]]:
  """(name, image) of every output the GAN losses apply to: one plain image, or LGGAN's final,
  global and local images (the final only when there is no local branch, LGGAN S1)."""
  if not isinstance(out, dict):
    return [("image", out)]
  if "local" not in out:
    return [("image", out["image"])]
  return [(k, out[k]) for k in ("image", "global", "local")]


def load_vgg(task_config):
  """(VGG params as jnp arrays, arch) from `task.vgg_arch` / `task.vgg_weights`."""
  from genattn_jax.losses import vgg_weights  # pylint: disable=g-import-not-at-top
  arch = task_config.get("vgg_arch", "vgg16")
  path = task_config.get("vgg_weights", "") or None
  if arch == "vgg16" and (path is None or not path.endswith(".pth")):
    params, _ = vgg_weights.load_vgg16_lpips(path)
  else:
    if path is None:
      raise ValueError(f"`task.vgg_arch`={arch!r} needs `task.vgg_weights` = a torchvision "
                       f"{arch} state dict (.pth).")
    params = vgg_weights.read_torchvision_vgg(path, arch)
  last = perceptual.relu_first_of_stage(arch)[-1]
  params = {k: v for k, v in params.items() if int(k.split("_")[1]) <= last}
  return jax.tree_util.tree_map(jnp.asarray, params), arch


class SemanticTask(Task):
  """SPADE label map → image (see module doc)."""

  name = "semantic"

  def __init__(self, config, generator, discriminator, axis_name=None):
    super().__init__(config, generator, discriminator, axis_name)
    _, nc, dc, inst = _paired_settings.data_settings(config.data)
    self.num_labels = nc + int(dc)
    self.use_instance = inst
    self.use_vae = bool(config.model.get("use_vae", False))
    t = config.task
    self.lambda_feat = float(t.get("lambda_feat", 10.0))
    self.lambda_vgg = float(t.get("lambda_vgg", 10.0))
    self.lambda_kld = float(t.get("lambda_kld", 0.05))
    self.vgg_normalize = t.get("vgg_normalize", "none")
    self.vgg_downsample = int(t.get("vgg_downsample", 1))
    self.output_loss_weights = [float(v) for v in t.get("output_loss_weights", (1.0, 1.0, 1.0))]
    if len(self.output_loss_weights) != 3:
      raise ValueError("`task.output_loss_weights` must hold 3 weights (final, global, local), "
                       f"got {self.output_loss_weights}.")
    self.lambda_l1_local = float(t.get("lambda_l1_local", 1.0))
    self.lambda_class = float(t.get("lambda_class", 1.0))
    self.l1_present_only = bool(t.get("l1_present_only", False))
    self._vgg = None
    self._evaluator = None

  @property
  def vgg(self):
    if self._vgg is None:
      self._vgg = load_vgg(self.config.task)
    return self._vgg

  def seg(self, batch) -> jax.Array:
    return semantic_input(batch["label"], batch["edge"], self.num_labels, self.use_instance)

  def init_variables(self, rng):
    h, w = (int(s) for s in self.config.model.image_size)
    g_rng, d_rng, s_rng = jax.random.split(rng, 3)
    seg = jnp.zeros((2, h, w, self.num_labels + int(self.use_instance)), jnp.float32)
    img = jnp.zeros((2, h, w, 3), jnp.float32)
    g_vars = self.generator.init({"params": g_rng, "sampling": s_rng}, seg,
                                 image=img if self.use_vae else None, train=False)
    d_vars = self.discriminator.init({"params": d_rng, "sampling": s_rng}, seg, img,
                                     train=False)
    return g_vars, d_vars

  def _generate(self, g_params, g_state, seg, image, rng):
    (fake, kl), g_state = self.apply_g(g_params, g_state, seg, None,
                                       image if self.use_vae else None, rng=rng)
    return fake, kl, g_state

  def _apply_d_each(self, d_params, d_state, seg, images, rng):
    """D on each of `images` in one call (stacked along the batch): (outputs per image,
    new D state). D has no batch statistics, so this equals one call per image."""
    if len(images) == 1:
      out, d_state = self.apply_d(d_params, d_state, seg, images[0], rng=rng)
      return [out], d_state
    m, b = len(images), images[0].shape[0]
    out, d_state = self.apply_d(d_params, d_state, jnp.concatenate([seg] * m),
                                jnp.concatenate(images), rng=rng)
    return [jax.tree_util.tree_map(lambda x, i=i: x[i * b:(i + 1) * b], out)
            for i in range(m)], d_state

  def d_loss(self, d_params, st, batch, rng, d_index):
    real, seg = batch["image"], self.seg(batch)
    g_rng, d_rng, gp_rng = jax.random.split(rng, 3)
    out, _, _ = self._generate(st.g_params, st.g_state, seg, real, g_rng)
    fakes = [jax.lax.stop_gradient(f) for _, f in output_images(out)]
    real_out, d_state = self.apply_d(d_params, st.d_state, seg, real, rng=d_rng)
    fake_outs, d_state = self._apply_d_each(d_params, d_state, seg, fakes, d_rng)
    n = len(real_out)
    # SPADE's GANLoss on a list: the per-scale losses averaged (for hinge the real and fake
    # terms separate, so this equals averaging each over the scales as the official code does).
    # LGGAN: one such game per output (final, global, local), weighted.
    loss = sum(w * sum(self.d_adv_loss(r[-1], f[-1]) for r, f in zip(real_out, fake_out)) / n
               for w, fake_out in zip(self.output_loss_weights, fake_outs))
    aux = {"d_adv_loss": loss,
           "d_real": sum(r[-1].mean() for r in real_out) / n,
           "d_fake": sum(f[-1].mean() for f in fake_outs[0]) / n}
    d_fn = lambda x: jnp.concatenate(  # pylint: disable=g-long-lambda
        [o[-1].reshape(o[-1].shape[0], -1) for o in
         self.apply_d(d_params, st.d_state, seg, x, rng=d_rng)[0]], axis=1).mean(axis=1)
    loss = self.regularize_d(loss, aux, d_fn, real, fakes[0], d_index, gp_rng)
    aux["d_loss"] = loss
    return loss, aux, d_state

  def _perceptual(self, fake, real):
    params, arch = self.vgg
    if self.vgg_downsample > 1:  # CPU-budget option (default 1 = SPADE's full resolution)
      k = (self.vgg_downsample,) * 2
      fake, real = nn.avg_pool(fake, k, strides=k), nn.avg_pool(real, k, strides=k)
    return perceptual.vgg_perceptual_loss(params, fake, real, arch=arch,
                                          normalize=self.vgg_normalize)

  def g_loss(self, g_params, st, batch, rng):
    real, seg = batch["image"], self.seg(batch)
    g_rng, d_rng = jax.random.split(rng)
    out, kl, g_state = self._generate(g_params, st.g_state, seg, real, g_rng)
    named = output_images(out)
    fake_outs, _ = self._apply_d_each(st.d_params, st.d_state, seg, [f for _, f in named],
                                      d_rng)
    real_out, _ = self.apply_d(st.d_params, st.d_state, seg, real, rng=d_rng)
    n = len(real_out)
    aux, loss = {}, jnp.zeros((), jnp.float32)
    adv = fm = vgg = jnp.zeros((), jnp.float32)
    for w, (_, fake), fake_out in zip(self.output_loss_weights, named, fake_outs):
      adv = adv + w * sum(self.g_adv_loss(f[-1], r[-1] if self.relativistic else None)
                          for f, r in zip(fake_out, real_out)) / n
      if self.lambda_feat:
        fm = fm + w * perceptual.feature_matching_loss(fake_out, real_out)
      if self.lambda_vgg:
        vgg = vgg + w * self._perceptual(fake, real)
    aux["g_adv_loss"] = adv
    loss = loss + adv
    if self.lambda_feat:
      loss = loss + self.lambda_feat * fm
      aux["g_feat_loss"] = fm
    if self.lambda_vgg:
      loss = loss + self.lambda_vgg * vgg
      aux["g_vgg_loss"] = vgg
    if isinstance(out, dict) and "class_images" in out:
      loss = self._lggan_terms(loss, aux, out, batch, real)
    if self.use_vae:
      # Official KLDLoss sums over the batch. Written as (this device's mean) · global batch,
      # so the pmean of the gradients equals the gradient of the global-batch sum.
      kl = kl / real.shape[0] * self.global_batch
      loss = loss + self.lambda_kld * kl
      aux["g_kld_loss"] = kl
    loss = self.regularize_g(loss, aux, g_params)
    aux["g_loss"] = loss
    return loss, aux, g_state

  def _lggan_terms(self, loss, aux, out, batch, real):
    """Adds LGGAN's Eq. 2 (class-masked L1) and Eq. 5 (classification) terms."""
    from genattn_jax.layers import lggan, lggan_fusion  # pylint: disable=g-import-not-at-top
    m = int(self.config.model.get("max_local_classes", 0)) or None
    if self.lambda_l1_local:
      l1 = lggan.class_masked_l1(real, out["class_images"], batch["label"], self.num_labels,
                                 m, present_only=self.l1_present_only)
      loss = loss + self.lambda_l1_local * l1
      aux["g_l1_local_loss"] = l1
    if self.lambda_class and "class_logits" in out:
      masks = lggan.label_masks(batch["label"], self.num_labels, max_local_classes=m)
      present = jnp.sum(masks, axis=(1, 2)) > 0  # [b, K']
      # Mean over the present (sample, class) pairs of the global batch.
      cls = lggan_fusion.filtered_class_cross_entropy(out["class_logits"], present,
                                                      axis_name=self.axis_name)
      loss = loss + self.lambda_class * cls
      aux["g_class_loss"] = cls
    return loss

  # ------------------------------------------------------------------------ data / eval ----

  def create_data_loader(self, *, global_batch_size: int, seed: int):
    from genattn_jax.data import paired  # pylint: disable=g-import-not-at-top
    return paired.create_paired_loader(self.config.data, global_batch_size=global_batch_size,
                                       seed=seed)

  @property
  def evaluator(self):
    if self._evaluator is None:
      from genattn_jax.training import semantic_eval  # pylint: disable=g-import-not-at-top
      self._evaluator = semantic_eval.SemanticEvaluator(self.config, self.generator, self)
    return self._evaluator

  def eval_params(self, state):
    return state.ema_params if self.config.task.get("eval_ema", False) else state.g_params

  def evaluate(self, state, workdir: str) -> Dict[str, float]:
    return self.evaluator.evaluate(self.eval_params(state), state.g_state)

  def sample_grid(self, state, rows: int) -> np.ndarray:
    return self.evaluator.grid(self.eval_params(state), state.g_state, rows)
