"""DAGAN and LGGAN as complete systems: generator shapes, LGGAN's losses, one real train step
through the one trainer, and every new config builds (8 devices = 1 is in
test_dagan_lggan_parallel.py, so that the two halves can run on separate test workers)."""

import importlib
import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import pairs_demo_dagan, pairs_demo_lggan
from genattn_jax import models
from genattn_jax.training import state as state_lib, tasks, trainer
from tests.training import test_semantic

SHARED_PAIRS = os.path.join(os.environ.get("GENATTN_SHARED_DATA", os.path.join(
    os.path.dirname(__file__), "..", "..", "..", "shared", "data")), "pairs", "cityscapes")
K = 5  # label classes of the tiny model tests


def _tiny_model(name, h, w, **fields):
  c = models.default_model_config(name, h)
  c.image_size, c.ngf, c.ndf, c.spade_hidden = [h, w], 2, 4, 4
  if name == "lggan":
    c.num_classes, c.num_res_blocks = K, 1
  c.update(fields)
  return models.build_gan(c)


@pytest.mark.parametrize("name", ["dagan", "lggan"])
@pytest.mark.parametrize("hw", [(32, 64), (32, 32)])
def test_generator_maps_label_maps_to_images(name, hw):
  h, w = hw
  g, _ = _tiny_model(name, h, w)
  ids = jax.random.randint(jax.random.PRNGKey(0), (2, h, w), 0, K)
  seg = jnp.concatenate([jax.nn.one_hot(ids, K), jnp.zeros((2, h, w, 1))], -1)  # ⊕ edge
  v = g.init({"params": jax.random.PRNGKey(1), "sampling": jax.random.PRNGKey(2)}, seg,
             train=False)
  out, kl = g.apply(v, seg, train=False)
  assert float(kl) == 0.0
  if name == "dagan":
    chex.assert_shape(out, (2, h, w, 3))
    image = out
  else:
    for k in ("image", "global", "local"):
      chex.assert_shape(out[k], (2, h, w, 3))
    chex.assert_shape(out["class_images"], (2, K, h, w, 3))
    chex.assert_shape(out["weights"], (2, h, w, 2))
    np.testing.assert_allclose(  # Eq. 7 with the returned weights
        out["image"], out["local"] * out["weights"][..., :1]
        + out["global"] * out["weights"][..., 1:], atol=1e-6)
    image = out["image"]
  assert np.all(np.abs(np.asarray(image)) < 1) and np.all(np.isfinite(image))


def test_dagan_b1_is_spade():
  """Table 4's B1 is GauGAN: the same parameters give SPADE's output exactly."""
  g, _ = _tiny_model("dagan", 32, 64, use_sam=False, cam_variant="")
  s, _ = _tiny_model("spade", 32, 64)
  seg = jax.nn.one_hot(jax.random.randint(jax.random.PRNGKey(0), (2, 32, 64), 0, 6), 6)
  v = g.init({"params": jax.random.PRNGKey(1)}, seg, train=False)
  p = dict(v["params"]["spade"], conv_img=v["params"]["head"]["conv_img"])
  sv = {"params": p, "batch_stats": v["batch_stats"]["spade"]}
  np.testing.assert_allclose(g.apply(v, seg, train=False)[0], s.apply(sv, seg, train=False)[0],
                             atol=1e-6)


def _config(tmp_path, module):
  c = module.get_test_config()
  c.data.source = SHARED_PAIRS
  c.data.data_dir = str(tmp_path / "tfds")
  c.eval.every_steps = 0
  c.training.batch_size = 8  # the trainer shards every batch over the 8 test devices
  c.optimizer.decay_start = 0
  return c


def test_lggan_losses_count_only_present_classes(tmp_path):
  """Removing a class from the label map changes Eq. 2 / Eq. 5; the classification loss
  averages over the classes present only (a class absent everywhere contributes nothing)."""
  c = _config(tmp_path, pairs_demo_lggan)
  g, d, _ = trainer.build(c)
  task = tasks.get_task(c, g, d)
  st = state_lib.create_gan_state(c, g, d, jax.random.PRNGKey(0))
  h, w = c.model.image_size
  rng = np.random.default_rng(0)
  label = rng.integers(0, 3, (2, h, w)).astype(np.int32)  # classes 0, 1, 2 only
  batch = {"image": rng.uniform(-1, 1, (2, h, w, 3)).astype(np.float32), "label": label,
           "edge": np.zeros((2, h, w), np.float32)}

  def terms(b):
    _, aux, _ = task.g_loss(st.g_params, st, {k: jnp.asarray(v) for k, v in b.items()},
                            jax.random.PRNGKey(3))
    return float(aux["g_l1_local_loss"]), float(aux["g_class_loss"])

  l1, cls = terms(batch)
  removed = dict(batch, label=np.where(label == 2, 1, label).astype(np.int32))
  l1_r, cls_r = terms(removed)
  assert abs(l1 - l1_r) > 1e-6 and abs(cls - cls_r) > 1e-6
  # Independent Eq. 5 reference on the generator's own logits: CE of row k against target k,
  # averaged over the (sample, class) pairs whose class is present; absent rows must not count.
  jb = {k: jnp.asarray(v) for k, v in batch.items()}
  out, _ = g.apply({"params": st.g_params, **st.g_state}, task.seg(jb), train=False)
  logits = np.asarray(out["class_logits"], np.float64)
  z = logits - logits.max(-1, keepdims=True)
  logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
  ce = -np.stack([logp[:, i, i] for i in range(logits.shape[1])], axis=1)
  present = np.stack([(label == i).any(axis=(1, 2)) for i in range(logits.shape[1])], axis=1)
  assert present.sum() == 6  # 3 classes in each of 2 samples, out of 2 * 35
  aux = {}
  task._lggan_terms(jnp.zeros(()), aux, out, jb, jb["image"])  # pylint: disable=protected-access
  np.testing.assert_allclose(aux["g_class_loss"], (ce * present).sum() / present.sum(),
                             rtol=1e-5)
  garbage = dict(out, class_logits=jnp.where(jnp.asarray(present)[..., None],
                                             out["class_logits"], 50.0))
  aux_g = {}
  task._lggan_terms(jnp.zeros(()), aux_g, garbage, jb, jb["image"])  # pylint: disable=protected-access
  np.testing.assert_allclose(aux_g["g_class_loss"], aux["g_class_loss"], rtol=1e-6)


@pytest.mark.parametrize("module", [pairs_demo_dagan, pairs_demo_lggan],
                         ids=["dagan", "lggan"])
def test_one_step_on_shared_pairs_changes_params(tmp_path, module):
  out, init, final = test_semantic.one_step(_config(tmp_path, module), tmp_path / "run")
  keys = ["g_adv_loss", "g_feat_loss", "g_vgg_loss", "d_loss"]
  if module is pairs_demo_lggan:
    keys += ["g_l1_local_loss", "g_class_loss"]
    for part in ("encoder", "head"):  # the shared encoder, local branch and G_w learn too
      assert test_semantic.max_change(init.g_params[part], final.g_params[part]) > 1e-6, part
  else:
    assert test_semantic.max_change(init.g_params["head"], final.g_params["head"]) > 1e-6
  for k in keys:
    assert np.isfinite(out[k]), k
    if k != "g_adv_loss":  # hinge G loss -E[D(fake)] may have either sign
      assert out[k] > 0, k


@pytest.mark.parametrize("name", ["cityscapes_dagan", "cityscapes_lggan", "ade20k_dagan",
                                  "ade20k_lggan", "pairs_demo_dagan", "pairs_demo_lggan"])
def test_configs_build(name):
  """Every new config and its test twin build their generator and discriminator; the
  ablation rows select the papers' variants."""
  mod = importlib.import_module(f"configs.{name}")
  for c in (mod.get_config(), mod.get_test_config()):
    g, d = models.build_gan(c.model)
    assert type(g).__name__ == ("DAGANGenerator" if "dagan" in name else "LGGANGenerator")
    assert type(d).__name__ == "MultiscaleDiscriminator"
    assert c.optimizer.b2 == 0.9 and c.model.init_scheme == "spade"
    assert c.task.name == "semantic"
  if "dagan" in name:
    rows = {r: mod.get_config(r).model for r in ("B1", "B2", "B3", "B4", "B5", "B6")}
    assert [(m.use_sam, m.cam_variant) for m in rows.values()] == [
        (False, ""), (True, ""), (False, "I"), (False, "II"), (True, "I"), (True, "II")]
  else:
    rows = {r: mod.get_config(r) for r in ("S1", "S2", "S3", "S4", "S5")}
    assert [(c.model.use_local, c.model.fusion, c.model.use_class_loss,
             c.model.use_weight_map) for c in rows.values()] == [
                 (False, "conv", False, False), (True, "sum", False, False),
                 (True, "conv", False, False), (True, "conv", True, False),
                 (True, "conv", True, True)]
    assert rows["S1"].model.global_input == "label" and rows["S1"].task.lambda_l1_local == 0
    assert rows["S4"].task.lambda_class == 1 and rows["S3"].task.lambda_class == 0
  with pytest.raises(ValueError, match="row"):
    mod.get_config("B9" if "dagan" in name else "S9")
