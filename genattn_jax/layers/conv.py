"""`Conv` / `ConvTranspose`: flax's layers with convolution gradients written for XLA:CPU.

Why. On XLA:CPU (jax 0.10.2, this project's pinned stack) three parts of a convolution's
training step run on slow paths: the kernel gradient (XLA expresses it as a convolution whose
"window" is the whole image), and every convolution whose input is dilated with zeros
(transposed convolutions, and the input gradient of a strided convolution). Measured on this
project's 2-core CPU against PyTorch 2.13 (oneDNN) on the same cores, each gradient with its
forward pass: a 3x3 conv over [64, 32, 32, 128] took 4.4 s (PyTorch 0.46 s), the 4x4
stride-2 transposed conv [64, 8, 8, 256] -> [64, 16, 16, 128] of SNDCGAN's G 10.2 s (PyTorch
0.47 s). These were the largest part of the CPU train steps' time. What this module does
instead, each step equal to XLA's result up to float summation order:

* Kernel gradient (`kernel_gradient`): matmuls of shifted input windows with the output
  gradient, one kernel row per loop iteration,

      dW[i, j, c, o] = sum_{b, y, x} X_pad[b, s_h * y + d_h * i, s_w * x + d_w * j, c] * G[b, y, x, o]

  (s strides, d kernel dilation), with the input laid out channels-first once so that both
  matmul operands are in the layout XLA's dot is fast in.
* Transposed convolution (`transposed_by_phases`): each output phase (y mod s) only meets
  the kernel taps w[a::s] on real input pixels, so the layer is s_h * s_w ordinary
  convolutions, interleaved; its input gradient is the adjoint strided convolution of the
  output gradient and its kernel gradient that convolution's kernel gradient, flipped back
  (`_conv_transposed`).
* Input gradient of a strided convolution: the transposed convolution above, instead of
  XLA's input-dilated one.
* Convolutions with fewer than `FEW_OUTPUT_CHANNELS` outputs (RGB output layers, patch
  logits) keep XLA's kernel gradient, which was faster there.
* 1x1, stride-1, unpadded convolutions (`pointwise`): one matmul over the channels, forward
  and gradients (XLA's convolution ran them 3-5x slower than its matmul).

Forward passes of ordinary convolutions are XLA's own (the matmul forms tried were slower),
which XLA:CPU ran on one core at SNDCGAN's sizes while the matmuls here used both cores of
this project's VM (benchmarks/xla_cpu_threads.py; the README's CPU speed section says what
was tried about it).
Each convolution of SNDCGAN timed alone (benchmarks/conv_layers_cpu.py, JSON in
benchmarks/results/conv_layers_cpu.json; this project's 2-core x86_64 VM, 2026-11-29), this
module against XLA's own and PyTorch 2.13:
  - kernel gradients of D's seven convs at batch 128: 0.25 s (XLA 0.39 s, PyTorch 0.13 s);
    of G's three 4x4 stride-2 transposed convs at batch 64: 0.085 s (XLA 7.1 s);
  - input gradients of D's three 4x4 stride-2 convs: 0.12 s (XLA 0.22 s, PyTorch 0.11 s);
  - G's transposed convs' forward 0.083 s (XLA 0.10 s, PyTorch 0.075 s).

The library's default. Every layer and model of the package builds its convolutions with
`Conv` / `ConvTranspose` below (spectral-norm ones included, `norms.SpectralConv`), and every
one that takes a conv constructor still accepts `nn.Conv` / `nn.ConvTranspose`
(`conv=nn.Conv`) for XLA's own gradients. LGGAN's per-class convs and the
equalised-learning-rate convs of the StyleGAN / MSG-GAN hosts call `conv_general_dilated`
below, and so does the FID Inception network (for its 1x1 convolutions, see below). The VGG
of the perceptual loss and the fixed kernels (the StyleGAN blur, the SSIM window) keep XLA's
convolution: their kernels are never differentiated.

Memory. A first version unrolled all KH * KW window matmuls, and XLA kept every window alive:
the temporary memory of the LGGAN ADE20K step (benchmarks/lggan_memory.py, top51_chunk4) was
4.48 GB, against 0.88 GB with XLA's own kernel gradient. One tap per loop iteration gave
1.00 GB; one kernel row per iteration (KW windows alive at a time, the present form):
0.92 GB (2026-11-29, compile-time plan `temp_size_in_bytes` 924,996,552, in
benchmarks/results/lggan_memory_cpu.json).

The rewrite is used only where it helps: on the CPU backend (`jax.default_backend()`) with
one device (`use_matmul_kernel_gradient`), for 2-D NHWC / HWIO convolutions without feature
or batch groups. Everything else (GPU, TPU, grouped convolutions) calls
`jax.lax.conv_general_dilated` exactly as flax does. The tests compare outputs and first- and
second-order gradients with `nn.Conv` / `nn.ConvTranspose`, with lax, and with the
definition in NumPy; parameter names and shapes are flax's, so checkpoints do not change.

Higher-order gradients (R1, WGAN-GP: the gradient of a gradient) work: the backward rules are
ordinary differentiable JAX. Forward-mode differentiation (`jax.jvp`) of the rewritten
convolutions is not supported (a `jax.custom_vjp` limitation); nothing in this library uses
it.
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
# Below this many output channels `_conv_bwd` keeps XLA's own kernel gradient.
FEW_OUTPUT_CHANNELS = 8


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


def _adjoint_kernel(w: Array) -> Array:
  """[KH, KW, C, O] -> [KH, KW, O, C], spatially flipped: the kernel of the adjoint
  (transposed) convolution."""
  return jnp.swapaxes(jnp.flip(w, (0, 1)), 2, 3)


def _dilated_output_size(size: int, stride: int, pad: Tuple[int, int], kernel: int) -> int:
  """Output length of a stride-1 convolution over an input dilated by `stride` and padded."""
  return (size - 1) * stride + 1 + pad[0] + pad[1] - kernel + 1


def _forward(x, w, strides, padding, dilation, input_dilation, precision):
  return jax.lax.conv_general_dilated(x, w, strides, padding, lhs_dilation=input_dilation,
                                      rhs_dilation=dilation, dimension_numbers=_NHWC,
                                      precision=precision)


def kernel_gradient(x: Array, g: Array, kernel_hw: Tuple[int, int], strides, padding,
                    dilation, precision=None, input_dilation=(1, 1)) -> Array:
  """dL/dW of an NHWC / HWIO convolution as matmuls of shifted input windows, a kernel row
  at a time.

  The input is padded and laid out channels-first once ([C, B, H, W]); for kernel row i the
  KW windows of that row are stacked into a [KW * C, B * OH * OW] matrix and multiplied with
  the output gradient as [B * OH * OW, O]: both operands in the row-major layout XLA:CPU's
  matmul is fastest in (its dot ran at 214 GFLOPS on [1024, 32768] @ [32768, 64] here, and
  at 86 GFLOPS with the left operand transposed, as a [B * OH * OW, C] window contracted on
  its first axis is).

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
  xt = jnp.transpose(xp, (3, 0, 1, 2))  # [C, B, Hp, Wp]
  width = xt.shape[3]
  span = ((oh - 1) * sh + 1, (ow - 1) * sw + 1)
  out_dtype = jnp.result_type(x, g)
  g2 = g.reshape(b * oh * ow, o)

  def row(i, dw_acc):
    # One kernel row per iteration, not all KH * KW windows unrolled: XLA kept every window
    # of the unrolled form alive (5x the temporary memory of its own kernel gradient in the
    # LGGAN ADE20K step); here KW windows are alive at a time.
    band = jax.lax.dynamic_slice(xt, (0, 0, i * dh, 0), (c, b, span[0], width))[:, :, ::sh]
    windows = jnp.stack([band[:, :, :, j * dw:j * dw + span[1]:sw] for j in range(kw)])
    grads = jnp.matmul(windows.reshape(kw * c, b * oh * ow), g2, precision=precision)
    return jax.lax.dynamic_update_slice(dw_acc, grads.reshape(1, kw, c, o).astype(out_dtype),
                                        (i, 0, 0, 0))

  return jax.lax.fori_loop(0, kh, row, jnp.zeros((kh, kw, c, o), out_dtype))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5, 6))
def _conv(x, w, strides, padding, dilation, input_dilation, precision):
  return _forward(x, w, strides, padding, dilation, input_dilation, precision)


def _conv_fwd(x, w, strides, padding, dilation, input_dilation, precision):
  return _forward(x, w, strides, padding, dilation, input_dilation, precision), (x, w)


def _conv_bwd(strides, padding, dilation, input_dilation, precision, residuals, g):
  x, w = residuals
  if strides != (1, 1) and dilation == (1, 1) and input_dilation == (1, 1):
    # The input gradient of a strided convolution is a transposed one (g dilated by the
    # strides, the kernel flipped with its in / out axes swapped): by output phases, as in
    # `transposed_by_phases`, instead of XLA's input-dilated convolution.
    flipped = _adjoint_kernel(w)
    pads = tuple((k - 1 - lo, size + lo - (out - 1) * s - 1) for k, (lo, _), size, out, s in
                 zip(w.shape[:2], padding, x.shape[1:3], g.shape[1:3], strides))
    dx = _conv_transposed(g, flipped, pads, strides, precision).astype(x.dtype)
  else:
    _, input_vjp = jax.vjp(
        lambda t: _forward(t, w, strides, padding, dilation, input_dilation, precision), x)
    dx = input_vjp(g)[0]
  if w.shape[3] < FEW_OUTPUT_CHANNELS:
    # A [KW * C, N] @ [N, O] matmul with O of 1-3 (RGB output convs, patch logits) is mostly
    # the cost of laying out the windows: XLA's own kernel gradient was faster there (G's
    # 3x3 64 -> 3 conv at [64, 32, 32]: 15 ms against 43 ms on this project's 2-core CPU).
    _, kernel_vjp = jax.vjp(
        lambda v: _forward(x, v, strides, padding, dilation, input_dilation, precision), w)
    dw = kernel_vjp(g)[0]
  else:
    dw = kernel_gradient(x, g, w.shape[:2], strides, padding, dilation, precision,
                         input_dilation)
  return dx, dw.astype(w.dtype)


_conv.defvjp(_conv_fwd, _conv_bwd)


KERNEL_GRADIENT_ENV = "GENATTN_CONV_KERNEL_GRADIENT"


def use_matmul_kernel_gradient() -> bool:
  """Whether `conv_general_dilated` uses this module's CPU forms (the module doc lists them).

  `$GENATTN_CONV_KERNEL_GRADIENT` (named after the first of them, the kernel gradient)
  chooses: `auto` (unset) uses them on the CPU backend when it has one device; `matmul`
  always (e.g. to test them on simulated devices or another backend); `xla` never (XLA's own
  convolution and gradients everywhere, as `conv=nn.Conv` gives for one layer).

  Why one device. Several devices on one CPU (`--xla_force_host_platform_device_count`) are
  only used for tests and debugging, where every device program shares the same few cores.
  There the first form of the kernel-gradient loop cost more than it saved: the 8-device
  test suite on this project's 2-core machine (`./scripts/test.sh`, empty compilation cache,
  2026-11-29) took 1,970 s with it and 1,071 s without it. (Both runs ended in an XLA:CPU
  all-reduce abort near the end, with and without the rewrite; `tests/conftest.py` says what
  was changed.)

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
  """`jax.lax.conv_general_dilated` with this module's CPU forms (module doc).

  Same arguments and result (up to float summation order) as `jax.lax.conv_general_dilated`;
  the forms apply to 2-D NHWC / HWIO convolutions (input dilation, i.e. transposed
  convolutions, included) without groups or `preferred_element_type`, where
  `use_matmul_kernel_gradient()` says so: 1x1 stride-1 unpadded ones are `pointwise`,
  stride-1 input-dilated ones `_conv_transposed`, all others `_conv` (XLA's forward pass with
  the rewritten gradients). Every other call is passed through unchanged.

  Raises:
    ValueError: string `padding` together with `lhs_dilation`.
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
  if (rhs.shape[:2] == (1, 1) and strides == (1, 1) and input_dilation == (1, 1)
      and pads == ((0, 0), (0, 0))):
    return pointwise(lhs, rhs, precision)
  if (input_dilation != (1, 1) and strides == (1, 1) and dilation == (1, 1)
      and min(map(_dilated_output_size, lhs.shape[1:3], input_dilation, pads,
                  rhs.shape[:2])) > 0):
    return _conv_transposed(lhs, rhs, pads, input_dilation, precision)
  return _conv(lhs, rhs, strides, pads, dilation, input_dilation, precision)


def pointwise(x: Array, w: Array, precision=None) -> Array:
  """A 1x1, stride-1, unpadded convolution as one matmul over the channels.

  XLA:CPU's convolution ran these 3-5x slower than its matmul of the same shapes on this
  project's 2-core CPU (2026-11-29: [64, 35, 35, 192] -> 64 took 61 ms against 12 ms;
  [64, 147, 147, 64] -> 80, the FID Inception's `Conv2d_3b_1x1`, 0.60 s against 0.18 s). Its
  gradients are the matmul's.

  Args:
    x: [B, H, W, C] input.
    w: [1, 1, C, O] kernel.
    precision: `jax.lax.Precision` or None.

  Returns:
    [B, H, W, O] in the promoted dtype of `x` and `w`.
  """
  return jnp.einsum("bhwc,co->bhwo", x, w[0, 0], precision=precision)


def _crop_negative(x: Array, padding):
  """(x cropped where `padding` is negative, the padding with those entries set to 0).

  XLA:CPU's convolution returned garbage for some negative paddings (a 3x1 kernel with
  ((-1, 1), (0, -1)), jax 0.10.2), so the convolutions here only see non-negative ones.
  """
  (top, bottom), (left, right) = padding
  h, w = x.shape[1:3]
  x = x[:, max(0, -top):h - max(0, -bottom), max(0, -left):w - max(0, -right)]
  return x, tuple((max(0, lo), max(0, hi)) for lo, hi in padding)


def _phase(size: int, stride: int, kernel: int, pad: Tuple[int, int], out_len: int, r: int):
  """One output phase r of a stride-`stride` transposed convolution along one dimension.

  Output position p = stride * m + r sums taps i = first + stride * t (the only ones that land
  on a non-zero of the dilated input) times input pixel m + t + shift. Returns (first, the
  number of taps, the phase's output length, the (low, high) padding of the undilated input
  for a stride-1 convolution with the sub-kernel `w[first::stride]`).
  """
  first = (pad[0] - r) % stride
  taps = len(range(first, kernel, stride))
  count = max(0, -(-(out_len - r) // stride))
  shift = (r + first - pad[0]) // stride
  return first, taps, count, (-shift, count + taps - 1 - size + shift)


def transposed_by_phases(x: Array, w: Array, padding, input_dilation, precision=None) -> Array:
  """A transposed (input-dilated) convolution as stride-1 convolutions, one per output phase.

  `jax.lax.conv_general_dilated(x, w, (1, 1), padding, lhs_dilation=(s_h, s_w))` with NHWC /
  HWIO layout multiplies the kernel with an input that is mostly inserted zeros. Output pixel
  (s_h * m + r_h, s_w * n + r_w) only meets the taps `w[a::s_h, b::s_w]` with a = (pad_top -
  r_h) mod s_h (b likewise), each on a real input pixel; so each of the s_h * s_w phases is an
  ordinary convolution of `x` with that sub-kernel (the sub-pixel form of a transposed
  convolution, Shi et al. 2016, "Is the deconvolution layer the same as a convolutional
  layer?"), and the phases are interleaved. Same values as XLA's up to float summation order,
  with 1/(s_h s_w) of its multiplies. `conv_general_dilated` differentiates it with
  `_conv_transposed`'s rule. Measured on this project's 2-core CPU (2026-11-29), value and
  both gradients of SNDCGAN's 4x4 stride-2 transposed convolutions at batch 64, against the
  input-dilated form (both with the matmul kernel gradient, here taken phase by phase): 0.26
  -> 0.08 s ([4, 4, 512] -> 256), 0.42 -> 0.14 s ([8, 8, 256] -> 128), 0.72 -> 0.23 s
  ([16, 16, 128] -> 64).

  Args:
    x: [B, H, W, C] input.
    w: [KH, KW, C, O] kernel, applied as lax applies it (no flip).
    padding: ((top, bottom), (left, right)) ints of the dilated input (negative crops).
    input_dilation: (s_h, s_w).
    precision: `jax.lax.Precision` or None.

  Returns:
    [B, OH, OW, O], OH = (H - 1) s_h + 1 + top + bottom - KH + 1 (OW likewise).
  """
  b, h, wd, _ = x.shape
  kh, kw, _, o = w.shape
  (sh, sw) = input_dilation
  out_h = _dilated_output_size(h, sh, padding[0], kh)
  out_w = _dilated_output_size(wd, sw, padding[1], kw)
  dtype = jnp.result_type(x, w)
  if out_h <= 0 or out_w <= 0:
    return jnp.zeros((b, max(out_h, 0), max(out_w, 0), o), dtype)
  rows_max, cols_max = -(-out_h // sh), -(-out_w // sw)
  rows = []
  for rh in range(sh):
    fh, th, mh, ph = _phase(h, sh, kh, padding[0], out_h, rh)
    cols = []
    for rw in range(sw):
      fw, tw, mw, pw = _phase(wd, sw, kw, padding[1], out_w, rw)
      if th and tw and mh and mw:
        xc, pos = _crop_negative(x, (ph, pw))
        y = _forward(xc, w[fh::sh, fw::sw], (1, 1), pos, (1, 1), (1, 1), precision)
      else:  # no tap reaches this phase (kernel smaller than the stride): zeros
        y = jnp.zeros((b, mh, mw, o), dtype)
      cols.append(jnp.pad(y, ((0, 0), (0, rows_max - mh), (0, cols_max - mw), (0, 0))))
    rows.append(jnp.stack(cols, axis=3))  # [B, rows, cols, s_w, O]
  y = jnp.stack(rows, axis=2)  # [B, rows, s_h, cols, s_w, O]
  y = y.reshape(b, rows_max * sh, cols_max * sw, o)
  return y[:, :out_h, :out_w].astype(dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _conv_transposed(x, w, padding, input_dilation, precision):
  return transposed_by_phases(x, w, padding, input_dilation, precision)


def _conv_transposed_fwd(x, w, padding, input_dilation, precision):
  return transposed_by_phases(x, w, padding, input_dilation, precision), (x, w)


def _conv_transposed_bwd(padding, input_dilation, precision, residuals, g):
  """Both gradients through the adjoint strided convolution.

  y = conv(x dilated by s, w) has x's gradient dx = conv(g, w flipped with its in / out axes
  swapped, stride s, padding (K - 1 - low, ...)); the kernel gradient of that strided
  convolution, taken with x as its output gradient and flipped back, is dL/dw. Both read g
  once, with no inserted zeros (measured on SNDCGAN's 4x4 stride-2 layers here: the kernel
  gradient 1.4-1.7x faster than per phase).
  """
  x, w = residuals
  kernel_hw = w.shape[:2]
  flipped = _adjoint_kernel(w)
  pads = tuple((k - 1 - lo, s * (n - 1) + k - out - (k - 1 - lo)) for k, (lo, _), s, n, out in
               zip(kernel_hw, padding, input_dilation, x.shape[1:3], g.shape[1:3]))
  g, pads = _crop_negative(g, pads)
  dx = _conv(g, flipped, tuple(input_dilation), pads, (1, 1), (1, 1), precision)
  dw = kernel_gradient(g, x, kernel_hw, tuple(input_dilation), pads, (1, 1), precision)
  return dx.astype(x.dtype), _adjoint_kernel(dw).astype(w.dtype)


_conv_transposed.defvjp(_conv_transposed_fwd, _conv_transposed_bwd)


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
      kernel = _adjoint_kernel(kernel)
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
