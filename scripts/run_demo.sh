#!/usr/bin/env bash
# The demo run itself (called by scripts/demo.sh after set-up): Fashion-MNIST from Debian's
# dataset-fashion-mnist package (installed here when missing), configs/demo.py, runs/demo.
set -euo pipefail
cd "$(dirname "$0")/.."
FMNIST=/usr/share/datasets/fashion-mnist
if ! ls "$FMNIST"/train-images-idx3-ubyte* >/dev/null 2>&1; then
  echo "[demo] installing Fashion-MNIST (Debian package dataset-fashion-mnist)..."
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null
fi
export XLA_FLAGS="${XLA_FLAGS:-}"
WORKDIR="${GENATTN_DEMO_WORKDIR:-runs/demo}"
.venv/bin/python train.py --config=configs/demo.py --workdir="$WORKDIR" \
  --config.data.source="$FMNIST" "$@"
echo "[demo] checkpoints: $WORKDIR/checkpoints  samples: $WORKDIR/samples  metrics: $WORKDIR/metrics.jsonl  TensorBoard: tensorboard --logdir $WORKDIR"
