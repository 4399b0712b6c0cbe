"""`Conv` / `ConvTranspose`: flax's layers with a matmul kernel gradient on XLA:CPU.

Why. On XLA:CPU (jax 0.10.2, this project's pinned stack) the kernel gradient of a
convolution, which XLA expresses as another convolution whose "window" is the whole image
and whose output is the small kernel, runs on a slow path. Measured on this project's 2-core
CPU against PyTorch 2.13 (oneDNN) on the same cores, each gradient including its forward
pass: a 3x3 conv over [64, 32, 32, 128] took 4.4 s (PyTorch 0.46 s), the 4x4 stride-2
transposed conv [64, 8, 8, 256] -> [64, 16, 16, 128] of SNDCGAN's G 10.2 s (PyTorch 0.47 s).
These were the largest part of the CPU train steps' time. Written as KH * KW matmuls of
shifted input windows with the output gradient,

    dW[i, j, c, o] = sum_{b, y, x} X_pad[b, s_h * y + d_h * i, s_w * x + d_w * j, c] * G[b, y, x, o]

(s strides, d kernel dilation; for a transposed convolution X_pad is the input with s - 1
zeros between pixels, as XLA dilates it), the same gradients took 0.65 s and 0.92 s with
the matmuls unrolled (the first version). The loop form below was measured only with the test
suite running beside it: 2.5 s against XLA's 5.8 s, and 1.09 s against 7.0 s, at the same
load. The forward pass and the input gradient are XLA's own convolutions, unchanged.

The library's default. Every layer and model of the package builds its convolutions with
`Conv` / `ConvTranspose` below (spectral-norm ones included, `norms.SpectralConv`), and every
one that takes a conv constructor still accepts `nn.Conv` / `nn.ConvTranspose`
(`conv=nn.Conv`) for XLA's own kernel gradient. LGGAN's per-class convs and the
equalised-learning-rate convs of the StyleGAN / MSG-GAN hosts call `conv_general_dilated`
below. The FID Inception network, the VGG of the perceptual loss and the fixed kernels (the
StyleGAN blur, the SSIM window) keep XLA's convolution: their kernels are never
differentiated. A first, unrolled
version of the rewrite made XLA keep all KH * KW windows alive at once: the temporary memory
of the LGGAN ADE20K step (benchmarks/lggan_memory.py, top51_chunk4) was 4.48 GB, against
0.88 GB with XLA's own kernel gradient. The loop below keeps one window at a time: 1.00 GB.

The rewrite is used only where it helps: on the CPU backend (`jax.default_backend()`) with
one device (`use_matmul_kernel_gradient`), for 2-D NHWC / HWIO convolutions without feature
or batch groups. Everything else (GPU, TPU, grouped convolutions) calls `jax.lax.conv_general_dilated` exactly as flax does. Values
equal XLA's up to float rounding (the tests compare outputs and first- and second-order
gradients with `nn.Conv` / `nn.ConvTranspose` and with the definition in NumPy); parameter
names and shapes are flax's, so checkpoints do not change.

Higher-order gradients (R1, WGAN-GP: the gradient of a gradient) work: the backward rule is
ordinary differentiable JAX. Forward-mode differentiation (`jax.jvp`) of the rewritten
convolution is not supported (a `jax.custom_vjp` limitation); nothing in this library uses it.
"""

import functools
import os
from typing import Any, Optional, Sequence, Tuple

import flax.linen as nn
from flax.linen.linear import canonicalize_padding
import jax
import jax.numpy as jnp

Array = jax.Array
_NHWC = ("NHWC", "HWIO", "NHWC")


def _is_nhwc(dimension_numbers, ndim: int) -> bool:
  """True when `dimension_numbers` describe NHWC input, HWIO kernel and NHWC output."""
  if ndim != 4:
    return False
  if dimension_numbers is None:
    return False
  if isinstance(dimension_numbers, jax.lax.ConvDimensionNumbers):
    return (tuple(dimension_numbers.lhs_spec) == (0, 3, 1, 2)
            and tuple(dimension_numbers.rhs_spec) == (3, 2, 0, 1)
            and tuple(dimension_numbers.out_spec) == (0, 3, 1, 2))
  return tuple(dimension_numbers) == _NHWC


def explicit_padding(padding, in_hw: Sequence[int], k_hw: Sequence[int],
                      strides: Sequence[int], dilation: Sequence[int]):
  """Padding as ((top, bottom), (left, right)) ints; strings resolved as lax does."""
  if isinstance(padding, str):
    window = [(k - 1) * d + 1 for k, d in zip(k_hw, dilation)]
    return tuple(tuple(p) for p in jax.lax.padtype_to_pads(in_hw, window, strides, padding))
  return tuple((int(lo), int(hi)) for lo, hi in padding)


def _forward(x, w, strides, padding, dilation, input_dilation, precision):
  return jax.lax.conv_general_dilated(x, w, strides, padding, lhs_dilation=input_dilation,
                                      rhs_dilation=dilation, dimension_numbers=_NHWC,
                                      precision=precision)


def kernel_gradient(x: Array, g: Array, kernel_hw: Tuple[int, int], strides, padding,
                    dilation, precision=None, input_dilation=(1, 1)) -> Array:
  """dL/dW of an NHWC / HWIO convolution as KH * KW matmuls of shifted input windows.

  Args:
    x: [B, H, W, C] the convolution's input.
    g: [B, OH, OW, O] the gradient of the loss with respect to its output.
    kernel_hw: (KH, KW).
    strides, padding, dilation: the convolution's window strides, explicit
      ((top, bottom), (left, right)) padding (negative values crop) and kernel dilation.
    precision: `jax.lax.Precision` of the matmuls (None: the backend default).
    input_dilation: `lhs_dilation` ((s, s) for a stride-s transposed convolution): s - 1
      zeros between input pixels, as XLA inserts them before padding.

  Returns:
    [KH, KW, C, O] array in `x`'s dtype (promoted with `g`'s).
  """
  b, _, _, c = x.shape
  _, oh, ow, o = g.shape
  kh, kw = kernel_hw
  (sh, sw), (dh, dw) = strides, dilation
  zero = jnp.zeros((), x.dtype)
  xp = jax.lax.pad(x, zero, ((0, 0, 0), (padding[0][0], padding[0][1], input_dilation[0] - 1),
                             (padding[1][0], padding[1][1], input_dilation[1] - 1), (0, 0, 0)))
  span = ((oh - 1) * sh + 1, (ow - 1) * sw + 1)

  def tap(t, dw_acc):
    # One kernel tap (i, j) per iteration: a loop, not KH * KW unrolled matmuls, so that
    # only one shifted window is alive at a time (unrolled, XLA kept them all: 5x the
    # temporary memory of XLA's own kernel gradient in the LGGAN ADE20K step).
    i, j = t // kw, t % kw
    window = jax.lax.dynamic_slice(xp, (0, i * dh, j * dw, 0), (b, span[0], span[1], c))
    window = window[:, ::sh, ::sw, :]
    tap_grad = jnp.einsum("byxc,byxo->co", window, g, precision=precision)
    return jax.lax.dynamic_update_slice(dw_acc, tap_grad[None].astype(dw_acc.dtype),
                                        (t, 0, 0))

  out_dtype = jnp.result_type(x, g)
  taps = jax.lax.fori_loop(0, kh * kw, tap, jnp.zeros((kh * kw, c, o), out_dtype))
  return taps.reshape(kh, kw, c, o)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5, 6))
def _conv(x, w, strides, padding, dilation, input_dilation, precision):
  return _forward(x, w, strides, padding, dilation, input_dilation, precision)


def _conv_fwd(x, w, strides, padding, dilation, input_dilation, precision):
  return _forward(x, w, strides, padding, dilation, input_dilation, precision), (x, w)


def _conv_bwd(strides, padding, dilation, input_dilation, precision, residuals, g):
  x, w = residuals
  _, input_vjp = jax.vjp(
      lambda t: _forward(t, w, strides, padding, dilation, input_dilation, precision), x)
  dx = input_vjp(g)[0]
  dw = kernel_gradient(x, g, w.shape[:2], strides, padding, dilation, precision,
                       input_dilation)
  return dx, dw.astype(w.dtype)


_conv.defvjp(_conv_fwd, _conv_bwd)


KERNEL_GRADIENT_ENV = "GENATTN_CONV_KERNEL_GRADIENT"


def use_matmul_kernel_gradient() -> bool:
  """Whether `conv_general_dilated` rewrites the kernel gradient.

  `$GENATTN_CONV_KERNEL_GRADIENT` chooses: `auto` (unset) rewrites on the CPU backend when it
  has one device; `matmul` always (e.g. to test it on simulated devices or another backend);
  `xla` never (XLA's own kernel gradient everywhere, as `conv=nn.Conv` gives for one layer).

  Why one device. Several devices on one CPU (`--xla_force_host_platform_device_count`) are
  only used for tests and debugging, where every device program shares the same few cores.
  There the rewrite's loop cost more than it saved: the 8-device test suite on this
  project's 2-core machine (`./scripts/test.sh`, empty compilation cache, 2026-11-29) took
  1,970 s with it and 1,071 s without it. (Both runs ended in an XLA:CPU all-reduce abort
  near the end, with and without the rewrite; `tests/conftest.py` says what was changed.)

  Raises:
    ValueError: the variable holds another value.
  """
  mode = os.environ.get(KERNEL_GRADIENT_ENV, "auto").strip().lower() or "auto"
  if mode == "auto":
    return jax.default_backend() == "cpu" and jax.local_device_count() == 1
  if mode in ("matmul", "xla"):
    return mode == "matmul"
  raise ValueError(f"${KERNEL_GRADIENT_ENV} must be 'auto', 'matmul' or 'xla', got "
                   f"{os.environ[KERNEL_GRADIENT_ENV]!r}.")


def conv_general_dilated(lhs: Array, rhs: Array, window_strides: Sequence[int], padding: Any,
                         lhs_dilation: Optional[Sequence[int]] = None,
                         rhs_dilation: Optional[Sequence[int]] = None,
                         dimension_numbers: Any = None, feature_group_count: int = 1,
                         batch_group_count: int = 1, precision: Any = None,
                         preferred_element_type: Any = None) -> Array:
  """`jax.lax.conv_general_dilated` with the matmul kernel gradient on CPU (module doc).

  Same arguments and result as `jax.lax.conv_general_dilated`; the rewrite applies to 2-D
  NHWC / HWIO convolutions (input dilation, i.e. transposed convolutions, included) without
  groups or `preferred_element_type`, where `use_matmul_kernel_gradient()` says so; every
  other call is passed through unchanged.
  """
  ndim = jnp.ndim(lhs)
  simple = (use_matmul_kernel_gradient() and _is_nhwc(dimension_numbers, ndim)
            and feature_group_count == 1 and batch_group_count == 1
            and preferred_element_type is None)
  if not simple:
    return jax.lax.conv_general_dilated(
        lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation,
        rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers,
        feature_group_count=feature_group_count, batch_group_count=batch_group_count,
        precision=precision, preferred_element_type=preferred_element_type)
  strides = tuple(int(s) for s in window_strides)
  dilation = tuple(int(d) for d in (rhs_dilation or (1, 1)))
  input_dilation = tuple(int(d) for d in (lhs_dilation or (1, 1)))
  if isinstance(padding, str):
    if input_dilation != (1, 1):  # lax rejects string padding with lhs_dilation too
      raise ValueError("`padding` must be explicit pairs when `lhs_dilation` is set, got "
                       f"{padding!r}.")
    pads = explicit_padding(padding, lhs.shape[1:3], rhs.shape[:2], strides, dilation)
  else:
    pads = tuple((int(lo), int(hi)) for lo, hi in padding)
  return _conv(lhs, rhs, strides, pads, dilation, input_dilation, precision)


def transpose_padding(kernel: int, stride: int, padding) -> Tuple[int, int]:
  """Padding of the zero-dilated input that `jax.lax.conv_transpose` uses for one dimension.

  `padding` is 'SAME' or 'VALID'; `kernel` is the dilated kernel size. 'SAME' gives an
  output of stride * size, 'VALID' stride * (size - 1) + kernel (lax's rule). (Explicit
  pairs are used as given, as `nn.ConvTranspose` passes them to lax.)

  Raises:
    ValueError: another `padding`.
  """
  if padding == "SAME":
    total = kernel + stride - 2
    low = kernel - 1 if stride > kernel - 1 else -(-total // 2)
  elif padding == "VALID":
    total = kernel + stride - 2 + max(kernel - stride, 0)
    low = kernel - 1
  else:
    raise ValueError(f"`padding` must be 'SAME' or 'VALID' here, got {padding!r}.")
  return low, total - low


class ConvTranspose(nn.ConvTranspose):
  """`flax.linen.ConvTranspose` through `conv_general_dilated` (the CPU kernel gradient).

  Same fields, parameters ('kernel' [KH, KW, C_in, features], or [KH, KW, features, C_in]
  with `transpose_kernel`; 'bias') and results as
  `nn.ConvTranspose` (`jax.lax.conv_transpose`: the input dilated by the strides, padded as
  `transpose_padding` says, convolved with the kernel, flipped and transposed when
  `transpose_kernel`), for [B, H, W, C] inputs without `mask` and with 'SAME', 'VALID' or
  explicit padding; other uses (CIRCULAR padding, masks, other ranks) raise ValueError: use
  `nn.ConvTranspose` for them.

  Raises:
    ValueError: an unsupported field or input rank (see above).
  """

  @nn.compact
  def __call__(self, inputs: Array) -> Array:
    if jnp.ndim(inputs) != 4 or self.mask is not None or self.padding == "CIRCULAR":
      raise ValueError("layers.conv.ConvTranspose takes [B, H, W, C] inputs without `mask` "
                       "or CIRCULAR padding; use flax.linen.ConvTranspose for "
                       f"shape {jnp.shape(inputs)}, padding {self.padding!r}.")
    ks = (self.kernel_size,) * 2 if isinstance(self.kernel_size, int) else tuple(
        self.kernel_size)
    pair = lambda v: (1, 1) if v is None else ((v, v) if isinstance(v, int) else tuple(v))
    strides, dilation = pair(self.strides), pair(self.kernel_dilation)
    io = (self.features, inputs.shape[-1]) if self.transpose_kernel else (
        inputs.shape[-1], self.features)
    kernel = self.param("kernel", self.kernel_init, ks + io, self.param_dtype)
    bias = (self.param("bias", self.bias_init, (self.features,), self.param_dtype)
            if self.use_bias else None)
    inputs, kernel, bias = self.promote_dtype(inputs, kernel, bias, dtype=self.dtype)
    if self.transpose_kernel:
      kernel = jnp.swapaxes(jnp.flip(kernel, (0, 1)), 2, 3)
    k_dilated = [(k - 1) * d + 1 for k, d in zip(ks, dilation)]
    padding = canonicalize_padding(self.padding, 2)
    if isinstance(padding, str):
      pads = tuple(transpose_padding(k, s, padding) for k, s in zip(k_dilated, strides))
    else:
      pads = tuple((int(lo), int(hi)) for lo, hi in padding)
    y = conv_general_dilated(inputs, kernel, (1, 1), pads, lhs_dilation=strides,
                             rhs_dilation=dilation, dimension_numbers=_NHWC,
                             precision=self.precision,
                             preferred_element_type=self.preferred_element_type)
    if bias is not None:
      y = y + bias.reshape((1, 1, 1, -1))
    return y


# `flax.linen.Conv` with the convolution above: same fields, parameters and auto-names
# ("Conv_0", ...) as `nn.Conv`, so it is a drop-in replacement (the library's default: see
# the module doc).
Conv = functools.partial(nn.Conv, conv_general_dilated=conv_general_dilated)
