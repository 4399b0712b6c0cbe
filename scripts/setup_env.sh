#!/usr/bin/env bash
# Creates .venv (Python 3.11 or newer) and installs the pinned requirements. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
pick_python() {
  for p in "${GENATTN_PYTHON:-}" python3.11 python3.12 python3 "$HOME/.pyenv/versions/3.11.7/bin/python3"; do
    [ -n "$p" ] || continue
    if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import sys; sys.exit(0 if sys.version_info[:2] >= (3, 11) else 1)'; then
      echo "$p"; return 0
    fi
  done
  echo "no Python >= 3.11 found; set GENATTN_PYTHON" >&2; return 1
}
if [ ! -x .venv/bin/python ]; then
  "$(pick_python)" -m venv .venv
fi
stamp=.venv/.requirements.sha256
want=$(cat requirements.txt constraints.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r requirements.txt -c constraints.txt
  .venv/bin/python -m pip install -q --no-deps -e .
  echo "$want" > "$stamp"
fi
