#!/usr/bin/env bash
# Create .venv with Python 3.12 (the Lambda runtime) and install the project with all extras.
# scripts/find-python312.sh finds the interpreter (PATH, pyenv even when not selected, usual places).
# Re-running is cheap: it reinstalls only when pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."

is_py312() { "$@" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 12) else 1)' >/dev/null 2>&1; }
PY=$(scripts/find-python312.sh)

if [ -x .venv/bin/python ] && ! is_py312 .venv/bin/python; then
  echo "bootstrap: .venv is not Python 3.12; recreating it"
  rm -rf .venv
fi
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv with $PY"
  "$PY" -m venv .venv
fi

stamp=.venv/.maas-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "bootstrap: installing maas with extras training, dev, cli (TensorFlow included: a minute or two)"
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".[training,dev,cli]"
  echo "$want" > "$stamp"
fi

