"""Feature matching, VGG perceptual loss and LPIPS against hand computations; weights reader."""

import numpy as np
import jax
import jax.numpy as jnp
import pytest

from genattn_jax.losses import perceptual, vgg_weights


def test_feature_matching_hand_computed():
  rng = np.random.default_rng(0)
  fake = [[rng.normal(size=(2, 4, 4, 3)) for _ in range(3)] for _ in range(2)]
  real = [[rng.normal(size=(2, 4, 4, 3)) for _ in range(3)] for _ in range(2)]
  # Σ over non-final layers of mean |f − r|, averaged over the 2 scales.
  want = sum(np.abs(fake[s][l] - real[s][l]).mean() for s in range(2) for l in range(2)) / 2
  got = perceptual.feature_matching_loss(jax.tree_util.tree_map(jnp.asarray, fake),
                                         jax.tree_util.tree_map(jnp.asarray, real))
  np.testing.assert_allclose(float(got), want, rtol=1e-5)
  # Real features get no gradient.
  g = jax.grad(lambda r: perceptual.feature_matching_loss(
      jax.tree_util.tree_map(jnp.asarray, fake), r))(jax.tree_util.tree_map(jnp.asarray, real))
  assert all(float(jnp.abs(x).sum()) == 0 for x in jax.tree_util.tree_leaves(g))
  with pytest.raises(ValueError, match="scales"):
    perceptual.feature_matching_loss(fake[:1], real)


def _np_conv3(x, k, b):
  h, w = x.shape[1:3]
  xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  out = np.zeros(x.shape[:3] + (k.shape[-1],))
  for i in range(3):
    for j in range(3):
      out += np.einsum("bhwc,co->bhwo", xp[:, i:i + h, j:j + w], k[i, j])
  return out + b


def _tiny_vgg(rng, stages):
  params, cin, k = {}, 3, 0
  for stage in stages:
    for w in stage:
      params[f"conv_{k}"] = {"kernel": rng.normal(size=(3, 3, cin, w)).astype(np.float32) * 0.3,
                             "bias": rng.normal(size=(w,)).astype(np.float32) * 0.1}
      cin, k = w, k + 1
  return params


def test_vgg_loss_hand_computed(monkeypatch):
  stages = ((2, 2), (3, 3), (2, 2, 2), (2, 2, 2), (2, 2, 2))
  monkeypatch.setitem(perceptual.VGG_CFG, "tiny", stages)
  rng = np.random.default_rng(1)
  params = _tiny_vgg(rng, stages)
  x = rng.uniform(-1, 1, size=(2, 32, 32, 3)).astype(np.float32)
  y = rng.uniform(-1, 1, size=(2, 32, 32, 3)).astype(np.float32)

  def feats(a):
    out, k = [], 0
    for s, stage in enumerate(stages):
      if s:
        a = a.reshape(a.shape[0], a.shape[1] // 2, 2, a.shape[2] // 2, 2, -1).max(axis=(2, 4))
      for i, _ in enumerate(stage):
        a = np.maximum(_np_conv3(a, params[f"conv_{k}"]["kernel"], params[f"conv_{k}"]["bias"]),
                       0)
        if i == 0:
          out.append(a)
        k += 1
    return out

  want = sum(w * np.abs(fx - fy).mean() for w, fx, fy in
             zip(perceptual.SPADE_VGG_WEIGHTS, feats(x.astype(np.float64)),
                 feats(y.astype(np.float64))))
  got = perceptual.vgg_perceptual_loss(params, jnp.asarray(x), jnp.asarray(y), arch="tiny")
  np.testing.assert_allclose(float(got), want, rtol=2e-4)


def test_unpickler_refuses_other_globals():
  import pickle  # pylint: disable=g-import-not-at-top
  ok = pickle.dumps({"a": {"k": np.ones((2, 2), np.float32)}})
  np.testing.assert_array_equal(vgg_weights.unpickle_arrays(ok)["a"]["k"], np.ones((2, 2)))
  bad = pickle.dumps({"a": np.ones(2), "f": print})
  with pytest.raises(vgg_weights.VGGWeightsError, match="builtins.print"):
    vgg_weights.unpickle_arrays(bad)


def test_sha256_mismatch_is_refused(tmp_path):
  p = tmp_path / "vgg16.ckpt"
  p.write_bytes(b"not the weights")
  with pytest.raises(vgg_weights.VGGWeightsError, match="sha256"):
    vgg_weights.load_vgg16_lpips(str(p), cache=str(tmp_path / "cache"))


def test_torchvision_vgg19_reader_and_features_match_torch(monkeypatch):
  """Fixture written by scripts/make_vgg19_fixture.py with PyTorch (torchvision vgg19 keys,
  tiny widths): the reader's kernels and VGGFeatures' ReLU outputs equal torch's."""
  from tests.conftest import REPO_ROOT  # pylint: disable=g-import-not-at-top
  fixtures = REPO_ROOT / "tests" / "fixtures"
  tiny = ((3, 3), (4, 4), (5, 5, 5, 5), (6, 6, 6, 6), (6, 6, 6, 6))
  monkeypatch.setitem(perceptual.VGG_CFG, "vgg19", tiny)
  params = vgg_weights.read_torchvision_vgg(str(fixtures / "vgg19_tiny.pth"), "vgg19")
  ref = np.load(fixtures / "vgg19_tiny_expected.npz")
  np.testing.assert_array_equal(params["conv_2"]["kernel"],
                                ref["features.5.weight"].transpose(2, 3, 1, 0))
  np.testing.assert_array_equal(params["conv_15"]["bias"], ref["features.34.bias"])
  taps = tuple(range(16))
  feats = perceptual.VGGFeatures("vgg19").apply({"params": params}, jnp.asarray(ref["input"]),
                                                taps)
  for i, f in enumerate(feats):
    np.testing.assert_allclose(np.asarray(f), ref[f"relu_{i}"], rtol=1e-4, atol=1e-5)
  # SPADE's taps relu1_1 .. relu5_1 are convs 0, 2, 4, 8, 12 of VGG19.
  assert perceptual.relu_first_of_stage("vgg19") == (0, 2, 4, 8, 12)
  with pytest.raises(vgg_weights.VGGWeightsError, match="expected"):
    monkeypatch.setitem(perceptual.VGG_CFG, "vgg19", ((3, 3), (5, 4)) + tiny[2:])
    vgg_weights.read_torchvision_vgg(str(fixtures / "vgg19_tiny.pth"), "vgg19")
