"""Config validation, once at the start of a run: every error names the config field.

Fields a config does not have are not checked (other tasks' configs may lack them).

`validate_config(config)` raises `ConfigError` (a ValueError) listing every problem it finds,
each with the dotted field name, the value and what was expected, before anything is built,
restored or trained. It checks what would otherwise fail late or not at all:

  * positive, finite learning rates (a negative one trains by gradient ascent without a word);
  * `training.n_critic` >= 1 and `training.batch_size` >= 1 (integers);
  * `model.resolution` == `data.image_size` (else the step fails inside `jax.grad`);
  * `training.batch_size` divisible by the number of devices: a step loads
    `n_critic` × `batch_size` rows, split into `n_critic` D updates of `batch_size` rows, each
    sharded over every device (so each device gets `n_critic` × `batch_size / devices` rows);
  * Adam betas in [0, 1), `training.ema_decay` in [0, 1], non-negative regulariser weights;
  * `checkpoint.every_steps` >= 1, `checkpoint.keep` >= 1, `eval.every_steps` >= 0 and, when
    evaluating, positive `eval.num_real` / `eval.num_fake` / `eval.batch_size`;
  * `training.loss` a known loss, `parallel.backend` 'jit' or 'pmap', `data.channels` 1 or 3.
"""

import math
from typing import List, Optional

import jax


class ConfigError(ValueError):
  """The config has fields out of range; the message names each one."""


def _get(config, dotted: str, default=None):
  node = config
  for part in dotted.split("."):
    if node is None or part not in node:
      return default
    node = node[part]
  return node


def _is_int(value) -> bool:
  return isinstance(value, int) and not isinstance(value, bool)


def validate_config(config, device_count: Optional[int] = None) -> None:
  """Checks `config` (see module doc) for a run on `device_count` devices (default: all).

  Raises:
    ConfigError: one line per problem, each naming the field, its value and the expected range.
  """
  from genattn_jax import losses  # pylint: disable=g-import-not-at-top
  errors: List[str] = []

  def need(ok: bool, field: str, expected: str) -> None:
    if not ok:
      errors.append(f"`config.{field}` = {_get(config, field)!r}: expected {expected}.")

  # Every learning rate of the optimizer section (g_lr, d_lr and those of other tasks).
  lr_fields = [f"optimizer.{k}" for k in (config.get("optimizer") or {}) if k.endswith("lr")]
  for field in lr_fields:
    lr = _get(config, field)
    need(isinstance(lr, (int, float)) and not isinstance(lr, bool) and math.isfinite(lr)
         and lr > 0, field, "a finite learning rate > 0")
  for field in ("optimizer.b1", "optimizer.b2"):
    b = _get(config, field, 0.0)
    need(isinstance(b, (int, float)) and 0.0 <= b < 1.0, field, "an Adam beta in [0, 1)")
  eps = _get(config, "optimizer.eps", 1e-8)
  need(isinstance(eps, (int, float)) and not isinstance(eps, bool) and math.isfinite(eps)
       and eps > 0, "optimizer.eps", "Adam's offset, a finite number > 0")
  need((_get(config, "optimizer.grad_clip", 0.0) or 0.0) >= 0, "optimizer.grad_clip",
       ">= 0 (0 = off)")

  n_critic = _get(config, "training.n_critic", 1)
  need(_is_int(n_critic) and n_critic >= 1, "training.n_critic",
       "an integer >= 1 (discriminator updates per generator update)")
  batch = _get(config, "training.batch_size")
  need(_is_int(batch) and batch >= 1, "training.batch_size", "an integer >= 1")
  steps = _get(config, "training.num_steps")
  need(_is_int(steps) and steps >= 0, "training.num_steps", "an integer >= 0")
  ema = _get(config, "training.ema_decay", 0.0)
  need(isinstance(ema, (int, float)) and 0.0 <= ema <= 1.0, "training.ema_decay", "in [0, 1]")
  for field in ("training.r1_gamma", "training.gp_weight", "training.ortho_weight",
                "training.d_ortho_weight", "training.ema_warmup_steps"):
    value = _get(config, field, 0)
    need(isinstance(value, (int, float)) and value >= 0, field, ">= 0")
  need(_is_int(_get(config, "training.r1_interval", 1)) and _get(config, "training.r1_interval",
                                                                   1) >= 1,
       "training.r1_interval", "an integer >= 1")
  loss = _get(config, "training.loss")
  if loss is not None:
    try:
      losses.get_loss(loss)
    except (ValueError, KeyError) as e:
      errors.append(f"`config.training.loss` = {loss!r}: {e}")

  resolution, image_size = _get(config, "model.resolution"), _get(config, "data.image_size")
  if None not in (resolution, image_size) and resolution != image_size:
    errors.append(f"`config.model.resolution` = {resolution!r} and `config.data.image_size` = "
                  f"{image_size!r} differ: the generator makes {resolution}x{resolution} "
                  f"images and the discriminator is fed {image_size}x{image_size} data; set both "
                  "to the same size.")
  need(_get(config, "data.channels", 3) in (1, 3), "data.channels", "1 or 3")

  backend = _get(config, "parallel.backend", "jit")
  need(backend in ("jit", "pmap"), "parallel.backend", "'jit' or 'pmap'")
  devices = jax.device_count() if device_count is None else device_count
  if _is_int(batch) and batch >= 1 and batch % devices:
    errors.append(
        f"`config.training.batch_size` = {batch} is not divisible by the {devices} devices: a "
        f"step loads n_critic × batch_size = {n_critic!r} × {batch} rows, split into n_critic D "
        f"updates of batch_size rows each sharded over every device. Use a multiple of "
        f"{devices}.")

  every = _get(config, "checkpoint.every_steps")
  need(_is_int(every) and every >= 1, "checkpoint.every_steps", "an integer >= 1")
  keep = _get(config, "checkpoint.keep", 1)
  need(_is_int(keep) and keep >= 1, "checkpoint.keep", "an integer >= 1")
  eval_every = _get(config, "eval.every_steps", 0)
  need(_is_int(eval_every) and eval_every >= 0, "eval.every_steps",
       "an integer >= 0 (0 = no evaluation)")
  if _is_int(eval_every) and eval_every > 0:
    for field in ("eval.num_fake", "eval.batch_size"):
      value = _get(config, field)
      need(_is_int(value) and value >= 1, field, "an integer >= 1 when evaluating")
    if not _get(config, "eval.real_stats", ""):
      value = _get(config, "eval.num_real")
      need(_is_int(value) and value >= 1, "eval.num_real",
           "an integer >= 1 when evaluating without `eval.real_stats`")
  need(_get(config, "eval.fid_params", "ema") in ("ema", "raw"), "eval.fid_params",
       "'ema' (FID of the EMA generator) or 'raw'")
  intra = _get(config, "eval.intra_fid_classes", 0)
  classes = _get(config, "model.num_classes", 0) or 0
  need(_is_int(intra) and 0 <= intra <= classes, "eval.intra_fid_classes",
       f"an integer in [0, model.num_classes = {classes}] (0 = no intra-FID)")
  per_class = _get(config, "eval.intra_fid_per_class", 50)
  need(_is_int(per_class) and per_class >= 2, "eval.intra_fid_per_class",
       "an integer >= 2 (generated images per class)")
  if errors:
    raise ConfigError("invalid config:\n  " + "\n  ".join(errors))
