#!/usr/bin/env bash
# Mutation testing of the core modules (not part of CI); results go in docs/mutation_testing.md.
#
# Usage: scripts/mutation_test.sh [MODULE ...]   (default: all, one module at a time)
#   MODULES: losses fid kid state step pipeline norms checkpoint
#   MUT_JOBS=N   parallel scratch copies (default 1: this machine's 2 cores are shared)
#   MUT_WORK=DIR scratch folder (default /tmp/genattn_mutation)
#
# mutmut's mutation operators (pinned in requirements-mutation.txt) run from a separate venv,
# .venv-mut, created here on first use; the project's .venv is never touched. Each module is
# mutated in scratch copies of the repository and each mutant runs only that module's own
# test files (see SPEC in scripts/mutation_test.py). Everything runs at `nice -n 19`.
# Per module: $MUT_WORK/<module>/results.json (every mutant and its status) and a summary line.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${MUT_VENV:-$PWD/.venv-mut}
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import mutmut, jax" 2>/dev/null; then
  echo "creating $VENV (separate from .venv)" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q -r requirements.txt -c constraints.txt
  "$VENV/bin/pip" install -q --no-deps -e .
  "$VENV/bin/pip" install -q -r requirements-mutation.txt
fi
modules=("$@")
[ ${#modules[@]} -gt 0 ] || modules=(losses fid kid state step pipeline norms checkpoint)
for mod in "${modules[@]}"; do
  nice -n 19 "$VENV/bin/python" scripts/mutation_test.py "$mod" --jobs "${MUT_JOBS:-1}"
done
