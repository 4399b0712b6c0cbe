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
  spade:   SPADE / GauGAN label map -> photo (Park et al., CVPR 2019), the model and training
           of configs/pairs_demo.py: Cityscapes-like 128x256, 35 labels + the instance-edge
           channel, G ngf 16 / SPADE hidden 32, multi-scale PatchGAN D (2 scales, 4 layers,
           ndf 16), the 'semantic' task's hinge loss + feature matching (lambda 10), Adam G 1e-4
           / D 4e-4, betas (0, 0.9), n_critic 1, batch 2, no EMA (decay 0). The VGG perceptual
           term is left out on both sides (task.lambda_vgg = 0, "lambda_vgg": 0 in the JSON
           spec): its weights are not on the GPU machine, and so both sides do the same work.
           `--tiny`: 32x64, ngf 2, ndf 4, SPADE hidden 4, batch 2. Batch: 'image' in [-1, 1],
           'label' a random map of 8x8-pixel blocks, 'edge' its block boundaries (always
           present: the semantic task reads it).

JAX side: `genattn_jax.models.build_gan`, `training.state.create_gan_state`,
`training.step.make_train_step` and `training.parallel.JitBackend` (jit over a 'data' mesh of
all devices, state donated), exactly as train.py runs them. With ml_collections installed the
config is the experiment file's `get_config()` (then overridden as above); without it, the same
values from `TRAIN_SPECS` (tests/test_gpu_suite_smoke.py checks that they agree).
PyTorch side: benchmarks/torch_ref/ (sngan.py + train_step.py; spade.py for SPADE, whose layout
tests/test_spade_bench.py checks against the Flax model on copied variables): same
architecture and parameter count, eager mode, cudnn.benchmark on, TF32 at PyTorch's defaults;
`--torch_threads N` sets torch.set_num_threads, file `train_torch_<model>_threads<N>.json`.

Both sides run on one device-resident batch of [n_critic * 64, 32, 32, 3] images in [-1, 1]
(SPADE: 2 photos, label maps and edge maps of 128x256; no input pipeline), 2 warm-up steps
(1 on CPU), then repeats of K steps (K = 10 on GPU, 1 on CPU), each repeat waited for;
s/step = median repeat / K.

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
    "spade": {"config": "configs/pairs_demo.py with task.lambda_vgg = 0", "model": "spade",
              "resolution": 128, "image_size": [128, 256], "layout": "cityscapes",
              "label_nc": 35, "contain_dontcare_label": False, "use_instance": True,
              "ngf": 16, "ndf": 16, "spade_hidden": 32, "num_d": 2, "n_layers_d": 4,
              "num_upsampling_layers": "normal", "g_block_bias": False, "batch_size": 2,
              "n_critic": 1, "loss": "hinge", "lambda_feat": 10.0, "lambda_vgg": 0.0,
              "g_lr": 1e-4, "d_lr": 4e-4, "b1": 0.0, "b2": 0.9, "ema_decay": 0.0,
              "ema_warmup_steps": 0, "num_steps": 400, "decay_start": 200},
}
TINY_WIDTH = 1 / 16
TINY_BATCH = 4
TINY_N_CRITIC = 1  # --tiny: the shortest compile
# SPADE's model fields (TRAIN_SPECS['spade'] keys), and their --tiny values.
SPADE_MODEL_FIELDS = ("image_size", "ngf", "ndf", "spade_hidden", "num_d", "n_layers_d",
                      "num_upsampling_layers", "g_block_bias")
SPADE_TINY = {"resolution": 32, "image_size": [32, 64], "ngf": 2, "ndf": 4, "spade_hidden": 4,
              "batch_size": 2}
SPADE_LABEL_BLOCK = 8  # the random label maps are constant on 8x8 blocks


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
  if model == "spade":
    return _spade_config(tiny)
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


def spade_fields(tiny: bool) -> Dict[str, Any]:
  """TRAIN_SPECS['spade'], with the --tiny sizes when `tiny` (both sides read these)."""
  fields = dict(TRAIN_SPECS["spade"])
  if tiny:
    fields.update(SPADE_TINY, n_critic=TINY_N_CRITIC)
  return fields


def _spade_config(tiny: bool) -> Tuple[Any, str]:
  """configs/pairs_demo.py's config with lambda_vgg = 0 (see the module doc)."""
  spec, fields = TRAIN_SPECS["spade"], spade_fields(tiny)
  try:
    from configs import pairs_demo  # pylint: disable=import-outside-toplevel
    config = pairs_demo.get_config()
    source = "configs/pairs_demo.py get_config()"
    config.task.lambda_vgg = spec["lambda_vgg"]
  except ImportError:  # no ml_collections on this machine
    from genattn_jax import models  # pylint: disable=import-outside-toplevel
    mcfg = models.model_defaults("spade", spec["resolution"])
    mcfg.update({k: spec[k] for k in SPADE_MODEL_FIELDS})
    config = AttrDict(
        model=AttrDict(mcfg),
        data=AttrDict(layout=spec["layout"], label_nc=spec["label_nc"],
                      contain_dontcare_label=spec["contain_dontcare_label"],
                      use_instance=spec["use_instance"], channels=3),
        task=AttrDict(name="semantic", lambda_feat=spec["lambda_feat"],
                      lambda_vgg=spec["lambda_vgg"]),
        training=AttrDict(batch_size=spec["batch_size"], n_critic=spec["n_critic"],
                          loss=spec["loss"], ema_decay=spec["ema_decay"],
                          ema_warmup_steps=spec["ema_warmup_steps"],
                          num_steps=spec["num_steps"]),
        optimizer=AttrDict(g_lr=spec["g_lr"], d_lr=spec["d_lr"], b1=spec["b1"],
                           b2=spec["b2"], grad_clip=0.0, decay_start=spec["decay_start"]))
    source = "TRAIN_SPECS (ml_collections not installed)"
  if tiny:
    config.model.resolution = fields["resolution"]
    for k in ("image_size", "ngf", "ndf", "spade_hidden"):
      config.model[k] = fields[k]
    config.training.batch_size = fields["batch_size"]
    config.training.n_critic = fields["n_critic"]
  return config, source


def spade_batch(rows: int, height: int, width: int, num_labels: int,
                seed: int = 0) -> Dict[str, np.ndarray]:
  """'image' [rows, H, W, 3] float32 in [-1, 1], 'label' [rows, H, W] int32 (random, constant
  on SPADE_LABEL_BLOCK-pixel blocks), 'edge' [rows, H, W] float32 (1 on block boundaries)."""
  rng = np.random.default_rng(seed)
  k = SPADE_LABEL_BLOCK
  coarse = rng.integers(0, num_labels, (rows, -(-height // k), -(-width // k)))
  label = np.repeat(np.repeat(coarse, k, axis=1), k, axis=2)[:, :height, :width]
  edge = np.zeros(label.shape, bool)
  edge[:, 1:] |= label[:, 1:] != label[:, :-1]
  edge[:, :-1] |= label[:, 1:] != label[:, :-1]
  edge[:, :, 1:] |= label[:, :, 1:] != label[:, :, :-1]
  edge[:, :, :-1] |= label[:, :, 1:] != label[:, :, :-1]
  image = rng.uniform(-1, 1, (rows, height, width, 3)).astype(np.float32)
  return {"image": image, "label": label.astype(np.int32), "edge": edge.astype(np.float32)}


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
  if args.model == "spade":
    rec.set("sizes", {k: config.model[k] for k in ("image_size", "ngf", "ndf", "spade_hidden")})
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
  if args.model == "spade":
    h, w = config.model.image_size
    batch = backend.put_batch(spade_batch(n * b, h, w, step_fn.task.num_labels))
  else:
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
  if args.model == "spade":
    width, b = 1.0, spade_fields(args.tiny)["batch_size"]
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
  if args.model == "spade":
    trainer, inputs = _torch_spade(args, rec, n * b, device)
  else:
    gen, disc, num_classes = sngan.build(args.model, width)
    rec.set("param_counts", {"G": sngan.param_count(gen), "D": sngan.param_count(disc)})
    gen, disc = gen.to(device), disc.to(device)
    trainer = train_step.GANTrainer(
        gen, disc, num_classes=num_classes, loss=spec["loss"], n_critic=n, g_lr=spec["g_lr"],
        d_lr=spec["d_lr"], betas=(spec["b1"], spec["b2"]), ema_decay=spec["ema_decay"])
    gen_np = np.random.default_rng(0)
    inputs = (torch.from_numpy(gen_np.uniform(-1, 1, (n * b, 3, r, r)).astype(np.float32))
              .to(device),
              torch.from_numpy(gen_np.integers(0, max(num_classes, 1), (n * b,))).to(device))
  result: Dict[str, Any] = {}
  try:
    t0 = time.perf_counter()
    warmup = 1 if device.type == "cpu" else 2
    for _ in range(warmup):
      metrics = trainer.step(*inputs)
    suite.torch_sync(device)
    result["warmup_steps"] = warmup
    result["warmup_s"] = time.perf_counter() - t0
    result["first_metrics"] = {k: float(v) for k, v in metrics.items()}
    k_steps = 10 if device.type == "cuda" else 1
    rss_before = _timing.rss_bytes()
    rss_reset = _reset_peak_rss()

    def run_k():
      for _ in range(k_steps):
        trainer.step(*inputs)
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


def _torch_spade(args, rec, rows: int, device):
  """The SPADE trainer of benchmarks/torch_ref/spade.py and its (image, label, edge) inputs."""
  import torch  # pylint: disable=import-outside-toplevel
  from benchmarks.torch_ref import spade as torch_spade  # pylint: disable=import-outside-toplevel
  fields = spade_fields(args.tiny)
  rec.set("sizes", {k: fields[k] for k in ("image_size", "ngf", "ndf", "spade_hidden")})
  gen, disc = torch_spade.build(fields)
  rec.set("param_counts", {"G": torch_spade.param_count(gen),
                           "D": torch_spade.param_count(disc)})
  num_labels = int(fields["label_nc"]) + int(fields["contain_dontcare_label"])
  trainer = torch_spade.SPADETrainer(
      gen.to(device), disc.to(device), num_labels=num_labels,
      use_instance=bool(fields["use_instance"]), n_critic=int(fields["n_critic"]),
      g_lr=fields["g_lr"], d_lr=fields["d_lr"], betas=(fields["b1"], fields["b2"]),
      lambda_feat=fields["lambda_feat"], ema_decay=fields["ema_decay"])
  h, w = fields["image_size"]
  batch = spade_batch(rows, h, w, num_labels)
  inputs = (torch.from_numpy(batch["image"]).permute(0, 3, 1, 2).contiguous().to(device),
            torch.from_numpy(batch["label"]).long().to(device),
            torch.from_numpy(batch["edge"]).to(device))
  return trainer, inputs
