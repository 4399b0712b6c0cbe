"""`Checkpointer`: round trips, refusal of damaged checkpoints, retention, iterator position.

The states are real `GANState`s of a tiny dense G / D pair (with Adam states that have taken
an update), so the test needs no compile beyond a few eager ops.
"""

import hashlib
import json
import logging
import pathlib
import shutil
import time

import chex
import flax.linen as nn
import grain
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from genattn_jax.training import checkpoint as ckpt_lib
from genattn_jax.training import config as config_lib
from genattn_jax.training import state as state_lib


class _G(nn.Module):

  @nn.compact
  def __call__(self, z, y=None, train=True):
    del y
    h = nn.BatchNorm(use_running_average=not train)(nn.Dense(8)(z))
    return jnp.tanh(nn.Dense(4 * 4 * 3)(h)).reshape(z.shape[0], 4, 4, 3)


class _D(nn.Module):

  @nn.compact
  def __call__(self, x, y=None, train=True):
    del y, train
    return nn.Dense(1)(nn.Dense(64)(x.reshape(x.shape[0], -1)))[:, 0]


@pytest.fixture(scope="module")
def gan_state():
  """A GANState whose Adam moments, counts and step are not at their initial values."""
  c = config_lib.base_config("sndcgan", 8)
  c.model.resolution = c.data.image_size = 4
  c.model.z_dim = 4
  c.optimizer.grad_clip = 1.0  # chain(clip, adam): a nested optax state
  st = state_lib.create_gan_state(c, _G(), _D(), jax.random.PRNGKey(0))
  g_tx, d_tx = state_lib.make_optimizers(c)
  ones = lambda tree: jax.tree_util.tree_map(lambda p: jnp.full_like(p, 0.1), tree)
  g_up, g_opt = g_tx.update(ones(st.g_params), st.g_opt_state, st.g_params)
  d_up, d_opt = d_tx.update(ones(st.d_params), st.d_opt_state, st.d_params)
  g_params = optax.apply_updates(st.g_params, g_up)
  return jax.device_get(st.replace(
      step=jnp.asarray(7, jnp.int32), g_params=g_params,
      d_params=optax.apply_updates(st.d_params, d_up), g_opt_state=g_opt, d_opt_state=d_opt,
      ema_params=jax.tree_util.tree_map(lambda p: 0.5 * p, g_params)))


def shifted(state, delta: float):
  """The same structure with every float leaf moved by `delta` (a distinct checkpoint)."""
  return jax.tree_util.tree_map(
      lambda x: x + np.asarray(delta, x.dtype) if np.issubdtype(x.dtype, np.floating) else x,
      state)


def zeros_like(state):
  return jax.tree_util.tree_map(np.zeros_like, state)


def assert_same_state(got, expected):
  assert jax.tree_util.tree_structure(got) == jax.tree_util.tree_structure(expected)
  for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(expected)):
    assert np.asarray(a).dtype == np.asarray(b).dtype
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("async_save", [False, True])
def test_round_trip(tmp_path, gan_state, async_save):
  ckpt = ckpt_lib.Checkpointer(str(tmp_path), keep=3, async_save=async_save)
  ckpt.save(7, gan_state)
  ckpt.wait()
  assert ckpt.all_steps() == [7]
  restored = ckpt.restore(7, zeros_like(gan_state))
  assert_same_state(restored, gan_state)
  # The optax state types survive: chain(clip, adam) -> (EmptyState, (ScaleByAdamState, ...)).
  assert isinstance(optax.tree_utils.tree_get(restored.d_opt_state, "count"), (np.ndarray,
                                                                                jax.Array))
  assert type(restored) is state_lib.GANState
  adam_states = [s for s in jax.tree_util.tree_leaves(
      restored.g_opt_state, is_leaf=lambda s: isinstance(s, optax.ScaleByAdamState))
                 if isinstance(s, optax.ScaleByAdamState)]
  assert len(adam_states) == 1 and int(adam_states[0].count) == 1
  chex.assert_trees_all_equal(adam_states[0].mu, optax.tree_utils.tree_get(
      gan_state.g_opt_state, "mu"))
  ckpt.close()
  # A new Checkpointer on the same directory (a restarted run) finds it as the latest.
  step, latest = ckpt_lib.Checkpointer(str(tmp_path), async_save=False).restore_latest(
      zeros_like(gan_state))
  assert step == 7
  assert_same_state(latest, gan_state)


def test_nothing_saved_returns_target(tmp_path, gan_state):
  target = zeros_like(gan_state)
  step, got = ckpt_lib.Checkpointer(str(tmp_path), async_save=False).restore_latest(target)
  assert step is None and got is target


def _two_checkpoints(directory, state):
  ckpt = ckpt_lib.Checkpointer(str(directory), keep=5, async_save=False)
  ckpt.save(1, shifted(state, 1.0))
  ckpt.save(2, shifted(state, 2.0))
  ckpt.close()


def _refusal_logged(caplog, step: int) -> bool:
  return any(f"checkpoint {step} in" in r.getMessage() and "unusable" in r.getMessage()
             for r in caplog.records if r.levelno >= logging.ERROR)


def test_flipped_bytes_fall_back_to_previous(tmp_path, gan_state, caplog):
  _two_checkpoints(tmp_path, gan_state)
  # The largest data file of step 2's state (it holds D's 48x64 kernel).
  files = [p for p in (tmp_path / "2" / "state").rglob("*") if p.is_file()]
  target = max(files, key=lambda p: p.stat().st_size)
  assert target.stat().st_size > 4000
  data = bytearray(target.read_bytes())
  mid = len(data) // 2
  for i in range(mid, mid + 16):
    data[i] ^= 0xFF
  target.write_bytes(bytes(data))
  caplog.set_level(logging.ERROR)
  # Whether the damage breaks decompression or silently changes the array bytes (caught by
  # the sha256 manifest), step 2 must not be returned.
  step, restored = ckpt_lib.Checkpointer(str(tmp_path), async_save=False).restore_latest(
      zeros_like(gan_state))
  assert step == 1
  assert_same_state(restored, shifted(gan_state, 1.0))
  assert _refusal_logged(caplog, 2)


def test_checksum_mismatch_is_refused(tmp_path, gan_state, caplog):
  _two_checkpoints(tmp_path, gan_state)
  meta_file = tmp_path / "2" / "meta" / "metadata"
  meta = json.loads(meta_file.read_text())
  key = sorted(meta["checksums"])[0]
  meta["checksums"][key] = "0" * 64
  meta_file.write_text(json.dumps(meta))
  ckpt = ckpt_lib.Checkpointer(str(tmp_path), async_save=False)
  with pytest.raises(ckpt_lib.CheckpointError, match="sha256"):
    ckpt.restore(2, zeros_like(gan_state))
  caplog.set_level(logging.ERROR)
  step, restored = ckpt.restore_latest(zeros_like(gan_state))
  assert step == 1
  assert_same_state(restored, shifted(gan_state, 1.0))
  assert _refusal_logged(caplog, 2)
  assert any("CheckpointError" in r.getMessage() for r in caplog.records)


def test_verify_checksums_direct(gan_state):
  sums = ckpt_lib.state_checksums(gan_state)
  assert len(sums) == len(jax.tree_util.tree_leaves(gan_state))
  ckpt_lib.verify_checksums(gan_state, sums, 3)
  with pytest.raises(ckpt_lib.CheckpointError, match="fails its sha256"):
    ckpt_lib.verify_checksums(shifted(gan_state, 1e-3), sums, 3)
  with pytest.raises(ckpt_lib.CheckpointError, match="differ from the saved manifest"):
    ckpt_lib.verify_checksums(gan_state, {**sums, "['extra']": "0" * 64}, 3)


def test_empty_and_temporary_step_dirs_are_skipped(tmp_path, gan_state, caplog):
  _two_checkpoints(tmp_path, gan_state)
  (tmp_path / "3").mkdir()  # an empty step directory
  # A complete-looking copy that never got its final name (cut off before the rename).
  shutil.copytree(tmp_path / "2", tmp_path / "4.orbax-checkpoint-tmp-1700000000")
  caplog.set_level(logging.ERROR)
  ckpt = ckpt_lib.Checkpointer(str(tmp_path), async_save=False)
  assert 4 not in ckpt.all_steps()
  step, restored = ckpt.restore_latest(zeros_like(gan_state))
  assert step == 2
  assert_same_state(restored, shifted(gan_state, 2.0))
  assert _refusal_logged(caplog, 3)


def _step_dirs(directory: pathlib.Path):
  return sorted(int(p.name) for p in directory.iterdir() if p.is_dir() and p.name.isdigit())


def test_retention_keeps_newest_and_best_fid(tmp_path, gan_state):
  ckpt = ckpt_lib.Checkpointer(str(tmp_path), keep=2, async_save=False)
  # FID only at evaluation steps (2, 4) as in the trainer; lower is better; NaN = no metric.
  fids = {1: None, 2: 10.0, 3: None, 4: 20.0, 5: float("nan"), 6: None}
  for step, fid in fids.items():
    ckpt.save(step, shifted(gan_state, step), fid=fid)
  ckpt.close()
  assert _step_dirs(tmp_path) == [2, 5, 6]
  ckpt = ckpt_lib.Checkpointer(str(tmp_path), keep=2, async_save=False)
  assert ckpt.all_steps() == [2, 5, 6]
  assert_same_state(ckpt.restore(2, zeros_like(gan_state)), shifted(gan_state, 2))


def test_retention_best_moves_to_lower_fid(tmp_path, gan_state):
  ckpt = ckpt_lib.Checkpointer(str(tmp_path), keep=1, async_save=False)
  for step, fid in ((1, 5.0), (2, 1.0), (3, 3.0), (4, 0.5), (5, 4.0)):
    ckpt.save(step, shifted(gan_state, step), fid=fid)
  ckpt.close()
  assert _step_dirs(tmp_path) == [4, 5]


def _loader(seed: int = 3):
  return grain.DataLoader(
      data_source=grain.sources.RangeDataSource(0, 23, 1),
      sampler=grain.samplers.IndexSampler(num_records=23, shuffle=True, seed=seed,
                                          num_epochs=None,
                                          shard_options=grain.sharding.NoSharding()),
      operations=[grain.transforms.Batch(5, drop_remainder=True)], worker_count=0)


def test_data_iterator_position_restores(tmp_path, gan_state):
  it = iter(_loader())
  for _ in range(6):  # past the first epoch (4 batches of 5 from 23 records)
    next(it)
  ckpt = ckpt_lib.Checkpointer(str(tmp_path), async_save=False)
  ckpt.save(6, gan_state, data_iterator=it)
  ckpt.wait()
  expected = [np.asarray(next(it)) for _ in range(4)]
  fresh = iter(_loader())
  first = np.asarray(next(fresh))
  assert not np.array_equal(first, expected[0])
  step, restored = ckpt.restore_latest(zeros_like(gan_state), data_iterator=fresh)
  assert step == 6
  assert_same_state(restored, gan_state)
  got = [np.asarray(next(fresh)) for _ in range(4)]
  for g, e in zip(got, expected):
    np.testing.assert_array_equal(g, e)
  ckpt.close()


def test_checkpoint_of_another_config_is_an_error_not_a_restart(tmp_path, gan_state, caplog):
  _two_checkpoints(tmp_path, gan_state)
  ckpt = ckpt_lib.Checkpointer(str(tmp_path), async_save=False)
  # A config that builds one more array (e.g. a bias the run did not have).
  more = zeros_like(gan_state).replace(
      g_params={**gan_state.g_params, "extra": {"bias": np.zeros((3,), np.float32)}})
  with pytest.raises(ckpt_lib.CheckpointMismatchError,
                     match=r"checkpoint 2 in .*different model or config.*\['extra'\]\['bias'\]"
                           r".*config\.json"):
    ckpt.restore_latest(more)
  assert not _refusal_logged(caplog, 2)  # raised at once: no fallback to checkpoint 1
  # One fewer array: named as saved but not built.
  first = sorted(gan_state.d_params)[0]
  fewer = zeros_like(gan_state).replace(
      d_params={k: v for k, v in gan_state.d_params.items() if k != first})
  with pytest.raises(ckpt_lib.CheckpointMismatchError, match=f"does not build.*{first}"):
    ckpt.restore_latest(fewer)
  # Same arrays, another shape.
  leaves, treedef = jax.tree_util.tree_flatten(gan_state.g_params)
  leaves[0] = np.zeros(np.shape(leaves[0]) + (2,), np.float32)
  g = jax.tree_util.tree_unflatten(treedef, leaves)
  with pytest.raises(ckpt_lib.CheckpointMismatchError, match=r"other shapes.*saved \[.*config \["):
    ckpt.restore_latest(zeros_like(gan_state).replace(g_params=g))
  # The matching state still restores the newest checkpoint.
  step, _ = ckpt.restore_latest(zeros_like(gan_state))
  assert step == 2
  ckpt.close()


# ----------------------------------------------------------------- reliability (issue 9)


def _damage_largest_array(step_dir: pathlib.Path) -> None:
  files = [p for p in (step_dir / "state").rglob("*") if p.is_file()]
  target = max(files, key=lambda p: p.stat().st_size)
  target.write_bytes(target.read_bytes()[: target.stat().st_size // 3])  # truncated


def test_refused_checkpoint_is_moved_aside_and_its_step_can_be_saved_again(tmp_path,
                                                                           gan_state):
  _two_checkpoints(tmp_path, gan_state)
  _damage_largest_array(tmp_path / "2")
  ckpt = ckpt_lib.Checkpointer(str(tmp_path), async_save=False)
  step, restored = ckpt.restore_latest(zeros_like(gan_state), move_aside=True)
  assert step == 1
  assert_same_state(restored, shifted(gan_state, 1.0))
  assert [s for s, _ in ckpt.refused] == [2]
  moved = [p.name for p in tmp_path.iterdir() if p.name.startswith("2.corrupt-")]
  assert len(moved) == 1 and not (tmp_path / "2").exists()
  assert ckpt.all_steps() == [1]  # the moved directory is not a checkpoint any more
  # The resumed run writes step 2 again (orbax raised StepAlreadyExistsError before).
  ckpt.save(2, shifted(gan_state, 5.0))
  ckpt.close()
  again = ckpt_lib.Checkpointer(str(tmp_path), async_save=False)
  step, restored = again.restore_latest(zeros_like(gan_state))
  assert step == 2
  assert_same_state(restored, shifted(gan_state, 5.0))
  assert (tmp_path / moved[0] / "state").is_dir()  # kept for inspection
  again.close()


def test_no_usable_checkpoint_is_an_error_listing_them_not_a_restart(tmp_path, gan_state):
  _two_checkpoints(tmp_path, gan_state)
  _damage_largest_array(tmp_path / "2")
  (tmp_path / "1" / "meta" / "metadata").unlink()
  ckpt = ckpt_lib.Checkpointer(str(tmp_path), async_save=False)
  with pytest.raises(ckpt_lib.NoUsableCheckpointError,
                     match=r"(?s)found 2, all refused.*step 2: .*step 1: .*"
                           r"allow_restart_from_scratch"):
    ckpt.restore_latest(zeros_like(gan_state), move_aside=True, require_usable=True)
  assert _step_dirs(tmp_path) == [1, 2]  # nothing moved or deleted
  # Asked to start over: both moved aside, nothing restored.
  step, got = ckpt.restore_latest(zeros_like(gan_state), move_aside=True)
  assert step is None and ckpt.all_steps() == []
  assert sorted(p.name.split(".")[0] for p in tmp_path.iterdir()
                if ".corrupt-" in p.name) == ["1", "2"]
  ckpt.close()


def test_edited_data_iterator_position_is_refused(tmp_path, gan_state):
  it = iter(_loader())
  for _ in range(3):
    next(it)
  ckpt = ckpt_lib.Checkpointer(str(tmp_path), keep=5, async_save=False)
  ckpt.save(1, shifted(gan_state, 1.0), data_iterator=it)
  next(it)
  ckpt.save(2, shifted(gan_state, 2.0), data_iterator=it)
  meta = json.loads((tmp_path / "2" / "meta" / "metadata").read_text())
  assert list(meta["data_sha256"]) == ["process_0-of-1.json"]
  position = tmp_path / "2" / "data" / "process_0-of-1.json"
  text = position.read_text()
  state = json.loads(text)
  key = next(k for k, v in state.items() if isinstance(v, int) and not isinstance(v, bool)
             and k != "version")
  state[key] += 5
  position.write_text(json.dumps(state, indent=4))
  with pytest.raises(ckpt_lib.CheckpointError) as err:
    ckpt.restore(2, zeros_like(gan_state), data_iterator=iter(_loader()))
  assert str(err.value) == (f"checkpoint 2: data iterator position {position} fails its "
                            "sha256 check; refusing it.")
  step, _ = ckpt.restore_latest(zeros_like(gan_state), data_iterator=iter(_loader()))
  assert step == 1
  ckpt.close()


def test_manifest_without_shapes_is_checked_by_its_array_names():
  """Older manifests list only checksums: their array names still decide compatibility."""
  target = {"a": np.zeros((2,)), "b": np.zeros((3, 1))}
  names = ckpt_lib.state_shapes(target)
  assert names == {"['a']": [2], "['b']": [3, 1]}
  ckpt_lib.check_compatible({"checksums": {k: "0" for k in names}}, target, 5, "/run")
  with pytest.raises(ckpt_lib.CheckpointMismatchError) as err:
    ckpt_lib.check_compatible({"checksums": {"['a']": "0", "['c']": "0"}}, target, 5, "/run")
  assert str(err.value) == (  # the whole message: what differs and what to do
      "checkpoint 5 in /run was written for a different model or config: 1 saved arrays the "
      "current config does not build, e.g. [\"['c']\"]; 1 arrays of the current config not in "
      "the checkpoint, e.g. [\"['b']\"]. Resume with the config the run was started with (the "
      "run directory's config.json holds it) or train in a new --workdir.")
  # With shapes, a reshaped array is named with both shapes.
  with pytest.raises(ckpt_lib.CheckpointMismatchError,
                     match=r"1 arrays with other shapes, e.g. \['b'\]: saved \[3, 2\], "
                           r"config \[3, 1\]"):
    ckpt_lib.check_compatible({"shapes": {"['a']": [2], "['b']": [3, 2]}}, target, 5, "/run")
  ckpt_lib.check_compatible({}, target, 5, "/run")  # no manifest: nothing to compare
  # At most three example names per kind.
  many = {f"['{k}']": "0" for k in "acdefg"}
  with pytest.raises(ckpt_lib.CheckpointMismatchError) as err:
    ckpt_lib.check_compatible({"checksums": many}, target, 5, "/run")
  assert "5 saved arrays" in str(err.value) and "['e']" in str(err.value)
  assert "['f']" not in str(err.value) and "['g']" not in str(err.value)
  wide = {k: np.zeros((1,)) for k in "hijklm"}
  with pytest.raises(ckpt_lib.CheckpointMismatchError) as err:
    ckpt_lib.check_compatible({"checksums": {"['h']": "0"}}, wide, 5, "/run")
  assert "5 arrays of the current config" in str(err.value) and "['k']" in str(err.value)
  assert "['l']" not in str(err.value) and "['m']" not in str(err.value)


def test_manifest_with_other_array_names_names_them():
  """A manifest with other array names than the state's: the error lists (at most three of)
  the names found on one side only, not those both have."""
  state = {"a": np.zeros((1,)), "b": np.ones((1,))}
  sums = ckpt_lib.state_checksums(state)
  with pytest.raises(ckpt_lib.CheckpointError) as err:
    ckpt_lib.verify_checksums(state, {"['a']": sums["['a']"], "['c']": "0"}, 7)
  assert str(err.value) == ("checkpoint 7: arrays [\"['b']\", \"['c']\"] differ from the saved "
                            "manifest.")
  with pytest.raises(ckpt_lib.CheckpointError) as err:
    ckpt_lib.verify_checksums(state, {f"['{k}']": "0" for k in "cdef"}, 7)
  assert "['a']" in str(err.value) and "['c']" in str(err.value)
  assert "['d']" not in str(err.value)  # sorted a, b, c, d, ...: the first three
  # Same names, other bytes: the array and both digests' first 12 hex digits.
  key_b = "['b']"
  with pytest.raises(ckpt_lib.CheckpointError) as err:
    ckpt_lib.verify_checksums(state, {**sums, key_b: "f" * 64}, 7)
  assert str(err.value) == (f"checkpoint 7: array ['b'] fails its sha256 check (saved "
                            f"ffffffffffff…, read {sums[key_b][:12]}…); refusing it.")


def test_data_checksums_cover_every_process(monkeypatch):
  """The manifest holds the iterator-position digest of every process, keyed by the file name
  grain writes for it; one process needs no collective."""
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top

  class Iterator:
    def get_state(self):
      return b"position"

  mine, other = hashlib.sha256(b"position").digest(), hashlib.sha256(b"other").digest()

  def no_gather(x):
    raise AssertionError("one process must not gather")

  monkeypatch.setattr(multihost_utils, "process_allgather", no_gather)
  got = ckpt_lib._data_checksums(Iterator())  # pylint: disable=protected-access
  assert got == {"process_0-of-1.json": mine.hex()}
  monkeypatch.setattr(jax, "process_count", lambda: 2)
  monkeypatch.setattr(multihost_utils, "process_allgather",
                      lambda x: np.stack([np.asarray(x), np.frombuffer(other, np.uint8)]))
  got = ckpt_lib._data_checksums(Iterator())  # pylint: disable=protected-access
  assert got == {"process_0-of-2.json": mine.hex(), "process_1-of-2.json": other.hex()}


def test_checkpointer_defaults_keep_three_and_create_the_directory(tmp_path, gan_state):
  """Default retention is the 3 newest (no FID given); the directory is created on demand;
  nothing is refused before a restore."""
  directory = tmp_path / "not" / "yet"
  ckpt = ckpt_lib.Checkpointer(str(directory))
  assert ckpt.refused == []
  for step in range(1, 6):
    ckpt.save(step, shifted(gan_state, step))
  ckpt.close()
  assert _step_dirs(directory) == [3, 4, 5]
  meta = json.loads((directory / "5" / "meta" / "metadata").read_text())
  assert meta["step"] == 5 and meta["shapes"] == ckpt_lib.state_shapes(gan_state)
  ckpt = ckpt_lib.Checkpointer(str(directory))
  assert_same_state(ckpt.restore(5, zeros_like(gan_state)), shifted(gan_state, 5))
  ckpt.close()


def test_restore_errors_name_the_step_and_the_problem(tmp_path, gan_state, caplog):
  """The messages of a missing manifest, a missing iterator position and an old manifest
  without position digests, in full (an edited position: the test above)."""
  it = iter(_loader())
  next(it)
  ckpt = ckpt_lib.Checkpointer(str(tmp_path), keep=5, async_save=False)
  for step in (1, 2, 3):
    ckpt.save(step, shifted(gan_state, step), data_iterator=it)
  meta_file = tmp_path / "1" / "meta" / "metadata"
  meta = json.loads(meta_file.read_text())
  del meta["checksums"]  # the rest of the manifest is there
  meta_file.write_text(json.dumps(meta))
  with pytest.raises(ckpt_lib.CheckpointError) as err:
    ckpt.restore(1, zeros_like(gan_state))
  assert str(err.value) == "checkpoint 1 has no checksum manifest."
  position = tmp_path / "2" / "data" / "process_0-of-1.json"
  position.unlink()
  with pytest.raises(ckpt_lib.CheckpointError) as err:
    ckpt.restore(2, zeros_like(gan_state), data_iterator=iter(_loader()))
  assert str(err.value) == f"checkpoint 2 has no data iterator position ({position})."
  # A manifest written before positions had digests: restored, with a warning.
  meta_file = tmp_path / "3" / "meta" / "metadata"
  meta = json.loads(meta_file.read_text())
  del meta["data_sha256"]
  meta_file.write_text(json.dumps(meta))
  caplog.set_level(logging.WARNING)
  assert_same_state(ckpt.restore(3, zeros_like(gan_state), data_iterator=iter(_loader())),
                    shifted(gan_state, 3))
  assert ("checkpoint 3 predates iterator checksums; its position is not verified."
          in [r.getMessage() for r in caplog.records])
  ckpt.close()


def test_move_aside_names_carry_the_utc_time_and_a_counter(tmp_path, monkeypatch):
  """`<step>.corrupt-<YYYYmmddTHHMMSSZ>`, then `-2`, `-3` for more in the same second."""
  fixed = time.gmtime(1_000_000_000)  # 2001-09-09 01:46:40 UTC
  monkeypatch.setattr(ckpt_lib.time, "gmtime", lambda *a: fixed)
  ckpt = ckpt_lib.Checkpointer(str(tmp_path), async_save=False)
  names = []
  for k in range(3):
    (tmp_path / "4").mkdir()
    (tmp_path / "4" / "mark").write_text(str(k))
    names.append(pathlib.Path(ckpt.move_aside(4)).name)
  assert names == ["4.corrupt-20010909T014640Z", "4.corrupt-20010909T014640Z-2",
                   "4.corrupt-20010909T014640Z-3"]
  assert [(tmp_path / n / "mark").read_text() for n in names] == ["0", "1", "2"]
  assert not (tmp_path / "4").exists()
  # A step with no directory: the name it would get, nothing renamed or created.
  assert ckpt.move_aside(9) == str(tmp_path / "9.corrupt-20010909T014640Z")
  assert not (tmp_path / "9.corrupt-20010909T014640Z").exists()
  ckpt.close()


def test_move_aside_reports_and_synchronises_processes(tmp_path, monkeypatch, caplog, capsys):
  """Logged and printed with the new path; several processes meet at a named barrier after
  the rename (one process needs none)."""
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  barriers = []
  monkeypatch.setattr(multihost_utils, "sync_global_devices", barriers.append)
  ckpt = ckpt_lib.Checkpointer(str(tmp_path), async_save=False)
  caplog.set_level(logging.WARNING)
  (tmp_path / "3").mkdir()
  dst = ckpt.move_aside(3)
  assert barriers == []
  assert f"moved unusable checkpoint 3 aside to {dst}" in [r.getMessage() for r in caplog.records]
  assert capsys.readouterr().out == f"[checkpoint] moved unusable checkpoint 3 aside to {dst}\n"
  monkeypatch.setattr(jax, "process_count", lambda: 2)
  ckpt.move_aside(5)
  assert barriers == ["genattn_move_aside_5"]
  ckpt.close()


def test_refusals_are_recorded_logged_and_listed(tmp_path, gan_state, caplog, monkeypatch):
  """Each refusal as (step, '<ExceptionType>: <message>'), logged with the directory; the
  no-usable-checkpoint error lists them one per line, each cut at 300 characters; refused
  checkpoints stay where they are unless `move_aside`."""
  _two_checkpoints(tmp_path, gan_state)
  ckpt = ckpt_lib.Checkpointer(str(tmp_path), async_save=False)
  long = "x" * 400

  def refuse(step, target, data_iterator=None):
    raise ckpt_lib.CheckpointError(f"{step}{long}")

  monkeypatch.setattr(ckpt, "restore", refuse)
  caplog.set_level(logging.ERROR)
  step, got = ckpt.restore_latest(zeros_like(gan_state))
  assert step is None and _step_dirs(tmp_path) == [1, 2]  # not moved by default
  reasons = [f"CheckpointError: {s}{long}" for s in (2, 1)]
  assert ckpt.refused == list(zip((2, 1), reasons))
  logged = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
  assert logged == [f"checkpoint {s} in {tmp_path} is unusable ({r}); trying the previous one."
                    for s, r in zip((2, 1), reasons)]
  with pytest.raises(ckpt_lib.NoUsableCheckpointError) as err:
    ckpt.restore_latest(zeros_like(gan_state), require_usable=True)
  listing = "\n".join(f"  step {s}: {r[:300]}" for s, r in zip((2, 1), reasons))
  assert str(err.value) == (
      f"no usable checkpoint in {tmp_path}; found 2, all refused:\n{listing}\nNothing was "
      "moved or deleted. Inspect or remove them, train in a new --workdir, or set "
      "--config.checkpoint.allow_restart_from_scratch=True to move them aside and start again "
      "from step 0.")
  ckpt.close()
