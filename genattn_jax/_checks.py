"""Argument checks shared by every module: each raises ValueError naming the argument."""

from typing import Sequence, Tuple, Union

import numpy as np


def check_rank(x, rank: int, name: str = "x", layout: str = "") -> None:
  """Raises ValueError unless `x` has exactly `rank` dimensions."""
  ndim = np.ndim(x)
  if ndim != rank:
    what = f" {layout}" if layout else ""
    raise ValueError(
        f"`{name}` must have rank {rank}{what}, got shape {tuple(np.shape(x))} "
        f"(rank {ndim}).")


def check_nhwc(x, name: str = "x") -> Tuple[int, int, int, int]:
  """Checks that `x` is a [B, H, W, C] array and returns (B, H, W, C)."""
  check_rank(x, 4, name, "[B, H, W, C]")
  b, h, w, c = x.shape
  if min(h, w, c) < 1:
    raise ValueError(f"`{name}` has an empty dimension: shape {tuple(x.shape)}.")
  return b, h, w, c


def check_divisible(value: int, divisor: int, name: str, divisor_name: str = "") -> None:
  """Raises ValueError unless `value` is divisible by `divisor`."""
  if divisor <= 0 or value % divisor != 0:
    by = f" {divisor_name} ({divisor})" if divisor_name else f" {divisor}"
    raise ValueError(f"`{name}` ({value}) must be divisible by{by}.")


def check_positive(value, name: str) -> None:
  """Raises ValueError unless `value` > 0."""
  if not value > 0:
    raise ValueError(f"`{name}` must be > 0, got {value!r}.")


def check_in(value, allowed: Sequence, name: str) -> None:
  """Raises ValueError unless `value` is one of `allowed`."""
  if value not in allowed:
    raise ValueError(f"`{name}` must be one of {tuple(allowed)}, got {value!r}.")


def to_pair(value: Union[int, Sequence[int]], name: str) -> Tuple[int, int]:
  """Turns an int or a 2-sequence of positive ints into a pair.

  Args:
    value: an int `v` (read as `(v, v)`) or a sequence of two ints.
    name: argument name used in error messages.

  Returns:
    The pair as a tuple of two ints.

  Raises:
    ValueError: if `value` does not hold exactly two entries, or an entry is not > 0.
  """
  pair = (value, value) if isinstance(value, int) else tuple(value)
  if len(pair) != 2:
    raise ValueError(f"`{name}` must be an int or a pair of ints, got {value!r}.")
  for v in pair:
    check_positive(v, name)
  return pair  # type: ignore[return-value]


class UnreadableImageError(ValueError):
  """An image file that cannot be decoded (truncated, corrupt, not an image); names the file."""


def unreadable_image(name: str, error: BaseException, hint: str = "") -> UnreadableImageError:
  """An `UnreadableImageError` for file `name` that failed to decode with `error`."""
  return UnreadableImageError(
      f"cannot decode image `{name}` ({type(error).__name__}: {error})." + (f" {hint}" if hint
                                                                            else ""))
