"""GPU suite, section `blocks`: attention-block forward times on [1, H, W, 32].

The AN paper's Table 5 layout (Sec. 5.4: one [1, H, W, 32] float32 map, inference, H = W in
128, 256, 512, 1024; its times on one "TiTAN 2080" (the paper's words): AN 0.73 / 2.24 /
9.46 / 37.68 ms, self-attention 5.21 / 79.42 ms, then out of memory). The JAX blocks and their
settings are those of benchmarks/attention_scaling.py (`BLOCKS`: AN n = 16 with train=False,
SAGAN self-attention, its memory-efficient evaluation, LAP, SPAP, CBAM; every residual gate
set to 0.5), but all sizes run in this one process (a fresh process per row costs seconds of GPU start-up each):
sizes ascending, each block compiled (`compile_s`), one warm-up call, then up to 5 timed
calls (fewer when they would not fit the budget). An out-of-memory error (at compile or run
time) is recorded as 'oom: ...' and the block is not tried at larger sizes; plain
self-attention is not tried where its [1, HW, HW/4] float32 matrix alone exceeds the device
memory (the prediction is recorded). A block whose predicted call time (previous size
scaled by the pixel ratio, squared for self-attention) exceeds `MAX_CALL_S` is skipped.

PyTorch side (same device): SAGAN self-attention in the same form (1x1 convs without bias,
2x2 max-pooled keys and values, value width C/2, softmax over keys, 1x1 output conv,
y = x + 0.5 o) and AN at evaluation (t = 0: S = softmax(0.1 f(x)) over the n = 16 entity
maps, the regional instance norm of Eq. 5 in the factored form, y = x + 0.5 x_bar), in
NCHW float32.
"""

import os
import time
from typing import Any, Dict, List

import numpy as np

from benchmarks import gpu_suite as suite

CHANNELS = 32
MAX_CALL_S = 3.0
REPEATS = 5


def _sizes(args) -> List[int]:
  if args.sizes:
    return [int(s) for s in args.sizes.split(",")]
  return [16, 32] if args.tiny else [128, 256, 512, 1024]


def _device_limit_bytes(jax_device) -> float:
  stats = None
  try:
    stats = jax_device.memory_stats()
  except Exception:  # pylint: disable=broad-except
    pass
  if stats and stats.get("bytes_limit"):
    return float(stats["bytes_limit"])
  from benchmarks import _timing  # pylint: disable=import-outside-toplevel
  return float(_timing.total_ram_bytes() or 2**34)


def _predicted_s(history: Dict[int, float], block: str, size: int, quadratic: bool):
  done = [s for s in history if s < size]
  if not done:
    return None
  prev = max(done)
  scale = (size / prev) ** 2
  return history[prev] * (scale ** 2 if quadratic else scale)


def run_jax(args) -> int:
  import importlib  # pylint: disable=import-outside-toplevel
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from benchmarks import attention_scaling as scaling  # pylint: disable=import-outside-toplevel

  deadline = suite.Deadline(args.budget_s)
  sizes = _sizes(args)
  device = jax.devices()[0]
  limit = _device_limit_bytes(device)
  rec = suite.Record(os.path.join(args.out, "blocks_jax.json"), {
      "section": "blocks", "side": "jax", "host": suite.host_info(), "env": suite.jax_info(),
      "sizes": sizes, "channels": CHANNELS, "batch": 1, "gate_value": scaling.GATE_VALUE,
      "paper_table5_ms": scaling.PAPER_TABLE5_MS, "memory_limit_bytes": limit, "results": {}})
  results = rec.data["results"]
  params: Dict[str, Any] = {}
  dead: Dict[str, str] = {}
  history: Dict[str, Dict[int, float]] = {b: {} for b in scaling.BLOCKS}
  for size in sizes:
    x = jax.device_put(np.random.default_rng(1).standard_normal(
        (1, size, size, CHANNELS), dtype=np.float32))
    for block, (module_path, class_name, apply_kwargs) in scaling.BLOCKS.items():
      row: Dict[str, Any] = {}
      results.setdefault(block, {})[str(size)] = row
      quadratic = block in scaling.QUADRATIC
      predicted = _predicted_s(history[block], block, size, quadratic)
      if block in dead:
        row["status"] = f"not run: {dead[block]} at a smaller size"
      elif block == "self_attention" and 4.0 * size ** 4 / 4 > limit:
        row["status"] = (f"oom (predicted: attention matrix {size ** 4 / 2 ** 30:.0f} GiB "
                         f"> device {limit / 2 ** 30:.0f} GiB; not run)")
      elif predicted is not None and predicted > MAX_CALL_S:
        row["status"] = f"skipped: predicted {predicted:.1f} s per call > {MAX_CALL_S} s"
      elif not deadline.allows(3.0 + 2 * (predicted or 0.0)):
        row["status"] = "skipped: section budget used up"
      else:
        module = getattr(importlib.import_module(module_path), class_name)()
        try:
          init_key = "self_attention" if quadratic else block  # plain and mem-eff share
          if init_key not in params:
            p = jax.jit(module.init)(jax.random.PRNGKey(0),
                                     jnp.zeros((1, 8, 8, CHANNELS), jnp.float32))
            params[init_key] = scaling._set_gates(p, scaling.GATE_VALUE)  # pylint: disable=protected-access
          p = params[init_key]
          fn = jax.jit(lambda v, inp, m=module, kw=apply_kwargs: m.apply(v, inp, **kw))
          t0 = time.perf_counter()
          compiled = fn.lower(p, x).compile()
          row["compile_s"] = time.perf_counter() - t0
          t0 = time.perf_counter()
          jax.block_until_ready(compiled(p, x))
          row["warmup_s"] = time.perf_counter() - t0
          times = suite.timed_repeats(lambda c=compiled, p=p: jax.block_until_ready(c(p, x)),
                                      repeats=args.repeats or REPEATS, deadline=deadline)
          med = suite.median(times)
          history[block][size] = med
          row.update(status="ok", median_ms=1e3 * med, min_ms=1e3 * min(times),
                     repeats=len(times), ms_per_megapixel=1e3 * med / (size * size / 1e6))
        except Exception as err:  # pylint: disable=broad-except
          row["status"] = suite.error_text(err)
          if suite.is_oom(err):
            dead[block] = "oom"
      rec.save()
  an = history["attentive_norm"]
  if len(an) >= 2:
    lo, hi = min(an), max(an)
    rec.data["an_per_pixel_ratio_largest_vs_smallest"] = (an[hi] / hi ** 2) / (an[lo] / lo ** 2)
  rec.data["status"] = "done"
  rec.save()
  return 0


def _torch_modules(torch, nn, F):
  """(SelfAttention, AttentiveNormEval) NCHW torch modules (see the module docstring)."""

  class SelfAttention(nn.Module):

    def __init__(self, c: int):
      super().__init__()
      self.theta = nn.Conv2d(c, c // 8, 1, bias=False)
      self.phi = nn.Conv2d(c, c // 8, 1, bias=False)
      self.g = nn.Conv2d(c, c // 2, 1, bias=False)
      self.o = nn.Conv2d(c // 2, c, 1, bias=False)
      self.gamma = 0.5

    def forward(self, x):
      b, c, h, w = x.shape
      q = self.theta(x).flatten(2).transpose(1, 2)                   # [B, N, C/8]
      k = F.max_pool2d(self.phi(x), 2).flatten(2)                    # [B, C/8, N/4]
      v = F.max_pool2d(self.g(x), 2).flatten(2).transpose(1, 2)      # [B, N/4, C/2]
      attn = torch.softmax(torch.bmm(q, k), dim=-1)                  # [B, N, N/4]
      o = torch.bmm(attn, v).transpose(1, 2).reshape(b, c // 2, h, w)
      return x + self.gamma * self.o(o)

  class AttentiveNormEval(nn.Module):

    def __init__(self, c: int, n: int = 16, temperature: float = 0.1, eps: float = 1e-5):
      super().__init__()
      self.f = nn.Conv2d(c, n, 1, bias=False)
      self.beta = nn.Parameter(torch.ones(n, c))
      self.alpha = nn.Parameter(torch.zeros(n, c))
      self.temperature, self.eps, self.rho = temperature, eps, 0.5

    def forward(self, x):
      s = torch.softmax(self.temperature * self.f(x), dim=1)         # [B, n, H, W]
      xs = x - x.mean(dim=(2, 3), keepdim=True)
      mass = s.sum(dim=(2, 3)) + 1e-12                               # [B, n]
      mean = torch.einsum("bnhw,bchw->bnc", s, xs) / mass[..., None]
      sq = torch.einsum("bnhw,bchw->bnc", s, xs * xs) / mass[..., None]
      sigma = torch.sqrt(torch.clamp(sq - mean * mean, min=0.0))
      a = self.beta / (sigma + self.eps)                             # [B, n, C]
      bias = self.alpha - mean * a
      xbar = xs * torch.einsum("bnhw,bnc->bchw", s, a) + torch.einsum("bnhw,bnc->bchw", s, bias)
      return x + self.rho * xbar

  return SelfAttention, AttentiveNormEval


def run_torch(args) -> int:
  import torch  # pylint: disable=import-outside-toplevel
  from torch import nn  # pylint: disable=import-outside-toplevel
  import torch.nn.functional as F  # pylint: disable=import-outside-toplevel

  deadline = suite.Deadline(args.budget_s)
  sizes = _sizes(args)
  device = suite.torch_device()
  torch.backends.cudnn.benchmark = True
  rec = suite.Record(os.path.join(args.out, "blocks_torch.json"), {
      "section": "blocks", "side": "torch", "host": suite.host_info(),
      "env": suite.torch_info(), "sizes": sizes, "channels": CHANNELS, "results": {}})
  sa_cls, an_cls = _torch_modules(torch, nn, F)
  torch.manual_seed(0)
  modules = {"self_attention": sa_cls(CHANNELS).to(device).eval(),
             "attentive_norm": an_cls(CHANNELS).to(device).eval()}
  dead: Dict[str, str] = {}
  history: Dict[str, Dict[int, float]] = {b: {} for b in modules}
  with torch.inference_mode():
    for size in sizes:
      x = torch.randn(1, CHANNELS, size, size, device=device)
      for block, module in modules.items():
        row: Dict[str, Any] = {}
        rec.data["results"].setdefault(block, {})[str(size)] = row
        predicted = _predicted_s(history[block], block, size, block == "self_attention")
        if block in dead:
          row["status"] = f"not run: {dead[block]} at a smaller size"
        elif predicted is not None and predicted > MAX_CALL_S:
          row["status"] = f"skipped: predicted {predicted:.1f} s per call > {MAX_CALL_S} s"
        elif not deadline.allows(2.0 + 2 * (predicted or 0.0)):
          row["status"] = "skipped: section budget used up"
        else:
          try:
            module(x)
            suite.torch_sync(device)

            def call(module=module, x=x):
              module(x)
              suite.torch_sync(device)

            times = suite.timed_repeats(call, repeats=args.repeats or REPEATS,
                                        deadline=deadline)
            med = suite.median(times)
            history[block][size] = med
            row.update(status="ok", median_ms=1e3 * med, min_ms=1e3 * min(times),
                       repeats=len(times))
          except Exception as err:  # pylint: disable=broad-except
            row["status"] = suite.error_text(err)
            if suite.is_oom(err):
              dead[block] = "oom"
              if device.type == "cuda":
                torch.cuda.empty_cache()
        rec.save()
  rec.data["status"] = "done"
  rec.save()
  return 0
