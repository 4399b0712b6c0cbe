#!/usr/bin/env bash
# Sets up .venv if needed and runs the test suite on 8 simulated CPU devices.
# Extra arguments go to pytest (e.g. ./scripts/test.sh tests/layers -k lap).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup_env.sh
export XLA_FLAGS="${XLA_FLAGS:-} --xla_force_host_platform_device_count=8"
export JAX_PLATFORMS=cpu
exec .venv/bin/python -m pytest -q -ra --durations=15 "$@"
