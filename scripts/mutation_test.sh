#!/usr/bin/env bash
# Mutation testing of the core modules (not part of CI; results go in docs/mutation_testing.md).
#
# Usage: scripts/mutation_test.sh [MODULE ...]     (default: every module below, one at a time)
#        MODULES: losses fid kid state step pipeline norms checkpoint
#
# Each module is mutated by mutmut (pinned in requirements-mutation.txt, installed into its own
# venv .venv-mut, never into .venv) in a scratch copy of the repository under
# ${MUT_WORK:-/tmp/genattn_mutation}/<module>, so the working tree is never edited, and each
# mutant runs only that module's own test files (`pytest -x`: the first failure kills it).
# Everything runs at `nice -n 19`. Afterwards `<scratch>/<module>/results.txt` lists the
# survivors (`mutmut results`) and `<scratch>/<module>/mutants.xml` every mutant (junit).
# Show one survivor's diff with `cd <scratch>/<module> && ../../.venv-mut/bin/mutmut show ID`
# (the script prints the exact command).
#
# Speed: modules whose tests are pure numerics run with JAX_DISABLE_JIT=1 (op-by-op, no XLA
# compiles: the same arithmetic, several times faster on tiny arrays). String mutations are
# switched off where the module's strings are only error messages (their wording is not
# behaviour; the tests match the argument names, which the other mutation types still hit).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=${MUT_WORK:-/tmp/genattn_mutation}
VENV=${MUT_VENV:-$ROOT/.venv-mut}

if [ ! -x "$VENV/bin/mutmut" ]; then
  echo "creating $VENV (a separate venv: the project .venv is never touched)" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q -r requirements.txt -c constraints.txt
  "$VENV/bin/pip" install -q --no-deps -e .
  "$VENV/bin/pip" install -q -r requirements-mutation.txt
fi

# module -> "paths to mutate|test files and pytest options|JAX_DISABLE_JIT|disabled types|only"
# `only` (optional) limits mutation to the named functions/classes: path:name,name;path:name
declare -A SPEC=(
  [losses]="genattn_jax/losses/adversarial.py,genattn_jax/losses/regularizers.py|tests/test_losses.py|1|string|"
  [fid]="genattn_jax/metrics/fid.py|tests/metrics/test_fid.py tests/metrics/test_fid_edges.py -k 'not 2048d'|1|string|"
  [kid]="genattn_jax/metrics/kid.py|tests/metrics/test_kid_is.py -k Kid|1|string|"
  [state]="genattn_jax/training/state.py|tests/training/test_step.py tests/training/test_step_contract.py|0||"
  [step]="genattn_jax/training/step.py|tests/training/test_step.py tests/training/test_step_contract.py|0||"
  [pipeline]="genattn_jax/data/pipeline.py|tests/data/test_data.py tests/data/test_augmentation.py|0||"
  [norms]="genattn_jax/layers/lap.py,genattn_jax/layers/attentive_norm.py,genattn_jax/layers/norms.py|tests/layers/test_norm_edges.py tests/layers/test_norms.py tests/layers/test_lap.py tests/layers/test_attentive_norm.py|1|string|genattn_jax/layers/lap.py:patch_instance_norm;genattn_jax/layers/attentive_norm.py:regional_instance_norm;genattn_jax/layers/norms.py:InstanceNorm,PixelNorm,AdaIN"
  [checkpoint]="genattn_jax/training/checkpoint.py|tests/training/test_checkpoint.py tests/training/test_resume.py|0||"
)
ORDER=(losses fid kid state step pipeline norms checkpoint)
modules=("$@")
[ ${#modules[@]} -gt 0 ] || modules=("${ORDER[@]}")

for mod in "${modules[@]}"; do
  spec=${SPEC[$mod]:-}
  if [ -z "$spec" ]; then echo "unknown module '$mod' (one of: ${ORDER[*]})" >&2; exit 2; fi
  IFS='|' read -r paths tests nojit disabled only <<<"$spec"
  dir=$WORK/$mod
  rm -rf "$dir"; mkdir -p "$dir"
  # A scratch copy (mutmut edits files in place); the JAX compile cache of the copy is reused
  # between mutants.
  tar --exclude=./.git --exclude='./.venv*' --exclude=./.cache --exclude=./runs \
      --exclude='*/__pycache__' --exclude=./.mutmut-cache -cf - . | tar -xf - -C "$dir"
  cat > "$dir/mutmut_config.py" <<EOF
"""Written by scripts/mutation_test.sh: restricts mutation to the named functions."""
import ast

_ONLY = {}
for _item in "$only".split(";"):
  if _item:
    _path, _names = _item.split(":")
    _ONLY[_path] = set(_names.split(","))
_SPANS = {}


def _spans(path):
  if path not in _SPANS:
    tree = ast.parse(open(path).read())
    _SPANS[path] = [(n.lineno, n.end_lineno) for n in ast.walk(tree)
                    if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name in _ONLY[path]]
  return _SPANS[path]


def pre_mutation(context):
  if context.filename in _ONLY:
    line = context.current_line_index + 1
    if not any(a <= line <= b for a, b in _spans(context.filename)):
      context.skip = True
EOF
  args=(--paths-to-mutate "$paths" --tests-dir tests -m 4 -b 60
        --runner "python -m pytest -x -q -p no:cacheprovider -W ignore $tests")
  [ -n "$disabled" ] && args+=(--disable-mutation-types "$disabled")
  echo "=== $mod: mutating $paths against: $tests" >&2
  start=$(date +%s)
  (
    cd "$dir"
    export PATH="$VENV/bin:$PATH" PYTHONPATH="$dir" JAX_PLATFORMS=cpu \
           XLA_FLAGS=--xla_force_host_platform_device_count=8
    [ "$nojit" = 1 ] && export JAX_DISABLE_JIT=1
    nice -n 19 mutmut run "${args[@]}" > run.log 2>&1 || true
    mutmut results > results.txt 2>&1 || true
    mutmut junitxml > mutants.xml 2>/dev/null || true
  )
  end=$(date +%s)
  python3 - "$dir" "$mod" "$((end - start))" <<'EOF'
import collections, sqlite3, sys
d, mod, secs = sys.argv[1:]
try:
  rows = sqlite3.connect(f"{d}/.mutmut-cache").execute("select status from Mutant").fetchall()
except sqlite3.Error as e:  # no cache: mutmut failed before mutating (see run.log)
  print(f"{mod}: no results ({e}); see {d}/run.log"); sys.exit()
n = collections.Counter(r[0] for r in rows)
tested = n["ok_killed"] + n["bad_survived"] + n["bad_timeout"] + n["ok_suspicious"]
print(f"{mod}: {tested} mutants run in {secs} s: killed {n['ok_killed']}, survived "
      f"{n['bad_survived']}, timeout {n['bad_timeout']}, suspicious {n['ok_suspicious']} "
      f"(outside the selected functions: {n['skipped']}, not run: {n['untested']})")
print(f"  survivors: {d}/results.txt")
EOF
done
