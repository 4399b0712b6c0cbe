"""`train_and_evaluate(config, workdir)`: the GAN training loop behind `train.py`.

Per step: the process loads its shard of the global batch (`n_critic` × `batch_size`
images), the backend runs the pure `train_step` data-parallel, and on schedule the loop logs
scalars (TensorBoard event files + a progress line), evaluates FID of the EMA generator
against cached real statistics, saves a fixed-noise sample grid as PNG and writes an orbax
checkpoint (with the data iterator position).

Reliability:
  * The config is validated first (`validate.validate_config`, errors name the field).
  * One run per workdir: `WorkdirLock` (process 0) refuses a second run naming the holder.
  * A run restarts from the newest checkpoint that restores and verifies; newer refused ones
    are moved aside to `checkpoints/<step>.corrupt-<time>`. Checkpoints that exist but are
    all unusable stop the run (`NoUsableCheckpointError`) unless
    `checkpoint.allow_restart_from_scratch` is set.
  * Before every save one fused on-device reduction checks that G's, D's and the EMA
    parameters are finite; a non-finite state is never saved (`NonFiniteStateError`, naming
    the step). A non-finite loss stops the run with `NonFiniteLossError`. Either way the newest
    checkpoint on disk is one that passed the check.
  * Evaluation (FID, grid) runs at the multiples of `eval.every_steps` (0 = never), the last
    step included only when it is one; the run says what it will evaluate and how many images.

Workdir layout: `checkpoints/<step>/`, `samples/step_<step>.png`, `fid_stats/real_*.npz`,
`events.out.tfevents.*`, `metrics.jsonl` (one JSON line per evaluation), `config.json` (the
run's config, read back by `sampling.load_run`).
"""

import json
import math
import os
import sys
import time
from typing import Any, Dict, Optional

from absl import logging
import jax
import jax.numpy as jnp
from tqdm.auto import tqdm

from genattn_jax import _checks
from genattn_jax import models
from genattn_jax.training import checkpoint as ckpt_lib
from genattn_jax.training import evaluation
from genattn_jax.training import parallel
from genattn_jax.training import state as state_lib
from genattn_jax.training import step as step_lib
from genattn_jax.training import tasks as tasks_lib
from genattn_jax.training import validate
from genattn_jax.training import workdir_lock
from genattn_jax.training import writer as writer_lib


class NonFiniteLossError(FloatingPointError):
  """A loss or gradient norm became NaN/inf; nothing was saved from that state."""


class NonFiniteStateError(NonFiniteLossError):
  """Parameters became NaN/inf at a checkpoint step; that state was not saved."""


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


# Failures whose message says what to do; train.py prints them without a traceback.
RUN_ERRORS = (validate.ConfigError, workdir_lock.WorkdirLockedError,
              ckpt_lib.NoUsableCheckpointError, ckpt_lib.CheckpointMismatchError,
              NonFiniteLossError, _checks.UnreadableImageError, FileNotFoundError)


def _last_good(last_saved: Optional[int]) -> str:
  if last_saved is None:
    return "no checkpoint of this run holds a state newer than the start"
  return (f"the newest checkpoint, step {last_saved}, holds parameters that passed the "
          "finiteness check")


def _check_finite(step: int, metrics: Dict[str, float], last_saved: Optional[int] = None) -> None:
  """Raises NonFiniteLossError naming `step` when a logged scalar is NaN/inf."""
  bad = {k: v for k, v in metrics.items() if not math.isfinite(v)}
  if bad:
    raise NonFiniteLossError(
        f"non-finite values at step {step}: {bad}. Training stopped, nothing of this state "
        f"was saved; {_last_good(last_saved)} (lower the learning rates or enable R1 / "
        "gradient clipping).")


@jax.jit
def _non_finite_leaves(g_params, d_params, ema_params) -> jax.Array:
  """[3] int32: how many leaves of G's, D's and the EMA parameters hold a NaN/inf (one
  fused reduction on device; one small transfer)."""
  def count(tree):
    leaves = [x for x in jax.tree_util.tree_leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact)]
    return sum((~jnp.all(jnp.isfinite(x))).astype(jnp.int32) for x in leaves) + jnp.int32(0)
  return jnp.stack([count(g_params), count(d_params), count(ema_params)])


def check_state_finite(step: int, dev_state, last_saved: Optional[int] = None) -> None:
  """Raises NonFiniteStateError naming `step` unless every parameter of `dev_state` is finite.

  `dev_state` may live on device (any sharding); only three integers come back.
  """
  counts = jax.device_get(_non_finite_leaves(dev_state.g_params, dev_state.d_params,
                                             dev_state.ema_params))
  if counts.any():
    g, d, ema = (int(c) for c in counts)
    raise NonFiniteStateError(
        f"non-finite parameters after step {step} (leaves with NaN/inf: generator {g}, "
        f"discriminator {d}, EMA generator {ema}); checkpoint {step} was NOT saved. Training "
        f"stopped; {_last_good(last_saved)}. Lower the learning rates or enable R1 / gradient "
        "clipping.")


def _eval_plan(config, start: int) -> str:
  tcfg, ecfg = config.training, config.eval
  every = int(ecfg.every_steps or 0)
  if not every:
    return "no evaluation (eval.every_steps = 0)"
  steps = [s for s in range(every, tcfg.num_steps + 1, every) if s > start]
  if not steps:
    return (f"no evaluation in this run: eval.every_steps = {every} and the run ends at step "
            f"{tcfg.num_steps}")
  real = (f"real statistics from {ecfg.real_stats}" if ecfg.get("real_stats") else
          f"{ecfg.num_real} real images ({ecfg.get('real_split') or config.data.split} split)")
  label = {"ema": "EMA-", "raw": "raw-"}
  which = " and ".join(label[n] for n in evaluation.scored_generators(ecfg))
  return (f"FID of {ecfg.num_fake} {which}generator samples vs {real}, and a sample grid, at "
          f"{len(steps)} step(s) every {every} (first {steps[0]}, last {steps[-1]})")


def train_and_evaluate(config, workdir: str) -> Dict[str, Any]:
  """Trains `config` in `workdir`, resuming from its newest valid checkpoint.

  Returns the last logged scalars (with `fid` when evaluated) and the paths written.

  Raises:
    validate.ConfigError: a config field is out of range (named in the message).
    workdir_lock.WorkdirLockedError: another run holds the workdir.
    checkpoint.NoUsableCheckpointError: checkpoints exist and none is usable.
    checkpoint.CheckpointMismatchError: the checkpoints belong to another config.
    NonFiniteLossError / NonFiniteStateError: the run diverged (named step; not saved).
  """
  parallel.initialize_distributed(config.parallel)
  validate.validate_config(config)
  workdir = os.path.abspath(os.path.expanduser(workdir))
  with workdir_lock.WorkdirLock(workdir):
    return _train_locked(config, workdir)


def _train_locked(config, workdir: str) -> Dict[str, Any]:
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
  allow_restart = bool(config.checkpoint.get("allow_restart_from_scratch", False))
  start, state = checkpointer.restore_latest(state, data_iter, move_aside=True,
                                             require_usable=not allow_restart)
  # Written after the restore: when the checkpoints do not fit this config, the config the run
  # was started with stays in config.json, as the error message says.
  if jax.process_index() == 0:
    with open(os.path.join(workdir, "config.json"), "w") as f:
      f.write(config.to_json_best_effort(indent=2))
  if start is None:
    start, data_iter = 0, iter(loader)  # a refused checkpoint may have moved the iterator
    if checkpointer.refused:
      print(f"[train] checkpoint.allow_restart_from_scratch: {len(checkpointer.refused)} "
            "unusable checkpoint(s) moved aside; starting from step 0", flush=True)
  else:
    logging.info("resumed from checkpoint %d", start)
    print(f"[train] resumed from step {start} in {workdir}", flush=True)
  print(f"[train] evaluation: {_eval_plan(config, start)}", flush=True)

  backend = parallel.make_backend(config.parallel.backend, train_step)
  dev_state = backend.put_state(state)
  writer = writer_lib.MetricWriter(workdir)
  last: Dict[str, Any] = {}
  last_saved: Optional[int] = start or None
  show_bar = (bool(config.get("progress_bar", True)) and jax.process_index() == 0
              and sys.stderr.isatty())
  bar = tqdm(total=tcfg.num_steps, initial=start, unit="step", desc="train", dynamic_ncols=True,
             disable=not show_bar, mininterval=1.0)
  echo = bar.write if not bar.disable else print
  t0, steps_timed, run_t0 = time.time(), 0, time.time()
  images_per_step = tcfg.batch_size * tcfg.n_critic
  every = int(ecfg.every_steps or 0)
  try:
    for step in range(start + 1, tcfg.num_steps + 1):
      batch = next(data_iter)
      dev_state, metrics = backend.step(dev_state, backend.put_batch(batch), step_rng)
      steps_timed += 1
      bar.update(1)
      is_last = step == tcfg.num_steps
      do_log = step % config.log_every_steps == 0 or is_last
      do_eval = every > 0 and step % every == 0
      do_ckpt = step % config.checkpoint.every_steps == 0 or is_last
      if not (do_log or do_eval or do_ckpt):
        continue
      scalars = backend.get_metrics(metrics)
      _check_finite(step, scalars, last_saved)
      if do_ckpt or do_eval:
        check_state_finite(step, dev_state, last_saved)
      elapsed = time.time() - t0
      scalars["steps_per_sec"] = steps_timed / max(elapsed, 1e-9)
      scalars["images_per_sec"] = scalars["steps_per_sec"] * images_per_step
      host_state = backend.get_state(dev_state)
      fid_value: Optional[float] = None
      if do_eval:
        echo(f"[train] step {step}: evaluating ({task.name} task, {ecfg.num_fake} samples)")
        task.show_progress = show_bar
        eval_scalars = task.evaluate(host_state, workdir)
        fid_value = eval_scalars.get("fid")
        scalars.update(eval_scalars)
        grid = task.sample_grid(host_state, rows=ecfg.grid_rows)
        if jax.process_index() == 0:
          path = evaluation.save_png(os.path.join(workdir, "samples", f"step_{step:07d}.png"),
                                     grid)
          last["sample_grid"] = path
          with open(os.path.join(workdir, "metrics.jsonl"), "a") as f:
            f.write(json.dumps({"step": step, **scalars}) + "\n")
        writer.write_image(step, "samples", grid)
      writer.write_scalars(step, scalars)
      done = step - start
      eta = (time.time() - run_t0) / done * (tcfg.num_steps - step)
      writer_lib.log_progress(step, tcfg.num_steps, scalars, echo=echo,
                              suffix=f"eta={time.strftime('%H:%M:%S', time.gmtime(eta))}")
      if do_ckpt:
        checkpointer.save(step, host_state, data_iter, fid=fid_value,
                          extra_meta={"config": config.get("name", "")})
        last_saved = step
      last.update(scalars, step=step)
      t0, steps_timed = time.time(), 0
  finally:
    bar.close()
    checkpointer.close()
    writer.close()
  last["workdir"] = workdir
  last["final_state"] = backend.get_state(dev_state) if tcfg.num_steps > start else state
  return last
