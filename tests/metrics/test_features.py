"""Preprocessing (resize parity with PyTorch, ranges, clean resize) and extract_features."""

import pathlib

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized
from PIL import Image

from genattn_jax.metrics import features as features_lib
from genattn_jax.metrics import inception as inc
from genattn_jax.metrics import preprocess

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / "fixtures"


def torch_bilinear_numpy(x, out_h, out_w):
  """Independent NumPy port of PyTorch's CPU bilinear kernel (align_corners=False).

  For each output index, in float32 like PyTorch for float tensors:
  real = (n_in / n_out) * (i + 0.5) - 0.5, negative values clamp to 0,
  i0 = int(real), i1 = i0 + 1 unless i0 is the last row, lambda1 = real - i0.
  """
  x = np.asarray(x, np.float64)
  f32 = np.float32

  def axis(n_in, n_out):
    real = (f32(n_in) / f32(n_out)) * (np.arange(n_out).astype(f32) + f32(0.5)) - f32(0.5)
    real = np.where(real < 0, f32(0.0), real)
    i0 = real.astype(np.int64)
    i1 = i0 + (i0 < n_in - 1)
    l1 = (real - i0.astype(f32)).astype(np.float64)
    return i0, i1, 1.0 - l1, l1

  h0, h1, hl0, hl1 = axis(x.shape[1], out_h)
  w0, w1, wl0, wl1 = axis(x.shape[2], out_w)
  hl0, hl1 = hl0[None, :, None, None], hl1[None, :, None, None]
  wl0, wl1 = wl0[None, None, :, None], wl1[None, None, :, None]
  top = x[:, h0][:, :, w0] * wl0 + x[:, h0][:, :, w1] * wl1
  bottom = x[:, h1][:, :, w0] * wl0 + x[:, h1][:, :, w1] * wl1
  return hl0 * top + hl1 * bottom


class ResizeTest(parameterized.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters(((32, 32), (299, 299)), ((8, 12), (299, 299)),
                            ((512, 384), (299, 299)), ((5, 3), (4, 9)))
  def test_matches_numpy_port_of_torch(self, in_hw, out_hw):
    x = np.random.default_rng(0).uniform(0, 1, (2,) + in_hw + (3,)).astype(np.float32)
    y = self.variant(lambda a: preprocess.resize_bilinear(a, out_hw))(x)
    chex.assert_shape(y, (2,) + out_hw + (3,))
    np.testing.assert_allclose(y, torch_bilinear_numpy(x, *out_hw), atol=2e-6)

  @parameterized.parameters("up", "down", "mixed")
  def test_matches_torch_interpolate_fixture(self, case):
    ref = np.load(FIXTURES / "resize_reference.npz")
    x, want = ref[f"{case}_in"], ref[f"{case}_out"]
    got = preprocess.resize_bilinear(x, want.shape[1:3])
    np.testing.assert_allclose(got, want, atol=1e-6)
    np.testing.assert_allclose(torch_bilinear_numpy(x, *want.shape[1:3]), want, atol=1e-6)

  def test_matrix_rows_are_convex_weights(self):
    m = preprocess.bilinear_resize_matrix(32, 299)
    np.testing.assert_allclose(m.sum(1), 1.0, atol=1e-6)
    assert (m >= 0).all() and ((m > 0).sum(1) <= 2).all()
    np.testing.assert_array_equal(preprocess.bilinear_resize_matrix(7, 7), np.eye(7))


class InputTest(parameterized.TestCase):

  def test_uint8_and_float_give_same_input(self):
    u = np.random.default_rng(1).integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    a = preprocess.to_inception_input(u)
    b = preprocess.to_inception_input(u.astype(np.float32) / 127.5 - 1.0)
    c = preprocess.to_inception_input(u.astype(np.float32) / 255.0, "[0,1]")
    chex.assert_shape(a, (2, 299, 299, 3))
    assert a.dtype == jnp.float32
    chex.assert_trees_all_close(a, b, atol=1e-6)
    chex.assert_trees_all_close(a, c, atol=1e-6)
    assert float(a.min()) >= -1.0 and float(a.max()) <= 1.0
    want = 2 * torch_bilinear_numpy(u.astype(np.float32) / 255.0, 299, 299) - 1
    np.testing.assert_allclose(a, want, atol=3e-6)

  def test_grayscale_is_replicated(self):
    g = np.random.default_rng(2).integers(0, 256, (1, 10, 10, 1), dtype=np.uint8)
    y = preprocess.to_inception_input(g)
    chex.assert_shape(y, (1, 299, 299, 3))
    rgb = preprocess.to_inception_input(np.repeat(g, 3, axis=-1))
    chex.assert_trees_all_close(y, rgb)

  @parameterized.named_parameters(
      ("float_0_255", np.full((1, 8, 8, 3), 200.0, np.float32), "auto", "0, 255"),
      ("below_minus_one", np.full((1, 8, 8, 3), -1.5, np.float32), "auto", r"\[-1, 1\]"),
      ("nan", np.full((1, 8, 8, 3), np.nan, np.float32), "auto", "must lie in"),
      ("four_channels", np.zeros((1, 8, 8, 4), np.uint8), "auto", "1 or 3 channels"),
      ("rank3", np.zeros((8, 8, 3), np.uint8), "auto", "rank 4"),
      ("uint8_declared_float", np.zeros((1, 8, 8, 3), np.uint8), "[-1,1]", "integer"),
      ("unknown_range", np.zeros((1, 8, 8, 3), np.uint8), "0-255", "input_range"),
      ("complex", np.zeros((1, 8, 8, 3), np.complex64), "auto", "dtype"),
  )
  def test_bad_inputs_raise(self, images, input_range, match):
    with self.assertRaisesRegex(ValueError, match):
      preprocess.check_images(images, input_range)

  def test_clean_resize_is_pil_bicubic(self):
    u = np.random.default_rng(3).integers(0, 256, (2, 40, 24, 3), dtype=np.uint8)
    got = preprocess.clean_resize_host(u, size=(29, 31))
    chex.assert_shape(got, (2, 29, 31, 3))
    for b in range(2):
      # PIL's uint8 bicubic rounds and clips between its two passes (a few levels on this
      # noise image); on average it agrees, and it is far from a bilinear resize.
      pil = np.asarray(Image.fromarray(u[b]).resize((31, 29), Image.BICUBIC), np.float32)
      bil = np.asarray(Image.fromarray(u[b]).resize((31, 29), Image.BILINEAR), np.float32)
      assert np.abs(got[b] * 255 - pil).mean() < 0.5
      assert np.abs(got[b] * 255 - bil).mean() > 3.0
    flat = preprocess.clean_resize_host(np.full((1, 9, 9, 3), 0.5, np.float32))
    np.testing.assert_allclose(flat, 0.75, atol=1e-6)  # [-1, 1] 0.5 -> [0, 1] 0.75


def test_rebatch_streams_exact_batches():
  rng = np.random.default_rng(4)
  pieces = [rng.integers(0, 255, (n, 4, 4, 3), dtype=np.uint8) for n in (5, 7, 1, 6)]
  out = list(features_lib._rebatch(iter(pieces), 8))  # pylint: disable=protected-access
  assert [b.shape[0] for b in out] == [8, 8, 3]
  np.testing.assert_array_equal(np.concatenate(out), np.concatenate(pieces))
  arr = np.concatenate(pieces)
  assert [b.shape[0] for b in features_lib._rebatch(arr, 8)] == [8, 8, 3]  # pylint: disable=protected-access
  mixed = [pieces[0], pieces[1][:, :2]]  # a shape change flushes a short batch
  assert [b.shape for b in features_lib._rebatch(mixed, 8)] == [  # pylint: disable=protected-access
      (5, 4, 4, 3), (7, 2, 4, 3)]


def test_extract_features_argument_errors(inception_weights_fetched_with_pip):
  _, variables, has_logits = features_lib.load_inception()
  assert not has_logits
  bad_mesh = jax.make_mesh((8,), ("batch",), axis_types=(jax.sharding.AxisType.Auto,))
  imgs = np.zeros((2, 8, 8, 3), np.uint8)
  with pytest.raises(ValueError, match="'data'"):
    features_lib.extract_features(imgs, variables=variables, mesh=bad_mesh, progress=False)
  with pytest.raises(ValueError, match="1008-way classifier"):
    features_lib.extract_features(imgs, variables=variables, with_logits=True, progress=False)
  with pytest.raises(ValueError, match="0, 255"):
    features_lib.extract_features(imgs.astype(np.float32) + 100, variables=variables,
                                  progress=False)
  with pytest.raises(ValueError, match="batch_size"):
    features_lib.extract_features(imgs, variables=variables, batch_size=0, progress=False)
  empty = features_lib.extract_features(np.zeros((0, 8, 8, 3), np.uint8), variables=variables,
                                        progress=False)
  chex.assert_shape(empty["pool"], (0, 2048))
  assert empty["logits"] is None


@pytest.mark.slow
def test_streamed_partial_batch_matches_pytorch_golden(inception_weights_fetched_with_pip):
  golden = np.load(FIXTURES / "inception_golden.npz")
  images = golden["images"][:13]
  pieces = (images[i:j] for i, j in ((0, 5), (5, 11), (11, 13)))  # a generator, no len()
  out = features_lib.extract_features(pieces, batch_size=16, progress=True)
  chex.assert_shape(out["pool"], (13, 2048))  # padded to 16 on 8 devices, then trimmed
  assert out["logits"] is None
  np.testing.assert_allclose(out["pool"], golden["pool"][:13], atol=1e-4, rtol=0)


@pytest.mark.slow
def test_logits_follow_pool_through_fc(inception_weights_fetched_with_pip):
  rng = np.random.default_rng(5)
  shapes = {"fc.weight": (1008, 2048), "fc.bias": (1008,)}
  _, base, _ = features_lib.load_inception()
  variables = {"params": dict(base["params"])}
  variables["params"]["fc"] = {
      "kernel": jnp.asarray(rng.standard_normal(shapes["fc.weight"][::-1]) * 0.02, jnp.float32),
      "bias": jnp.asarray(rng.uniform(-1, 1, shapes["fc.bias"]), jnp.float32)}
  inc.check_variables(features_lib.module_for_variables(variables), variables)
  images = rng.integers(0, 256, (3, 20, 20, 3), dtype=np.uint8)
  out = features_lib.extract_features(images, variables=variables, batch_size=8,
                                      with_logits=True, progress=False)
  chex.assert_shape(out["pool"], (3, 2048))
  chex.assert_shape(out["logits"], (3, 1008))
  fc = variables["params"]["fc"]
  want = out["pool"].astype(np.float64) @ np.asarray(fc["kernel"], np.float64) + np.asarray(
      fc["bias"])
  np.testing.assert_allclose(out["logits"], want, atol=1e-4)
  assert np.all(np.isfinite(out["pool"])) and out["pool"].min() >= 0  # after ReLU + mean


@pytest.mark.parametrize("n_data,per_device,batch",
                         [(8, 2, 64), (8, 8, 64), (1, 4, 12), (8, 3, 16), (8, 0, 64)])
def test_micro_batched_keeps_order_and_sharding(n_data, per_device, batch):
  mesh = jax.make_mesh((n_data,), ("data",), axis_types=(jax.sharding.AxisType.Auto,),
                       devices=jax.devices()[:n_data])
  sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
  x = jax.device_put(jnp.arange(batch * 6, dtype=jnp.float32).reshape(batch, 2, 3, 1), sharding)
  calls = []

  def fn(chunk):
    calls.append(chunk.shape)
    return {"pool": chunk.sum((1, 2, 3))[:, None] * jnp.ones((1, 4)), "first": chunk[:, 0, 0]}

  out = jax.jit(lambda a: features_lib._micro_batched(fn, a, per_device, n_data),
                out_shardings=sharding)(x)
  want = np.arange(batch * 6, dtype=np.float32).reshape(batch, 6)
  np.testing.assert_array_equal(out["pool"], np.repeat(want.sum(1, keepdims=True), 4, 1))
  np.testing.assert_array_equal(out["first"], want[:, :1])
  chunks = batch // (n_data * per_device) if per_device > 0 else 1
  if per_device > 0 and batch % (n_data * per_device) == 0 and chunks > 1:  # looped: each chunk spans all devices
    assert calls == [(batch // chunks, 2, 3, 1)]
  else:  # one pass over the whole batch
    assert calls == [(batch, 2, 3, 1)]


def test_default_micro_batch_loops_on_cpu_only():
  assert features_lib.default_micro_batch(features_lib.default_mesh()) == features_lib.MICRO_BATCH

  class FakeDevice:
    platform = "gpu"

  class FakeMesh:
    devices = np.array([FakeDevice()])

  assert features_lib.default_micro_batch(FakeMesh()) == 0
