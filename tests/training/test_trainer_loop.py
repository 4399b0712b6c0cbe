"""The training loop's schedule and its evaluation image path, with values checked.

One tiny SNDCGAN run (5 steps) with log / eval / checkpoint periods 2 / 3 / 2 checks which
steps log, evaluate and checkpoint; the Inception feature extractor is replaced by a cheap
deterministic one that records the images it is given, so the test can check that FID is
computed from the EMA generator in eval mode, from the uint8 images the docs promise, and
that the logged FID is the Frechet distance of exactly those statistics. A second run whose
update turns the parameters into NaN checks that a non-finite state is never checkpointed.
"""

import json
import os

import jax
import numpy as np
from PIL import Image
import pytest

from genattn_jax import models
from genattn_jax.metrics import features as features_lib
from genattn_jax.metrics import fid
from genattn_jax.training import checkpoint as ckpt_lib
from genattn_jax.training import config as config_lib
from genattn_jax.training import evaluation
from genattn_jax.training import state as state_lib
from genattn_jax.training import trainer
from genattn_jax.training import writer as writer_lib


def _fake_features(images):
  """[N, 8] float64 features of uint8 images: channel means and a few raw pixels."""
  flat = images.reshape(len(images), -1).astype(np.float64)
  return np.concatenate([images.reshape(len(images), -1, 3).mean(1), flat[:, 7:12]], axis=1)


def _config(tmp_path, **overrides):
  c = config_lib.shrink_for_tests(config_lib.base_config("sndcgan", 32))
  c.data.data_dir = str(tmp_path / "tfds")
  c.training.num_steps = 6
  c.log_every_steps = 2
  c.eval.every_steps = 3
  c.checkpoint.every_steps = 2
  c.checkpoint.keep = 10
  c.training.ema_decay = 0.5
  # Large steps, so that after 5 updates the EMA, the raw generator and the initial one
  # differ visibly even after uint8 quantisation.
  c.optimizer.g_lr = c.optimizer.d_lr = 0.02
  for key, value in overrides.items():
    parent, name = key.rsplit(".", 1) if "." in key else ("", key)
    (c[parent] if parent else c)[name] = value
  return c


@pytest.fixture(scope="module")
def loop_run(tmp_path_factory):
  tmp_path = tmp_path_factory.mktemp("loop")
  config = _config(tmp_path)
  calls, scalar_steps = [], []
  mp = pytest.MonkeyPatch()

  def fake_extract(batches, **_):
    images = np.concatenate(list(batches))
    calls.append(images)
    return {"pool": _fake_features(images)}

  original_write = writer_lib.MetricWriter.write_scalars

  def write_scalars(self, step, scalars):
    scalar_steps.append(int(step))
    return original_write(self, step, scalars)

  mp.setattr(features_lib, "extract_features", fake_extract)
  mp.setattr(writer_lib.MetricWriter, "write_scalars", write_scalars)
  try:
    result = trainer.train_and_evaluate(config, str(tmp_path / "work"))
  finally:
    mp.undo()
  return config, tmp_path / "work", result, calls, scalar_steps


def test_log_eval_checkpoint_cadence(loop_run):
  config, workdir, _, calls, scalar_steps = loop_run
  # log: every 2 and the last step; eval: at multiples of 3 only (the last step, 6, is one);
  # checkpoint: every 2 and the last.
  assert scalar_steps == [2, 3, 4, 6]
  with open(workdir / "metrics.jsonl") as f:
    assert [json.loads(line)["step"] for line in f] == [3, 6]
  assert sorted(os.listdir(workdir / "samples")) == ["step_0000003.png", "step_0000006.png"]
  assert sorted(int(d) for d in os.listdir(workdir / "checkpoints") if d.isdigit()) == [2, 4, 6]
  # Real statistics once (cached), then one fake set per evaluation.
  assert [len(c) for c in calls] == [config.eval.num_real, config.eval.num_fake,
                                     config.eval.num_fake]


def _sample_fn(config, train):
  generator = models.build_gan(config.model)[0]

  @jax.jit
  def sample(params, g_state, z, y):
    del y
    out = generator.apply({"params": params, **g_state}, z, None, train=train,
                          mutable=["batch_stats"] if train else False)
    return out[0] if train else out

  return sample


def test_fid_uses_ema_generator_in_eval_mode_and_logged_value(loop_run):
  config, workdir, result, calls, _ = loop_run
  final = result["final_state"]
  fake_images = calls[-1]                  # the evaluation at the last step
  assert fake_images.dtype == np.uint8

  def images_of(params, train):
    return np.concatenate(list(evaluation.sample_batches(
        _sample_fn(config, train), params, final.g_state, num_images=config.eval.num_fake,
        batch_size=config.eval.batch_size, z_dim=config.model.z_dim, num_classes=0,
        seed=1234)))

  ema_eval = images_of(final.ema_params, train=False)
  # Same computation compiled separately: at most a rounding step on a few pixels.
  diff = np.abs(fake_images.astype(int) - ema_eval)
  assert diff.max() <= 1 and np.mean(diff > 0) < 0.01
  # ... and not from the raw generator, nor in training mode (batch statistics).
  assert np.abs(fake_images.astype(int) - images_of(final.g_params, False)).max() > 2
  assert np.abs(fake_images.astype(int) - images_of(final.ema_params, True)).max() > 2
  # The logged FID is the Frechet distance of the recorded real and fake statistics.
  mu_r, s_r = fid.feature_statistics(_fake_features(calls[0]))
  mu_f, s_f = fid.feature_statistics(_fake_features(fake_images))
  with open(workdir / "metrics.jsonl") as f:
    logged = [json.loads(line) for line in f][-1]["fid"]
  assert logged == pytest.approx(fid.frechet_distance(mu_r, s_r, mu_f, s_f), rel=1e-9)
  assert logged > 0


def test_sample_grid_png_holds_the_fixed_noise_ema_samples(loop_run):
  config, workdir, result, _, _ = loop_run
  final = result["final_state"]
  rows = config.eval.grid_rows
  z = jax.random.normal(jax.random.PRNGKey(config.seed + 1), (rows * rows, config.model.z_dim))
  samples = evaluation.to_uint8(np.asarray(_sample_fn(config, False)(
      final.ema_params, final.g_state, z, None)))
  png = np.asarray(Image.open(workdir / "samples" / "step_0000006.png"))
  h = config.model.resolution
  assert png.shape == (rows * h, rows * h, 3)
  for r in range(rows):
    for c in range(rows):
      np.testing.assert_array_equal(png[r * h:(r + 1) * h, c * h:(c + 1) * h],
                                    samples[r * rows + c])


def test_to_uint8_rounds_and_clips():
  x = np.array([-1.0, 1.0, -1.5, 2.0, 10.4 / 127.5 - 1, 10.6 / 127.5 - 1, 0.0],
               np.float32).reshape(1, 1, 7, 1)
  out = evaluation.to_uint8(x)
  assert out.dtype == np.uint8 and out.shape == (1, 1, 7, 3)   # gray replicated to RGB
  np.testing.assert_array_equal(out[0, 0, :, 0], [0, 255, 0, 255, 10, 11, 128])
  np.testing.assert_array_equal(out[..., 0], out[..., 2])
  rgb = evaluation.to_uint8(np.zeros((2, 3, 3, 3), np.float32) + 0.5)
  assert rgb.shape == (2, 3, 3, 3) and np.all(rgb == 191)        # 1.5 * 127.5 = 191.25


def test_image_grid_layout_is_row_major():
  n, h, w = 6, 2, 3
  images = np.zeros((n, h, w, 3), np.uint8)
  for i in range(n):
    images[i] = 10 * i + np.arange(h * w * 3).reshape(h, w, 3) % 7
  grid = evaluation.image_grid(images, rows=2)
  assert grid.shape == (2 * h, 3 * w, 3)
  for i in range(n):
    r, c = divmod(i, 3)
    np.testing.assert_array_equal(grid[r * h:(r + 1) * h, c * w:(c + 1) * w], images[i])


def _all_finite(tree):
  return all(bool(np.all(np.isfinite(np.asarray(x))))
             for x in jax.tree_util.tree_leaves(tree)
             if np.issubdtype(np.asarray(x).dtype, np.floating))


def test_non_finite_state_is_never_checkpointed(tmp_path):
  # A learning rate beyond float32's range (finite as a Python float, so the config check
  # accepts it) turns G's parameters into inf/NaN in the first update, while the metrics of
  # that step (computed before the update) are still finite: the check must look at the
  # state, not only at the losses (issue 9's finite-state check before saving).
  config = _config(tmp_path, **{"optimizer.g_lr": 1e39, "checkpoint.every_steps": 1,
                                "log_every_steps": 1, "eval.every_steps": 0,
                                "training.num_steps": 3})
  workdir = tmp_path / "work"
  with pytest.raises(FloatingPointError):
    trainer.train_and_evaluate(config, str(workdir))
  ckpt_dir = workdir / "checkpoints"
  steps = sorted(int(d) for d in os.listdir(ckpt_dir) if d.isdigit()) if ckpt_dir.exists() else []
  generator, discriminator = models.build_gan(config.model)
  target = state_lib.create_gan_state(config, generator, discriminator, jax.random.PRNGKey(0))
  checkpointer = ckpt_lib.Checkpointer(str(ckpt_dir), async_save=False)
  try:
    for step in steps:
      assert _all_finite(checkpointer.restore(step, target)), f"checkpoint {step} is not finite"
  finally:
    checkpointer.close()
