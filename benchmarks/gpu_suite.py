"""One section of the GPU suite (JAX side or PyTorch side), or the merge of all sections.

Run by benchmarks/gpu_suite.sh, one process per (section, side), so that a crash, an
out-of-memory error or a timeout loses one section only, device-memory peaks belong to one
measurement, and JAX and PyTorch never share a process (their CUDA libraries may differ):

  python -m benchmarks.gpu_suite fid    jax|torch  --out DIR --work DIR [--tiny] [--budget_s S]
  python -m benchmarks.gpu_suite train  jax|torch  --out DIR [--model resnet|sndcgan|spade]
                                                   [--no_donate]
  python -m benchmarks.gpu_suite blocks jax|torch  --out DIR [--tiny]
  python -m benchmarks.gpu_suite merge             --out DIR

Sections (see each module's docstring):
  fid    (benchmarks/gpu_suite_fid.py): FID Inception images/s at batch 200 from uint8 32x32,
         JAX float32 / bfloat16 vs PyTorch float32 (TF32 off and on) / bf16 autocast, on the
         same (randomly initialised) weights; the max abs feature difference.
  train  (benchmarks/gpu_suite_train.py): the ResNet SNGAN CIFAR-10 train step (n_critic 5,
         batch 64) from genattn_jax.training.step vs the PyTorch reference in
         benchmarks/torch_ref/ (also --model sndcgan, and spade: the SPADE / GauGAN step of
         configs/pairs_demo.py without its VGG term); parameter counts of both sides; peak
         device memory (JAX `peak_bytes_in_use`, torch `max_memory_allocated`) or, on CPU,
         peak RSS.
  blocks (benchmarks/gpu_suite_blocks.py): AN, SAGAN self-attention (plain and
         memory-efficient), CBAM, LAP and SPAP forward times on [1, H, W, 32], H = 128..1024
         (the AN paper's Table 5 layout), out-of-memory recorded; PyTorch self-attention and
         AN for comparison.

Every process writes its JSON file (`<section>_<side>[_<variant>].json` in --out) at start and
again after every measurement, so a run cut off by a timeout still leaves what it measured.
`merge` gathers them into `summary.json` with the JAX / PyTorch ratios. Nothing here needs
ml_collections, grain, tfds or clu; the JAX side imports only genattn_jax's model, layer,
training-step and Inception modules, the PyTorch side only torch, numpy and torch_ref.
"""

import argparse
import json
import os
import platform
import sys
import time
from typing import Any, Callable, Dict, List, Optional

SECTIONS = ("fid", "train", "blocks")
SIDES = ("jax", "torch")
# StudioGAN's published figure for SNGAN on CIFAR-10 (peer figure, not measured here).
STUDIOGAN_SNGAN_S_PER_STEP = 0.34


class Record:
  """A JSON object that is rewritten to `path` (atomically) after every change."""

  def __init__(self, path: str, base: Dict[str, Any]):
    self.path = path
    self.data = dict(base)
    self.data["status"] = "running"
    self.save()

  def set(self, key: str, value: Any) -> None:
    self.data[key] = value
    self.save()

  def update(self, **kwargs: Any) -> None:
    self.data.update(kwargs)
    self.save()

  def save(self) -> None:
    tmp = self.path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
      json.dump(self.data, f, indent=1, default=_json_default)
    os.replace(tmp, self.path)


def _json_default(obj: Any) -> Any:
  if hasattr(obj, "tolist"):
    return obj.tolist()
  return repr(obj)


class Deadline:
  """Wall-clock budget of one process: `left()` seconds, `allows(s)` for a next step."""

  def __init__(self, budget_s: float):
    self.end = time.monotonic() + budget_s

  def left(self) -> float:
    return self.end - time.monotonic()

  def allows(self, seconds: float) -> bool:
    return self.left() > seconds


def host_info() -> Dict[str, Any]:
  """Host facts common to both sides (CPU count, load average, Python)."""
  try:
    load = list(os.getloadavg())
  except OSError:
    load = None
  return {"python": platform.python_version(), "machine": platform.machine(),
          "cpu_count": os.cpu_count(), "loadavg_1_5_15": load,
          "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def jax_info() -> Dict[str, Any]:
  """JAX device and library versions."""
  import flax  # pylint: disable=import-outside-toplevel
  import jax  # pylint: disable=import-outside-toplevel
  import optax  # pylint: disable=import-outside-toplevel
  dev = jax.devices()[0]
  info = {"framework": "jax", "platform": dev.platform, "device_kind": dev.device_kind,
          "device_count": jax.device_count(), "jax": jax.__version__, "flax": flax.__version__,
          "optax": optax.__version__,
          "default_matmul_precision": str(getattr(jax.config, "jax_default_matmul_precision",
                                                  "unknown")),
          "xla_flags": os.environ.get("XLA_FLAGS", "")}
  try:
    import jaxlib  # pylint: disable=import-outside-toplevel
    info["jaxlib"] = jaxlib.__version__
  except (ImportError, AttributeError):
    pass
  try:
    info["platform_version"] = dev.client.platform_version
  except AttributeError:
    pass
  return info


def torch_info() -> Dict[str, Any]:
  """PyTorch device and library versions."""
  import torch  # pylint: disable=import-outside-toplevel
  cuda = torch.cuda.is_available()
  info = {"framework": "torch", "torch": torch.__version__, "cuda_available": cuda,
          "num_threads": torch.get_num_threads(), "cuda": torch.version.cuda}
  if cuda:
    info.update(device_kind=torch.cuda.get_device_name(0),
                cudnn=torch.backends.cudnn.version(),
                capability=list(torch.cuda.get_device_capability(0)))
  else:
    info["device_kind"] = "cpu"
  return info


def torch_device():
  import torch  # pylint: disable=import-outside-toplevel
  return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def torch_sync(device) -> None:
  import torch  # pylint: disable=import-outside-toplevel
  if device.type == "cuda":
    torch.cuda.synchronize()


def median(values: List[float]) -> float:
  s = sorted(values)
  n = len(s)
  return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


def timed_repeats(run_once: Callable[[], None], *, repeats: int, deadline: Deadline,
                  reserve_s: float = 0.0) -> List[float]:
  """Seconds of up to `repeats` calls of `run_once` (which must block until done).

  Stops early (keeping at least one timing) when the next call, judged by the slowest
  so far, would not end `reserve_s` seconds before the deadline.
  """
  times: List[float] = []
  for _ in range(repeats):
    if times and not deadline.allows(max(times) + reserve_s):
      break
    t0 = time.perf_counter()
    run_once()
    times.append(time.perf_counter() - t0)
  return times


def is_oom(err: BaseException) -> bool:
  text = f"{type(err).__name__}: {err}"
  return (isinstance(err, MemoryError) or "RESOURCE_EXHAUSTED" in text
          or "out of memory" in text.lower() or "OutOfMemory" in text)


def error_text(err: BaseException, limit: int = 600) -> str:
  text = f"{type(err).__name__}: {err}"
  return ("oom: " if is_oom(err) else "error: ") + text[:limit]


# ------------------------------------------------------------------------------------
# merge


def _load(out: str, name: str) -> Optional[Dict[str, Any]]:
  path = os.path.join(out, name)
  if not os.path.exists(path):
    return None
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def _ratio(num: Optional[float], den: Optional[float]) -> Optional[float]:
  if not num or not den:
    return None
  return float(num) / float(den)


def merge(out: str) -> Dict[str, Any]:
  """Collects every section file in `out` into one summary with JAX / PyTorch ratios.

  Ratios are speed-ups of JAX over PyTorch: images/s JAX / images/s torch for FID, and
  seconds/step torch / seconds/step JAX for the train step and the blocks (> 1: JAX faster).
  """
  files = {n: _load(out, n) for n in sorted(os.listdir(out)) if n.endswith(".json")
           and n != "summary.json"}
  summary: Dict[str, Any] = {"files": {n: (d or {}).get("status") for n, d in files.items()}}
  fj, ft = files.get("fid_jax.json"), files.get("fid_torch.json")
  if fj or ft:
    jr = (fj or {}).get("results", {})
    tr = (ft or {}).get("results", {})
    ips = lambda r, k: (r.get(k) or {}).get("img_per_s")  # noqa: E731
    summary["fid"] = {
        "batch": (fj or ft or {}).get("batch"),
        "jax_img_per_s": {k: ips(jr, k) for k in jr},
        "torch_img_per_s": {k: ips(tr, k) for k in tr},
        "ratio_fp32_jax_highest_vs_torch_fp32_no_tf32": _ratio(ips(jr, "fp32_highest"),
                                                               ips(tr, "fp32_no_tf32")),
        "ratio_fp32_jax_default_vs_torch_fp32_tf32": _ratio(ips(jr, "fp32_default_precision"),
                                                            ips(tr, "fp32_tf32")),
        "ratio_bf16_jax_vs_torch_bf16_autocast": _ratio(ips(jr, "bf16"),
                                                        ips(tr, "bf16_autocast")),
        "ratio_bf16_highest_jax_vs_torch_bf16_autocast": _ratio(ips(jr, "bf16_highest"),
                                                                ips(tr, "bf16_autocast")),
        "max_abs_pool_diff_jax_vs_torch_fp32": (ft or {}).get("max_abs_pool_diff_vs_jax_fp32"),
        "jax_bf16_max_abs_pool_error": (fj or {}).get("bf16_max_abs_pool_error_vs_fp32"),
    }
  train = {}
  for name, data in files.items():
    if name.startswith("train_jax") and data:
      model = data.get("model", "resnet")
      tj = data.get("result", {})
      if data.get("donate") is False:
        train[model + "_no_donation"] = {"jax_s_per_step": tj.get("median_s_per_step"),
                                         "jax_memory": tj.get("memory")}
        continue
      torch_data = files.get(f"train_torch_{model}.json") or {}
      tt = torch_data.get("result", {})
      train[model] = {
          "jax_s_per_step": tj.get("median_s_per_step"),
          "torch_s_per_step": tt.get("median_s_per_step"),
          "speedup_jax_over_torch": _ratio(tt.get("median_s_per_step"),
                                           tj.get("median_s_per_step")),
          "params_jax": data.get("param_counts"), "params_torch": torch_data.get("param_counts"),
          "jax_compile_s": tj.get("compile_s"),
          "jax_memory": tj.get("memory"), "torch_memory": tt.get("memory"),
      }
      for other, odata in files.items():  # torch runs with a set thread count
        prefix = f"train_torch_{model}_threads"
        if other.startswith(prefix) and odata:
          n = other[len(prefix):-len(".json")]
          ot = odata.get("result", {})
          train[model][f"torch_{n}_threads_s_per_step"] = ot.get("median_s_per_step")
          train[model][f"speedup_jax_over_torch_{n}_threads"] = _ratio(
              ot.get("median_s_per_step"), tj.get("median_s_per_step"))
  if train:
    train["studiogan_sngan_cifar10_s_per_step (published, peer figure)"] = (
        STUDIOGAN_SNGAN_S_PER_STEP)
    summary["train"] = train
  bj, bt = files.get("blocks_jax.json"), files.get("blocks_torch.json")
  if bj or bt:
    rows = {}
    for side, data in (("jax", bj), ("torch", bt)):
      for block, by_size in ((data or {}).get("results") or {}).items():
        for size, row in by_size.items():
          rows.setdefault(block, {}).setdefault(size, {})[side] = (
              row.get("median_ms") if row.get("median_ms") is not None else row.get("status"))
    summary["blocks_ms"] = rows
    summary["blocks_paper_table5_ms_rtx2080"] = (bj or {}).get("paper_table5_ms")
  with open(os.path.join(out, "summary.json"), "w", encoding="utf-8") as f:
    json.dump(summary, f, indent=1)
  return summary


def main(argv: Optional[List[str]] = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("section", choices=SECTIONS + ("merge",))
  parser.add_argument("side", nargs="?", choices=SIDES)
  parser.add_argument("--out", required=True, help="folder for the JSON files")
  parser.add_argument("--work", default="", help="scratch folder shared by the two sides")
  parser.add_argument("--tiny", action="store_true", help="tiny sizes (CPU smoke test)")
  parser.add_argument("--budget_s", type=float, default=60.0,
                      help="this process's time budget; no measurement starts past it")
  parser.add_argument("--model", default="resnet", choices=("resnet", "sndcgan", "spade"))
  parser.add_argument("--no_donate", action="store_true",
                      help="train/jax: jit the step without donating the state")
  parser.add_argument("--torch_threads", type=int, default=0,
                      help="train/torch: torch.set_num_threads (0: PyTorch's default)")
  parser.add_argument("--repeats", type=int, default=0, help="0: the section's default")
  parser.add_argument("--sizes", default="", help="blocks: comma-separated H (default "
                      "128,256,512,1024; tiny 16,32)")
  args = parser.parse_args(argv)
  os.makedirs(args.out, exist_ok=True)
  if args.section == "merge":
    print(json.dumps(merge(args.out), indent=1))
    return 0
  if args.side is None:
    parser.error("SIDE (jax or torch) is required for a section.")
  if args.section == "fid":
    from benchmarks import gpu_suite_fid as mod  # pylint: disable=import-outside-toplevel
  elif args.section == "train":
    from benchmarks import gpu_suite_train as mod  # pylint: disable=import-outside-toplevel
  else:
    from benchmarks import gpu_suite_blocks as mod  # pylint: disable=import-outside-toplevel
  return getattr(mod, "run_" + args.side)(args)


if __name__ == "__main__":
  sys.exit(main())
