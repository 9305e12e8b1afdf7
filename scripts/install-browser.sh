#!/usr/bin/env bash
# What the tests need beyond .venv: Debian's chromium, which tests/e2e/test_browser_cors.py drives through
# Playwright (never `playwright install`: its browser download is not reachable). `make test` runs this; the demo
# does not need it. As root it installs chromium when missing; otherwise it says so (the browser test then
# skips, except under CI, where it fails).
set -euo pipefail
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "install-browser: installing Debian's chromium for the browser test"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
  else
    echo "install-browser: chromium is not installed; the browser test needs it (as root: apt-get install chromium)" >&2
  fi
fi
