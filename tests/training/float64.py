"""float64 runs for the 8-devices-equal-1 tests.

In float32 the data-parallel step (8 devices, jit or pmap) and the one-device step sum the
same terms in different orders. Some of these models make their gradients ill-conditioned
enough that this rounding does not stay small: Adam's first step turns rounding-noise
gradients (true value 0) into lr-sized steps, and in CycleGAN the cycle term's gradient
(through the other generator's instance norms) was found to differ by percents between the
layouts while its loss agreed to 1e-7. Measured after 2 steps in float32, the largest gaps were
3.3e-4 (CycleGAN G), 4.0e-5 (SPADE) and 6.3e-5 (StyleGAN + LAP under pmap), in a few
elements. The same runs in float64 agree to 2e-13 or better (measured: CycleGAN 1e-16, pools
4e-15; SPADE 2e-13, on the SPADE norms' bias whose true gradient is 0), StyleGAN + LAP to
1.2e-7 (see TOLERANCE),
so the gaps come from float32 rounding, not from the parallel code. These tests therefore
compare in float64, with a tolerance that a real data-parallel error (a missed all-reduce,
per-device batch statistics, a per-device random draw) would exceed by many orders of
magnitude.

`jax.enable_x64(True)` is a context: only the code run inside it traces in float64. The
state is created in float32 as in training and then cast; the models compute in the dtype
of their inputs and parameters (`model.dtype` ''), and their float32 output casts only widen
(`genattn_jax._dtypes.wide`).
"""

from typing import Iterable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from genattn_jax.training import parallel, trainer
from genattn_jax.training import state as state_lib

# float64 gaps measured: 1e-17 .. 2e-13, except StyleGAN's mapping network: 1.2e-7 absolute
# (3e-9 relative) in 2 of 256 elements, and DAGAN (over 1e-9, under 1e-6; not measured
# exactly), where some intermediate still runs in float32 (not located yet). 1e-6 stays far
# below both the float32 gaps (2e-5 .. 3.3e-4) and a real data-parallel error (percents).
TOLERANCE = 1e-6


def to_float64(tree):
  """Casts the floating leaves of `tree` (arrays or NumPy arrays) to float64; others kept."""
  def cast(x):
    if jnp.issubdtype(jnp.result_type(x), jnp.floating):
      return np.asarray(x, np.float64)
    return x
  return jax.tree_util.tree_map(cast, tree)


def assert_float64(tree, what: str) -> None:
  """Fails unless every floating leaf of `tree` is float64 (the run really ran in float64)."""
  for path, x in jax.tree_util.tree_flatten_with_path(tree)[0]:
    if jnp.issubdtype(jnp.result_type(x), jnp.floating):
      assert jnp.result_type(x) == jnp.float64, (what, jax.tree_util.keystr(path), x.dtype)


def host_state(backend_name: str, dev_state):
  """The backend's state on the host, one copy, without running device ops: for pmap the
  first replica is taken in NumPy. (`PmapBackend.get_state` indexes on the devices, an eager
  gather; inside the `enable_x64` context that aborted the process in the full test suite,
  after other tests had run the same kind of gather in float32 mode.)"""
  host = jax.device_get(dev_state)
  if backend_name == "pmap":
    host = jax.tree_util.tree_map(lambda x: np.asarray(x)[0], host)
  return host


def run_steps(config, batches: Iterable[Mapping[str, np.ndarray]], backend_name: str,
              devices: Sequence[jax.Device],
              float_fields: Sequence[str] = ("g_params", "d_params", "g_state")):
  """One train step per batch of `config` in float64, with the named backend on `devices`.

  The state is created in float32 (as in training, key 0) and cast; every step uses key 1.
  Checks that the `float_fields` of the final state are float64.

  Returns:
    (initial state, final state on the host (`host_state`), metrics of the last step).
  """
  config.parallel.backend = backend_name
  with jax.enable_x64(True):
    generator, discriminator, train_step = trainer.build(config)
    state = to_float64(state_lib.create_gan_state(config, generator, discriminator,
                                                  jax.random.PRNGKey(0), task=train_step.task))
    init = jax.device_get(state)
    backend = parallel.make_backend(backend_name, train_step, devices)
    dev_state, metrics = backend.put_state(state), None
    for batch in batches:
      dev_state, metrics = backend.step(dev_state, backend.put_batch(batch),
                                        jax.random.PRNGKey(1))
    final = host_state(backend_name, dev_state)
    assert_float64(tuple(getattr(final, f) for f in float_fields), backend_name)
    return init, final, backend.get_metrics(metrics)
