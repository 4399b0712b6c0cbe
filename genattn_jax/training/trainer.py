"""`train_and_evaluate(config, workdir)`: the GAN training loop behind `train.py`.

Per step: the process loads its shard of the global batch (`n_critic` × `batch_size`
images), the backend runs the pure `train_step` data-parallel, and on schedule the loop logs
scalars (TensorBoard event files + a progress line), evaluates FID of the EMA generator
against cached real statistics, saves a fixed-noise sample grid as PNG and writes an orbax
checkpoint (with the data iterator position). A run restarts from the newest checkpoint that
restores and verifies. A non-finite loss stops the run with `NonFiniteLossError` before
anything is saved, so the last checkpoint stays the last good one.

Workdir layout: `checkpoints/<step>/`, `samples/step_<step>.png`, `fid_stats/real_*.npz`,
`events.out.tfevents.*`, `metrics.jsonl` (one JSON line per evaluation), `config.json` (the
run's config, read back by `sampling.load_run`).
"""

import json
import math
import os
import time
from typing import Any, Dict, Optional

from absl import logging
import jax

from genattn_jax import models
from genattn_jax.training import checkpoint as ckpt_lib
from genattn_jax.training import evaluation
from genattn_jax.training import parallel
from genattn_jax.training import state as state_lib
from genattn_jax.training import step as step_lib
from genattn_jax.training import tasks as tasks_lib
from genattn_jax.training import writer as writer_lib


class NonFiniteLossError(FloatingPointError):
  """A loss or gradient norm became NaN/inf; the last checkpoint is the last good state."""


def build(config):
  """(generator, discriminator, backend-ready train_step) for `config`."""
  model_config = config.model
  if config.parallel.backend == "pmap":
    model_config = model_config.copy_and_resolve_references()
    with model_config.unlocked():
      model_config.bn_axis_name = parallel.PMAP_AXIS
  generator, discriminator = models.build_gan(model_config)
  axis = parallel.PMAP_AXIS if config.parallel.backend == "pmap" else None
  task = tasks_lib.get_task(config, generator, discriminator, axis)
  return generator, discriminator, step_lib.make_train_step(config, generator, discriminator,
                                                            axis, task=task)


def _check_finite(step: int, metrics: Dict[str, float]) -> None:
  bad = {k: v for k, v in metrics.items() if not math.isfinite(v)}
  if bad:
    raise NonFiniteLossError(
        f"non-finite values at step {step}: {bad}. Training stopped; the last checkpoint is "
        "the last good state (lower the learning rates or enable R1 / gradient clipping).")


def train_and_evaluate(config, workdir: str) -> Dict[str, Any]:
  """Trains `config` in `workdir`, resuming from its newest valid checkpoint.

  Returns the last logged scalars (with `fid` when evaluated) and the paths written.
  """
  parallel.initialize_distributed(config.parallel)
  workdir = os.path.abspath(os.path.expanduser(workdir))
  os.makedirs(workdir, exist_ok=True)
  tcfg, ecfg = config.training, config.eval
  generator, discriminator, train_step = build(config)
  eval_generator = models.build_gan(config.model)[0]
  # The task with the plain (axis-free) generator: state creation, data and evaluation.
  task = tasks_lib.get_task(config, eval_generator, discriminator)

  rng = jax.random.PRNGKey(config.seed)
  init_rng, step_rng = jax.random.split(rng)
  state = state_lib.create_gan_state(config, eval_generator, discriminator, init_rng, task=task)
  logging.info("G params: %d, D params: %d", state_lib.param_count(state.g_params),
               state_lib.param_count(state.d_params))

  loader = task.create_data_loader(global_batch_size=tcfg.batch_size * tcfg.n_critic,
                                   seed=config.seed)
  data_iter = iter(loader)
  checkpointer = ckpt_lib.Checkpointer(os.path.join(workdir, "checkpoints"),
                                       keep=config.checkpoint.keep,
                                       async_save=config.checkpoint.get("async_save", True))
  start, state = checkpointer.restore_latest(state, data_iter)
  # Written after the restore: when the checkpoints do not fit this config, the config the run
  # was started with stays in config.json, as the error message says.
  if jax.process_index() == 0:
    with open(os.path.join(workdir, "config.json"), "w") as f:
      f.write(config.to_json_best_effort(indent=2))
  if start is None:
    start, data_iter = 0, iter(loader)  # a refused checkpoint may have moved the iterator
  else:
    logging.info("resumed from checkpoint %d", start)
    print(f"[train] resumed from step {start} in {workdir}", flush=True)

  backend = parallel.make_backend(config.parallel.backend, train_step)
  dev_state = backend.put_state(state)
  writer = writer_lib.MetricWriter(workdir)
  last: Dict[str, Any] = {}
  t0, steps_timed = time.time(), 0
  images_per_step = tcfg.batch_size * tcfg.n_critic
  for step in range(start + 1, tcfg.num_steps + 1):
    batch = next(data_iter)
    dev_state, metrics = backend.step(dev_state, backend.put_batch(batch), step_rng)
    steps_timed += 1
    is_last = step == tcfg.num_steps
    do_log = step % config.log_every_steps == 0 or is_last
    do_eval = ecfg.every_steps and (step % ecfg.every_steps == 0 or is_last)
    do_ckpt = step % config.checkpoint.every_steps == 0 or is_last
    if not (do_log or do_eval or do_ckpt):
      continue
    scalars = backend.get_metrics(metrics)
    _check_finite(step, scalars)
    elapsed = time.time() - t0
    scalars["steps_per_sec"] = steps_timed / max(elapsed, 1e-9)
    scalars["images_per_sec"] = scalars["steps_per_sec"] * images_per_step
    host_state = backend.get_state(dev_state)
    fid_value: Optional[float] = None
    if do_eval:
      eval_scalars = task.evaluate(host_state, workdir)
      fid_value = eval_scalars.get("fid")
      scalars.update(eval_scalars)
      grid = task.sample_grid(host_state, rows=ecfg.grid_rows)
      if jax.process_index() == 0:
        path = evaluation.save_png(os.path.join(workdir, "samples", f"step_{step:07d}.png"), grid)
        last["sample_grid"] = path
        with open(os.path.join(workdir, "metrics.jsonl"), "a") as f:
          f.write(json.dumps({"step": step, **scalars}) + "\n")
      writer.write_image(step, "samples", grid)
    writer.write_scalars(step, scalars)
    writer_lib.log_progress(step, tcfg.num_steps, scalars)
    if do_ckpt:
      checkpointer.save(step, host_state, data_iter, fid=fid_value,
                        extra_meta={"config": config.get("name", "")})
    last.update(scalars, step=step)
    t0, steps_timed = time.time(), 0
  checkpointer.close()
  writer.close()
  last["workdir"] = workdir
  last["final_state"] = backend.get_state(dev_state) if tcfg.num_steps > start else state
  return last
