"""Every experiment config in `configs/` builds, documents its command and traces one step.

Full-size configs are checked without allocating weights (`jax.eval_shape` of the
initialisation traces the models but computes nothing); test configs trace the whole
initialisation and one train step the same way, which catches every shape or config error
at no compile cost.
"""

import importlib

from absl import flags
import jax
import jax.numpy as jnp
from ml_collections import config_flags
import numpy as np
import pytest

from genattn_jax import losses, models
from genattn_jax.training import config as config_lib
from genattn_jax.training import state as state_lib
from genattn_jax.training import trainer

from tests.conftest import REPO_ROOT

ALL_CONFIG_NAMES = sorted(p.stem for p in (REPO_ROOT / "configs").glob("*.py")
                          if p.stem != "__init__")


def _module(name):
  return importlib.import_module(f"configs.{name}")


CONFIG_NAMES = ALL_CONFIG_NAMES
# Noise → image configs (task 'noise', and 'multiscale' for the MSG-GAN hosts: the same batch
# of images); the others are checked by their tasks' own tests (cyclegan:
# tests/training/test_cyclegan.py; semantic: tests/training/test_semantic_configs.py).
NOISE_CONFIG_NAMES = [n for n in CONFIG_NAMES if _module(n).get_config().task.get(
    "name", "noise") in ("noise", "multiscale")]


def _abstract_state(config):
  """GANState of ShapeDtypeStructs: the full initialisation traced, nothing computed."""
  generator, discriminator = models.build_gan(config.model)
  return jax.eval_shape(
      lambda rng: state_lib.create_gan_state(config, generator, discriminator, rng),
      jax.random.PRNGKey(0))


def _param_count(tree) -> int:
  return int(sum(np.prod(x.shape) for x in jax.tree_util.tree_leaves(tree)))


def test_config_files_found():
  assert {"cifar10_sngan", "cifar10_sngan_an", "cifar10_sagan", "cifar10_sndcgan_spap",
          "celebahq128_sndcgan_spap", "imagenet128_resnet_an", "demo"} <= set(CONFIG_NAMES)


def _check_common_fields(c):
  assert isinstance(c.name, str) and c.name
  assert c.model.name in models.MODEL_NAMES
  assert c.model.resolution == c.data.image_size
  losses.get_loss(c.training.loss)  # raises for an unknown loss name
  assert c.training.batch_size > 0 and c.training.n_critic >= 1 and c.training.num_steps > 0
  assert 0.0 <= c.training.ema_decay < 1.0 and c.training.ema_warmup_steps >= 0
  assert c.training.r1_interval >= 1
  for key in ("r1_gamma", "gp_weight", "ortho_weight"):
    assert c.training[key] >= 0.0
  assert c.optimizer.g_lr > 0 and c.optimizer.d_lr > 0
  assert 0.0 <= c.optimizer.b1 < 1.0 and 0.0 < c.optimizer.b2 < 1.0
  assert c.parallel.backend in ("jit", "pmap")
  assert c.checkpoint.every_steps > 0 and c.checkpoint.keep >= 1
  assert c.eval.every_steps >= 0 and c.eval.num_fake > 0 and c.eval.num_real > 0
  assert c.data.channels in (1, 3)


@pytest.mark.parametrize("name", NOISE_CONFIG_NAMES)
def test_full_config(name):
  module = _module(name)
  doc = module.__doc__ or ""
  assert "Command" in doc, f"configs/{name}.py docstring has no 'Command' line"
  assert f"configs/{name}.py" in doc
  c = module.get_config()
  _check_common_fields(c)
  assert c.training.num_steps >= 500 and c.training.batch_size >= 32
  assert c.eval.num_fake >= 500
  # Anything that uses AN must also carry AN's orthogonal regulariser on G.
  g_blocks = [b["block"] for b in c.model.g_blocks]
  if "an" in g_blocks:
    assert c.training.ortho_weight > 0
  generator, discriminator = models.build_gan(c.model)
  res = c.model.resolution
  state = _abstract_state(c)
  assert state.step.shape == () and state.step.dtype == jnp.int32
  # EMA params mirror G's, and the optimizers hold Adam moments of each parameter.
  assert (jax.tree_util.tree_structure(state.ema_params)
          == jax.tree_util.tree_structure(state.g_params))
  assert _param_count(state.g_opt_state) >= 2 * _param_count(state.g_params)
  variables = {"params": state.g_params, **state.g_state}
  z = jax.ShapeDtypeStruct((2, c.model.z_dim), jnp.float32)
  y = jax.ShapeDtypeStruct((2,), jnp.int32)
  images = jax.eval_shape(lambda v, z, y: generator.apply(v, z, y, train=False),
                          variables, z, y)
  assert images.shape == (2, res, res, 3)
  logits = jax.eval_shape(
      lambda v, x, y: discriminator.apply(v, x, y, train=False),
      {"params": state.d_params, **state.d_state}, images, y)
  assert logits.shape == (2,)


@pytest.mark.parametrize("name", NOISE_CONFIG_NAMES)
def test_test_config_traces_a_train_step(name):
  module = _module(name)
  c = module.get_test_config()
  _check_common_fields(c)
  assert c.data.source == config_lib.TEST_FIXTURE_IMAGES
  assert c.training.num_steps <= 10 and c.eval.num_fake <= 64
  full = _abstract_state(module.get_config())
  state = _abstract_state(c)
  # Same layers (parameter tree) as the full config except at lower width / resolution.
  assert _param_count(state.g_params) < _param_count(full.g_params)
  assert _param_count(state.d_params) < _param_count(full.d_params)
  _, _, train_step = trainer.build(c)
  n = c.training.batch_size * c.training.n_critic
  res, channels = c.model.resolution, c.data.get("channels", 3)
  batch = {"image": jax.ShapeDtypeStruct((n, res, res, channels), jnp.float32),
           "label": jax.ShapeDtypeStruct((n,), jnp.int32)}
  new_state, metrics = jax.eval_shape(train_step, state, batch, jax.random.PRNGKey(1))
  assert jax.tree_util.tree_structure(new_state) == jax.tree_util.tree_structure(state)
  for a, b in zip(jax.tree_util.tree_leaves(new_state), jax.tree_util.tree_leaves(state)):
    assert a.shape == b.shape and a.dtype == b.dtype
  for key in ("d_loss", "g_loss", "d_adv_loss", "g_adv_loss", "d_real", "d_fake",
              "d_grad_norm", "g_grad_norm"):
    assert metrics[key].shape == () and metrics[key].dtype == jnp.float32, key
  assert ("ortho" in metrics) == (c.training.ortho_weight > 0)
  assert ("r1" in metrics) == (c.training.r1_gamma > 0)
  assert ("gp" in metrics) == (c.training.gp_weight > 0)


@pytest.mark.parametrize("name", ["cifar10_sagan", "demo"])
def test_config_file_loads_through_train_flags(name):
  """`train.py --config=configs/<name>.py --config.training.num_steps=5` as absl parses it."""
  argv = ["train.py", f"--config={REPO_ROOT / 'configs' / (name + '.py')}",
          "--config.training.num_steps=5", "--config.parallel.backend=pmap"]
  flag_values = flags.FlagValues()
  # `sys_argv`: override flags are defined from the command line being parsed.
  config_flags.DEFINE_config_file("config", None, "config", flag_values=flag_values,
                                  lock_config=True, sys_argv=argv)
  flag_values(argv)
  c = flag_values.config
  assert c.training.num_steps == 5 and c.parallel.backend == "pmap"
  assert c.name == _module(name).get_config().name
  # The pmap backend builds the models with cross-device BatchNorm statistics.
  generator, _, _ = trainer.build(c)
  assert generator.bn_axis_name == "batch"
