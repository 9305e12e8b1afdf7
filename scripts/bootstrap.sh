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
  echo "bootstrap: installing maas with extras serving, training, dev, cli (TensorFlow included: a minute or two)"
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".[serving,training,dev,cli]"
  echo "$want" > "$stamp"
fi

# tests/e2e/test_browser_cors.py drives Debian's chromium (through Playwright, never `playwright install`): as root,
# install it when it is missing; otherwise say so (that test then skips, except under CI where it fails)
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "bootstrap: installing Debian's chromium for the browser test"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
  else
    echo "bootstrap: chromium is not installed; the browser test needs it (as root: apt-get install chromium)" >&2
  fi
fi
