"""Training tasks: what each kind of GAN experiment plugs into the one training machinery.

`config.task.name` selects one (default 'noise'); `get_task(config, generator, discriminator,
axis_name)` builds it. New tasks subclass `Task` (`tasks/base.py`) and are added with
`register_task`.
"""

from typing import Dict, Optional, Type

from genattn_jax.training.tasks.base import Task
from genattn_jax.training.tasks.noise import NoiseTask
from genattn_jax.training.tasks.cyclegan import CycleGANTask
from genattn_jax.training.tasks.multiscale import MultiScaleTask
from genattn_jax.training.tasks.semantic import SemanticTask

_TASKS: Dict[str, Type[Task]] = {"noise": NoiseTask, "multiscale": MultiScaleTask,
                                 "cyclegan": CycleGANTask, "semantic": SemanticTask}

__all__ = ["NoiseTask", "Task", "get_task", "register_task", "task_name", "TASK_NAMES"]


def register_task(cls: Type[Task]) -> Type[Task]:
  """Adds a `Task` subclass under `cls.name` (usable as a class decorator)."""
  if not cls.name:
    raise ValueError(f"{cls.__name__} has no `name`.")
  _TASKS[cls.name] = cls
  return cls


def task_name(config) -> str:
  """`config.task.name`, or 'noise' for configs written before tasks existed."""
  task = config.get("task", None)
  name = task.get("name", "noise") if task is not None else "noise"
  return name or "noise"


def TASK_NAMES():  # pylint: disable=invalid-name
  return tuple(sorted(_TASKS))


def get_task(config, generator, discriminator, axis_name: Optional[str] = None) -> Task:
  """The `Task` named by `config.task.name`.

  Raises:
    ValueError: the name is not a registered task (the message lists the known ones).
  """
  name = task_name(config)
  if name not in _TASKS:
    raise ValueError(f"`config.task.name` = {name!r} is not a known task; expected one of "
                     f"{sorted(_TASKS)}.")
  return _TASKS[name](config, generator, discriminator, axis_name)
