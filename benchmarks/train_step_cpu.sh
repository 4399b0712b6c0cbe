#!/usr/bin/env bash
# Train step side by side on this CPU: genattn_jax vs the PyTorch reference (benchmarks/torch_ref/),
# for the ResNet SNGAN CIFAR-10 step (n_critic 5, batch 64), SNDCGAN 32x32 (n_critic 1,
# batch 64) and SPADE (configs/pairs_demo.py: 128x256, batch 2, without its VGG term), with
# peak RSS per step and the state-donation check (the JAX step jitted again without donation;
# not for SPADE). The `train` section of benchmarks/gpu_suite.py, run at full size.
#
# Usage (repository root):
#   bash benchmarks/train_step_cpu.sh benchmarks/results/train_step_cpu
# Environment: PYTHON (default .venv/bin/python), TORCH_PYTHON (default .venv-ref/bin/python,
# made with `python3 -m venv .venv-ref && .venv-ref/bin/pip install torch==2.13.0 numpy`),
# REPEATS (timed steps per run after one warm-up step, default 2). PyTorch runs twice: with its default thread count
# and with one thread (on a CPU shared with other jobs, OpenMP's spin-waiting can make the
# multi-threaded run much slower). Each process records os.getloadavg() in its JSON.
# MODELS (default "resnet sndcgan spade") picks the models; NO_DONATION=0 skips the
# no-donation JAX runs.
set -u
OUT=${1:?usage: $0 OUTDIR}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 2
PY=${PYTHON:-.venv/bin/python}
TPY=${TORCH_PYTHON:-.venv-ref/bin/python}
REPEATS=${REPEATS:-2}
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$OUT/logs"
common=(--out "$OUT" --budget_s 3000 --repeats "$REPEATS")
for model in ${MODELS:-resnet sndcgan spade}; do
  JAX_PLATFORMS=cpu "$PY" -m benchmarks.gpu_suite train jax --model "$model" "${common[@]}" \
    > "$OUT/logs/train_jax_$model.log" 2>&1
  "$TPY" -m benchmarks.gpu_suite train torch --model "$model" "${common[@]}" \
    > "$OUT/logs/train_torch_$model.log" 2>&1
  "$TPY" -m benchmarks.gpu_suite train torch --model "$model" --torch_threads 1 "${common[@]}" \
    > "$OUT/logs/train_torch_${model}_threads1.log" 2>&1
  if [[ "$model" != spade && "${NO_DONATION:-1}" != 0 ]]; then
    JAX_PLATFORMS=cpu "$PY" -m benchmarks.gpu_suite train jax --model "$model" --no_donate \
      "${common[@]}" > "$OUT/logs/train_jax_${model}_no_donation.log" 2>&1
  fi
done
"$PY" -m benchmarks.gpu_suite merge --out "$OUT"
