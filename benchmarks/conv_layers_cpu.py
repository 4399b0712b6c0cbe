"""Where a CPU train step's time goes: each convolution of SNDCGAN timed alone, three ways.

For every convolution of the SNDCGAN 32x32 backbone (D's seven at batch 128, the real and
fake halves of a D update; G's three 4x4 stride-2 transposed convs at batch 64), the forward
pass, the input gradient and the kernel gradient are timed separately for
  * `jax_rewrite`: `genattn_jax.layers.conv.conv_general_dilated` with the CPU forms on
    (`$GENATTN_CONV_KERNEL_GRADIENT=matmul`: kernel gradient a kernel row per matmul,
    transposed convs by output phases, strided input gradients the same way);
  * `jax_xla`: `jax.lax.conv_general_dilated` and its own gradients;
  * `torch`: `torch.nn.functional.conv2d` / `conv_transpose2d`, `torch.nn.grad.conv2d_input`
    / `conv2d_weight`, and autograd for the transposed ones, whose gradient times therefore
    include their forward pass (run with `--torch_python`, in its own process, default
    threads).
Each figure is the minimum of `--repeats` calls after one warm-up call; the JAX gradients are
jitted functions of (input, kernel, output gradient), so XLA drops the unused forward pass.

Usage (repository root; prints the JSON and writes it to --out):
  PYTHONPATH=$PWD JAX_PLATFORMS=cpu .venv/bin/python benchmarks/conv_layers_cpu.py \
      --torch_python .venv-ref/bin/python --out benchmarks/results/conv_layers_cpu.json
"""

import argparse
import json
import os
import subprocess
import sys
import time

try:
  from benchmarks import gpu_suite  # run as a module, or with the repository on PYTHONPATH
except ImportError:  # run as a script: benchmarks/ is sys.path[0]
  import gpu_suite  # type: ignore[no-redef]

# (name, batch, size, in channels, out channels, kernel, stride, transposed)
LAYERS = (
    ("D conv0 3x3", 128, 32, 3, 64, 3, 1, False),
    ("D conv1 4x4/2", 128, 32, 64, 64, 4, 2, False),
    ("D conv2 3x3", 128, 16, 64, 128, 3, 1, False),
    ("D conv3 4x4/2", 128, 16, 128, 128, 4, 2, False),
    ("D conv4 3x3", 128, 8, 128, 256, 3, 1, False),
    ("D conv5 4x4/2", 128, 8, 256, 256, 4, 2, False),
    ("D conv6 3x3", 128, 4, 256, 512, 3, 1, False),
    ("G deconv0 4x4/2", 64, 4, 512, 256, 4, 2, True),
    ("G deconv1 4x4/2", 64, 8, 256, 128, 4, 2, True),
    ("G deconv2 4x4/2", 64, 16, 128, 64, 4, 2, True),
)


def _best(fn, repeats: int) -> float:
  fn()
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t0)
  return min(times)


def run_jax(mode: str, repeats: int) -> list:
  """Times every layer with `genattn_jax.layers.conv` (`rewrite`) or lax (`xla`)."""
  os.environ["GENATTN_CONV_KERNEL_GRADIENT"] = "matmul" if mode == "rewrite" else "xla"
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from genattn_jax.layers import conv  # pylint: disable=import-outside-toplevel
  conv_fn = conv.conv_general_dilated if mode == "rewrite" else jax.lax.conv_general_dilated
  nhwc = ("NHWC", "HWIO", "NHWC")
  rows = []
  for name, b, size, cin, cout, k, s, transposed in LAYERS:
    x = jax.random.normal(jax.random.PRNGKey(0), (b, size, size, cin))
    w = 0.05 * jax.random.normal(jax.random.PRNGKey(1), (k, k, cin, cout))
    if transposed:  # PyTorch ConvTranspose2d(k=4, s=2, p=1): lhs-dilated, padding k - 1 - p
      f = lambda x, w, s=s, k=k: conv_fn(x, w, (1, 1), ((k - 2, k - 2),) * 2,
                                         lhs_dilation=(s, s), dimension_numbers=nhwc)
    else:
      f = lambda x, w, s=s, k=k: conv_fn(x, w, (s, s), ((1, 1), (1, 1)) if k == 4 else "SAME",
                                         dimension_numbers=nhwc)
    fwd = jax.jit(f)
    g = jnp.ones_like(fwd(x, w))
    dx = jax.jit(lambda x, w, g, f=f: jax.vjp(lambda t: f(t, w), x)[1](g)[0])
    dw = jax.jit(lambda x, w, g, f=f: jax.vjp(lambda v: f(x, v), w)[1](g)[0])
    rows.append({"layer": name, "forward_s": _best(lambda: fwd(x, w).block_until_ready(), repeats),
                 "input_grad_s": _best(lambda: dx(x, w, g).block_until_ready(), repeats),
                 "kernel_grad_s": _best(lambda: dw(x, w, g).block_until_ready(), repeats)})
  return rows


def run_torch(repeats: int) -> list:
  """Times every layer with PyTorch (NCHW, default threads)."""
  import torch  # pylint: disable=import-outside-toplevel
  import torch.nn.functional as F  # pylint: disable=import-outside-toplevel
  rows = []
  with torch.no_grad():
    for name, b, size, cin, cout, k, s, transposed in LAYERS:
      x = torch.randn(b, cin, size, size)
      if transposed:
        w = 0.05 * torch.randn(cin, cout, k, k)
        fwd = lambda x=x, w=w, s=s: F.conv_transpose2d(x, w, stride=s, padding=1)
        g = torch.ones_like(fwd())

        def grads(which, x=x, w=w, g=g, s=s):
          with torch.enable_grad():
            t = (x if which == "x" else w).clone().requires_grad_(True)
            out = (F.conv_transpose2d(t, w, stride=s, padding=1) if which == "x"
                   else F.conv_transpose2d(x, t, stride=s, padding=1))
            return torch.autograd.grad(out, t, g)[0]
        dx, dw = (lambda: grads("x")), (lambda: grads("w"))
      else:
        w = 0.05 * torch.randn(cout, cin, k, k)
        fwd = lambda x=x, w=w, s=s: F.conv2d(x, w, stride=s, padding=1)
        g = torch.ones_like(fwd())
        dx = lambda x=x, w=w, g=g, s=s: torch.nn.grad.conv2d_input(x.shape, w, g, stride=s,
                                                                    padding=1)
        dw = lambda x=x, w=w, g=g, s=s: torch.nn.grad.conv2d_weight(x, w.shape, g, stride=s,
                                                                     padding=1)
      rows.append({"layer": name, "forward_s": _best(fwd, repeats),
                   "input_grad_s": _best(dx, repeats), "kernel_grad_s": _best(dw, repeats)})
  return rows


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--torch_python", default="", help="python with torch; '' skips it")
  parser.add_argument("--out", default="")
  parser.add_argument("--side", default="", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.side:  # a worker: one side, JSON on stdout
    rows = run_torch(args.repeats) if args.side == "torch" else run_jax(args.side, args.repeats)
    print(json.dumps(rows))
    return
  result = {"benchmark": "conv_layers_cpu", "host": gpu_suite.host_info(),
            "xla_flags": os.environ.get("XLA_FLAGS", ""), "repeats": args.repeats,
            "sides": {}}
  sides = [("jax_rewrite", sys.executable, "rewrite"), ("jax_xla", sys.executable, "xla")]
  if args.torch_python:
    sides.append(("torch", args.torch_python, "torch"))
  for label, python, side in sides:  # one process per side: no shared thread pools
    proc = subprocess.run([python, os.path.abspath(__file__), "--side", side, "--repeats",
                           str(args.repeats)], capture_output=True, text=True, check=True)
    result["sides"][label] = json.loads(proc.stdout.strip().splitlines()[-1])
  result["totals_s"] = {label: {key: round(sum(r[key] for r in rows), 4) for key in
                                ("forward_s", "input_grad_s", "kernel_grad_s")}
                        for label, rows in result["sides"].items()}
  text = json.dumps(result, indent=1)
  print(text)
  if args.out:
    with open(args.out, "w") as f:
      f.write(text + "\n")


if __name__ == "__main__":
  main()
