"""SPAP parameter count: the module's parameters equal the class docstring's formula."""

import jax
import jax.numpy as jnp
import pytest

from genattn_jax.layers import spap


def _count(module, c, res=8):
  x = jnp.zeros((1, res, res, c), jnp.float32)
  shapes = jax.eval_shape(module.init, jax.random.PRNGKey(0), x)["params"]
  return sum(int(jnp.prod(jnp.array(l.shape))) if l.shape else 1
             for l in jax.tree_util.tree_leaves(shapes))


def _formula(c, n_rates, k, h):
  # levels: n_rates 3x3 atrous + one 3x3 + one 1x1 (kernels + biases); fuses: L - 1 steps of
  # (k x k conv 2C -> h, bias) + (1x1 conv h -> 1, bias); gamma: 1.
  levels = n_rates * (9 * c * c + c) + (9 * c * c + c) + (c * c + c)
  fuses = (n_rates + 1) * (k * k * 2 * c * h + h + h + 1)
  return levels + fuses + 1


@pytest.mark.parametrize("c,kwargs,k,h", [
    (16, {}, 1, 8),
    (16, {"attention_kernel_size": 3, "attention_reduction": 1}, 3, 16),
    (12, {"attention_hidden_features": 5}, 1, 5),
])
def test_param_count_equals_formula(c, kwargs, k, h):
  block = spap.SpatialPyramidAttentivePooling(rates=(3, 5, 7), **kwargs)
  assert _count(block, c) == _formula(c, 3, k, h) == block.param_count(c)


def test_default_matches_table1_within_10_percent():
  # Table 1: 20.756M - 20.065M = 0.691M added at the 64x64 map of SNDCGAN-128 G (C = 128).
  default = spap.SpatialPyramidAttentivePooling(rates=(3, 5, 7))
  assert default.param_count(128) == _formula(128, 3, 1, 64) == 672_901
  assert abs(default.param_count(128) - 691_000) / 691_000 < 0.10
  large = spap.SpatialPyramidAttentivePooling(rates=(3, 5, 7), attention_kernel_size=3,
                                              attention_reduction=1)
  assert large.param_count(128) == _formula(128, 3, 3, 128)
  assert large.param_count(128) > 1.7e6


def test_bad_reduction_raises():
  block = spap.SpatialPyramidAttentivePooling(attention_reduction=0)
  with pytest.raises(ValueError, match="attention_reduction"):
    block.init(jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, 4)))
