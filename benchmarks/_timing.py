"""Timing and memory helpers shared by the benchmark scripts.

Everything here is device-agnostic: wall-clock timing of an already compiled
JAX executable (compile time measured separately), XLA's static memory plan of
a compiled executable, the process's resident-set peak read from
/proc/self/status (Linux), and an accelerator's allocator statistics where the
backend has them (GPU/TPU; `None` on CPU). JAX is imported only by the functions that
use it, so the memory helpers also serve the PyTorch side of benchmarks/gpu_suite.py.
"""

import os
import statistics
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

GIB = float(2**30)


def compile_jitted(fn: Callable[..., Any], *args: Any) -> Tuple[Any, float, float]:
  """Traces, lowers and compiles `jax.jit(fn)` for `args`, timing both phases.

  The persistent compilation cache should be off in the calling process, or
  the reported compile time may be a cache hit.

  Args:
    fn: a pure function of JAX arrays / pytrees.
    *args: example arguments (only their shapes and dtypes matter).

  Returns:
    (compiled executable, trace+lower seconds, XLA compile seconds).
  """
  import jax  # pylint: disable=import-outside-toplevel
  jitted = jax.jit(fn)
  t0 = time.perf_counter()
  lowered = jitted.lower(*args)
  t1 = time.perf_counter()
  compiled = lowered.compile()
  t2 = time.perf_counter()
  return compiled, t1 - t0, t2 - t1


def time_call(fn: Callable[..., Any], *args: Any) -> Tuple[Any, float]:
  """Runs `fn(*args)` once, waits for the result, returns (result, seconds)."""
  import jax  # pylint: disable=import-outside-toplevel
  t0 = time.perf_counter()
  out = jax.block_until_ready(fn(*args))
  return out, time.perf_counter() - t0


def time_repeats(fn: Callable[..., Any], args: Sequence[Any], repeats: int) -> List[float]:
  """Wall-clock seconds of `repeats` blocking calls of `fn(*args)`.

  Args:
    fn: a compiled executable (or any callable returning JAX arrays).
    args: its arguments.
    repeats: number of timed calls, >= 1.

  Returns:
    A list of `repeats` durations in seconds, in call order.

  Raises:
    ValueError: if `repeats` < 1.
  """
  if repeats < 1:
    raise ValueError(f"`repeats` must be >= 1, got {repeats}.")
  times = []
  for _ in range(repeats):
    out, seconds = time_call(fn, *args)
    del out
    times.append(seconds)
  return times


def repeats_within_budget(requested: int, one_call_s: float, budget_s: Optional[float]) -> int:
  """Number of timed repeats: `requested`, capped so they fit in `budget_s`.

  At least one repeat is always kept. `budget_s=None` (or <= 0) means no cap.
  """
  if budget_s is None or budget_s <= 0 or one_call_s <= 0:
    return requested
  return max(1, min(requested, int(budget_s // one_call_s)))


def summarize_ms(times_s: Sequence[float]) -> Dict[str, Any]:
  """Median, min and all values of a list of durations, in milliseconds."""
  ms = [1e3 * t for t in times_s]
  return {"median_ms": statistics.median(ms), "min_ms": min(ms), "times_ms": ms}


def compiled_memory(compiled: Any) -> Optional[Dict[str, int]]:
  """XLA's static buffer plan of a compiled executable, in bytes.

  Keys: `temp`, `argument`, `output`, `alias`, `generated_code` and `total`
  (= temp + argument + output - alias, the planned footprint of one call).
  `None` when the backend provides no analysis.
  """
  try:
    stats = compiled.memory_analysis()
  except Exception:  # pylint: disable=broad-except  (backend without support)
    return None
  if stats is None:
    return None
  fields = {
      "temp": "temp_size_in_bytes",
      "argument": "argument_size_in_bytes",
      "output": "output_size_in_bytes",
      "alias": "alias_size_in_bytes",
      "generated_code": "generated_code_size_in_bytes",
  }
  out = {key: int(getattr(stats, attr, 0) or 0) for key, attr in fields.items()}
  out["total"] = out["temp"] + out["argument"] + out["output"] - out["alias"]
  return out


def _proc_status_kib(field: str) -> Optional[int]:
  """A `kB` field (e.g. 'VmHWM', 'VmRSS') of /proc/self/status, or None."""
  try:
    with open("/proc/self/status", encoding="ascii") as f:
      for line in f:
        if line.startswith(field + ":"):
          return int(line.split()[1])
  except OSError:
    return None
  return None


def rss_bytes() -> Optional[int]:
  """Current resident set size of this process (VmRSS), bytes; None if unknown."""
  kib = _proc_status_kib("VmRSS")
  return None if kib is None else kib * 1024


def peak_rss_bytes() -> Optional[int]:
  """Peak resident set size of this process so far (VmHWM), bytes.

  Falls back to `resource.getrusage(RUSAGE_SELF).ru_maxrss` (KiB on Linux)
  where /proc is unavailable.
  """
  kib = _proc_status_kib("VmHWM")
  if kib is None:
    import resource  # pylint: disable=import-outside-toplevel
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  return int(kib) * 1024


def device_memory_stats(device: Any) -> Optional[Dict[str, int]]:
  """`device.memory_stats()` (GPU/TPU allocator counters) or None (CPU)."""
  try:
    stats = device.memory_stats()
  except Exception:  # pylint: disable=broad-except  (not implemented on CPU)
    return None
  return dict(stats) if stats else None


def loadavg() -> Optional[List[float]]:
  """The 1, 5 and 15 minute load averages from /proc/loadavg, or None."""
  try:
    with open("/proc/loadavg", encoding="ascii") as f:
      return [float(v) for v in f.read().split()[:3]]
  except OSError:
    return None


def total_ram_bytes() -> Optional[int]:
  """Physical memory of the machine (MemTotal), bytes; None if unknown."""
  try:
    with open("/proc/meminfo", encoding="ascii") as f:
      for line in f:
        if line.startswith("MemTotal:"):
          return int(line.split()[1]) * 1024
  except OSError:
    pass
  try:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
  except (ValueError, OSError):
    return None


def available_ram_bytes() -> Optional[int]:
  """Memory available to new processes (MemAvailable), bytes; None if unknown."""
  try:
    with open("/proc/meminfo", encoding="ascii") as f:
      for line in f:
        if line.startswith("MemAvailable:"):
          return int(line.split()[1]) * 1024
  except OSError:
    pass
  return None
