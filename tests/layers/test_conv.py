"""genattn_jax.layers.conv: the CPU kernel-gradient rewrite equals XLA's convolution."""

import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genattn_jax.layers import conv as conv_lib

NHWC = ("NHWC", "HWIO", "NHWC")

CASES = [  # (x shape, kernel hw, out channels, strides, padding, kernel dilation)
    ((2, 9, 7, 3), (3, 3), 4, (1, 1), "SAME", (1, 1)),
    ((2, 10, 8, 5), (4, 4), 6, (2, 2), ((1, 1), (1, 1)), (1, 1)),
    ((1, 12, 12, 2), (3, 3), 3, (1, 1), "SAME", (2, 2)),      # atrous (SPAP / ASPP)
    ((2, 11, 11, 3), (7, 7), 2, (1, 1), "VALID", (1, 1)),     # CycleGAN's 7x7 after reflect pad
    ((2, 8, 9, 3), (3, 3), 2, (2, 1), ((0, 2), (1, 0)), (1, 1)),  # asymmetric everything
    ((3, 5, 5, 4), (1, 1), 5, (1, 1), "SAME", (1, 1)),        # 1x1 (attention projections)
]


@pytest.fixture(autouse=True)
def _rewrite_on(monkeypatch):
  """The suite runs on 8 simulated CPU devices, where `auto` keeps XLA's kernel gradient
  (`conv.use_matmul_kernel_gradient`); these tests are about the rewrite itself."""
  monkeypatch.setenv(conv_lib.KERNEL_GRADIENT_ENV, "matmul")


def _np_kernel_gradient(x, g, khw, strides, pads, dilation):
  """dL/dW from the definition, in float64: sum over b, y, x of input window * out grad."""
  xp = np.pad(np.asarray(x, np.float64), ((0, 0), pads[0], pads[1], (0, 0)))
  g = np.asarray(g, np.float64)
  _, oh, ow, _ = g.shape
  dw = np.zeros(khw + (x.shape[-1], g.shape[-1]))
  for i in range(khw[0]):
    for j in range(khw[1]):
      for y in range(oh):
        for xx in range(ow):
          patch = xp[:, y * strides[0] + i * dilation[0], xx * strides[1] + j * dilation[1], :]
          dw[i, j] += patch.T @ g[:, y, xx, :]
  return dw


def _lax(x, w, strides, padding, dilation):
  return jax.lax.conv_general_dilated(x, w, strides, padding, rhs_dilation=dilation,
                                      dimension_numbers=NHWC)


def _ours(x, w, strides, padding, dilation):
  dn = jax.lax.conv_dimension_numbers(x.shape, w.shape, NHWC)
  return conv_lib.conv_general_dilated(x, w, strides, padding, rhs_dilation=dilation,
                                       dimension_numbers=dn)


def _assert_close(actual, desired, rel=1e-5):
  """Equal up to `rel` times the largest magnitude of `desired` (float summation order)."""
  np.testing.assert_allclose(actual, desired, atol=rel * float(np.abs(desired).max()), rtol=0)


@pytest.mark.parametrize("shape,khw,out,strides,padding,dilation", CASES)
def test_kernel_gradient_equals_definition_and_xla(shape, khw, out, strides, padding, dilation):
  assert conv_lib.use_matmul_kernel_gradient()  # `_rewrite_on`
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal(shape), jnp.float32)
  w = jnp.asarray(rng.standard_normal(khw + (shape[-1], out)), jnp.float32)
  loss = lambda fn: (lambda x, w: jnp.sum(jnp.sin(fn(x, w, strides, padding, dilation))))
  y_ours = _ours(x, w, strides, padding, dilation)
  y_lax = _lax(x, w, strides, padding, dilation)
  if khw == (1, 1) and strides == (1, 1):  # `pointwise`: a matmul, equal up to rounding
    _assert_close(y_ours, y_lax)
  else:
    np.testing.assert_array_equal(y_ours, y_lax)  # XLA's own forward convolution
  dx_ref, dw_ref = jax.grad(loss(_lax), (0, 1))(x, w)
  dx, dw = jax.jit(jax.grad(loss(_ours), (0, 1)))(x, w)
  _assert_close(dw, dw_ref)
  _assert_close(dx, dx_ref)
  scale = float(np.abs(dw_ref).max())
  # The independent float64 definition of the kernel gradient.
  pads = conv_lib.explicit_padding(padding, shape[1:3], khw, strides, dilation)
  g = np.cos(np.asarray(y_ours, np.float64))
  np.testing.assert_allclose(
      conv_lib.kernel_gradient(x, jnp.asarray(g, jnp.float32), khw, strides, pads, dilation),
      _np_kernel_gradient(x, g, khw, strides, pads, dilation), atol=1e-5 * scale, rtol=0)


def test_second_order_gradient_equals_xla():
  """R1 / WGAN-GP differentiate the input gradient again with respect to the kernel."""
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.standard_normal((2, 8, 8, 3)), jnp.float32)
  w = jnp.asarray(rng.standard_normal((3, 3, 3, 4)), jnp.float32)

  def penalty(fn):
    def d_out(x, w):  # a two-layer "discriminator" through the conv twice
      h = jnp.tanh(fn(x, w[..., :3], (1, 1), "SAME", (1, 1)))
      return jnp.sum(fn(h, w, (2, 2), "SAME", (1, 1)) ** 2)
    return lambda w: jnp.sum(jax.grad(d_out)(x, w) ** 2) + d_out(x, w)

  ref = jax.grad(penalty(_lax))(w)
  ours = jax.jit(jax.grad(penalty(_ours)))(w)
  _assert_close(ours, ref)


@pytest.mark.parametrize("kernel,stride,pads", [(4, 2, ((2, 2), (2, 2))),
                                                (3, 2, ((1, 2), (1, 2)))])
def test_second_order_gradient_through_a_transposed_conv_equals_xla(kernel, stride, pads):
  """The gradient of a gradient through a transposed conv (a generator under a penalty on its
  input gradient): `_conv_transposed`'s backward rule, differentiated again, equals lax."""
  rng = np.random.default_rng(4)
  x = jnp.asarray(rng.standard_normal((2, 5, 4, 3)), jnp.float32)
  w = jnp.asarray(rng.standard_normal((kernel, kernel, 3, 4)), jnp.float32)

  def penalty(fn):
    def out(x, w):
      h = fn(x, w, (1, 1), pads, lhs_dilation=(stride, stride), dimension_numbers=NHWC)
      return jnp.sum(jnp.tanh(h) ** 2)
    return lambda w: jnp.sum(jax.grad(out)(x, w) ** 2) + out(x, w)

  ref = jax.grad(penalty(jax.lax.conv_general_dilated))(w)
  ours = jax.jit(jax.grad(penalty(conv_lib.conv_general_dilated)))(w)
  _assert_close(ours, ref)


def test_falls_back_to_xla_where_the_rewrite_does_not_apply():
  """Grouped convolutions go to lax unchanged; an input-dilated (transposed) one with kernel
  dilation keeps lax's forward pass (only stride-1, undilated kernels take the phase path)."""
  rng = np.random.default_rng(2)
  x = jnp.asarray(rng.standard_normal((1, 6, 6, 4)), jnp.float32)
  w = jnp.asarray(rng.standard_normal((3, 3, 2, 4)), jnp.float32)
  dn = jax.lax.conv_dimension_numbers(x.shape, w.shape, NHWC)
  grouped = lambda fn: fn(x, w, (1, 1), "SAME", dimension_numbers=dn, feature_group_count=2)
  np.testing.assert_array_equal(grouped(conv_lib.conv_general_dilated),
                                grouped(jax.lax.conv_general_dilated))
  w2 = jnp.asarray(rng.standard_normal((3, 3, 4, 2)), jnp.float32)
  dilated = lambda fn: fn(x, w2, (1, 1), ((1, 1), (1, 1)), lhs_dilation=(2, 2),
                          rhs_dilation=(2, 1), dimension_numbers=dn)
  np.testing.assert_array_equal(dilated(conv_lib.conv_general_dilated),
                                dilated(jax.lax.conv_general_dilated))


def test_flax_conv_drop_in():
  """`Conv` has nn.Conv's parameters and auto-names; its gradients equal nn.Conv's."""
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 8, 8, 3))

  class Net(nn.Module):
    conv: object

    @nn.compact
    def __call__(self, x):
      return self.conv(5, (3, 3), strides=(2, 2))(nn.relu(self.conv(4, (3, 3))(x)))

  new, ref = Net(conv_lib.Conv), Net(nn.Conv)
  v = ref.init(jax.random.PRNGKey(1), x)
  assert jax.tree_util.tree_structure(new.init(jax.random.PRNGKey(1), x)) == \
      jax.tree_util.tree_structure(v)
  assert set(v["params"]) == {"Conv_0", "Conv_1"}
  loss = lambda net: (lambda p: jnp.sum(jnp.sin(net.apply(p, x))))
  g_ref, g_new = jax.grad(loss(ref))(v), jax.jit(jax.grad(loss(new)))(v)
  for a, b in zip(jax.tree_util.tree_leaves(g_new), jax.tree_util.tree_leaves(g_ref)):
    _assert_close(a, b)


@pytest.mark.parametrize("kernel,strides,padding,dilation,transpose_kernel", [
    ((4, 4), (2, 2), "SAME", (1, 1), False),                 # SNDCGAN's G
    ((3, 3), (2, 2), ((1, 2), (1, 2)), (1, 1), False),       # PyTorch k3 s2 p1 op1 (LGGAN G_w)
    ((3, 3), (2, 2), "VALID", (1, 1), True),
    ((3, 2), (2, 3), "SAME", (2, 1), False),
    ((4, 4), (2, 2), 1, (1, 1), False),
])
def test_conv_transpose_equals_flax(kernel, strides, padding, dilation, transpose_kernel):
  """Outputs, parameters and gradients equal `nn.ConvTranspose`'s (lax.conv_transpose)."""
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 5, 6, 3))
  kw = dict(features=4, kernel_size=kernel, strides=strides, padding=padding,
            kernel_dilation=dilation, transpose_kernel=transpose_kernel)
  ref, new = nn.ConvTranspose(**kw), conv_lib.ConvTranspose(**kw)
  v = ref.init(jax.random.PRNGKey(1), x)
  v = jax.tree_util.tree_map(lambda a: a + 0.1, v)  # non-zero bias
  assert jax.tree_util.tree_structure(new.init(jax.random.PRNGKey(1), x)) == \
      jax.tree_util.tree_structure(v)
  y_ref = ref.apply(v, x)
  np.testing.assert_allclose(new.apply(v, x), y_ref, atol=1e-5, rtol=0)
  loss = lambda net: (lambda p, x: jnp.sum(jnp.sin(net.apply(p, x))))
  g_ref = jax.grad(loss(ref), (0, 1))(v, x)
  g_new = jax.jit(jax.grad(loss(new), (0, 1)))(v, x)
  for a, b in zip(jax.tree_util.tree_leaves(g_new), jax.tree_util.tree_leaves(g_ref)):
    _assert_close(a, b)


def test_kernel_gradient_with_input_dilation_equals_definition():
  """The transposed-conv case of `kernel_gradient` against the float64 definition on the
  explicitly zero-dilated input."""
  rng = np.random.default_rng(3)
  x = rng.standard_normal((2, 4, 5, 3))
  xd = np.zeros((2, 7, 9, 3))
  xd[:, ::2, ::2] = x   # 1 zero between pixels (input dilation 2)
  pads = ((2, 1), (1, 2))
  g_shape = (2, 7 + 3 - 3 + 1, 9 + 3 - 3 + 1, 4)
  g = rng.standard_normal(g_shape)
  got = conv_lib.kernel_gradient(jnp.asarray(x, jnp.float32), jnp.asarray(g, jnp.float32),
                                 (3, 3), (1, 1), pads, (1, 1), input_dilation=(2, 2))
  want = _np_kernel_gradient(xd, g, (3, 3), (1, 1), pads, (1, 1))
  _assert_close(got, want)


@pytest.mark.parametrize("size,kernel,stride,pads", [
    ((5, 6), (4, 4), (2, 2), ((2, 2), (2, 2))),       # 'SAME' k4 s2 (SNDCGAN's G)
    ((4, 5), (3, 3), (2, 2), ((1, 2), (1, 2))),       # PyTorch k3 s2 p1 op1
    ((4, 4), (3, 2), (3, 2), ((2, 0), (1, 3))),       # stride 3, odd lengths per phase
    ((5, 3), (1, 1), (2, 2), ((0, 0), (0, 1))),       # kernel < stride: phases with no tap
    ((6, 5), (5, 4), (2, 3), ((-1, 3), (4, -2))),     # negative padding crops
    ((3, 3), (2, 2), (2, 2), ((1, 1), (1, 1))),
])
def test_transposed_by_phases_equals_xla(size, kernel, stride, pads):
  """The phase decomposition of an input-dilated convolution: values and both gradients equal
  lax's, and `conv_general_dilated` takes that path for lhs_dilation with stride 1."""
  x = jax.random.normal(jax.random.PRNGKey(0), (2,) + size + (3,))
  w = jax.random.normal(jax.random.PRNGKey(1), kernel + (3, 4))
  ref = lambda x, w: jax.lax.conv_general_dilated(x, w, (1, 1), pads, lhs_dilation=stride,
                                                  dimension_numbers=NHWC)
  new = lambda x, w: conv_lib.conv_general_dilated(x, w, (1, 1), pads, lhs_dilation=stride,
                                                   dimension_numbers=NHWC)
  y_ref = ref(x, w)
  y_new = conv_lib.transposed_by_phases(x, w, pads, stride)
  assert y_new.shape == y_ref.shape
  _assert_close(y_new, y_ref)
  assert len(re.findall(r"\bcustom_vjp_call\b", str(jax.make_jaxpr(new)(x, w)))) == 1
  loss = lambda f: (lambda x, w: jnp.sum(jnp.sin(f(x, w))))
  g_ref = jax.grad(loss(ref), (0, 1))(x, w)
  g_new = jax.jit(jax.grad(loss(new), (0, 1)))(x, w)
  for a, b in zip(g_new, g_ref):
    _assert_close(a, b)


def test_pointwise_conv_is_a_matmul_equal_to_xla():
  """1x1, stride-1, unpadded convolutions go to `pointwise` (no convolution left in the
  program); values and both gradients equal lax's."""
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 5, 6, 7))
  w = jax.random.normal(jax.random.PRNGKey(1), (1, 1, 7, 4))
  args = ((1, 1), ((0, 0), (0, 0)))
  ref = lambda x, w: jax.lax.conv_general_dilated(x, w, *args, dimension_numbers=NHWC)
  new = lambda x, w: conv_lib.conv_general_dilated(x, w, *args, dimension_numbers=NHWC)
  assert "conv_general_dilated" not in str(jax.make_jaxpr(new)(x, w))
  np.testing.assert_allclose(new(x, w), ref(x, w), atol=1e-5, rtol=0)
  loss = lambda f: (lambda x, w: jnp.sum(jnp.sin(f(x, w))))
  for a, b in zip(jax.jit(jax.grad(loss(new), (0, 1)))(x, w), jax.grad(loss(ref), (0, 1))(x, w)):
    _assert_close(a, b)
  # padded or strided 1x1 convs keep the convolution
  padded = conv_lib.conv_general_dilated(x, w, (2, 2), "SAME", dimension_numbers=NHWC)
  np.testing.assert_allclose(padded, jax.lax.conv_general_dilated(
      x, w, (2, 2), "SAME", dimension_numbers=NHWC), atol=1e-5, rtol=0)


def test_conv_transpose_rejects_what_it_does_not_implement():
  x = jnp.zeros((1, 4, 4, 2))
  with pytest.raises(ValueError, match="CIRCULAR"):
    conv_lib.ConvTranspose(3, (3, 3), padding="CIRCULAR").init(jax.random.PRNGKey(0), x)
  with pytest.raises(ValueError, match="padding"):
    conv_lib.transpose_padding(3, 2, ((1, 1),))


def _conv_counts(module, inputs):
  """(4-D kernels in the params other than 1x1 ones, convolutions through the custom
  gradients) of one forward pass. (The 1x1 convs of these models are `pointwise` matmuls
  under the rewrite, `test_pointwise_conv_is_a_matmul_equal_to_xla`.)"""
  variables = module.init(jax.random.PRNGKey(0), *inputs)
  kernels = [l for l in jax.tree_util.tree_leaves(variables["params"])
             if l.ndim == 4 and l.shape[:2] != (1, 1)]
  jaxpr = str(jax.make_jaxpr(
      lambda p: module.apply({**variables, "params": p}, *inputs, mutable=True))(
          variables["params"]))
  return len(kernels), len(re.findall(r"\bcustom_vjp_call\b", jaxpr))


@pytest.mark.parametrize("name", ["sndcgan_g_sn", "sndcgan_d", "resnet_g", "resnet_d",
                                  "cyclegan_g", "cyclegan_d", "resnet_g_flax_conv"])
def test_models_build_every_conv_through_the_rewrite(name):
  """The library's default: every conv kernel of the backbones (plain, spectral-norm and
  transposed) goes through `layers.conv`; passing `conv=nn.Conv` gives XLA's own."""
  from genattn_jax.models import cyclegan, resnet, sndcgan  # pylint: disable=g-import-not-at-top
  z, x = jnp.ones((2, 8)), jnp.ones((2, 32, 32, 3))
  module, inputs = {
      "sndcgan_g_sn": (sndcgan.SNDCGANGenerator(z_dim=8, width=0.125, spectral_norm=True),
                       (z,)),
      "sndcgan_d": (sndcgan.SNDCGANDiscriminator(width=0.125), (x,)),
      "resnet_g": (resnet.ResNetGenerator(z_dim=8, width=0.125), (z,)),
      "resnet_d": (resnet.ResNetDiscriminator(width=0.125), (x,)),
      "cyclegan_g": (cyclegan.ResnetGenerator(ngf=4, n_blocks=1), (x,)),
      "cyclegan_d": (cyclegan.PatchDiscriminator(ndf=4), (x,)),
      "resnet_g_flax_conv": (resnet.ResNetGenerator(z_dim=8, width=0.125, conv=nn.Conv), (z,)),
  }[name]
  kernels, rewritten = _conv_counts(module, inputs)
  assert kernels > 0
  assert rewritten == (0 if name.endswith("flax_conv") else kernels)


def test_environment_variable_chooses_the_kernel_gradient(monkeypatch):
  """`$GENATTN_CONV_KERNEL_GRADIENT`: auto (the rewrite on a one-device CPU backend), matmul,
  xla; anything else is an error."""
  rewritten = lambda: _conv_counts(conv_lib.Conv(3, (3, 3)), (jnp.ones((1, 6, 6, 2)),))[1]

  assert jax.local_device_count() == 8  # conftest
  for value, want in (("", 0), ("auto", 0), ("matmul", 1), (" MatMul", 1), (" XLA ", 0),
                      ("xla", 0)):
    monkeypatch.setenv(conv_lib.KERNEL_GRADIENT_ENV, value)
    assert conv_lib.use_matmul_kernel_gradient() == bool(want), value
    assert rewritten() == want, value
  monkeypatch.setattr(conv_lib.jax, "local_device_count", lambda: 1)
  for value, want in (("", 1), ("auto", 1), ("xla", 0)):
    monkeypatch.setenv(conv_lib.KERNEL_GRADIENT_ENV, value)
    assert conv_lib.use_matmul_kernel_gradient() == bool(want), value
    assert rewritten() == want, value
  monkeypatch.setattr(conv_lib.jax, "default_backend", lambda: "gpu")
  monkeypatch.setenv(conv_lib.KERNEL_GRADIENT_ENV, "auto")
  assert not conv_lib.use_matmul_kernel_gradient()
  monkeypatch.setenv(conv_lib.KERNEL_GRADIENT_ENV, "fast")
  with pytest.raises(ValueError) as err:
    conv_lib.use_matmul_kernel_gradient()
  assert str(err.value) == ("$GENATTN_CONV_KERNEL_GRADIENT must be 'auto', 'matmul' or 'xla', "
                            "got 'fast'.")


@pytest.mark.parametrize("name", ["sndcgan", "cyclegan"])
def test_backbone_gradients_equal_xla(name, monkeypatch):
  """Whole backbones (transposed, strided, RGB-output and 1-channel patch convs): parameter
  gradients with the rewrite equal those with XLA's own convolution gradients."""
  from genattn_jax.models import cyclegan, sndcgan  # pylint: disable=g-import-not-at-top
  z, x = jax.random.normal(jax.random.PRNGKey(0), (2, 8)), jnp.ones((2, 32, 32, 3))
  if name == "sndcgan":
    g_net, d_net = (sndcgan.SNDCGANGenerator(z_dim=8, width=0.125, spectral_norm=True),
                    sndcgan.SNDCGANDiscriminator(width=0.125))
  else:
    g_net, d_net = cyclegan.ResnetGenerator(ngf=4, n_blocks=1), cyclegan.PatchDiscriminator(ndf=4)
    z = x * jnp.linspace(-1, 1, 32)[:, None, None]
  g_vars, d_vars = g_net.init(jax.random.PRNGKey(1), z), d_net.init(jax.random.PRNGKey(2), x)

  def loss(params):
    image, _ = g_net.apply({**g_vars, "params": params[0]}, z, mutable=True)
    logits, _ = d_net.apply({**d_vars, "params": params[1]}, image, mutable=True)
    return jnp.sum(jnp.sin(logits))

  grads = {}
  for mode in ("matmul", "xla"):
    monkeypatch.setenv(conv_lib.KERNEL_GRADIENT_ENV, mode)
    grads[mode] = jax.jit(jax.grad(loss))((g_vars["params"], d_vars["params"]))
  flat = jax.tree_util.tree_leaves_with_path(grads["xla"])
  for (path, b), a in zip(flat, jax.tree_util.tree_leaves(grads["matmul"])):
    np.testing.assert_allclose(a, b, atol=1e-4 * float(np.abs(b).max()) + 1e-7, rtol=0,
                               err_msg=jax.tree_util.keystr(path))
