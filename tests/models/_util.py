"""Helpers shared by the model tests."""

import jax
import jax.numpy as jnp
import numpy as np


def np_init(module, *args):
  """Variables with the shapes of `module.init(...)`, filled by NumPy.

  `init` itself is traced (eval_shape) but not compiled: compiling the
  initialisers of a whole GAN costs far more CPU time than the forward pass.
  Kernels ~ N(0, 1/fan_in), BN scales / CBN gammas and spectral-norm sigma 1, biases
  and running means 0, power-iteration vectors u ~ N(0, 1).
  """
  shapes = jax.eval_shape(lambda: module.init(
      {"params": jax.random.PRNGKey(0), "sampling": jax.random.PRNGKey(1)}, *args))
  rs = np.random.RandomState(0)

  def fill(path, s):
    name = jax.tree_util.keystr(path)
    if name.endswith("kernel']") or name.endswith("/u']"):
      fan_in = int(np.prod(s.shape[:-1])) if name.endswith("kernel']") else 1
      return jnp.asarray(rs.randn(*s.shape) / np.sqrt(max(fan_in, 1)), s.dtype)
    if (name.endswith("scale']") or name.endswith("var']") or name.endswith("sigma']")
        or name.endswith("gamma_embedding']")):
      return jnp.ones(s.shape, s.dtype)
    return jnp.zeros(s.shape, s.dtype)
  return jax.tree_util.tree_map_with_path(fill, shapes)
