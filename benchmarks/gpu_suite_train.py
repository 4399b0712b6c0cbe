"""GPU suite, section `train`: one GAN train step, genattn_jax vs the PyTorch reference.

Models (`--model`), each with its experiment config's optimiser and loss (`--tiny`: widths
x 1/16, batch 4, n_critic 1):
  resnet:  configs/cifar10_sngan.py (ResNet SNGAN, projection D, CIFAR-10 32x32, batch 64,
           hinge, Adam G 1e-4 / D 4e-4, betas (0, 0.999), EMA 0.999) with n_critic = 5 (the
           SNGAN paper's n_dis = 5 for the ResNet, and StudioGAN's SNGAN CIFAR-10 setting,
           whose published 0.34 s/step is quoted as a peer figure; the config itself trains
           with n_critic = 1).
  sndcgan: SNDCGAN 32x32 with the optimiser / loss of configs/cifar10_sndcgan_spap.py but
           without its SPAP and atrous blocks (unconditional, transposed-conv G, spectral norm
           in G and D, non-saturating loss, Adam G 1e-4 / D 2e-4, betas (0.5, 0.999)), n_critic 1,
           batch 64.

JAX side: `genattn_jax.models.build_gan`, `training.state.create_gan_state`,
`training.step.make_train_step` and `training.parallel.JitBackend` (jit over a 'data' mesh of
all devices, state donated), exactly as train.py runs them. With ml_collections installed the
config is the experiment file's `get_config()` (then overridden as above); without it, the same
values from `TRAIN_SPECS` (tests/test_gpu_suite_smoke.py checks that they agree).
PyTorch side: benchmarks/torch_ref/ (same architecture and parameter count, eager mode,
cudnn.benchmark on, TF32 at PyTorch's defaults; `--torch_threads N` sets
torch.set_num_threads, file `train_torch_<model>_threads<N>.json`).

Both sides run on one device-resident batch of [n_critic * 64, 32, 32, 3] images in [-1, 1]
(no input pipeline), 2 warm-up steps (1 on CPU), then repeats of K steps (K = 10 on GPU, 1 on
CPU), each repeat waited for; s/step = median repeat / K.

Memory: JAX on GPU, `device.memory_stats()` ('peak_bytes_in_use' over the process, which only
built the state and ran this step, and 'bytes_in_use' after the steps); on CPU the process's
peak RSS (VmHWM) over the timed steps (reset through /proc/self/clear_refs after compiling)
minus the RSS before them, and XLA's static plan of the compiled step. PyTorch:
`torch.cuda.max_memory_allocated` / the same RSS figures on CPU. `--no_donate` compiles the
step without donating the state (variant file `train_jax_<model>_no_donation.json`): the
difference of the peaks verifies the donation.
"""

import os
import time
from typing import Any, Dict, Tuple

import numpy as np

from benchmarks import gpu_suite as suite

# Values of the experiment configs that the step depends on (see the module docstring).
TRAIN_SPECS: Dict[str, Dict[str, Any]] = {
    "resnet": {"config": "configs/cifar10_sngan.py", "model": "resnet", "resolution": 32,
               "num_classes": 10, "batch_size": 64, "n_critic": 5, "loss": "hinge",
               "g_lr": 1e-4, "d_lr": 4e-4, "b1": 0.0, "b2": 0.999, "ema_decay": 0.999,
               "ema_warmup_steps": 1000},
    "sndcgan": {"config": "configs/cifar10_sndcgan_spap.py without SPAP / atrous D",
                "model": "sndcgan", "resolution": 32, "num_classes": 0, "batch_size": 64,
                "n_critic": 1, "loss": "non_saturating", "g_lr": 1e-4, "d_lr": 2e-4,
                "b1": 0.5, "b2": 0.999, "ema_decay": 0.999, "ema_warmup_steps": 1000},
}
TINY_WIDTH = 1 / 16
TINY_BATCH = 4
TINY_N_CRITIC = 1  # --tiny: the shortest compile


class AttrDict(dict):
  """Attribute access to a dict (the parts of a ConfigDict the step reads)."""

  def __getattr__(self, name):
    try:
      return self[name]
    except KeyError as e:
      raise AttributeError(name) from e

  def __setattr__(self, name, value):
    self[name] = value


def make_config(model: str, tiny: bool) -> Tuple[Any, str]:
  """The train-step config for `model`, and where it came from."""
  spec = TRAIN_SPECS[model]
  try:
    if model == "resnet":
      from configs import cifar10_sngan as cfg_mod  # pylint: disable=import-outside-toplevel
    else:
      from configs import cifar10_sndcgan_spap as cfg_mod  # pylint: disable=import-outside-toplevel
    config = cfg_mod.get_config()
    source = spec["config"] + " get_config()"
    if model == "sndcgan":
      config.model.g_blocks, config.model.d_blocks = [], []
      config.model.d_atrous = False
    config.training.n_critic = spec["n_critic"]
  except ImportError:  # no ml_collections on this machine
    from genattn_jax import models  # pylint: disable=import-outside-toplevel
    mcfg = models.model_defaults(spec["model"], spec["resolution"])
    mcfg["num_classes"] = spec["num_classes"]
    config = AttrDict(
        model=AttrDict(mcfg), data=AttrDict(channels=3),
        training=AttrDict(batch_size=spec["batch_size"], n_critic=spec["n_critic"],
                          loss=spec["loss"], ema_decay=spec["ema_decay"],
                          ema_warmup_steps=spec["ema_warmup_steps"]),
        optimizer=AttrDict(g_lr=spec["g_lr"], d_lr=spec["d_lr"], b1=spec["b1"],
                           b2=spec["b2"], grad_clip=0.0))
    source = "TRAIN_SPECS (ml_collections not installed)"
  if tiny:
    config.model.g_width = config.model.d_width = TINY_WIDTH
    config.training.batch_size = TINY_BATCH
    config.training.n_critic = TINY_N_CRITIC
  return config, source


def _reset_peak_rss() -> bool:
  try:
    with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
      f.write("5")
    return True
  except OSError:
    return False


def _file(args) -> str:
  suffix = "_no_donation" if args.side == "jax" and args.no_donate else ""
  if args.side == "torch" and args.torch_threads > 0:
    suffix = f"_threads{args.torch_threads}"
  return os.path.join(args.out, f"train_{args.side}_{args.model}{suffix}.json")


def run_jax(args) -> int:
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from benchmarks import _timing  # pylint: disable=import-outside-toplevel
  from genattn_jax import models  # pylint: disable=import-outside-toplevel
  from genattn_jax.training import parallel  # pylint: disable=import-outside-toplevel
  from genattn_jax.training import state as state_lib  # pylint: disable=import-outside-toplevel
  from genattn_jax.training import step as step_lib  # pylint: disable=import-outside-toplevel

  deadline = suite.Deadline(args.budget_s)
  config, source = make_config(args.model, args.tiny)
  rec = suite.Record(_file(args), {
      "section": "train", "side": "jax", "model": args.model, "donate": not args.no_donate,
      "host": suite.host_info(), "env": suite.jax_info(), "config_source": source,
      "spec": TRAIN_SPECS[args.model], "tiny": args.tiny, "n_critic": config.training.n_critic,
      "width": float(config.model.g_width), "batch_per_d_update": config.training.batch_size})
  device = jax.devices()[0]
  on_cpu = device.platform == "cpu"
  rss_idle = _timing.rss_bytes()
  gen, disc = models.build_gan(config.model)
  t0 = time.perf_counter()
  state = state_lib.create_gan_state(config, gen, disc, jax.random.PRNGKey(0))
  jax.block_until_ready(state)
  rec.update(init_s=time.perf_counter() - t0, param_counts={
      "G": state_lib.param_count(state.g_params), "D": state_lib.param_count(state.d_params)})
  step_fn = step_lib.make_train_step(config, gen, disc)
  backend = parallel.JitBackend(step_fn)
  if args.no_donate:
    jitted = jax.jit(step_fn, in_shardings=(backend.replicated, backend.batch_sharding,
                                            backend.replicated),
                     out_shardings=(backend.replicated, backend.replicated))
  else:
    jitted = backend._step  # pylint: disable=protected-access  (the trainer's jitted step)
  n, b, r = config.training.n_critic, config.training.batch_size, config.model.resolution
  rng = np.random.default_rng(0)
  batch = backend.put_batch({
      "image": rng.uniform(-1, 1, (n * b, r, r, 3)).astype(np.float32),
      "label": rng.integers(0, max(config.model.num_classes, 1), (n * b,)).astype(np.int32)})
  state = backend.put_state(state)
  key = jax.random.PRNGKey(1)
  state_bytes = sum(x.nbytes for x in jax.tree_util.tree_leaves(state))
  rec.set("state_bytes", int(state_bytes))
  result: Dict[str, Any] = {}
  try:
    t0 = time.perf_counter()
    compiled = jitted.lower(state, batch, key).compile()
    result["compile_s"] = time.perf_counter() - t0
    result["xla_memory_plan_bytes"] = _timing.compiled_memory(compiled)
    rec.set("result", result)
    old_leaf = jax.tree_util.tree_leaves(state)[0]
    for _ in range(1 if on_cpu else 2):  # warm-up
      state, metrics = compiled(state, batch, key)
    jax.block_until_ready(metrics)
    result["donated_input_deleted"] = bool(old_leaf.is_deleted())
    result["first_metrics"] = {k: float(v) for k, v in jax.device_get(metrics).items()}
    k_steps = 1 if on_cpu else 10
    rss_before = _timing.rss_bytes()
    rss_reset = _reset_peak_rss()
    holder = {"state": state}

    def run_k():
      st = holder["state"]
      m = None
      for _ in range(k_steps):
        st, m = compiled(st, batch, key)
      jax.block_until_ready(m)
      holder["state"] = st

    times = suite.timed_repeats(run_k, repeats=args.repeats or (3 if on_cpu else 5),
                                deadline=deadline)
    per_step = [t / k_steps for t in times]
    mem: Dict[str, Any] = {}
    stats = _timing.device_memory_stats(device)
    if stats:
      mem.update(device_peak_bytes_in_use=stats.get("peak_bytes_in_use"),
                 device_bytes_in_use=stats.get("bytes_in_use"),
                 device_bytes_limit=stats.get("bytes_limit"))
    mem.update(rss_idle_bytes=rss_idle, rss_before_steps_bytes=rss_before,
               peak_rss_during_steps_bytes=_timing.peak_rss_bytes() if rss_reset else None,
               process_peak_rss_bytes=None if rss_reset else _timing.peak_rss_bytes())
    if rss_reset and rss_before:
      mem["peak_rss_increase_during_steps_bytes"] = mem["peak_rss_during_steps_bytes"] - rss_before
    result.update(status="ok", steps_per_repeat=k_steps, s_per_step=per_step,
                  median_s_per_step=suite.median(per_step), min_s_per_step=min(per_step),
                  memory=mem)
  except Exception as err:  # pylint: disable=broad-except
    result["status"] = suite.error_text(err)
  rec.set("result", result)
  rec.set("status", "done")
  return 0


def run_torch(args) -> int:
  import torch  # pylint: disable=import-outside-toplevel
  from benchmarks import _timing  # pylint: disable=import-outside-toplevel
  from benchmarks.torch_ref import sngan  # pylint: disable=import-outside-toplevel
  from benchmarks.torch_ref import train_step  # pylint: disable=import-outside-toplevel

  deadline = suite.Deadline(args.budget_s)
  spec = TRAIN_SPECS[args.model]
  width = TINY_WIDTH if args.tiny else 1.0
  b = TINY_BATCH if args.tiny else spec["batch_size"]
  n, r = (TINY_N_CRITIC if args.tiny else spec["n_critic"]), spec["resolution"]
  device = suite.torch_device()
  if args.torch_threads > 0:
    torch.set_num_threads(args.torch_threads)
  torch.backends.cudnn.benchmark = True
  torch.manual_seed(0)
  rec = suite.Record(_file(args), {
      "section": "train", "side": "torch", "model": args.model, "host": suite.host_info(),
      "env": suite.torch_info(), "spec": spec, "tiny": args.tiny, "n_critic": n, "width": width,
      "batch_per_d_update": b, "cudnn_benchmark": True,
      "tf32": {"cudnn": torch.backends.cudnn.allow_tf32,
               "matmul": torch.backends.cuda.matmul.allow_tf32}})
  rss_idle = _timing.rss_bytes()
  gen, disc, num_classes = sngan.build(args.model, width)
  rec.set("param_counts", {"G": sngan.param_count(gen), "D": sngan.param_count(disc)})
  gen, disc = gen.to(device), disc.to(device)
  trainer = train_step.GANTrainer(
      gen, disc, num_classes=num_classes, loss=spec["loss"], n_critic=n, g_lr=spec["g_lr"],
      d_lr=spec["d_lr"], betas=(spec["b1"], spec["b2"]), ema_decay=spec["ema_decay"])
  gen_np = np.random.default_rng(0)
  images = torch.from_numpy(gen_np.uniform(-1, 1, (n * b, 3, r, r)).astype(np.float32)).to(device)
  labels = torch.from_numpy(gen_np.integers(0, max(num_classes, 1), (n * b,))).to(device)
  result: Dict[str, Any] = {}
  try:
    t0 = time.perf_counter()
    warmup = 1 if device.type == "cpu" else 2
    for _ in range(warmup):
      metrics = trainer.step(images, labels)
    suite.torch_sync(device)
    result["warmup_steps"] = warmup
    result["warmup_s"] = time.perf_counter() - t0
    result["first_metrics"] = {k: float(v) for k, v in metrics.items()}
    k_steps = 10 if device.type == "cuda" else 1
    rss_before = _timing.rss_bytes()
    rss_reset = _reset_peak_rss()

    def run_k():
      for _ in range(k_steps):
        trainer.step(images, labels)
      suite.torch_sync(device)

    times = suite.timed_repeats(run_k, repeats=args.repeats or (3 if device.type == "cpu"
                                                                   else 5), deadline=deadline)
    per_step = [t / k_steps for t in times]
    mem: Dict[str, Any] = {"rss_idle_bytes": rss_idle, "rss_before_steps_bytes": rss_before}
    if device.type == "cuda":
      mem["max_memory_allocated_bytes"] = int(torch.cuda.max_memory_allocated())
      mem["max_memory_reserved_bytes"] = int(torch.cuda.max_memory_reserved())
    if rss_reset:
      mem["peak_rss_during_steps_bytes"] = _timing.peak_rss_bytes()
      mem["peak_rss_increase_during_steps_bytes"] = mem["peak_rss_during_steps_bytes"] - rss_before
    result.update(status="ok", steps_per_repeat=k_steps, s_per_step=per_step,
                  median_s_per_step=suite.median(per_step), min_s_per_step=min(per_step),
                  memory=mem)
  except Exception as err:  # pylint: disable=broad-except
    result["status"] = suite.error_text(err)
  rec.set("result", result)
  rec.set("status", "done")
  return 0
