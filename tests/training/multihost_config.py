"""Config of the two-process tests (`test_multihost.py`): a tiny SNDCGAN on the CIFAR-10 fixture.

Not an experiment: the command lines of the test (and of the README's multi-host section) load
it as `--config=tests/training/multihost_config.py`.
"""

from configs import cifar10_sndcgan_spap


def get_config():
  c = cifar10_sndcgan_spap.get_test_config()
  c.name = "multihost_test"
  c.model.g_blocks = []        # backbone only: BN in G (global-batch statistics), SN in D
  c.model.d_atrous = False
  c.training.batch_size = 8    # global: 4 rows per process, 1 per device on 2 x 4 devices
  c.training.n_critic = 1
  c.training.num_steps = 3
  c.checkpoint.every_steps = 1
  c.checkpoint.async_save = True   # the production default, across processes
  c.eval.every_steps = 0
  return c
