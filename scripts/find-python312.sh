#!/usr/bin/env bash
# Print the path of a Python 3.12 that really runs (the Lambda runtime's version), or fail.
# Order: $PYTHON312; python3.12 on PATH (a pyenv shim counts only if it runs); pyenv's
# versions/3.12.* (newest first, even when no pyenv version is selected); the shim with
# PYENV_VERSION=3.12.x; the usual system places.
set -euo pipefail

runs() { "$@" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 12) else 1)' >/dev/null 2>&1; }
found() { "$@" -c 'import sys; print(sys.executable)'; exit 0; }

if [ -n "${PYTHON312:-}" ] && runs "$PYTHON312"; then found "$PYTHON312"; fi
if command -v python3.12 >/dev/null 2>&1 && runs python3.12; then found python3.12; fi

roots=()
if command -v pyenv >/dev/null 2>&1; then roots+=("$(pyenv root)"); fi
roots+=("${PYENV_ROOT:-$HOME/.pyenv}")
for root in "${roots[@]}"; do
    for dir in $(ls -d "$root"/versions/3.12.* 2>/dev/null | sort -t. -k3,3nr); do
        if runs "$dir/bin/python3.12"; then found "$dir/bin/python3.12"; fi
    done
done
if command -v pyenv >/dev/null 2>&1; then
    for version in $(pyenv versions --bare 2>/dev/null | grep '^3\.12\.' | sort -t. -k3,3nr); do
        if PYENV_VERSION=$version runs python3.12; then PYENV_VERSION=$version found python3.12; fi
    done
fi
for p in /usr/local/bin/python3.12 /usr/bin/python3.12 /opt/python3.12/bin/python3.12; do
    if runs "$p"; then found "$p"; fi
done

echo "error: no runnable Python 3.12 found (the Lambda runtime is python3.12): install one, e.g." \
     "'pyenv install 3.12' or your package manager's python3.12, or set PYTHON312=/path/to/python3.12" >&2
exit 1
