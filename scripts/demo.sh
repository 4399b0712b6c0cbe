#!/usr/bin/env bash
# Main job: sets up .venv (pinned), then trains configs/demo.py on real Fashion-MNIST (see README).
# Extra arguments go to train.py, e.g. ./scripts/demo.sh --config.training.num_steps=100
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup_env.sh
exec ./scripts/run_demo.sh "$@"
