#!/usr/bin/env bash
# The GPU suite: genattn_jax against PyTorch on the same GPU, in one run of <= 5 minutes.
#
# Usage (from anywhere; the repository root goes on PYTHONPATH):
#   bash benchmarks/gpu_suite.sh OUTDIR            # full sizes, for a GPU machine
#   bash benchmarks/gpu_suite.sh OUTDIR --tiny     # tiny sizes (CPU smoke test)
# Environment:
#   PYTHON        interpreter with jax/flax/optax (default python3)
#   TORCH_PYTHON  interpreter with torch (default: $PYTHON); torch sections are recorded as
#                 skipped when it cannot import torch
#   SUITE_BUDGET_S  total wall-clock budget in seconds (default 290; tiny 7200)
#   SUITE_NO_DONATION  1 (default): end with the no-donation train step if time is left; 0: not
#   SUITE_SPADE   1 (default): the SPADE train step (jax, torch) if time is left; 0: not
#
# One process per (section, side), in this order, each under `timeout` (its share of the
# budget, cut to what is left): train jax, train torch, fid jax, fid torch, blocks jax,
# blocks torch, then the SPADE step of configs/pairs_demo.py (`train --model spade`, jax then
# torch) only if >= 150 s are left (its JAX side initialises G and D op by op, then compiles
# the step; not timed on a GPU yet. At the default budget it is skipped: the sections above
# took 265 s of it on an H200. SUITE_BUDGET_S=480 makes room), then (if >= 45 s are left) the
# train step again without state donation.
# Every process rewrites its JSON in OUTDIR after each measurement, so a timeout keeps what
# was measured; logs go to OUTDIR/logs/. Last, `merge` writes OUTDIR/summary.json (JAX /
# PyTorch ratios) and prints it. See benchmarks/gpu_suite.py for the sections.
set -u
if [[ $# -lt 1 ]]; then
  echo "usage: $0 OUTDIR [--tiny]" >&2
  exit 2
fi
OUT=$1
TINY=""
if [[ "${2:-}" == "--tiny" ]]; then TINY="--tiny"; fi
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PYTHON:-python3}
TPY=${TORCH_PYTHON:-$PY}
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-1}
if [[ -n "$TINY" ]]; then BUDGET=${SUITE_BUDGET_S:-7200}; else BUDGET=${SUITE_BUDGET_S:-290}; fi
mkdir -p "$OUT/logs"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu_suite.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
START=$(date +%s)
cd "$ROOT" || exit 2

TORCH_OK=1
if ! "$TPY" -c "import torch" > "$OUT/logs/torch_import.log" 2>&1; then
  TORCH_OK=0
  echo "[gpu_suite] $TPY cannot import torch: torch sections skipped" >&2
fi

# run NAME SHARE_S PYTHON ARGS...: one section process under timeout.
run() {
  local name=$1 share=$2 py=$3
  shift 3
  local now left t rc
  now=$(date +%s)
  left=$(( BUDGET - (now - START) ))
  t=$(( share < left ? share : left ))
  if (( t < 10 )); then
    echo "[gpu_suite] $name: skipped (budget used up)" | tee -a "$OUT/logs/suite.log" >&2
    return
  fi
  echo "[gpu_suite] $name: up to ${t}s" | tee -a "$OUT/logs/suite.log" >&2
  timeout -k 5 "$t" "$py" -m benchmarks.gpu_suite "$@" --out "$OUT" --work "$WORK" $TINY \
    --budget_s $(( t - 8 )) > "$OUT/logs/$name.log" 2>&1
  rc=$?
  echo "[gpu_suite] $name: rc=$rc after $(( $(date +%s) - now ))s" | tee -a "$OUT/logs/suite.log" >&2
  if (( rc != 0 )); then tail -n 5 "$OUT/logs/$name.log" >&2; fi
}

if [[ -n "$TINY" ]]; then
  # Guards against a hang only: on the 2-core CPU shared with other jobs (load average 30-40)
  # the tiny train step alone took over 400 s to compile.
  S_TRAIN=1200; S_TRAIN_T=1200; S_FID=1200; S_FID_T=1200; S_BLK=1200; S_BLK_T=1200
  S_SPADE=1200; S_SPADE_T=1200; SPADE_MIN=600
else
  # The train step first: its compile (5 D updates + 1 G update, straight-line) is the longest.
  S_TRAIN=95; S_TRAIN_T=30; S_FID=70; S_FID_T=30; S_BLK=50; S_BLK_T=15
  # SPADE: both sides in their shares, with no-donation's 45 s after them.
  S_SPADE=110; S_SPADE_T=40; SPADE_MIN=150
fi
run train_jax "$S_TRAIN" "$PY" train jax --model resnet
if (( TORCH_OK )); then run train_torch "$S_TRAIN_T" "$TPY" train torch --model resnet; fi
run fid_jax "$S_FID" "$PY" fid jax
if (( TORCH_OK )); then run fid_torch "$S_FID_T" "$TPY" fid torch; fi
run blocks_jax "$S_BLK" "$PY" blocks jax
if (( TORCH_OK )); then run blocks_torch "$S_BLK_T" "$TPY" blocks torch; fi
if [[ "${SUITE_SPADE:-1}" == "1" ]]; then
  if (( BUDGET - ($(date +%s) - START) >= SPADE_MIN )); then
    run train_jax_spade "$S_SPADE" "$PY" train jax --model spade
    if (( TORCH_OK )); then run train_torch_spade "$S_SPADE_T" "$TPY" train torch --model spade; fi
  else
    echo "[gpu_suite] spade: skipped (< ${SPADE_MIN}s left)" | tee -a "$OUT/logs/suite.log" >&2
  fi
fi
if [[ "${SUITE_NO_DONATION:-1}" == "1" ]] && (( BUDGET - ($(date +%s) - START) >= 45 )); then
  run train_jax_no_donation 60 "$PY" train jax --model resnet --no_donate
fi
"$PY" -m benchmarks.gpu_suite merge --out "$OUT" > "$OUT/logs/merge.log" 2>&1 \
  || "$TPY" -m benchmarks.gpu_suite merge --out "$OUT" > "$OUT/logs/merge.log" 2>&1
cat "$OUT/summary.json" 2>/dev/null
echo "[gpu_suite] total $(( $(date +%s) - START ))s" | tee -a "$OUT/logs/suite.log" >&2
