"""One process of the two-process tests: runs `train.py` with recording hooks.

  python tests/training/multihost_worker.py --record_dir=DIR [--pause_after_step=N] \
      -- <train.py flags>

`train.py` runs unchanged (via `runpy`) with two test hooks patched in:
  * the state the trainer hands to the backend (initial or restored) is saved to
    `DIR/state_p<process>.npz` (leaves in tree order), and every host batch to
    `DIR/batch_p<process>_c<call>.npz` (what this process read from its data shard);
  * with `--pause_after_step=N`, once checkpoint N is saved and committed the process prints
    `PAUSED <process> <step>` and sleeps, so the test can kill it at a known point;
  * `state.create_gan_state` fills the variables with seeded NumPy draws (same tree, shapes
    and dtypes, found by tracing the real one) instead of compiling the initialisers, which
    costs more CPU time than the rest of the run; every process gets the same values.
"""

import os
import runpy
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main() -> None:
  own, rest = sys.argv[1:], []
  if "--" in own:
    i = own.index("--")
    own, rest = own[:i], own[i + 1:]
  opts = dict(a[2:].split("=", 1) for a in own)
  record_dir = opts["record_dir"]
  pause_after = int(opts.get("pause_after_step", -1))
  os.makedirs(record_dir, exist_ok=True)

  import jax  # pylint: disable=g-import-not-at-top
  from genattn_jax.training import checkpoint as ckpt_lib  # pylint: disable=g-import-not-at-top
  from genattn_jax.training import parallel  # pylint: disable=g-import-not-at-top

  from genattn_jax.training import state as state_lib  # pylint: disable=g-import-not-at-top
  create_gan_state = state_lib.create_gan_state

  def numpy_gan_state(config, generator, discriminator, rng, **kwargs):
    shapes = jax.eval_shape(
        lambda r: create_gan_state(config, generator, discriminator, r, **kwargs), rng)
    rs = np.random.RandomState(int(config.seed))

    def fill(path, s):
      name = jax.tree_util.keystr(path)
      if name.endswith("kernel']") or name.endswith("/u']"):
        fan_in = int(np.prod(s.shape[:-1])) if name.endswith("kernel']") else 1
        return np.asarray(rs.randn(*s.shape) / np.sqrt(max(fan_in, 1)), s.dtype)
      if name.endswith(("scale']", "var']", "sigma']", "gamma_embedding']")):
        return np.ones(s.shape, s.dtype)
      return np.zeros(s.shape, s.dtype)

    def filled(tree):
      return jax.tree.map(jax.numpy.asarray, jax.tree_util.tree_map_with_path(fill, tree))

    g_params = filled(shapes.g_params)
    zeros = lambda tree: jax.tree.map(lambda s: jax.numpy.zeros(s.shape, s.dtype), tree)
    return shapes.replace(step=zeros(shapes.step), g_params=g_params,
                          d_params=filled(shapes.d_params), g_state=filled(shapes.g_state),
                          d_state=filled(shapes.d_state), g_opt_state=zeros(shapes.g_opt_state),
                          d_opt_state=zeros(shapes.d_opt_state),
                          ema_params=jax.tree.map(jax.numpy.copy, g_params))  # own buffers

  state_lib.create_gan_state = numpy_gan_state
  put_state = parallel.JitBackend.put_state

  def recording_put_state(self, state):
    leaves = jax.tree_util.tree_leaves(state)
    np.savez(os.path.join(record_dir, f"state_p{jax.process_index()}.npz"),
             **{f"leaf{i}": np.asarray(x) for i, x in enumerate(leaves)})
    return put_state(self, state)

  put_batch = parallel.JitBackend.put_batch
  calls = {"n": 0}

  def recording_put_batch(self, batch):
    calls["n"] += 1
    np.savez(os.path.join(record_dir, f"batch_p{jax.process_index()}_c{calls['n']}.npz"),
             **{k: np.asarray(v) for k, v in batch.items()})
    return put_batch(self, batch)

  save = ckpt_lib.Checkpointer.save

  def pausing_save(self, step, *args, **kwargs):
    save(self, step, *args, **kwargs)
    if step == pause_after:
      self.wait()
      print(f"PAUSED {jax.process_index()} {step}", flush=True)
      time.sleep(3600)

  parallel.JitBackend.put_state = recording_put_state
  parallel.JitBackend.put_batch = recording_put_batch
  ckpt_lib.Checkpointer.save = pausing_save
  sys.argv = [os.path.join(REPO, "train.py"), *rest]
  runpy.run_path(sys.argv[0], run_name="__main__")


if __name__ == "__main__":
  main()
