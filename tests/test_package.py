"""The package installs, reports its version and keeps its public surface pinned."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import asyncpg

import asterisk_recorder
from asterisk_recorder import errors


def test_version_from_console_script_and_module() -> None:
    """``asterisk-recorder --version`` and ``python -m asterisk_recorder --version`` agree."""
    script = Path(sys.executable).parent / "asterisk-recorder"
    outputs = [
        subprocess.run(
            [*command, "--version"], capture_output=True, text=True, check=True
        ).stdout.strip()
        for command in ([str(script)], [sys.executable, "-m", "asterisk_recorder"])
    ]

    assert [f"asterisk-recorder {asterisk_recorder.__version__}"] * 2 == outputs


def test_every_error_descends_from_recorder_error() -> None:
    """Every exception in ``errors.__all__`` is a ``RecorderError``."""
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, errors.RecorderError), name


def test_error_tree_in_docstring_names_every_error() -> None:
    """The tree drawn in the errors module docstring lists every exported error."""
    doc = errors.__doc__ or ""
    missing = [name for name in errors.__all__ if name not in doc]

    assert [] == missing


async def test_suite_postgres_is_real(pg_dsn: str) -> None:
    """The suite's PostgreSQL is a real server that executes SQL."""
    conn = await asyncpg.connect(pg_dsn)
    try:
        value = await conn.fetchval("SELECT 40 + 2")
    finally:
        await conn.close()

    assert 42 == value
