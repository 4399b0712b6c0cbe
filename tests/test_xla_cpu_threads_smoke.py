"""Smoke test of benchmarks/xla_cpu_threads.py: one short run, its JSON checked."""

import json
import os
import pathlib
import subprocess
import sys

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "benchmarks" / "xla_cpu_threads.py"
OPS = ("conv3x3", "conv4x4_s2", "conv3x3_rgb", "matmul", "transpose", "leaky_relu")


def test_reports_time_and_core_use_per_op_and_flag_variant(tmp_path):
  out = tmp_path / "threads.json"
  proc = subprocess.run([sys.executable, str(SCRIPT), "--seconds", "0.05", "--out", str(out)],
                        cwd=str(REPO_ROOT), capture_output=True, text=True, timeout=600,
                        check=False, env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)))
  assert proc.returncode == 0, proc.stderr[-3000:]
  report = json.loads(out.read_text())
  assert report == json.loads(proc.stdout)  # the file is what it printed
  assert report["host"]["cpu_count"] == os.cpu_count()
  assert set(report["variants"]) == {"default", "ynn_dot"}
  assert report["variants"]["default"]["xla_flags"] == ""
  assert "ynn_fusion_type" in report["variants"]["ynn_dot"]["xla_flags"]
  for variant in report["variants"].values():
    assert tuple(variant["ops"]) == OPS
    for op in variant["ops"].values():
      assert op["calls"] >= 1 and op["ms_per_call"] > 0
      # CPU time over wall time: at most every core busy (plus timer slack).
      assert 0 < op["cpu_over_wall"] <= os.cpu_count() + 0.5
