"""The train step's public contract: optimiser routing and label routing.

Everything goes through `make_train_step(config, generator, discriminator)` and
`train_step(state, batch, rng) -> (state, metrics)`, with test models whose gradients have a
closed form, so the parameters after a few steps can be recomputed in NumPy with optax
optimisers built by hand from the config; and with class-conditional test models that
record, through `jax.debug.callback`, which labels and images every call receives.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from genattn_jax.training import config as config_lib
from genattn_jax.training import state as state_lib
from genattn_jax.training import step as step_lib

RES, C, Z_DIM = 2, 3, 2
D_IN = RES * RES * C


class ConstGenerator(nn.Module):
  """G(z) = tanh(b) for every z: its loss gradient has a closed form."""

  @nn.compact
  def __call__(self, z, y=None, train=True):
    del y, train
    b = self.param("b", nn.initializers.normal(0.5), (RES, RES, C))
    return jnp.broadcast_to(jnp.tanh(b), (z.shape[0], RES, RES, C))


class LinearCritic(nn.Module):
  """D(x) = <w, x> + c."""

  @nn.compact
  def __call__(self, x, y=None, train=True):
    del y, train
    w = self.param("w", nn.initializers.normal(0.5), (D_IN,))
    c = self.param("c", nn.initializers.zeros, ())
    return x.reshape(x.shape[0], -1) @ w + c


def _config(n_critic=2, grad_clip=0.0, num_classes=0, batch_size=4, loss="wasserstein"):
  c = config_lib.base_config("sndcgan", 8)
  c.model.resolution = c.data.image_size = RES
  c.model.z_dim = Z_DIM
  c.model.num_classes = num_classes
  c.training.batch_size = batch_size
  c.training.n_critic = n_critic
  c.training.loss = loss
  c.training.ema_warmup_steps = 0
  c.optimizer.g_lr = 0.05
  c.optimizer.d_lr = 0.002
  c.optimizer.b1 = 0.5
  c.optimizer.b2 = 0.9
  c.optimizer.grad_clip = grad_clip
  return c


def _np_tree(tree):
  return jax.tree_util.tree_map(lambda v: np.asarray(v, np.float64), jax.device_get(tree))


def _reference(config, state, batches):
  """NumPy gradients of the Wasserstein losses + optax Adam built by hand from the config."""
  opt = config.optimizer

  def adam(lr):
    tx = optax.adam(lr, b1=opt.b1, b2=opt.b2, eps=opt.eps)
    return optax.chain(optax.clip_by_global_norm(opt.grad_clip), tx) if opt.grad_clip else tx

  g_tx, d_tx = adam(opt.g_lr), adam(opt.d_lr)
  g, d = _np_tree(state.g_params), _np_tree(state.d_params)
  g_opt, d_opt = g_tx.init(g), d_tx.init(d)
  n_critic = config.training.n_critic
  for batch in batches:
    for j in range(n_critic):
      real = batch["image"][j::n_critic].astype(np.float64).reshape(-1, D_IN)
      fake = np.tanh(g["b"]).reshape(D_IN)
      # L_D = E[D(fake)] - E[D(real)]: dL/dw = fake - mean(real), dL/dc = 0.
      grads = {"w": fake - real.mean(0), "c": np.zeros(())}
      updates, d_opt = d_tx.update(grads, d_opt, d)
      d = optax.apply_updates(d, updates)
    # L_G = -E[D(fake)] with the updated D: dL/db = -w * (1 - tanh(b)^2).
    grads = {"b": -d["w"].reshape(RES, RES, C) * (1 - np.tanh(g["b"]) ** 2)}
    updates, g_opt = g_tx.update(grads, g_opt, g)
    g = optax.apply_updates(g, updates)
  return g, d


def _batches(n_critic, b=4, steps=3):
  rng = np.random.default_rng(0)
  # Real images of very different sizes per step, so the gradient norm changes a lot between
  # steps (this is where clipping shows through Adam's normalisation).
  scales = [0.05, 3.0, 0.5][:steps]
  return [{"image": (rng.uniform(-1, 1, (n_critic * b, RES, RES, C)) * s).astype(np.float32),
           "label": np.zeros((n_critic * b,), np.int32)} for s in scales]


def _run(config, generator, discriminator, batches, seed=0):
  state = state_lib.create_gan_state(config, generator, discriminator,
                                     jax.random.PRNGKey(seed))
  step_fn = jax.jit(step_lib.make_train_step(config, generator, discriminator))
  final = state
  for batch in batches:
    final, _ = step_fn(final, batch, jax.random.PRNGKey(1))
  return state, jax.device_get(final)


@pytest.mark.parametrize("grad_clip", [0.0, 0.5])
def test_optimisers_match_hand_built_optax(grad_clip):
  config = _config(grad_clip=grad_clip)
  batches = _batches(config.training.n_critic)
  init, final = _run(config, ConstGenerator(), LinearCritic(), batches)
  want_g, want_d = _reference(config, init, batches)
  np.testing.assert_allclose(final.g_params["b"], want_g["b"], rtol=2e-5, atol=1e-6)
  np.testing.assert_allclose(final.d_params["w"], want_d["w"], rtol=2e-5, atol=1e-6)
  # The learning rates are told apart: G moved by ~g_lr per step, D by ~d_lr per update.
  moved_g = np.abs(np.asarray(final.g_params["b"]) - np.asarray(init.g_params["b"]))
  moved_d = np.abs(np.asarray(final.d_params["w"]) - np.asarray(init.d_params["w"]))
  assert moved_g.max() > 5 * moved_d.max()
  assert moved_d.max() <= 6 * config.optimizer.d_lr * (1 + 1e-5)
  if grad_clip:
    # Clipping takes effect: the unclipped optimiser ends somewhere measurably different.
    unclipped = _config(grad_clip=0.0)
    plain_g, plain_d = _reference(unclipped, init, batches)
    assert np.abs(plain_d["w"] - want_d["w"]).max() > 1e-4


def test_adam_eps_reaches_both_optimisers():
  # optimizer.eps (default 1e-8, as optax / torch) is Adam's offset for G and D alike; a large
  # one shrinks every step measurably, so a dropped field would show.
  config = _config()
  config.optimizer.eps = 0.05
  batches = _batches(config.training.n_critic)
  init, final = _run(config, ConstGenerator(), LinearCritic(), batches)
  want_g, want_d = _reference(config, init, batches)
  np.testing.assert_allclose(final.g_params["b"], want_g["b"], rtol=2e-5, atol=1e-6)
  np.testing.assert_allclose(final.d_params["w"], want_d["w"], rtol=2e-5, atol=1e-6)
  default_g, default_d = _reference(_config(), init, batches)
  assert np.abs(default_g["b"] - want_g["b"]).max() > 1e-3
  assert np.abs(default_d["w"] - want_d["w"]).max() > 1e-4


def test_swapped_learning_rates_would_be_caught():
  # The reference is sensitive to the routing it checks: with g_lr and d_lr swapped it is off
  # by far more than the tolerance above.
  config = _config()
  batches = _batches(config.training.n_critic, steps=1)
  init, final = _run(config, ConstGenerator(), LinearCritic(), batches)
  swapped = _config()
  swapped.optimizer.g_lr, swapped.optimizer.d_lr = config.optimizer.d_lr, config.optimizer.g_lr
  want_g, _ = _reference(swapped, init, batches)
  assert np.abs(np.asarray(final.g_params["b"]) - want_g["b"]).max() > 1e-3


# ------------------------------------------------------------------------------ label routing

NUM_CLASSES = 5
REAL_TAG = 5.0   # channel 1 of pixel (0, 0) of every real image; fakes are tanh, in (-1, 1)
_CALLS = []


def _record(kind, y, x00, train):
  _CALLS.append((kind, np.asarray(y).copy(), np.asarray(x00).copy(), bool(train)))


class MarkingGenerator(nn.Module):
  """Writes y / 100 into channel 0 of pixel (0, 0) of each image; records its labels."""

  @nn.compact
  def __call__(self, z, y=None, train=True):
    b = self.param("b", nn.initializers.normal(0.5), (RES, RES, C))
    h = nn.Dense(D_IN)(z).reshape(z.shape[0], RES, RES, C)
    img = jnp.tanh(b + 0.1 * h)
    if y is not None:
      img = img.at[:, 0, 0, 0].set(y.astype(jnp.float32) / 100.0)
      if not self.is_initializing():
        jax.debug.callback(_record, "G", y, img[:, 0, 0, :2], train)
    return img


class LabelCritic(nn.Module):
  """A projection-style critic: <w, x> + embed(y); records labels and image tags."""

  @nn.compact
  def __call__(self, x, y=None, train=True):
    w = self.param("w", nn.initializers.normal(0.5), (D_IN,))
    out = x.reshape(x.shape[0], -1) @ w
    if y is not None:
      out = out + nn.Embed(NUM_CLASSES, 1)(y)[:, 0]
      if not self.is_initializing():
        jax.debug.callback(_record, "D", y, x[:, 0, 0, :2], train)
    return out


def _labelled_batch(rows, labels):
  img = np.zeros((rows, RES, RES, C), np.float32)
  img[:, 0, 0, 0] = np.asarray(labels) / 100.0
  img[:, 0, 0, 1] = REAL_TAG
  return {"image": img, "label": np.asarray(labels, np.int32)}


def _conditional_run(config, batches):
  _CALLS.clear()
  g, d = MarkingGenerator(), LabelCritic()
  state = state_lib.create_gan_state(config, g, d, jax.random.PRNGKey(0))
  _CALLS.clear()
  step_fn = jax.jit(step_lib.make_train_step(config, g, d))
  for batch in batches:
    state, metrics = step_fn(state, batch, jax.random.PRNGKey(3))
  jax.block_until_ready(metrics)
  jax.effects_barrier()
  return list(_CALLS)


def test_labels_reach_g_and_d_with_their_images():
  n_critic, b, steps = 2, 4, 2
  config = _config(n_critic=n_critic, num_classes=NUM_CLASSES, batch_size=b, loss="hinge")
  rng = np.random.default_rng(1)
  batches = [_labelled_batch(n_critic * b, rng.integers(0, NUM_CLASSES, n_critic * b))
             for _ in range(steps)]
  calls = _conditional_run(config, batches)
  g_calls = [c for c in calls if c[0] == "G"]
  d_calls = [c for c in calls if c[0] == "D"]
  real = [c for c in d_calls if np.all(c[2][:, 1] == REAL_TAG)]
  fake = [c for c in d_calls if np.all(np.abs(c[2][:, 1]) < 1.0)]
  # Every call is a training call; G: one per D update and one for the G update; D: a real
  # and a fake call per D update and a fake call for the G update. Nothing mixes rows.
  assert all(c[3] for c in calls)
  assert len(g_calls) == steps * (n_critic + 1)
  assert len(real) == steps * n_critic and len(fake) == steps * (n_critic + 1)
  assert len(real) + len(fake) == len(d_calls)
  for _, y, x00, _ in d_calls:
    # The label D gets for each row is the label of that row's image (real or generated).
    np.testing.assert_array_equal(y, np.round(x00[:, 0] * 100).astype(np.int32))
  # Real calls get exactly the batch's labels, chunk j = rows j, j + n_critic, ...
  want_real = {tuple(bt["label"][j::n_critic]) for bt in batches for j in range(n_critic)}
  assert {tuple(c[1]) for c in real} == want_real
  # Fake labels are those G generated with (G's labels, as drawn).
  g_labels = {tuple(c[1]) for c in g_calls}
  assert {tuple(c[1]) for c in fake} <= g_labels
  for _, y, x00, _ in g_calls:
    np.testing.assert_array_equal(np.round(x00[:, 0] * 100).astype(np.int32), y)


def test_fake_labels_uniform_over_num_classes():
  b = 600
  config = _config(n_critic=1, num_classes=3, batch_size=b, loss="hinge")
  # All real labels are 0: fake labels that came from the real batch would all be 0.
  calls = _conditional_run(config, [_labelled_batch(b, np.zeros(b, np.int64))])
  g_labels = np.concatenate([c[1] for c in calls if c[0] == "G"])
  assert g_labels.shape == (2 * b,)
  counts = np.bincount(g_labels, minlength=3)
  assert counts.shape == (3,)  # never >= num_classes
  # 1200 draws, p = 1/3 each: std 16.3; 5 std either side.
  np.testing.assert_allclose(counts, 400, atol=82)


# ------------------------------------------------------- what the step hands the task

_TASK_CALLS = []


class RecordingTask:
  """The config's own task, recording each D update's `d_index` and the rows each hook gets."""

  def __init__(self, task):
    self._task = task

  def __getattr__(self, name):
    return getattr(self._task, name)

  def d_loss(self, d_params, st, batch, rng, d_index):
    jax.debug.callback(lambda i, v: _TASK_CALLS.append(("D", int(i), float(v))), d_index,
                       batch["image"][0, 0, 0, 0])
    return self._task.d_loss(d_params, st, batch, rng, d_index)

  def g_loss(self, g_params, st, batch, rng):
    jax.debug.callback(lambda v: _TASK_CALLS.append(("G", -1, float(v))),
                       batch["image"][0, 0, 0, 0])
    return self._task.g_loss(g_params, st, batch, rng)


def test_task_gets_global_d_index_and_g_gets_the_last_chunk():
  from genattn_jax.training import tasks as tasks_lib  # pylint: disable=g-import-not-at-top
  n_critic, b, steps = 3, 2, 3
  config = _config(n_critic=n_critic, batch_size=b)
  g, d = ConstGenerator(), LinearCritic()
  task = RecordingTask(tasks_lib.get_task(config, g, d))
  train_step = step_lib.make_train_step(config, g, d, task=task)
  assert train_step.task is task  # the trainer reads the task back from the step
  state = state_lib.create_gan_state(config, g, d, jax.random.PRNGKey(0))
  step_fn = jax.jit(train_step)
  _TASK_CALLS.clear()
  for s in range(steps):
    # Row i of step s holds 10 * s + (i mod n_critic): the chunk a hook got is readable.
    rows = np.arange(n_critic * b)
    image = np.broadcast_to((10.0 * s + rows % n_critic)[:, None, None, None],
                            (len(rows), RES, RES, C)).astype(np.float32)
    state, metrics = step_fn(state, {"image": image, "label": np.zeros(len(rows), np.int32)},
                             jax.random.PRNGKey(1))
  jax.block_until_ready(metrics)
  jax.effects_barrier()
  want = []
  for s in range(steps):
    want += [("D", s * n_critic + j, 10.0 * s + j) for j in range(n_critic)]
    want.append(("G", -1, 10.0 * s + n_critic - 1))  # G's update sees the last D chunk
  assert sorted(_TASK_CALLS) == sorted(want)  # debug callbacks run in no fixed order


def test_ema_warmup_defaults_to_zero_steps():
  # Without `training.ema_warmup_steps` the EMA ramp starts at step 0: after one step the EMA
  # is decay(0) * init + (1 - decay(0)) * G with decay(0) = min(ema_decay, 1 / 10).
  config = _config(n_critic=1)
  del config.training["ema_warmup_steps"]
  config.training.ema_decay = 0.999
  init, final = _run(config, ConstGenerator(), LinearCritic(), _batches(1, steps=1))
  want = 0.1 * np.asarray(init.g_params["b"]) + 0.9 * np.asarray(final.g_params["b"])
  np.testing.assert_allclose(final.ema_params["b"], want, rtol=1e-6, atol=1e-7)
  assert np.abs(np.asarray(final.ema_params["b"]) - final.g_params["b"]).max() > 1e-4


def test_split_for_critic_message_names_the_rows_and_n_critic():
  batch = {"image": np.zeros((5, 7, 7, 3), np.float32)}
  with pytest.raises(ValueError) as err:
    step_lib.split_for_critic(batch, 2)
  assert str(err.value) == ("batch of 5 rows does not split into `n_critic`=2 "
                            "discriminator updates.")
  split = step_lib.split_for_critic({"x": np.arange(6)}, 3)
  np.testing.assert_array_equal(split["x"], [[0, 3], [1, 4], [2, 5]])
