"""Backbone blocks against float64 NumPy on the blocks' own parameters.

One check per backbone family: the ResNet generator's up-block (batch statistics in
training mode), the ResNet discriminator block with spectral norm (one power iteration from
the stored `u`, as nn.SpectralNorm does), and the first two layers of the SNDCGAN
discriminator (spectral-norm 3x3 conv, leaky ReLU 0.1, 4x4 stride-2 conv).
"""

import jax
import jax.numpy as jnp
import numpy as np

from genattn_jax.layers import norms
from genattn_jax.models import resnet, sndcgan
from tests.layers._util import np_conv
from tests.models._util import np_init


def _np(tree):
  return jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), jax.device_get(tree))


def _randomise(variables, seed):
  """Every parameter and statistic drawn at random, so no term of a block is trivial."""
  rs = np.random.RandomState(seed)
  def draw(path, v):
    name = jax.tree_util.keystr(path)
    if name.endswith("var']") or name.endswith("scale']"):
      return jnp.asarray(rs.uniform(0.5, 1.5, v.shape), v.dtype)
    return jnp.asarray(rs.randn(*v.shape) * (0.3 if v.ndim else 1.0), v.dtype)
  return jax.tree_util.tree_map_with_path(draw, variables)


def _up(x):
  return x.repeat(2, axis=1).repeat(2, axis=2)


def _bn_train(x, scale, bias, eps=1e-5):
  mean, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
  return (x - mean) / np.sqrt(var + eps) * scale + bias


def test_resnet_generator_block_training_mode():
  block = resnet.ResNetGBlock(features=4)
  x = np.random.RandomState(0).randn(3, 4, 4, 3).astype(np.float32)
  variables = _randomise(np_init(block, x, None, True), 1)
  out, _ = block.apply(variables, x, None, True, mutable=["batch_stats"])
  p = _np(variables["params"])
  x64 = x.astype(np.float64)
  h = _up(np.maximum(_bn_train(x64, p["bn1"]["scale"], p["bn1"]["bias"]), 0))
  h = np_conv(h, p["conv1"]["kernel"])
  h = np.maximum(_bn_train(h, p["bn2"]["scale"], p["bn2"]["bias"]), 0)
  h = np_conv(h, p["conv2"]["kernel"])
  want = h + np_conv(_up(x64), p["shortcut"]["kernel"])
  np.testing.assert_allclose(np.asarray(out, np.float64), want, rtol=1e-4, atol=1e-4)


def _np_spectral(kernel, u, eps=1e-12):
  """W / sigma with one power iteration from u (nn.SpectralNorm's update)."""
  w = kernel.reshape(-1, kernel.shape[-1])
  l2 = lambda a: a / np.sqrt(np.sum(a * a) + eps)
  v = l2(u @ w.T)
  u = l2(v @ w)
  sigma = (v @ w @ u.T)[0, 0]
  return kernel / sigma


def test_resnet_discriminator_block_with_spectral_norm():
  block = resnet.ResNetDBlock(features=4, conv=norms.SpectralConv)
  x = np.random.RandomState(2).randn(2, 8, 8, 3).astype(np.float32)
  variables = _randomise(np_init(block, x), 3)
  out = block.apply(variables, x)                   # 'batch_stats' immutable: u not advanced
  p, s = _np(variables["params"]), _np(variables["batch_stats"])

  def conv(name, h):
    k = _np_spectral(p[name]["conv"]["kernel"], s[name]["sn"]["conv/kernel/u"])
    return np_conv(h, k, p[name]["conv"]["bias"])

  def pool(h):
    b, hh, ww, c = h.shape
    return h.reshape(b, hh // 2, 2, ww // 2, 2, c).mean(axis=(2, 4))

  x64 = x.astype(np.float64)
  h = conv("conv2", np.maximum(conv("conv1", np.maximum(x64, 0)), 0))
  want = pool(h) + pool(conv("shortcut", x64))
  np.testing.assert_allclose(np.asarray(out, np.float64), want, rtol=1e-4, atol=1e-4)


def test_sndcgan_discriminator_first_layers():
  d = sndcgan.SNDCGANDiscriminator(resolution=32, width=1 / 16)
  x = np.random.RandomState(4).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
  variables = _randomise(np_init(d, x), 5)
  _, inter = d.apply(variables, x, capture_intermediates=True)
  p, s = _np(variables["params"]), _np(variables["batch_stats"])

  def conv(name, h, strides=(1, 1)):
    k = _np_spectral(p[name]["conv"]["kernel"], s[name]["sn"]["conv/kernel/u"])
    return np_conv(h, k, p[name]["conv"]["bias"], strides=strides)

  lrelu = lambda t: np.where(t > 0, t, d.leak * t)
  h0 = conv("conv0", x.astype(np.float64))
  h1 = conv("conv1", lrelu(h0), strides=(2, 2))
  got0 = np.asarray(inter["intermediates"]["conv0"]["__call__"][0], np.float64)
  got1 = np.asarray(inter["intermediates"]["conv1"]["__call__"][0], np.float64)
  assert d.leak == 0.1
  np.testing.assert_allclose(got0, h0, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(got1, h1, rtol=1e-4, atol=1e-4)
