"""DAGAN and LGGAN on 8 devices = 1 device (split from test_dagan_lggan.py, whose helpers it
uses, so that `pytest -n 2 --dist loadfile` can run the two files on separate workers)."""

import jax
import numpy as np
import pytest

from configs import pairs_demo_dagan, pairs_demo_lggan
from tests.training import test_semantic
from tests.training.test_dagan_lggan import _config


STEPS = 2


def _batches(h, w):
  rng = np.random.default_rng(0)
  for _ in range(STEPS):
    label = rng.integers(0, 35, (8, h, w)).astype(np.int32)
    yield {"image": rng.uniform(-1, 1, (8, h, w, 3)), "label": label,  # float64
           "edge": (rng.uniform(size=(8, h, w)) < 0.2).astype(np.float64)}


def _run_parallel(tmp_path, module, backend_name, devices):
  c = _config(tmp_path, module)
  c.task.lambda_vgg = 0.0
  return test_semantic.run_float64(c, _batches(*c.model.image_size), backend_name, devices)


@pytest.mark.parametrize("module", [pairs_demo_dagan, pairs_demo_lggan],
                         ids=["dagan", "lggan"])
def test_eight_devices_equal_one(tmp_path, module):
  """pmap on 8 devices = 1 device, in float64 (tests/training/float64.py): DAGAN's SAM / CAM
  and LGGAN's class-specific branches, classification loss (Eq. 5 normalised over the global
  batch) and fusion on the SPADE trunk's synchronized batch norm. (jit on 8 devices is
  covered for the SPADE trunk by tests/training/test_semantic.py.)"""
  assert jax.device_count() == 8
  ref = _run_parallel(tmp_path / "one", module, "jit", jax.devices()[:1])
  run = _run_parallel(tmp_path / "eight", module, "pmap", jax.devices())
  keys = ["d_loss", "g_loss", "g_feat_loss"]
  if module is pairs_demo_lggan:
    keys += ["g_l1_local_loss", "g_class_loss"]
  test_semantic.assert_same_run(run, ref, keys)
