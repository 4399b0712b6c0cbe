"""Forward time and peak memory of the attention blocks vs. feature-map size.

The setting of Table 5 of the AN paper (Wang et al., "Attentive Normalization
for Conditional Image Generation", CVPR 2020, Sec. 5.4, "The Empirical
Evaluation of Computational Efficiency"): one `[1, H, W, 32]` float32 feature
map, H = W in 128, 256, 512, 1024, inference only. The paper times AN (n = 16)
and self-attention in PyTorch on one "TiTAN 2080" (its words) and reports AN growing linearly
in H * W and self-attention quadratically (out of memory from 512x512). Here
the same is measured for the project's blocks:

  attentive_norm                 AttentiveNormalization (n = 16), train=False
  self_attention                 SelfAttention (SAGAN, full [HW, HW/4] matrix)
  self_attention_mem_efficient   MemoryEfficientSelfAttention (query chunks)
  lap                            LAPBlock (transform + pyramid + residual;
                                   levels from the Sec. 5.2 schedule)
  spap                           SpatialPyramidAttentivePooling (defaults)
  cbam                           CBAM (r = 16, 7x7 spatial conv)

Every module uses its default fields. Parameters are initialised with
PRNGKey(seed) on a small map (they do not depend on H, W), then every residual
gate (`gamma`, `rho`) is set to 0.5 so the attention path contributes to the
output (timings do not depend on it; it makes the equality check meaningful).

Method, per (block, size), each in a fresh worker process forked from a
`multiprocessing` fork server that has only imported the libraries (so no
JAX backend state or memory is shared between measurements):
  * `jax.jit(apply).lower(params, x).compile()` is timed on its own
    (`trace_lower_s`, `compile_s`; the persistent compilation cache is off);
  * `--warmup` untimed calls, then up to `--repeats` timed calls, each waited
    for with `block_until_ready`; the repeats are reduced (to >= 1) so that
    they fit in `--budget_s` seconds, judged from the warm-up call, and the
    count used is reported (this is what shortens the 1024x1024 rows); when
    the call is predicted (see below) to take longer than `--budget_s`, the
    warm-up is dropped and the first call after compiling is the one timed;
  * parameters are built once per block (the plain and memory-efficient
    self-attention share them) and reused for the larger sizes through a
    temporary file, and the input comes from NumPy, so a worker compiles
    only the measured function;
  * peak memory: on GPU/TPU `device.memory_stats()['peak_bytes_in_use']`
    (the fresh process makes it this measurement's peak); on CPU the
    process's peak RSS (VmHWM) minus its RSS when idle (libraries imported,
    backend up, nothing built), plus the peak RSS during the timed calls only
    (VmHWM reset through /proc/self/clear_refs after compiling) and XLA's
    static memory plan of the compiled executable (`memory_analysis()`).

Guards (the machine must not be pushed into swapping or the OOM killer):
  * plain self-attention: its [B, HW, HW/4] float32 attention matrix is
    predicted before anything runs; above the limit (`--mem_limit_gb`, or
    the accelerator's memory if smaller) the row is 'oom (predicted ...)';
  * any block: if XLA's memory plan exceeds that limit (on CPU, or the
    MemAvailable of the moment if smaller, to spare other processes) it is
    not run ('oom (XLA plan ...)'). The plan is a secondary guard only: on
    CPU (jax 0.10.2) it leaves out the plain attention matrix (temp = 0 B
    at 256x256, where the measured peak RSS is 4.2 GiB). A worker killed by
    SIGKILL (the kernel OOM
    killer) or failing with RESOURCE_EXHAUSTED is reported as 'oom (...)';
  * a block whose predicted single-call time (from its previous size, scaled
    by the pixel ratio, squared for self-attention) exceeds `--max_call_s` is
    'skipped: ...'; a worker running past `--timeout_s` is killed and
    'skipped: timed out ...'.

Output: ONE JSON object on stdout (progress goes to stderr), also written to
`--json_out` if given. Times in milliseconds; `ms_per_megapixel` is the
median divided by H * W / 1e6. The mem-efficient and plain self-attention
outputs are compared (same params and input) wherever both ran;
`an_per_pixel_ratio_1024_vs_128` is AN's median time per pixel at 1024^2
over that at 128^2 (the paper's claim of linear cost: target <= 1.5).

Usage:
  python benchmarks/attention_scaling.py [--sizes 128,256,512,1024]
      [--blocks attentive_norm,...] [--repeats 5] [--json_out FILE]
"""

import argparse
import dataclasses
import importlib
import json
import multiprocessing
import os
import platform
import sys
import tempfile
import time
import traceback
from typing import Any, Dict, List, Optional, Sequence

try:
  from benchmarks import _timing  # run as a module from the repository root
except ImportError:  # run as a script: benchmarks/ is sys.path[0]
  import _timing  # type: ignore[no-redef]

# name -> (module path, class name, extra apply kwargs)
BLOCKS: Dict[str, tuple] = {
    "attentive_norm": ("genattn_jax.layers.attentive_norm", "AttentiveNormalization",
                       {"train": False}),
    "self_attention": ("genattn_jax.layers.self_attention", "SelfAttention", {}),
    "self_attention_mem_efficient": ("genattn_jax.layers.self_attention",
                                     "MemoryEfficientSelfAttention", {}),
    "lap": ("genattn_jax.layers.lap", "LAPBlock", {}),
    "spap": ("genattn_jax.layers.spap", "SpatialPyramidAttentivePooling", {}),
    "cbam": ("genattn_jax.layers.cbam", "CBAM", {}),
}
# Blocks whose cost grows with (H * W)^2 rather than H * W.
QUADRATIC = ("self_attention", "self_attention_mem_efficient")
# Keys present (possibly None) in every result row.
ROW_FIELDS = ("status", "median_ms", "min_ms", "compile_s", "peak_memory_bytes",
              "ms_per_megapixel", "repeats", "xla_memory_bytes")
GATE_PARAMS = ("gamma", "rho")
GATE_VALUE = 0.5
EQUALITY_TOL = 1e-5
# Table 5 of the AN paper (ms; PyTorch 1.1.0, one "TiTAN 2080" GPU, B = 1, C = 32;
# None = out of GPU memory), for reference only.
PAPER_TABLE5_MS = {
    "attentive_norm": {"128": 0.73, "256": 2.24, "512": 9.46, "1024": 37.68},
    "self_attention": {"128": 5.21, "256": 79.42, "512": None, "1024": None},
}
_PRELOAD = ["numpy", "jax", "jax.numpy", "flax.linen"] + sorted({m for m, _, _ in BLOCKS.values()})


def _log(msg: str) -> None:
  print(f"[attention_scaling] {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------
# Worker side (runs in a fresh forked process).
# ----------------------------------------------------------------------------


def _set_gates(params: Any, value: float) -> Any:
  """Returns `params` with every leaf named in GATE_PARAMS set to `value`."""
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from flax import traverse_util  # pylint: disable=import-outside-toplevel
  flat = traverse_util.flatten_dict(params)
  flat = {k: (jnp.full_like(v, value) if k[-1] in GATE_PARAMS else v) for k, v in flat.items()}
  return traverse_util.unflatten_dict(flat)


def _module_config(module: Any) -> Dict[str, str]:
  """The module's dataclass fields (repr of each value), for the report."""
  return {f.name: repr(getattr(module, f.name)) for f in dataclasses.fields(module)
          if f.name not in ("parent", "name")}


def _is_oom_error(err: BaseException) -> bool:
  text = f"{type(err).__name__}: {err}"
  return isinstance(err, MemoryError) or "RESOURCE_EXHAUSTED" in text or "Out of memory" in text


def _environment_info() -> Dict[str, Any]:
  """Device, versions and idle memory of a fresh worker."""
  import flax  # pylint: disable=import-outside-toplevel
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  jax.block_until_ready(jnp.zeros(()))
  device = jax.devices()[0]
  stats = _timing.device_memory_stats(device)
  try:
    affinity = len(os.sched_getaffinity(0))
  except AttributeError:
    affinity = None
  return {
      "device_kind": device.device_kind,
      "platform": device.platform,
      "num_devices": jax.device_count(),
      "cpu_count": os.cpu_count(),
      "cpu_affinity": affinity,
      "device_bytes_limit": None if stats is None else stats.get("bytes_limit"),
      "jax_version": jax.__version__,
      "jaxlib_version": getattr(jax.lib, "__version__", None) or _jaxlib_version(),
      "flax_version": flax.__version__,
      "python_version": platform.python_version(),
      "machine": platform.machine(),
      "idle_worker_rss_bytes": _timing.rss_bytes(),
      "idle_worker_peak_rss_bytes": _timing.peak_rss_bytes(),
  }


def _jaxlib_version() -> Optional[str]:
  try:
    import jaxlib  # pylint: disable=import-outside-toplevel
    return jaxlib.__version__
  except (ImportError, AttributeError):
    return None


def _reset_peak_rss() -> bool:
  """Resets VmHWM to the current RSS (Linux >= 4.0); False if not allowed."""
  try:
    with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
      f.write("5")
    return True
  except OSError:
    return False


def _measure(task: Dict[str, Any]) -> Dict[str, Any]:
  """Compiles, times and measures one (block, size) in this process."""
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  from flax import serialization  # pylint: disable=import-outside-toplevel

  jax.config.update("jax_enable_compilation_cache", False)
  jax.block_until_ready(jnp.zeros(()))  # backend up before the idle baseline
  device = jax.devices()[0]
  idle_rss = _timing.rss_bytes()
  dev_idle = _timing.device_memory_stats(device)

  module_path, class_name, apply_kwargs = BLOCKS[task["block"]]
  module = getattr(importlib.import_module(module_path), class_name)(
      **task.get("module_kwargs", {}))
  b, size, c = task["batch"], task["size"], task["channels"]
  t0 = time.perf_counter()
  cache = task.get("params_cache")
  if cache and os.path.exists(cache):  # the same block's params from a smaller size
    with open(cache, "rb") as f:
      params = jax.device_put(serialization.msgpack_restore(f.read()))
  else:
    params = jax.jit(module.init)(jax.random.PRNGKey(task["seed"]),
                                  jnp.zeros((b, 8, 8, c), jnp.float32))
    params = _set_gates(params, GATE_VALUE)
    if cache:
      with open(cache, "wb") as f:
        f.write(serialization.msgpack_serialize(jax.device_get(params)))
  x = jax.device_put(np.random.default_rng(task["seed"] + 1).standard_normal(
      (b, size, size, c), dtype=np.float32))
  setup_s = time.perf_counter() - t0

  def apply(p, inputs):
    return module.apply(p, inputs, **apply_kwargs)

  result: Dict[str, Any] = {
      "module": f"{module_path}.{class_name}",
      "module_config": _module_config(module),
      "apply_kwargs": {k: repr(v) for k, v in apply_kwargs.items()},
      "num_params": int(sum(np.size(v) for v in jax.tree_util.tree_leaves(params))),
      "setup_s": setup_s,
  }
  compiled, lower_s, compile_s = _timing.compile_jitted(apply, params, x)
  result.update(trace_lower_s=lower_s, compile_s=compile_s)
  plan = _timing.compiled_memory(compiled)
  result["xla_memory_bytes"] = plan
  limit, what = task["mem_limit_bytes"], "limit"
  available = _timing.available_ram_bytes() if device.platform == "cpu" else None
  if available is not None and available < limit:
    # Other processes hold memory: do not push them into the OOM killer.
    limit, what = available, "MemAvailable"
  if plan is not None and plan["total"] > limit:
    result["status"] = (f"oom (XLA plan {plan['total'] / _timing.GIB:.1f} GiB > "
                        f"{what} {limit / _timing.GIB:.1f} GiB; not run)")
    return result

  rss_reset = _reset_peak_rss()
  rss_before_run = _timing.rss_bytes()
  warm_s = []
  out = None
  for _ in range(task["warmup"]):
    out, seconds = _timing.time_call(compiled, params, x)
    warm_s.append(seconds)
  repeats = _timing.repeats_within_budget(task["repeats"], min(warm_s) if warm_s else 0.0,
                                          task["budget_s"])
  del out
  times = _timing.time_repeats(compiled, (params, x), repeats)
  out = compiled(params, x)
  result.update(_timing.summarize_ms(times))
  result.update(warmup_ms=[1e3 * t for t in warm_s], repeats=repeats)
  result["output_shape"] = list(out.shape)
  result["output_dtype"] = str(out.dtype)
  result["output_finite"] = bool(jnp.all(jnp.isfinite(out)))
  jax.block_until_ready(out)

  peak = _timing.peak_rss_bytes()
  dev = _timing.device_memory_stats(device)
  if dev is not None and "peak_bytes_in_use" in dev:
    result["peak_memory_bytes"] = int(dev["peak_bytes_in_use"])
    result["peak_memory_source"] = ("device.memory_stats()['peak_bytes_in_use'] of a fresh "
                                    "worker (params, input, compile-time and run buffers)")
    result["device_idle_bytes_in_use"] = None if dev_idle is None else dev_idle.get(
        "bytes_in_use")
  else:
    result["peak_memory_bytes"] = peak - idle_rss
    result["peak_memory_source"] = ("peak RSS (VmHWM) of a fresh worker minus its idle RSS "
                                    "(includes building params and compiling)")
  result["peak_rss_bytes"] = peak
  result["idle_rss_bytes"] = idle_rss
  result["run_peak_rss_delta_bytes"] = (peak - rss_before_run) if rss_reset else None
  # Plausibility of the machine figures, reported with them (the tests check structure only).
  result["implausible_figures"] = [
      name for name, ok in (
          ("compile_s", compile_s > 0), ("min_ms", result["min_ms"] > 0),
          ("median_ms", result["median_ms"] >= result["min_ms"]),
          ("peak_rss_bytes", peak is None or idle_rss is None or peak >= idle_rss),
          ("peak_memory_bytes", (result["peak_memory_bytes"] or 0) > 0)) if not ok]
  if task.get("save_output"):
    np.save(task["save_output"], np.asarray(out))
  result["status"] = "ok" if result["output_finite"] else "error: non-finite output"
  return result


def _worker(task: Dict[str, Any], conn: Any) -> None:
  """Entry point of a worker process: runs `task` and sends back a dict."""
  os.dup2(2, 1)  # anything printed goes to stderr; the parent's stdout holds the JSON
  try:
    result = _environment_info() if task["kind"] == "info" else _measure(task)
  except Exception as err:  # pylint: disable=broad-except
    if _is_oom_error(err):
      status = f"oom ({type(err).__name__}: {str(err).splitlines()[0][:200]})"
    else:
      status = f"error: {type(err).__name__}: {str(err)[:300]}"
    result = {"status": status, "traceback": traceback.format_exc()[-2000:]}
  conn.send(result)
  conn.close()


# ----------------------------------------------------------------------------
# Parent side.
# ----------------------------------------------------------------------------


def _run_in_worker(ctx: Any, task: Dict[str, Any], timeout_s: float) -> Dict[str, Any]:
  """Runs `task` in a fresh worker process; maps kills and timeouts to statuses."""
  receiver, sender = ctx.Pipe(duplex=False)
  proc = ctx.Process(target=_worker, args=(task, sender), daemon=True)
  t0 = time.perf_counter()
  proc.start()
  sender.close()
  result = None
  if receiver.poll(timeout_s):
    try:
      result = receiver.recv()
    except EOFError:
      result = None
  elif proc.is_alive():
    proc.kill()
    proc.join()
    return {"status": f"skipped: timed out after {timeout_s:.0f} s (--timeout_s)",
            "worker_wall_s": time.perf_counter() - t0}
  proc.join()
  if result is None:
    code = proc.exitcode
    if code == -9:
      result = {"status": "oom (worker killed by SIGKILL, presumably the kernel OOM killer)"}
    else:
      result = {"status": f"error: worker exited with code {code} and no result"}
  result["worker_wall_s"] = time.perf_counter() - t0
  return result


def _parse_list(text: str) -> List[str]:
  return [t.strip() for t in text.split(",") if t.strip()]


def _parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
  ram = _timing.total_ram_bytes() or 16 * 2**30
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--sizes", default="128,256,512,1024",
                      help="comma-separated H = W values (default: Table 5's 128,256,512,1024)")
  parser.add_argument("--blocks", default=",".join(BLOCKS),
                      help=f"comma-separated subset of {','.join(BLOCKS)}")
  parser.add_argument("--repeats", type=int, default=5, help="timed calls per measurement")
  parser.add_argument("--warmup", type=int, default=1, help="untimed calls after compiling")
  parser.add_argument("--budget_s", type=float, default=60.0,
                      help="cap on the timed calls' total seconds per measurement: repeats "
                      "are reduced (to >= 1) to fit, judged from the warm-up call; 0 = no cap")
  parser.add_argument("--max_call_s", type=float, default=150.0,
                      help="skip a measurement whose single call is predicted (from the "
                      "block's previous size) to take longer; 0 = never skip")
  parser.add_argument("--timeout_s", type=float, default=900.0,
                      help="kill a worker running longer than this")
  parser.add_argument("--mem_limit_gb", type=float, default=0.8 * ram / _timing.GIB,
                      help="memory limit in GiB for the OOM guards (default: 80%% of RAM, "
                      f"{0.8 * ram / _timing.GIB:.1f} here)")
  parser.add_argument("--sa_query_chunk_size", type=int, default=0,
                      help="query_chunk_size of MemoryEfficientSelfAttention; 0 = the "
                      "module's default (chosen from its max_chunk_logits)")
  parser.add_argument("--batch", type=int, default=1)
  parser.add_argument("--channels", type=int, default=32)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--json_out", default=None, help="also write the JSON to this file")
  args = parser.parse_args(argv)
  args.block_list = _parse_list(args.blocks)
  unknown = [b for b in args.block_list if b not in BLOCKS]
  if unknown or not args.block_list:
    parser.error(f"--blocks: unknown {unknown}; choose from {list(BLOCKS)}")
  args.block_list = [b for b in BLOCKS if b in args.block_list]  # canonical order
  try:
    args.size_list = sorted({int(s) for s in _parse_list(args.sizes)})
  except ValueError:
    parser.error(f"--sizes must be comma-separated integers, got {args.sizes!r}")
  if not args.size_list or min(args.size_list) < 8:
    parser.error("--sizes must be integers >= 8")
  for name in ("repeats", "batch", "channels"):
    if getattr(args, name) < 1:
      parser.error(f"--{name} must be >= 1")
  if args.sa_query_chunk_size < 0:
    parser.error("--sa_query_chunk_size must be >= 0")
  if args.warmup < 0 or args.mem_limit_gb <= 0 or args.timeout_s <= 0:
    parser.error("--warmup must be >= 0, --mem_limit_gb and --timeout_s > 0")
  return args


def _module_kwargs(args: argparse.Namespace, block: str) -> Dict[str, Any]:
  """Non-default module fields set from the command line (JSON-able values)."""
  if block == "self_attention_mem_efficient" and args.sa_query_chunk_size:
    return {"query_chunk_size": args.sa_query_chunk_size}
  return {}


def _predicted_attention_bytes(batch: int, size: int) -> int:
  """Bytes of plain self-attention's float32 [B, HW, HW/4] attention matrix."""
  pixels = size * size
  return batch * pixels * (pixels // 4) * 4


def _predicted_call_s(history: Dict[int, Dict[str, Any]], block: str, size: int) -> Optional[float]:
  """Single-call time at `size` extrapolated from the block's largest ok size."""
  done = [s for s, r in history.items() if r.get("status") == "ok" and s < size]
  if not done:
    return None
  prev = max(done)
  power = 2 if block in QUADRATIC else 1
  return history[prev]["median_ms"] / 1e3 * (size * size / (prev * prev))**power


def _equality(tmp: str, sizes: Sequence[int], results: Dict[str, Dict[int, Any]]) -> Dict:
  """Max |mem-efficient - plain| self-attention output per size where both ran."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  out = {}
  for size in sizes:
    plain = results.get("self_attention", {}).get(size, {})
    eff = results.get("self_attention_mem_efficient", {}).get(size, {})
    if plain.get("status") != "ok" or eff.get("status") != "ok":
      continue
    a = np.load(os.path.join(tmp, f"self_attention_{size}.npy"))
    b = np.load(os.path.join(tmp, f"self_attention_mem_efficient_{size}.npy"))
    diff = float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))
    out[str(size)] = {"max_abs_diff": diff, "tolerance": EQUALITY_TOL,
                      "within_tolerance": diff <= EQUALITY_TOL,
                      "max_abs_output": float(np.max(np.abs(a)))}
  return out


def _an_ratios(results: Dict[int, Dict[str, Any]]) -> Dict[str, float]:
  """AN's time per pixel at each ok size over that at the smallest ok size."""
  ok = sorted(s for s, r in results.items() if r.get("status") == "ok")
  if not ok:
    return {}
  base = results[ok[0]]["median_ms"] / ok[0]**2
  return {f"{s}_vs_{ok[0]}": results[s]["median_ms"] / s**2 / base for s in ok}


def run(args: argparse.Namespace) -> Dict[str, Any]:
  """Runs every requested (block, size) and returns the report dict."""
  t_start = time.perf_counter()
  ctx = multiprocessing.get_context("forkserver")
  ctx.set_forkserver_preload(_PRELOAD)
  info = _run_in_worker(ctx, {"kind": "info"}, args.timeout_s)
  if "status" in info and "device_kind" not in info:
    raise RuntimeError(f"could not start a JAX worker: {info}")
  info.pop("worker_wall_s", None)
  limit = int(args.mem_limit_gb * _timing.GIB)
  if info.get("device_bytes_limit"):  # an accelerator: its own memory is the limit
    limit = min(limit, int(info["device_bytes_limit"]))
  _log(f"device {info['device_kind']} ({info['platform']}), jax {info['jax_version']}, "
       f"load {_timing.loadavg()}")
  results: Dict[str, Dict[int, Any]] = {b: {} for b in args.block_list}
  with tempfile.TemporaryDirectory(prefix="attention_scaling_") as tmp:
    for size in args.size_list:
      for block in args.block_list:
        row: Dict[str, Any] = {"loadavg_before": _timing.loadavg()}
        if block == "self_attention":
          predicted = _predicted_attention_bytes(args.batch, size)
          row["predicted_attention_matrix_bytes"] = predicted
          if predicted > limit:
            row["status"] = (f"oom (predicted {predicted / _timing.GIB:.1f} GiB attention "
                             f"matrix > limit {limit / _timing.GIB:.1f} GiB; not run)")
        pred_s = _predicted_call_s(results[block], block, size)
        if pred_s is not None:
          row["predicted_call_s"] = pred_s
          if "status" not in row and 0 < args.max_call_s < pred_s:
            row["status"] = (f"skipped: predicted {pred_s:.0f} s per call > --max_call_s "
                             f"{args.max_call_s:.0f}")
        if "status" not in row:
          save = None
          if block == "self_attention" and "self_attention_mem_efficient" in results:
            save = os.path.join(tmp, f"{block}_{size}.npy")
          if (block == "self_attention_mem_efficient" and
              results.get("self_attention", {}).get(size, {}).get("status") == "ok"):
            save = os.path.join(tmp, f"{block}_{size}.npy")
          warmup, repeats = args.warmup, args.repeats
          if pred_s is not None and 0 < args.budget_s < pred_s:
            # A call predicted to take longer than the whole timing budget: the first
            # (post-compile) call is the only, timed one.
            warmup, repeats = 0, 1
          group = "self_attention" if block in QUADRATIC else block  # same param tree
          task = {"kind": "measure", "block": block, "size": size, "batch": args.batch,
                  "channels": args.channels, "seed": args.seed, "repeats": repeats,
                  "warmup": warmup, "budget_s": args.budget_s,
                  "mem_limit_bytes": limit, "save_output": save,
                  "params_cache": os.path.join(tmp, f"params_{group}.msgpack"),
                  "module_kwargs": _module_kwargs(args, block)}
          row.update(_run_in_worker(ctx, task, args.timeout_s))
        row["requested_repeats"] = args.repeats
        if row.get("status") == "ok":
          row["ms_per_megapixel"] = row["median_ms"] / (args.batch * size * size / 1e6)
        for field in ROW_FIELDS:  # the same keys in every row; None = not measured
          row.setdefault(field, None)
        _log(f"{block:>30s} {size:5d}: {row['status']}" +
             (f", median {row['median_ms']:.2f} ms, compile {row['compile_s']:.2f} s"
              if row.get("status") == "ok" else ""))
        results[block][size] = row
    equality = _equality(tmp, args.size_list, results)

  an = results.get("attentive_norm", {})
  ratio = None
  if an.get(1024, {}).get("status") == "ok" and an.get(128, {}).get("status") == "ok":
    ratio = (an[1024]["median_ms"] / 1024**2) / (an[128]["median_ms"] / 128**2)
  report = {
      "benchmark": "attention_scaling",
      "setting": {"input": f"[{args.batch}, H, W, {args.channels}] float32 NHWC",
                  "sizes": args.size_list, "mode": "eval (inference), jitted",
                  "repeats": args.repeats, "warmup": args.warmup, "budget_s": args.budget_s,
                  "max_call_s": args.max_call_s, "timeout_s": args.timeout_s,
                  "mem_limit_gb": args.mem_limit_gb,
                  "effective_mem_limit_bytes": limit, "seed": args.seed,
                  "sa_query_chunk_size": args.sa_query_chunk_size or None,
                  "gates": f"{'/'.join(GATE_PARAMS)} set to {GATE_VALUE}",
                  "ms_per_megapixel": "median_ms / (B * H * W / 1e6)"},
      "device": info,
      "jax_version": info.get("jax_version"),
      "loadavg_start_end": None,
      "total_ram_bytes": _timing.total_ram_bytes(),
      "blocks": {b: next((r.get("module") for r in results[b].values() if "module" in r),
                         f"{BLOCKS[b][0]}.{BLOCKS[b][1]}") for b in args.block_list},
      "results": {b: {str(s): r for s, r in results[b].items()} for b in args.block_list},
      "mem_efficient_vs_plain": equality,
      "an_per_pixel_ratio_1024_vs_128": ratio,
      "an_per_pixel_target_met": None if ratio is None else ratio <= 1.5,
      "an_per_pixel_ratios": _an_ratios(an),
      "paper_table5_ms": PAPER_TABLE5_MS,
      "total_wall_s": time.perf_counter() - t_start,
  }
  return report


def main(argv: Optional[Sequence[str]] = None) -> int:
  args = _parse_args(argv)
  load_start = _timing.loadavg()
  report = run(args)
  report["loadavg_start_end"] = [load_start, _timing.loadavg()]
  text = json.dumps(report, indent=1, sort_keys=False)
  if args.json_out:
    os.makedirs(os.path.dirname(os.path.abspath(args.json_out)), exist_ok=True)
    with open(args.json_out, "w", encoding="utf-8") as f:
      f.write(text + "\n")
  print(text, flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
