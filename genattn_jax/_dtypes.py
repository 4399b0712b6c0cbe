"""Output and statistics dtype: float32, or the input's own dtype when that is wider.

Models and losses return float32 images, logits and losses when they compute in bfloat16
(`model.dtype='bfloat16'`), and keep their statistics in float32. Casting to exactly float32
would also narrow float64 inputs, which only appear under `jax_enable_x64` (the 8-devices-=-1
tests run there, where summation order no longer shows); `wide` keeps those in float64.
"""

import jax.numpy as jnp


def wide_dtype(x) -> jnp.dtype:
  """float32, or `x`'s dtype when it is a wider float (float64 under jax_enable_x64)."""
  return jnp.promote_types(jnp.result_type(x), jnp.float32)


def wide(x) -> jnp.ndarray:
  """`x` as an array of `wide_dtype(x)`: bfloat16 / float16 / int -> float32, float64 kept."""
  x = jnp.asarray(x)
  return x.astype(wide_dtype(x))
