"""Tests of the shared argument checks."""

import numpy as np
import pytest

from genattn_jax import _checks


def test_check_nhwc_returns_dims():
  assert _checks.check_nhwc(np.zeros((2, 3, 5, 7))) == (2, 3, 5, 7)


@pytest.mark.parametrize("shape", [(3, 5, 7), (1, 2, 3, 4, 5)])
def test_check_nhwc_rejects_wrong_rank(shape):
  with pytest.raises(ValueError, match="`feat` must have rank 4"):
    _checks.check_nhwc(np.zeros(shape), "feat")


def test_check_divisible():
  _checks.check_divisible(12, 4, "channels")
  with pytest.raises(ValueError, match=r"`channels` \(10\) must be divisible by heads \(4\)"):
    _checks.check_divisible(10, 4, "channels", "heads")


def test_check_in_and_positive():
  _checks.check_in("a", ("a", "b"), "mode")
  with pytest.raises(ValueError, match="`mode` must be one of"):
    _checks.check_in("c", ("a", "b"), "mode")
  with pytest.raises(ValueError, match="`eps` must be > 0"):
    _checks.check_positive(0.0, "eps")


def test_to_pair():
  assert _checks.to_pair(3, "kernel_size") == (3, 3)
  assert _checks.to_pair([2, 5], "strides") == (2, 5)
  with pytest.raises(ValueError, match="`kernel_size` must be an int or a pair of ints"):
    _checks.to_pair((1, 2, 3), "kernel_size")
  with pytest.raises(ValueError, match="`strides` must be > 0"):
    _checks.to_pair((2, 0), "strides")
