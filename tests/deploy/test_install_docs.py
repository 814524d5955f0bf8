"""docs/install-vanilla.md's database steps, followed verbatim against a real PostgreSQL.

This module owns running ``scripts/check-install-docs.sh`` (which parses the page's
``sudo -u postgres psql -c`` lines, runs them as the superuser of a fresh embedded PostgreSQL,
migrates as the documented non-superuser owner, appends and verifies) and checking what the
parser finds. The check uses its own throwaway server: the docs create cluster-wide roles by
name, which the suite's shared server already holds once any test migrated as superuser.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "check-install-docs.sh"
DOCS = REPO / "docs" / "install-vanilla.md"


def _checker() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "check_install_docs", REPO / "scripts" / "check_install_docs.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_docs_create_the_app_role_and_a_plain_owner_before_migrating() -> None:
    """The page's superuser steps create the owner without CREATEROLE plus the granted app role."""
    steps = _checker().parse_database_steps(DOCS.read_text(encoding="utf-8"))

    assert "asterisk_recorder" == steps.owner
    assert "asterisk_recorder" == steps.database
    assert "CREATE ROLE asterisk_recorder_app NOLOGIN" in steps.statements
    assert f"GRANT asterisk_recorder_app TO {steps.owner}" in steps.statements
    owner_line = next(s for s in steps.statements if s.startswith(f"CREATE ROLE {steps.owner} "))
    assert not any(word in owner_line.upper() for word in ("SUPERUSER", "CREATEROLE", "CREATEDB"))


def test_documented_database_steps_work_verbatim_as_the_non_superuser_owner() -> None:
    """The CI script runs the docs' SQL, migrates as the owner, appends and verifies: exit 0."""
    env = {**os.environ, "PYTHON": sys.executable}
    proc = subprocess.run(
        ["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=300, check=False
    )

    assert 0 == proc.returncode, proc.stdout + proc.stderr
    assert "ok  asterisk-recorder db migrate as asterisk_recorder" in proc.stdout
    assert "ok  asterisk-recorder ledger verify: 'chain OK: 1 rows verified" in proc.stdout
    assert "work verbatim" in proc.stdout

