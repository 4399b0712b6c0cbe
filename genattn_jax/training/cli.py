"""Command-line helpers shared by `train.py` and `eval.py`: JSON overrides and quiet logging.

JSON overrides: ml_collections' `--config.<field>=<value>` cannot set list fields (absl refuses
them), which rules out block placements. `split_json_overrides` takes every
`--config.<field>=<value>` whose value is a JSON list or object (starts with `[` or `{`) out of
argv before absl parses it, and `apply_json_overrides` sets those fields on the parsed config:

  --config.model.g_blocks='[{"block": "lap", "resolutions": [8, 16]}]'

Logging: `configure_logging(verbose=False)` keeps this package's INFO lines and shows only
warnings and errors of every other library that logs through absl or Python `logging`
(orbax writes about 170 INFO lines for a 3-step run); `verbose=True` shows everything.
"""

import json
import logging as py_logging
import os
from typing import Any, List, Tuple

from absl import logging
import ml_collections

_PREFIX = "--config."
_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_REPO = os.path.dirname(_PACKAGE)
# This package, the two entry points and the configs (not the repo root: `.venv` lives there).
_OWN_PATHS = (_PACKAGE + os.sep, os.path.join(_REPO, "train.py"),
              os.path.join(_REPO, "eval.py"), os.path.join(_REPO, "configs") + os.sep)


def split_json_overrides(argv: List[str]) -> Tuple[List[str], List[Tuple[str, str]]]:
  """Returns (argv without JSON-valued config overrides, [(field, json text), ...])."""
  rest, overrides = [], []
  i = 0
  while i < len(argv):
    arg = argv[i]
    if arg.startswith(_PREFIX) and "=" in arg:
      field, value = arg[len(_PREFIX):].split("=", 1)
      if value.lstrip().startswith(("[", "{")):
        overrides.append((field, value))
        i += 1
        continue
    elif (arg.startswith(_PREFIX) and i + 1 < len(argv)
          and argv[i + 1].lstrip().startswith(("[", "{"))):
      overrides.append((arg[len(_PREFIX):], argv[i + 1]))
      i += 2
      continue
    rest.append(arg)
    i += 1
  return rest, overrides


def apply_json_overrides(config, overrides: List[Tuple[str, str]]) -> None:
  """Sets each `(dotted field, JSON text)` on `config` (an existing list/dict/tuple field).

  Raises:
    ValueError: the text is not JSON, the field does not exist, or its type does not take a
      list / object; the message names the flag.
  """
  for field, text in overrides:
    flag = f"{_PREFIX}{field}"
    try:
      value: Any = json.loads(text)
    except json.JSONDecodeError as e:
      raise ValueError(f"{flag}: value is not valid JSON ({e}): {text!r}") from e
    *parents, leaf = field.split(".")
    node = config
    for part in parents:
      if part not in node:
        raise ValueError(f"{flag}: the config has no field `{part}` on the way to `{field}`.")
      node = node[part]
    if leaf not in node:
      raise ValueError(f"{flag}: the config has no field `{field}`.")
    current = node[leaf]
    if isinstance(current, tuple) and isinstance(value, list):
      value = tuple(value)
    elif isinstance(current, (list, tuple)) != isinstance(value, list):
      raise ValueError(f"{flag}: `{field}` holds a {type(current).__name__}; got JSON "
                       f"{type(value).__name__} {text!r}.")
    node[leaf] = ml_collections.ConfigDict(value) if isinstance(value, dict) else value


class _OwnOrWarnings(py_logging.Filter):
  """Passes records of this repository's code and every record at WARNING or above."""

  def filter(self, record: py_logging.LogRecord) -> bool:
    if record.levelno >= py_logging.WARNING:
      return True
    return os.path.abspath(record.pathname).startswith(_OWN_PATHS)


_FILTER = _OwnOrWarnings()


def configure_logging(verbose: bool = False) -> None:
  """Quiet third-party INFO logs (default) or show everything (`verbose`); see module doc."""
  absl_handler = logging.get_absl_handler()
  root = py_logging.getLogger()
  for handler in [absl_handler] + list(root.handlers):
    if verbose:
      handler.removeFilter(_FILTER)
    else:
      handler.addFilter(_FILTER)
