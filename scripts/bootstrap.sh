#!/usr/bin/env bash
# Create .venv with Python 3.12 (the Lambda runtime) and install the project with all extras.
# Finds python3.12 on PATH, under pyenv (even when the pyenv shim is not selected), or in usual places.
# Re-running is cheap: it reinstalls only when pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."

is_py312() { "$@" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 12) else 1)' >/dev/null 2>&1; }

find_python312() {
  if [ -n "${PYTHON312:-}" ] && is_py312 "$PYTHON312"; then echo "$PYTHON312"; return; fi
  if command -v python3.12 >/dev/null 2>&1 && is_py312 python3.12; then command -v python3.12; return; fi
  local roots=()
  if command -v pyenv >/dev/null 2>&1; then roots+=("$(pyenv root)"); fi
  roots+=("${PYENV_ROOT:-$HOME/.pyenv}")
  for root in "${roots[@]}"; do
    for p in "$root"/versions/3.12*/bin/python3.12; do
      if [ -x "$p" ] && is_py312 "$p"; then echo "$p"; return; fi
    done
  done
  for p in /usr/local/bin/python3.12 /usr/bin/python3.12 /opt/python3.12/bin/python3.12; do
    if [ -x "$p" ] && is_py312 "$p"; then echo "$p"; return; fi
  done
  return 1
}

if ! PY=$(find_python312); then
  echo "error: Python 3.12 not found (the Lambda runtime is python3.12). Install it, e.g. 'pyenv install 3.12', or set PYTHON312=/path/to/python3.12" >&2
  exit 1
fi

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
  echo "bootstrap: installing maas with extras serving, training, dev (TensorFlow included: a minute or two)"
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".[serving,training,dev]"
  echo "$want" > "$stamp"
fi
