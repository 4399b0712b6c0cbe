"""Smoke test of benchmarks/attention_scaling.py and its timing helpers.

The benchmark runs once, as a user would start it, on tiny maps
(`--sizes 16,32 --repeats 1`) in a subprocess; the tests then check its single
JSON object. The helpers of benchmarks/_timing.py and the script's guards are
tested in-process.
"""

import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile

from absl.testing import absltest
from absl.testing import parameterized
import chex
import jax
import jax.numpy as jnp
import numpy as np

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]

if str(REPO_ROOT) not in sys.path:
  sys.path.insert(0, str(REPO_ROOT))

from benchmarks import _timing  # noqa: E402
from benchmarks import attention_scaling  # noqa: E402

SCRIPT = REPO_ROOT / "benchmarks" / "attention_scaling.py"
SIZES = ("16", "32")
BLOCKS = tuple(attention_scaling.BLOCKS)


def _worker_env():
  """The test environment without the 8 simulated devices of conftest."""
  env = dict(os.environ)
  flags = re.sub(r"--xla_force_host_platform_device_count=\d+", "", env.get("XLA_FLAGS", ""))
  env["XLA_FLAGS"] = flags.strip()
  env["JAX_PLATFORMS"] = "cpu"
  return env


class AttentionScalingSmokeTest(parameterized.TestCase):
  """Runs the script once with tiny sizes and checks its report."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls._tmp = tempfile.TemporaryDirectory()
    cls.json_out = os.path.join(cls._tmp.name, "out", "scaling.json")
    # A small query chunk makes the memory-efficient layer really loop over chunks.
    cmd = [sys.executable, str(SCRIPT), "--sizes", ",".join(SIZES), "--repeats", "1",
           "--sa_query_chunk_size", "48", "--json_out", cls.json_out]
    cls.proc = subprocess.run(cmd, cwd=str(REPO_ROOT), env=_worker_env(), capture_output=True,
                              text=True, timeout=600, check=False)
    cls.report = json.loads(cls.proc.stdout) if cls.proc.returncode == 0 else None

  @classmethod
  def tearDownClass(cls):
    cls._tmp.cleanup()
    super().tearDownClass()

  def _report(self):
    self.assertEqual(self.proc.returncode, 0, msg=self.proc.stderr[-3000:])
    return self.report

  def test_stdout_is_one_json_object_equal_to_json_out(self):
    report = self._report()
    self.assertIsInstance(report, dict)
    with open(self.json_out, encoding="utf-8") as f:
      self.assertEqual(json.load(f), report)

  def test_environment_fields(self):
    report = self._report()
    device = report["device"]
    self.assertEqual(device["platform"], "cpu")
    self.assertEqual(device["device_kind"], "cpu")
    self.assertGreaterEqual(device["cpu_count"], 1)
    self.assertEqual(report["jax_version"], jax.__version__)
    self.assertLen(report["loadavg_start_end"], 2)
    self.assertEqual(report["setting"]["sizes"], [16, 32])
    self.assertEqual(set(report["blocks"]), set(BLOCKS))

  @parameterized.parameters(*[(b, s) for b in BLOCKS for s in SIZES])
  def test_block_measured(self, block, size):
    row = self._report()["results"][block][size]
    self.assertEqual(row["status"], "ok", msg=row.get("traceback", ""))
    # Machine figures: their plausibility is the benchmark's own output
    # (`implausible_figures`); here only their presence and types.
    for key in ("median_ms", "min_ms", "compile_s"):
      self.assertIsInstance(row[key], float)
    self.assertIsInstance(row["implausible_figures"], list)
    self.assertEqual(row["min_ms"], min(row["times_ms"]))
    self.assertLen(row["times_ms"], row["repeats"])
    self.assertEqual(row["repeats"], 1)
    self.assertTrue(row["output_finite"])
    self.assertEqual(row["output_shape"], [1, int(size), int(size), 32])
    pixels = int(size)**2
    np.testing.assert_allclose(row["ms_per_megapixel"], row["median_ms"] / (pixels / 1e6),
                               rtol=1e-9)
    plan = row["xla_memory_bytes"]
    # The argument buffers hold at least the input map, the output buffer exactly it.
    self.assertGreaterEqual(plan["argument"], 4 * 32 * pixels)
    self.assertEqual(plan["output"], 4 * 32 * pixels)

  def test_module_classes(self):
    blocks = self._report()["blocks"]
    self.assertEqual(blocks["attentive_norm"],
                     "genattn_jax.layers.attentive_norm.AttentiveNormalization")
    self.assertEqual(blocks["self_attention_mem_efficient"],
                     "genattn_jax.layers.self_attention.MemoryEfficientSelfAttention")
    self.assertEqual(blocks["lap"], "genattn_jax.layers.lap.LAPBlock")

  def test_mem_efficient_matches_plain(self):
    equality = self._report()["mem_efficient_vs_plain"]
    self.assertEqual(set(equality), set(SIZES))
    for size in SIZES:
      self.assertLessEqual(equality[size]["max_abs_diff"], 1e-5)
      self.assertTrue(equality[size]["within_tolerance"])
      # Gates are 0.5, so the outputs are not trivially the input.
      self.assertGreater(equality[size]["max_abs_output"], 0.0)

  def test_an_ratios(self):
    report = self._report()
    self.assertIsNone(report["an_per_pixel_ratio_1024_vs_128"])  # sizes not run
    ratios = report["an_per_pixel_ratios"]
    self.assertEqual(ratios["16_vs_16"], 1.0)
    an = report["results"]["attentive_norm"]
    expected = (an["32"]["median_ms"] / 32**2) / (an["16"]["median_ms"] / 16**2)
    np.testing.assert_allclose(ratios["32_vs_16"], expected, rtol=1e-9)


class GuardsTest(parameterized.TestCase):
  """The script's predictions and argument checks (no worker processes)."""

  @parameterized.parameters((128, 1, 128**4 // 4 * 4), (1024, 1, 2**38 * 4), (16, 2, 2 * 16**4))
  def test_predicted_attention_bytes(self, size, batch, expected):
    self.assertEqual(attention_scaling._predicted_attention_bytes(batch, size), expected)

  def test_default_limit_marks_plain_attention_at_512_as_oom(self):
    args = attention_scaling._parse_args([])
    limit = args.mem_limit_gb * _timing.GIB
    self.assertGreater(attention_scaling._predicted_attention_bytes(1, 512), limit)
    self.assertEqual(args.size_list, [128, 256, 512, 1024])
    self.assertEqual(args.repeats, 5)
    self.assertEqual(args.block_list, list(BLOCKS))

  @parameterized.named_parameters(
      ("linear", "cbam", 8.0 * 4),
      ("quadratic", "self_attention", 8.0 * 16),
  )
  def test_predicted_call_s(self, block, expected):
    history = {16: {"status": "ok", "median_ms": 1000.0},
               32: {"status": "ok", "median_ms": 8000.0},
               64: {"status": "oom"}}
    self.assertAlmostEqual(attention_scaling._predicted_call_s(history, block, 64), expected)
    self.assertIsNone(attention_scaling._predicted_call_s(history, block, 16))

  @parameterized.parameters(["--blocks", "nope"], ["--sizes", "4"], ["--sizes", "a,b"],
                            ["--repeats", "0"])
  def test_bad_arguments_exit(self, *argv):
    with self.assertRaises(SystemExit):
      attention_scaling._parse_args(list(argv))


class TimingHelpersTest(chex.TestCase):
  """benchmarks/_timing.py on a tiny jitted function."""

  def test_compile_time_and_memory_plan(self):
    x = jnp.arange(8, dtype=jnp.float32)
    compiled, lower_s, compile_s = _timing.compile_jitted(lambda v: v * 2.0 + 1.0, x)
    self.assertIsInstance(lower_s, float)
    self.assertIsInstance(compile_s, float)
    chex.assert_trees_all_close(compiled(x), np.arange(8) * 2.0 + 1.0)
    plan = _timing.compiled_memory(compiled)
    self.assertEqual(plan["argument"], 32)
    self.assertEqual(plan["output"], 32)
    self.assertEqual(plan["total"], plan["temp"] + 64 - plan["alias"])
    times = _timing.time_repeats(compiled, (x,), 3)
    self.assertLen(times, 3)
    self.assertTrue(all(isinstance(t, float) for t in times))
    with self.assertRaisesRegex(ValueError, "repeats"):
      _timing.time_repeats(compiled, (x,), 0)

  @parameterized.parameters((5, 2.0, 60.0, 5), (5, 20.0, 60.0, 3), (5, 100.0, 60.0, 1),
                            (5, 100.0, 0.0, 5), (5, 100.0, None, 5))
  def test_repeats_within_budget(self, requested, one_call_s, budget_s, expected):
    self.assertEqual(_timing.repeats_within_budget(requested, one_call_s, budget_s), expected)

  def test_summarize_ms(self):
    summary = _timing.summarize_ms([0.003, 0.001, 0.002, 0.010])
    np.testing.assert_allclose(summary["median_ms"], 2.5)
    np.testing.assert_allclose(summary["min_ms"], 1.0)
    np.testing.assert_allclose(summary["times_ms"], [3.0, 1.0, 2.0, 10.0])

  def test_process_memory(self):
    rss, peak = _timing.rss_bytes(), _timing.peak_rss_bytes()
    self.assertIsInstance(rss, int)
    self.assertIsInstance(peak, int)
    self.assertIsNone(_timing.device_memory_stats(jax.devices("cpu")[0]))
    self.assertIsInstance(_timing.total_ram_bytes(), int)
    self.assertLen(_timing.loadavg(), 3)


if __name__ == "__main__":
  absltest.main()
