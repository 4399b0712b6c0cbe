"""The SPADE train-step benchmark (`--model spade` of benchmarks/gpu_suite_train.py) and its
PyTorch reference (benchmarks/torch_ref/spade.py).

  * The tiny benchmark runs on both sides (one subprocess each, as benchmarks/gpu_suite.sh runs
    them) and ends with status 'ok', finite first metrics and the same G and D parameter counts
    on both sides (JAX's also equal those of the tiny models built here, independently).
  * TRAIN_SPECS['spade'] holds the values of configs/pairs_demo.py (what the GPU machine, without
    ml_collections, builds its config from; tests/test_gpu_suite_smoke.py checks that build).
  * The layout check: random Flax variables of the tiny G and D are copied into the PyTorch
    modules (`load_flax_variables`: every parameter and power-iteration vector, strictly), and
    both sides give the same image, the same discriminator feature maps at both scales and the
    same updated spectral-norm vectors on the same input (training mode: batch statistics, one
    power iteration); and one train step from those variables gives the same D and G losses
    (hinge, feature matching) and gradient norms on both sides.

The PyTorch parts run in `.venv-ref/bin/python` (skipped when it does not exist).
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
from genattn_jax.training.tasks import semantic  # noqa: E402
from tests.test_gpu_suite_smoke import _has_torch, read_suite_json  # noqa: E402

TORCH_PYTHON = REPO_ROOT / ".venv-ref" / "bin" / "python"


def _env():
  env = dict(os.environ)
  # One CPU device: the benchmark's batch of 2 does not split over 8 simulated ones.
  env["XLA_FLAGS"] = re.sub(r"--xla_force_host_platform_device_count=\d+", "",
                            env.get("XLA_FLAGS", "")).strip()
  env["JAX_PLATFORMS"] = "cpu"
  env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
  return env


def _run(python, *args, timeout=1500):
  return subprocess.run([str(python), "-m", "benchmarks.gpu_suite", "train", *args],
                        cwd=str(REPO_ROOT), env=_env(), capture_output=True, text=True,
                        timeout=timeout, check=False)


_U = "/sn/conv/kernel/u"  # a spectral-norm u in flattened Flax 'batch_stats'


def _key(path) -> str:
  return "/".join(str(k.key) for k in path)


def _flat(tree):
  """{'a/b/kernel': array} (Flax's spectral-norm names already hold '/')."""
  return {_key(path): np.asarray(v) for path, v in jax.tree_util.tree_flatten_with_path(tree)[0]}


class SpadeBenchTinyTest(absltest.TestCase):
  """`train jax|torch --model spade --tiny`, one process each."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls._tmp = tempfile.TemporaryDirectory()
    cls.out = cls._tmp.name
    common = ("--model", "spade", "--tiny", "--out", cls.out, "--budget_s", "900",
              "--repeats", "1")
    cls.jax_proc = _run(sys.executable, "jax", *common)
    cls.torch = _has_torch()
    # One thread: on a shared 2-core CPU PyTorch's default two threads spin-wait (tiny step
    # 0.2 s with one thread, 12 s with two while another job ran).
    cls.torch_proc = (_run(TORCH_PYTHON, "torch", "--torch_threads", "1", *common)
                      if cls.torch else None)

  @classmethod
  def tearDownClass(cls):
    cls._tmp.cleanup()
    super().tearDownClass()

  def _json(self, name, proc):
    return read_suite_json(self, os.path.join(self.out, name), proc.stderr[-3000:])

  def _check_result(self, data):
    result = data["result"]
    self.assertEqual(result["status"], "ok", msg=result["status"])
    metrics = result["first_metrics"]
    self.assertTrue(all(math.isfinite(v) for v in metrics.values()), msg=metrics)
    for key in ("d_loss", "g_loss", "g_feat_loss"):
      self.assertIn(key, metrics)
    self.assertGreater(result["median_s_per_step"], 0)
    self.assertEqual(data["spec"]["lambda_vgg"], 0)
    self.assertTrue(data["tiny"])
    self.assertEqual(data["sizes"], {k: gpu_suite_train.SPADE_TINY[k]
                                     for k in ("image_size", "ngf", "ndf", "spade_hidden")})

  def test_jax_tiny_step(self):
    self.assertEqual(self.jax_proc.returncode, 0, msg=self.jax_proc.stderr[-3000:])
    data = self._json("train_jax_spade.json", self.jax_proc)
    self._check_result(data)
    self.assertTrue(data["result"]["donated_input_deleted"])
    self.assertNotIn("g_vgg_loss", data["result"]["first_metrics"])
    # Parameter counts equal those of the tiny models built here, independently.
    config, _ = gpu_suite_train.make_config("spade", tiny=True)
    gen, disc = models.build_gan(config.model)
    h, w = config.model.image_size
    seg = jnp.zeros((2, h, w, 35 + 1))
    img = jnp.zeros((2, h, w, 3))
    count = lambda v: int(sum(np.size(a) for a in jax.tree_util.tree_leaves(v["params"])))  # noqa: E731
    g_vars = jax.eval_shape(lambda: gen.init(jax.random.PRNGKey(0), seg, train=False))
    d_vars = jax.eval_shape(lambda: disc.init(jax.random.PRNGKey(0), seg, img, train=False))
    self.assertEqual(data["param_counts"], {"G": count(g_vars), "D": count(d_vars)})

  def test_torch_tiny_step_has_the_same_parameter_counts(self):
    if not self.torch:
      self.skipTest("no .venv-ref with torch")
    self.assertEqual(self.torch_proc.returncode, 0, msg=self.torch_proc.stderr[-3000:])
    data = self._json("train_torch_spade_threads1.json", self.torch_proc)
    self._check_result(data)
    jax_data = self._json("train_jax_spade.json", self.jax_proc)
    self.assertEqual(data["param_counts"], jax_data["param_counts"])
    # Same losses at the start (both D's output ~0 at the 0.02-gain init: hinge D loss ~2).
    for side in (data, jax_data):
      self.assertAlmostEqual(side["result"]["first_metrics"]["d_loss"], 2.0, delta=0.05)


class SpadeSpecTest(absltest.TestCase):

  def test_spec_equals_pairs_demo(self):
    from configs import pairs_demo  # pylint: disable=g-import-not-at-top
    c, spec = pairs_demo.get_config(), gpu_suite_train.TRAIN_SPECS["spade"]
    self.assertEqual(c.task.name, "semantic")
    self.assertEqual(c.model.name, spec["model"])
    self.assertEqual(c.model.resolution, spec["resolution"])
    for field in gpu_suite_train.SPADE_MODEL_FIELDS:
      self.assertEqual(c.model[field], spec[field], msg=field)
    for field in ("layout", "label_nc", "contain_dontcare_label", "use_instance"):
      self.assertEqual(c.data[field], spec[field], msg=field)
    for field in ("batch_size", "n_critic", "loss", "ema_decay", "ema_warmup_steps",
                  "num_steps"):
      self.assertEqual(c.training[field], spec[field], msg=field)
    for field in ("g_lr", "d_lr", "b1", "b2", "decay_start"):
      self.assertEqual(c.optimizer[field], spec[field], msg=field)
    self.assertEqual(c.task.lambda_feat, spec["lambda_feat"])
    self.assertFalse(c.model.use_vae)
    # The benchmark's one change to the experiment config: no VGG term.
    self.assertGreater(c.task.lambda_vgg, 0)
    self.assertEqual(spec["lambda_vgg"], 0)
    config, _ = gpu_suite_train.make_config("spade", tiny=False)
    self.assertEqual(config.task.lambda_vgg, 0)


# Runs in .venv-ref: loads the Flax variables into the PyTorch G and D, runs them in training
# mode on the same input, then one SPADETrainer step from the same variables on the same batch,
# and saves what the test compares.
_TORCH_SIDE = r"""
import json, sys
import numpy as np
import torch
from benchmarks.torch_ref import spade
work = sys.argv[1]
data = np.load(work + "/flax.npz")
with open(work + "/fields.json") as f:
  fields = json.load(f)
torch.manual_seed(0)
sub = lambda p: {k[len(p):]: data[k] for k in data.files if k.startswith(p)}


def loaded():
  gen, disc = spade.build(fields)
  spade.load_flax_variables(gen, sub("g_params/"), sub("g_stats/"))
  spade.load_flax_variables(disc, sub("d_params/"), sub("d_stats/"))
  return gen.train(), disc.train()


gen, disc = loaded()
nchw = lambda a: torch.from_numpy(a).permute(0, 3, 1, 2).contiguous()
nhwc = lambda t: t.permute(0, 2, 3, 1).numpy()
with torch.no_grad():
  fake = gen(nchw(data["seg"]))
  feats = disc(nchw(data["seg"]), nchw(data["image"]))
out = {"fake": nhwc(fake)}
for i, scale in enumerate(feats):
  for j, f in enumerate(scale):
    out[f"d_{i}_{j}"] = nhwc(f)
for prefix, module in (("g_u/", gen), ("d_u/", disc)):
  for name, buf in module.named_buffers():
    if name.endswith("._u"):
      out[prefix + name] = buf.numpy()
out["param_counts"] = np.array([spade.param_count(gen), spade.param_count(disc)])
gen, disc = loaded()
trainer = spade.SPADETrainer(
    gen, disc, num_labels=fields["label_nc"], use_instance=True, n_critic=1,
    g_lr=fields["g_lr"], d_lr=fields["d_lr"], betas=(fields["b1"], fields["b2"]),
    lambda_feat=fields["lambda_feat"], ema_decay=fields["ema_decay"])
metrics = trainer.step(nchw(data["image"]), torch.from_numpy(data["label"]).long(),
                       torch.from_numpy(data["edge"]))
out.update({"step/" + k: v.numpy() for k, v in metrics.items()})
np.savez(work + "/torch.npz", **out)
"""


def _random_variables(shapes, rng):
  """Random Flax variables with the structure of `shapes` (scaled so every layer's output is
  O(1): the 0.02-gain init would leave the image ~0 and the check weak); every spectral-norm u
  is its kernel's top singular vector, where the Flax and PyTorch power iterations (mirror
  images, see `torch_ref.spade.state_dict_from_flax`) both stay and give the same sigma."""

  def draw(path, leaf):
    name = _key(path).split("/")[-1]
    if name == "kernel":
      fan_in = int(np.prod(leaf.shape[:-1]))
      return rng.normal(0, 1 / np.sqrt(fan_in), leaf.shape).astype(np.float32)
    if name == "bias":
      return rng.normal(0, 0.1, leaf.shape).astype(np.float32)
    if name in ("sigma", "var"):
      return np.ones(leaf.shape, np.float32)
    return np.zeros(leaf.shape, np.float32)  # BN running means; u: set below

  variables = jax.tree_util.tree_map_with_path(draw, shapes)
  kernels = _flat(variables["params"])

  def top_singular_vector(path, leaf):
    key = _key(path)
    if not key.endswith(_U):
      return leaf
    kernel = kernels[key[:-len(_U)] + "/conv/kernel"]
    _, _, vt = np.linalg.svd(kernel.reshape(-1, kernel.shape[-1]), full_matrices=False)
    return vt[:1].astype(np.float32)

  variables["batch_stats"] = jax.tree_util.tree_map_with_path(top_singular_vector,
                                                              variables["batch_stats"])
  return variables


class TorchReferenceLayoutTest(absltest.TestCase):
  """The PyTorch SPADE G, D and step compute what the Flax ones compute, on copied variables."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.torch = _has_torch()
    if not cls.torch:
      return
    fields = cls.fields = gpu_suite_train.spade_fields(tiny=True)
    config, _ = gpu_suite_train.make_config("spade", tiny=True)
    gen, disc = models.build_gan(config.model)
    h, w = fields["image_size"]
    batch = cls.batch = gpu_suite_train.spade_batch(2, h, w, fields["label_nc"], seed=3)
    seg = cls.seg = np.asarray(semantic.semantic_input(
        jnp.asarray(batch["label"]), jnp.asarray(batch["edge"]), fields["label_nc"], True))
    seg_j, real_j = jnp.asarray(seg), jnp.asarray(batch["image"])
    g_shapes = jax.eval_shape(lambda: gen.init(jax.random.PRNGKey(0), seg_j, train=False))
    d_shapes = jax.eval_shape(lambda: disc.init(jax.random.PRNGKey(0), seg_j, real_j,
                                                train=False))
    rng = np.random.default_rng(0)
    cls.g_vars, cls.d_vars = _random_variables(g_shapes, rng), _random_variables(d_shapes, rng)
    cls.config, cls.gen, cls.disc = config, gen, disc
    cls._tmp = tempfile.TemporaryDirectory()
    work = cls._tmp.name
    arrays = {"seg": seg, **batch}
    for prefix, tree in (("g_params/", cls.g_vars["params"]),
                         ("g_stats/", cls.g_vars["batch_stats"]),
                         ("d_params/", cls.d_vars["params"]),
                         ("d_stats/", cls.d_vars["batch_stats"])):
      arrays.update({prefix + k: v for k, v in _flat(tree).items()})
    np.savez(os.path.join(work, "flax.npz"), **arrays)
    with open(os.path.join(work, "fields.json"), "w", encoding="utf-8") as f:
      json.dump(fields, f)
    cls.proc = subprocess.run([str(TORCH_PYTHON), "-c", _TORCH_SIDE, work], cwd=str(REPO_ROOT),
                              env=_env(), capture_output=True, text=True, timeout=600,
                              check=False)
    cls.out = {}
    if cls.proc.returncode == 0:
      with np.load(os.path.join(work, "torch.npz")) as data:
        cls.out = {k: data[k] for k in data.files}

  @classmethod
  def tearDownClass(cls):
    if cls.torch:
      cls._tmp.cleanup()
    super().tearDownClass()

  def setUp(self):
    super().setUp()
    if not self.torch:
      self.skipTest("no .venv-ref with torch")
    self.assertEqual(self.proc.returncode, 0, msg=self.proc.stderr[-3000:])

  def test_same_outputs_on_copied_flax_variables(self):
    fields, out = self.fields, self.out
    (fake, _), g_new = jax.jit(lambda v, s: self.gen.apply(
        v, s, train=True, mutable=["batch_stats"]))(self.g_vars, self.seg)
    feats, d_new = jax.jit(lambda v, s, x: self.disc.apply(
        v, s, x, train=True, mutable=["batch_stats"]))(self.d_vars, self.seg,
                                                       self.batch["image"])
    fake = np.asarray(fake)
    self.assertGreater(fake.std(), 0.1)  # a non-trivial image
    count = lambda v: int(sum(np.size(a) for a in jax.tree_util.tree_leaves(v)))  # noqa: E731
    np.testing.assert_array_equal(out["param_counts"],
                                  [count(self.g_vars["params"]), count(self.d_vars["params"])])
    np.testing.assert_allclose(out["fake"], fake, atol=1e-4, rtol=0)
    self.assertLen(feats, fields["num_d"])
    for i, scale in enumerate(feats):
      self.assertLen(scale, fields["n_layers_d"] + 1)
      for j, f in enumerate(scale):
        f = np.asarray(f)
        scale_ = max(1.0, float(np.abs(f).max()))
        np.testing.assert_allclose(out[f"d_{i}_{j}"], f, atol=1e-4 * scale_, rtol=0,
                                   err_msg=f"D_{i} feature {j}")
    # The power iteration: each updated u equals PyTorch's.
    n_u = 0
    for prefix, new in (("g_u/", g_new), ("d_u/", d_new)):
      for key, u in _flat(new["batch_stats"]).items():
        if key.endswith(_U):
          name = key[:-len(_U)].replace("/", ".")
          np.testing.assert_allclose(out[f"{prefix}{name}.parametrizations.weight.0._u"],
                                     u.reshape(-1), atol=1e-5, err_msg=key)
          n_u += 1
    self.assertEqual(n_u, len([k for k in out if k.startswith(("g_u/", "d_u/"))]))

  def test_one_train_step_has_the_same_losses_and_gradient_norms(self):
    """The JAX semantic step (lambda_vgg 0) and SPADETrainer.step from the same variables."""
    from genattn_jax.training import state as state_lib  # pylint: disable=g-import-not-at-top
    from genattn_jax.training import step as step_lib  # pylint: disable=g-import-not-at-top
    g_tx, d_tx = state_lib.make_optimizers(self.config)
    g_params, d_params = self.g_vars["params"], self.d_vars["params"]
    state = state_lib.GANState(
        step=jnp.zeros((), jnp.int32), g_params=g_params, d_params=d_params,
        g_state={"batch_stats": self.g_vars["batch_stats"]},
        d_state={"batch_stats": self.d_vars["batch_stats"]},
        g_opt_state=g_tx.init(g_params), d_opt_state=d_tx.init(d_params), ema_params=g_params)
    step_fn = step_lib.make_train_step(self.config, self.gen, self.disc)
    _, metrics = jax.jit(step_fn)(state, self.batch, jax.random.PRNGKey(1))
    metrics = jax.device_get(metrics)
    self.assertNotIn("g_vgg_loss", metrics)
    # D's loss and gradient are those of the copied variables; G's follow D's Adam update.
    # Measured: relative differences 0 to 3e-6.
    for key, rtol in (("d_loss", 1e-5), ("d_grad_norm", 1e-5), ("g_adv_loss", 1e-4),
                      ("g_feat_loss", 1e-4), ("g_loss", 1e-4), ("g_grad_norm", 1e-4)):
      np.testing.assert_allclose(self.out["step/" + key], metrics[key], rtol=rtol, err_msg=key)


if __name__ == "__main__":
  absltest.main()
