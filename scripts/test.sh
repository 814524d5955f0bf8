#!/usr/bin/env bash
# The one test command (README and .ci/run both use it): set up a virtual environment inside
# this checkout, install the package with its test and embedded extras, then run ruff, mypy
# --strict and pytest. Needs only Python 3.11+ and pip (no PostgreSQL, no Asterisk); installs
# SoftHSM2 with apt-get when run as root and it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test,embedded]'

# SoftHSM2 for the PKCS#11 signing-key tests (Debian's softhsm2). Installed when missing and we
# may (root with apt-get); otherwise those tests skip and say why.
if ! command -v softhsm2-util >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 \
    && [ "$(id -u)" = 0 ]; then
  echo "== installing softhsm2"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq softhsm2 >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null 2>&1 \
         && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq softhsm2 >/dev/null 2>&1; } \
    || echo "softhsm2 could not be installed: the PKCS#11 tests will skip"
fi

echo "== ruff check"
.venv/bin/ruff check .
echo "== mypy --strict asterisk_recorder"
.venv/bin/mypy --strict asterisk_recorder
echo "== pytest"
.venv/bin/pytest "$@"
