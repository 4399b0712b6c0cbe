"""The MSG-GAN task (`tasks/multiscale.py`) through the real train step: every scale reaches D,
every G stage's RGB output is trained, and R1 is taken over the real pyramid."""

import jax
import jax.numpy as jnp
import numpy as np

from configs import cifar10_msg_dcgan_lap, cifar10_msg_stylegan
from genattn_jax.training import parallel, state as state_lib, trainer
from genattn_jax.training.tasks.multiscale import pyramid_r1_penalty

RES = 8


def _config(module):
  c = module.get_test_config()
  c.model.resolution = c.data.image_size = RES
  c.model.g_width = c.model.d_width = 1 / 32
  c.model.z_dim = 16
  c.training.batch_size = 8
  c.parallel.backend = "jit"
  return c


def _one_step(config):
  generator, discriminator, train_step = trainer.build(config)
  state = state_lib.create_gan_state(config, generator, discriminator, jax.random.PRNGKey(0),
                                     task=train_step.task)
  before = jax.device_get(state)     # a host copy: the step donates the device state
  backend = parallel.make_backend("jit", train_step, jax.devices()[:1])
  images = np.random.default_rng(0).uniform(-1, 1, (8, RES, RES, 3)).astype(np.float32)
  batch = {"image": images, "label": np.zeros((8,), np.int32)}
  new, metrics = backend.step(backend.put_state(state), backend.put_batch(batch),
                              jax.random.PRNGKey(1))
  return (before, jax.device_get(backend.get_state(new)), backend.get_metrics(metrics), images,
          discriminator)


def _numpy_pyramid(images):
  """2×2 average pooling per halving, coarse → fine (MSG-GAN's real-image scales)."""
  out, x = [images.astype(np.float64)], images.astype(np.float64)
  while x.shape[1] > 4:
    b, h, w, c = x.shape
    x = x.reshape(b, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))
    out.append(x)
  return out[::-1]


def _changed(a, b):
  return float(np.abs(np.asarray(a) - np.asarray(b)).max()) > 0


def test_msg_dcgan_step_trains_every_rgb_output_and_every_d_input():
  """MSG-DCGAN + LAP (the official-code D): one step moves the ToRGB layer of every G stage
  (D's loss reaches G through each scale) and the FromRGB layer of every D scale."""
  before, after, metrics, _, _ = _one_step(_config(cifar10_msg_dcgan_lap))
  for r in (4, 8):
    name = f"to_rgb{r}"
    assert _changed(before.g_params[name]["kernel"], after.g_params[name]["kernel"]), r
  assert _changed(before.d_params["from_rgb"]["kernel"], after.d_params["from_rgb"]["kernel"])
  assert _changed(before.d_params["from_rgb4"]["kernel"], after.d_params["from_rgb4"]["kernel"])
  for k in ("d_loss", "g_loss", "d_real", "d_fake"):
    assert np.isfinite(metrics[k]), k
  assert "r1" not in metrics          # MSG-DCGAN: relativistic hinge, no R1


def test_msg_stylegan_step_r1_is_taken_over_the_real_pyramid():
  """The step's R1 equals Σ_r ||∂D/∂x_r||² (batch mean) at the pre-step D on the NumPy pyramid."""
  config = _config(cifar10_msg_stylegan)
  assert config.training.r1_gamma > 0
  before, _, metrics, images, discriminator = _one_step(config)
  pyramid = [jnp.asarray(x, jnp.float32) for x in _numpy_pyramid(images)]
  d_vars = {"params": before.d_params, **before.d_state}
  expected = pyramid_r1_penalty(lambda xs: discriminator.apply(d_vars, xs, None, train=True),
                                pyramid)
  # The fine scale alone would be a different number: every scale contributes.
  fine_only = float(jnp.mean(jnp.sum(jnp.square(jax.grad(
      lambda x: jnp.sum(discriminator.apply(d_vars, pyramid[:-1] + [x], None, train=True)))(
          pyramid[-1])).reshape(8, -1), axis=-1)))
  assert float(expected) > fine_only > 0
  np.testing.assert_allclose(metrics["r1"], expected, rtol=1e-4)
