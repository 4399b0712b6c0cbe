"""The SPADE configs: docstrings, paper settings, parameter counts, and a traced train step."""

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genattn_jax import models
from genattn_jax.training import state as state_lib, trainer

NAMES = ("cityscapes_spade", "ade20k_spade", "coco_stuff_spade", "pairs_demo")
# DAGAN Table 3 (GauGAN row): generator / discriminator parameters in millions.
PAPER_PARAMS = {"cityscapes_spade": (93.0, 5.6), "ade20k_spade": (96.5, 5.8)}


def _count(tree):
  return sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(tree))


def _abstract_state(c):
  g, d = models.build_gan(c.model)
  return jax.eval_shape(lambda r: state_lib.create_gan_state(c, g, d, r), jax.random.PRNGKey(0))


@pytest.mark.parametrize("name", NAMES)
def test_config_documented_and_spade_settings(name):
  module = importlib.import_module(f"configs.{name}")
  assert "Command" in module.__doc__ and f"configs/{name}.py" in module.__doc__
  c = module.get_config()
  assert c.task.name == "semantic" and c.training.loss == "hinge"
  assert (c.optimizer.b1, c.optimizer.b2) == (0.0, 0.9)
  assert (c.optimizer.g_lr, c.optimizer.d_lr) == (1e-4, 4e-4)
  assert c.optimizer.decay_start * 2 == c.training.num_steps
  assert (c.task.lambda_feat, c.task.lambda_vgg) == (10.0, 10.0)
  assert c.model.num_d == 2 and c.model.n_layers_d == 4
  if name in PAPER_PARAMS:
    st = _abstract_state(c)
    g_m, d_m = _count(st.g_params) / 1e6, _count(st.d_params) / 1e6
    want_g, want_d = PAPER_PARAMS[name]
    assert abs(g_m - want_g) < 0.1 and abs(d_m - want_d) < 0.1, (g_m, d_m)


@pytest.mark.parametrize("name", NAMES)
def test_test_config_traces_a_train_step(name):
  c = importlib.import_module(f"configs.{name}").get_test_config()
  assert c.training.num_steps <= 10
  st = _abstract_state(c)
  _, _, train_step = trainer.build(c)
  h, w = c.model.image_size
  n = c.training.batch_size
  batch = {"image": jax.ShapeDtypeStruct((n, h, w, 3), jnp.float32),
           "label": jax.ShapeDtypeStruct((n, h, w), jnp.int32),
           "edge": jax.ShapeDtypeStruct((n, h, w), jnp.float32)}
  new, metrics = jax.eval_shape(train_step, st, batch, jax.random.PRNGKey(1))
  assert jax.tree_util.tree_structure(new) == jax.tree_util.tree_structure(st)
  for key in ("d_loss", "g_loss", "g_adv_loss", "g_feat_loss", "g_vgg_loss"):
    assert metrics[key].shape == (), key
