"""Smoke test of benchmarks/gpu_suite.sh in its tiny CPU mode.

The suite runs once, as on a GPU machine (`bash benchmarks/gpu_suite.sh OUT --tiny`), in a
subprocess on the CPU; the tests check its JSON files. The PyTorch sections run when the
reference interpreter `.venv-ref/bin/python` (see benchmarks/fid_throughput.py) exists, and are
otherwise checked to be recorded as skipped. The no-donation rerun is left out
(SUITE_NO_DONATION=0) to keep the test short, and so is the SPADE step (SUITE_SPADE=0; its tiny
runs are tests/test_spade_bench.py). Without ml_collections, grain and tfds the suite's configs
(SPADE's included) equal the experiment files' (WithoutExtrasTest).
"""

import json
import math
import os
import pathlib
import re
import subprocess
import sys
import tempfile

from absl.testing import absltest
import jax
import jax.numpy as jnp
import numpy as np

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
  sys.path.insert(0, str(REPO_ROOT))

from benchmarks import gpu_suite_train  # noqa: E402
from genattn_jax import models  # noqa: E402

SCRIPT = REPO_ROOT / "benchmarks" / "gpu_suite.sh"
TORCH_PYTHON = REPO_ROOT / ".venv-ref" / "bin" / "python"
BLOCKS = ("attentive_norm", "self_attention", "self_attention_mem_efficient", "lap", "spap",
          "cbam")


def _env():
  env = dict(os.environ)
  env["XLA_FLAGS"] = re.sub(r"--xla_force_host_platform_device_count=\d+", "",
                            env.get("XLA_FLAGS", "")).strip()
  env["JAX_PLATFORMS"] = "cpu"
  env["PYTHON"] = sys.executable
  env["TORCH_PYTHON"] = str(TORCH_PYTHON) if TORCH_PYTHON.exists() else sys.executable
  env["SUITE_NO_DONATION"] = "0"
  env["SUITE_SPADE"] = "0"
  return env


def read_suite_json(case: absltest.TestCase, path: str, stderr: str) -> dict:
  """One benchmark JSON of the suite: it exists (else `stderr` is shown) and says 'done'."""
  name = os.path.basename(path)
  case.assertTrue(os.path.exists(path), msg=f"{name} missing; stderr:\n{stderr}")
  with open(path, encoding="utf-8") as f:
    data = json.load(f)
  case.assertEqual(data["status"], "done", msg=name)
  return data


def _has_torch() -> bool:
  if not TORCH_PYTHON.exists():
    return False
  return subprocess.run([str(TORCH_PYTHON), "-c", "import torch"], capture_output=True,
                        check=False).returncode == 0


class GpuSuiteSmokeTest(absltest.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls._tmp = tempfile.TemporaryDirectory()
    cls.out = os.path.join(cls._tmp.name, "suite")
    cls.proc = subprocess.run(["bash", str(SCRIPT), cls.out, "--tiny"], cwd=cls._tmp.name,
                              env=_env(), capture_output=True, text=True, timeout=7500,
                              check=False)
    cls.torch = _has_torch()

  @classmethod
  def tearDownClass(cls):
    cls._tmp.cleanup()
    super().tearDownClass()

  def _json(self, name):
    return read_suite_json(self, os.path.join(self.out, name), self.proc.stderr)

  def test_script_succeeds_and_prints_the_summary(self):
    self.assertEqual(self.proc.returncode, 0, msg=self.proc.stderr[-3000:])
    summary = self._json_summary()
    self.assertEqual(json.loads(self.proc.stdout), summary)
    for key in ("fid", "train", "blocks_ms"):
      self.assertIn(key, summary)

  def _json_summary(self):
    with open(os.path.join(self.out, "summary.json"), encoding="utf-8") as f:
      return json.load(f)

  def test_fid_jax(self):
    data = self._json("fid_jax.json")
    self.assertEqual(data["env"]["platform"], "cpu")
    fp32, bf16 = data["results"]["fp32_highest"], data["results"]["bf16"]
    self.assertEqual(fp32["status"], "ok")
    self.assertGreater(fp32["img_per_s"], 0)
    self.assertEqual(bf16["status"], "ok")
    # bf16 changes the features, but by far less than their size.
    err = data["bf16_max_abs_pool_error_vs_fp32"]
    self.assertGreater(err, 0)
    self.assertLess(err, 0.1 * data["pool_abs_max_fp32"])

  def test_fid_torch_matches_jax_on_the_same_weights(self):
    if not self.torch:
      self.assertFalse(os.path.exists(os.path.join(self.out, "fid_torch.json")))
      self.skipTest("no .venv-ref with torch")
    data = self._json("fid_torch.json")
    self.assertEqual(data["weights"], "the JAX side's random weights (converted)")
    self.assertEqual(data["param_count"], self._json("fid_jax.json")["param_count"])
    self.assertLess(data["max_abs_pool_diff_vs_jax_fp32"], 1e-4)

  def test_train_jax(self):
    data = self._json("train_jax_resnet.json")
    result = data["result"]
    self.assertEqual(result["status"], "ok")
    self.assertTrue(result["donated_input_deleted"])
    self.assertTrue(all(math.isfinite(v) for v in result["first_metrics"].values()))
    self.assertGreater(result["median_s_per_step"], 0)
    self.assertEqual(data["n_critic"], gpu_suite_train.TINY_N_CRITIC)
    # Parameter counts equal those of the tiny models built here, independently.
    config, _ = gpu_suite_train.make_config("resnet", tiny=True)
    gen, disc = models.build_gan(config.model)
    z, y = jnp.zeros((2, 128)), jnp.zeros((2,), jnp.int32)
    x = jnp.zeros((2, 32, 32, 3))
    count = lambda v: int(sum(np.size(a) for a in jax.tree_util.tree_leaves(v["params"])))  # noqa: E731
    g_vars = jax.eval_shape(lambda: gen.init(jax.random.PRNGKey(0), z, y, train=False))
    d_vars = jax.eval_shape(lambda: disc.init(jax.random.PRNGKey(0), x, y, train=False))
    self.assertEqual(data["param_counts"], {"G": count(g_vars), "D": count(d_vars)})
    self.assertGreater(result["memory"]["peak_rss_during_steps_bytes"], 0)

  def test_train_torch_has_the_same_parameter_count(self):
    if not self.torch:
      self.skipTest("no .venv-ref with torch")
    data = self._json("train_torch_resnet.json")
    self.assertEqual(data["result"]["status"], "ok")
    self.assertEqual(data["param_counts"], self._json("train_jax_resnet.json")["param_counts"])
    self.assertTrue(all(math.isfinite(v) for v in data["result"]["first_metrics"].values()))

  def test_blocks_jax_every_block_every_size(self):
    data = self._json("blocks_jax.json")
    self.assertEqual(data["sizes"], [16, 32])
    self.assertEqual(sorted(data["results"]), sorted(BLOCKS))
    for block in BLOCKS:
      for size in ("16", "32"):
        row = data["results"][block][size]
        self.assertEqual(row["status"], "ok", msg=(block, size, row))
        self.assertGreater(row["median_ms"], 0)

  def test_specs_equal_the_experiment_configs(self):
    from configs import cifar10_sndcgan_spap, cifar10_sngan  # pylint: disable=g-import-not-at-top
    for name, mod in (("resnet", cifar10_sngan), ("sndcgan", cifar10_sndcgan_spap)):
      c, spec = mod.get_config(), gpu_suite_train.TRAIN_SPECS[name]
      self.assertEqual(c.model.name, spec["model"])
      self.assertEqual(c.model.resolution, spec["resolution"])
      self.assertEqual(c.model.num_classes, spec["num_classes"])
      self.assertEqual(c.training.batch_size, spec["batch_size"])
      self.assertEqual(c.training.loss, spec["loss"])
      self.assertEqual(c.training.ema_decay, spec["ema_decay"])
      self.assertEqual((c.optimizer.g_lr, c.optimizer.d_lr, c.optimizer.b1, c.optimizer.b2),
                       (spec["g_lr"], spec["d_lr"], spec["b1"], spec["b2"]))


# Run in a fresh interpreter where the packages the GPU machine lacks cannot be imported.
_NO_EXTRAS = r"""
import importlib.abc, json, sys
class Block(importlib.abc.MetaPathFinder):
  def find_spec(self, name, path, target=None):
    if name.split(".")[0] in ("ml_collections", "grain", "array_record", "tensorflow_datasets",
                              "clu", "tensorboardX", "tqdm", "torch"):
      raise ImportError("blocked " + name)
    return None
sys.meta_path.insert(0, Block())
from benchmarks import gpu_suite, gpu_suite_blocks, gpu_suite_fid, gpu_suite_train
from genattn_jax import models
from genattn_jax.metrics import inception, preprocess
from genattn_jax.training import parallel, state, step
out = {}
for name in ("resnet", "sndcgan", "spade"):
  config, source = gpu_suite_train.make_config(name, tiny=False)
  gen, disc = models.build_gan(config.model)
  out[name] = {"source": source, "config": json.loads(json.dumps(config))}
  if name == "spade":  # the semantic task, built without grain / tensorflow_datasets
    task = step.make_train_step(config, gen, disc).task
    out[name]["task"] = {"name": task.name, "num_labels": task.num_labels,
                         "use_instance": task.use_instance, "lambda_vgg": task.lambda_vgg,
                         "lambda_feat": task.lambda_feat}
print(json.dumps(out))
"""


class WithoutExtrasTest(absltest.TestCase):
  """The suite's JAX side imports and builds its configs without ml_collections & co."""

  _got = None

  def _fallback(self):
    """What _NO_EXTRAS prints (run once for the class)."""
    if WithoutExtrasTest._got is None:
      proc = subprocess.run([sys.executable, "-c", _NO_EXTRAS], cwd=str(REPO_ROOT), env=_env(),
                            capture_output=True, text=True, timeout=300, check=False)
      self.assertEqual(proc.returncode, 0, msg=proc.stderr[-3000:])
      WithoutExtrasTest._got = json.loads(proc.stdout.strip().splitlines()[-1])
    return WithoutExtrasTest._got

  def test_spade_fallback_config_equals_pairs_demo(self):
    got = self._fallback()["spade"]
    self.assertIn("ml_collections not installed", got["source"])
    want, _ = gpu_suite_train.make_config("spade", tiny=False)  # configs/pairs_demo.py here
    fallback = got["config"]
    self.assertEqual(fallback["model"], want.model.to_dict())  # every model field
    for section in ("data", "task", "training", "optimizer"):
      for field, value in fallback[section].items():
        self.assertEqual(value, want[section][field], msg=(section, field))
    self.assertEqual(got["task"], {"name": "semantic", "num_labels": 35, "use_instance": True,
                                   "lambda_vgg": 0.0, "lambda_feat": 10.0})

  def test_fallback_config_equals_the_experiment_config(self):
    got = self._fallback()
    for name in ("resnet", "sndcgan"):
      self.assertIn("ml_collections not installed", got[name]["source"])
      want, _ = gpu_suite_train.make_config(name, tiny=False)  # from the config files here
      fallback = got[name]["config"]
      for section in ("model", "training", "optimizer"):
        for field, value in fallback[section].items():
          self.assertEqual(value, want[section][field], msg=(name, section, field))
      for field in ("n_critic", "batch_size", "loss", "ema_decay"):
        self.assertEqual(fallback["training"][field], want.training[field], msg=(name, field))


if __name__ == "__main__":
  absltest.main()
