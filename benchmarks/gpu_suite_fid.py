"""GPU suite, section `fid`: FID Inception throughput, JAX vs PyTorch, same weights.

Input path of the CPU benchmark (benchmarks/fid_throughput.py): seeded uint8 32x32 RGB
images, x/255, bilinear resize to 299x299 without antialias (pytorch-fid's), 2x - 1, the FID
InceptionV3 (batch norm folded), 2048-d pool features. Each timed pass moves every batch from
host to device (uint8) and runs the network; images/s = images / wall time of the pass,
median over repeats.

Weights: the real FID weights (87 MB) do not travel to the GPU machine, so both sides run
the same random ones, drawn with NumPy (seed 0) in the shapes of
`FIDInceptionV3(fold_bn=True)`: kernels N(0, 2 / fan_in) (He, so activations keep their size
through the ReLU convs) and biases (the folded batch norms) N(0, 0.1^2). Speed does not depend on the values.
The JAX side saves them to --work; the PyTorch side loads them into
benchmarks/torch_ref/inception.py and reports the max abs difference of the pool features
on the same images (and that difference relative to the largest feature).

Variants:
  JAX:   fp32_highest (the library's setting: Precision.HIGHEST, true float32 convs),
         bf16 (dtype=bfloat16, Precision.DEFAULT), fp32_default_precision (Precision.DEFAULT:
         TF32 on GPUs that have it), bf16_highest (dtype=bfloat16 with the library's
         Precision.HIGHEST, what `extract_features(dtype=bfloat16)` runs),
         library_extract_features (genattn_jax.metrics.features with its
         default micro-batching, none on GPU; needs tqdm; skipped with --tiny). --tiny (CPU smoke test): batch 2,
         2 batches, 75x75 input, the first two variants.
  torch: fp32_no_tf32 (cudnn.allow_tf32 False; matches fp32_highest), fp32_tf32 (PyTorch's
         default for convs; not on CPU), bf16_autocast. cudnn.benchmark on; inference_mode.
"""

import os
import time
from typing import Any, Dict

import numpy as np

from benchmarks import gpu_suite as suite

SEED = 0


def _sizes(args) -> Dict[str, int]:
  if args.tiny:
    return {"batch": 2, "batches": 2, "input": 75, "repeats": args.repeats or 1}
  return {"batch": 200, "batches": 10, "input": 299, "repeats": args.repeats or 3}


def _images(n: int) -> np.ndarray:
  return np.random.default_rng(SEED).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


def _random_flax_params(module, size: int) -> Dict[str, np.ndarray]:
  """Flattened {'a/b/conv/kernel': array} He-scaled random folded-BN params.

  Shapes come from `jax.eval_shape(module.init, ...)` (nothing compiled); values from NumPy:
  kernels N(0, 2 / fan_in) (He), biases N(0, 0.1^2).
  """
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  shapes = jax.eval_shape(module.init, jax.random.PRNGKey(SEED),
                          jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32))
  rng = np.random.default_rng(SEED)
  flat = {}
  for path, leaf in jax.tree_util.tree_leaves_with_path(shapes["params"]):
    key = "/".join(str(getattr(p, "key", p)) for p in path)
    if key.endswith("kernel"):
      fan_in = int(np.prod(leaf.shape[:-1]))
      value = rng.normal(0.0, np.sqrt(2.0 / fan_in), leaf.shape)
    else:
      value = rng.normal(0.0, 0.1, leaf.shape)
    flat[key] = value.astype(np.float32)
  return flat


def _unflatten(flat: Dict[str, np.ndarray]) -> Dict[str, Any]:
  tree: Dict[str, Any] = {}
  for key, value in flat.items():
    node = tree
    parts = key.split("/")
    for p in parts[:-1]:
      node = node.setdefault(p, {})
    node[parts[-1]] = value
  return {"params": tree}


def run_jax(args) -> int:
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from genattn_jax.metrics import inception as inception_lib  # pylint: disable=import-outside-toplevel
  from genattn_jax.metrics import preprocess  # pylint: disable=import-outside-toplevel

  deadline = suite.Deadline(args.budget_s)
  sz = _sizes(args)
  bs, size = sz["batch"], sz["input"]
  rec = suite.Record(os.path.join(args.out, "fid_jax.json"), {
      "section": "fid", "side": "jax", "host": suite.host_info(), "env": suite.jax_info(),
      "batch": bs, "num_images": bs * sz["batches"], "input_size": size,
      "weights": "random (He-normal kernels, N(0, 0.01) biases, NumPy seed 0); same on torch",
      "results": {}})
  images = _images(bs * sz["batches"])
  t0 = time.perf_counter()
  flat = _random_flax_params(inception_lib.FIDInceptionV3(fold_bn=True), size)
  variables = jax.device_put(_unflatten(flat))
  rec.set("param_count", int(sum(v.size for v in flat.values())))
  rec.set("init_s", time.perf_counter() - t0)
  if args.work:
    os.makedirs(args.work, exist_ok=True)
    np.savez(os.path.join(args.work, "inception_params.npz"), **flat)
    np.save(os.path.join(args.work, "fid_images.npy"), images)

  hp = jax.lax.Precision
  variants = [("fp32_highest", dict(precision=hp.HIGHEST)),
              ("bf16", dict(precision=hp.DEFAULT, dtype=jnp.bfloat16)),
              ("fp32_default_precision", dict(precision=hp.DEFAULT)),
              ("bf16_highest", dict(precision=hp.HIGHEST, dtype=jnp.bfloat16))]
  pools: Dict[str, np.ndarray] = {}
  if args.tiny:  # on CPU DEFAULT is HIGHEST: one compile less
    variants = variants[:2]
  for name, kw in variants:
    if not deadline.allows(10.0):
      rec.data["results"][name] = {"status": "skipped: section budget used up"}
      rec.save()
      continue
    module = inception_lib.FIDInceptionV3(fold_bn=True, **kw)

    def fwd(v, x, module=module):
      x = preprocess.to_inception_input(x, "[0,255]", size=(size, size))
      return module.apply(v, x)["pool"].astype(jnp.float32)

    row: Dict[str, Any] = {"module": repr(kw)}
    try:
      t0 = time.perf_counter()
      compiled = jax.jit(fwd).lower(variables, jnp.asarray(images[:bs])).compile()
      row["compile_s"] = time.perf_counter() - t0
      pools[name] = np.asarray(compiled(variables, jax.device_put(images[:bs])))[:16]

      def one_pass(compiled=compiled):
        outs = [compiled(variables, jax.device_put(images[i:i + bs]))
                for i in range(0, len(images), bs)]
        jax.block_until_ready(outs)

      times = suite.timed_repeats(one_pass, repeats=sz["repeats"], deadline=deadline)
      row.update(status="ok", img_per_s=len(images) / suite.median(times),
                 pass_s=times, repeats=len(times))
      if name != "fp32_highest" and "fp32_highest" in pools:
        row["max_abs_pool_diff_vs_fp32_highest"] = float(
            np.abs(pools[name] - pools["fp32_highest"]).max())
    except Exception as err:  # pylint: disable=broad-except
      row["status"] = suite.error_text(err)
    rec.data["results"][name] = row
    if name == "fp32_highest" and name in pools:
      rec.data["pool_abs_max_fp32"] = float(np.abs(pools[name]).max())
      if args.work:
        np.save(os.path.join(args.work, "fid_jax_pool.npy"), pools[name])
    if name == "bf16" and "max_abs_pool_diff_vs_fp32_highest" in row:
      rec.data["bf16_max_abs_pool_error_vs_fp32"] = row["max_abs_pool_diff_vs_fp32_highest"]
    rec.save()

  name = "library_extract_features"
  if args.tiny:
    rec.data["results"][name] = {"status": "skipped: --tiny (resizes to 299)"}
  elif not deadline.allows(15.0):
    rec.data["results"][name] = {"status": "skipped: section budget used up"}
  else:
    row = {}
    try:
      from genattn_jax.metrics import features  # pylint: disable=import-outside-toplevel
      row["micro_batch"] = features.default_micro_batch(features.default_mesh())
      run = lambda: features.extract_features(  # noqa: E731
          images, variables=variables, batch_size=bs, progress=False)
      t0 = time.perf_counter()
      run()
      row["first_call_s"] = time.perf_counter() - t0
      times = suite.timed_repeats(run, repeats=sz["repeats"], deadline=deadline)
      row.update(status="ok", img_per_s=len(images) / suite.median(times), pass_s=times)
    except Exception as err:  # pylint: disable=broad-except
      row["status"] = suite.error_text(err)
    rec.data["results"][name] = row
  rec.data["status"] = "done"
  rec.save()
  return 0


def run_torch(args) -> int:
  import torch  # pylint: disable=import-outside-toplevel
  from benchmarks.torch_ref import inception as ref  # pylint: disable=import-outside-toplevel

  deadline = suite.Deadline(args.budget_s)
  sz = _sizes(args)
  bs, size = sz["batch"], sz["input"]
  device = suite.torch_device()
  rec = suite.Record(os.path.join(args.out, "fid_torch.json"), {
      "section": "fid", "side": "torch", "host": suite.host_info(), "env": suite.torch_info(),
      "batch": bs, "input_size": size, "cudnn_benchmark": True, "results": {}})
  torch.backends.cudnn.benchmark = True
  model = ref.FIDInceptionV3()
  params_path = os.path.join(args.work, "inception_params.npz") if args.work else ""
  if params_path and os.path.exists(params_path):
    with np.load(params_path) as data:
      ref.load_flax_params(model, {k: data[k] for k in data.files})
    images = np.load(os.path.join(args.work, "fid_images.npy"))
    rec.set("weights", "the JAX side's random weights (converted)")
  else:
    images = _images(bs * sz["batches"])
    rec.set("weights", "torch default init (the JAX side's weights were not found)")
  rec.set("param_count", int(sum(p.numel() for p in model.parameters())))
  model = model.to(device).eval()

  def forward(x_uint8):
    return model(ref.to_inception_input(x_uint8, size))

  variants = [("fp32_no_tf32", False, False), ("fp32_tf32", True, False),
              ("bf16_autocast", True, True)]
  if device.type == "cpu":  # TF32 is a GPU setting
    variants = [variants[0], variants[2]]
  jax_pool_path = os.path.join(args.work, "fid_jax_pool.npy") if args.work else ""
  for name, tf32, bf16 in variants:
    if not deadline.allows(5.0):
      rec.data["results"][name] = {"status": "skipped: section budget used up"}
      rec.save()
      continue
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    row: Dict[str, Any] = {"cudnn_allow_tf32": tf32, "bf16_autocast": bf16}
    try:
      with torch.inference_mode(), torch.autocast(device.type, torch.bfloat16, enabled=bf16):
        t0 = time.perf_counter()
        first = forward(torch.from_numpy(images[:bs]).to(device)).float()
        suite.torch_sync(device)
        row["first_call_s"] = time.perf_counter() - t0
        pool = first[:16].cpu().numpy()

        def one_pass():
          for i in range(0, len(images), bs):
            forward(torch.from_numpy(images[i:i + bs]).to(device, non_blocking=True))
          suite.torch_sync(device)

        one_pass()  # warm-up (cudnn.benchmark picks its algorithms on the first calls)
        times = suite.timed_repeats(one_pass, repeats=sz["repeats"], deadline=deadline)
      row.update(status="ok", img_per_s=len(images) / suite.median(times), pass_s=times)
      if jax_pool_path and os.path.exists(jax_pool_path):
        jax_pool = np.load(jax_pool_path)
        diff = float(np.abs(pool - jax_pool).max())
        row["max_abs_pool_diff_vs_jax_fp32"] = diff
        row["relative_to_max_abs_feature"] = diff / max(float(np.abs(jax_pool).max()), 1e-30)
        if name == "fp32_no_tf32":
          rec.data["max_abs_pool_diff_vs_jax_fp32"] = diff
    except Exception as err:  # pylint: disable=broad-except
      row["status"] = suite.error_text(err)
    rec.data["results"][name] = row
    rec.save()
  if device.type == "cuda":
    rec.data["max_memory_allocated_bytes"] = int(torch.cuda.max_memory_allocated())
  rec.data["status"] = "done"
  rec.save()
  return 0

