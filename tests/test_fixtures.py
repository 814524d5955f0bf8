"""The suite's test data lives in the repository: a clone alone runs all but the ARI contract.

This module owns checking that ``tests/data/asterisk-traces`` holds every trace file a test or a
bench reads, that no test, helper or bench reads traces from outside the repository, and (when
the project's reference material happens to sit beside the checkout) that the copies still equal
the recorded originals. It must not need anything outside the repository to pass.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TRACES = REPO / "tests" / "data" / "asterisk-traces"
SHARED = REPO.parent / "shared"
_TRACE_NAME_RE = re.compile(r"[\w-]+\.(?:rest\.jsonl|observer\.jsonl|jsonl|agi\.txt)")
_OUTSIDE_RE = re.compile(r"""(?:\.\./shared|["']shared["'])""")


def _python_sources() -> list[Path]:
    return sorted([*(REPO / "tests").rglob("*.py"), *(REPO / "bench").rglob("*.py")])


def test_trace_fixtures_are_in_the_repository(traces_dir: Path) -> None:
    """The suite's ``traces_dir`` is tests/data/asterisk-traces and holds the replayed scenarios."""
    names = {p.name for p in traces_dir.iterdir()}

    assert TRACES == traces_dir
    assert {"no-dtmf.jsonl", "no-dtmf.rest.jsonl", "startup.rest.jsonl"} <= names
    assert {"agi-granted-ami-originate.agi.txt", "agi-optout-ari-originate.agi.txt"} <= names


def test_every_trace_file_named_in_a_test_or_bench_exists_in_the_fixtures() -> None:
    """Each literal trace file name used by tests/ or bench/ is present in tests/data."""
    missing = []
    for path in _python_sources():
        for name in _TRACE_NAME_RE.findall(path.read_text(encoding="utf-8")):
            if "-" in name and not (TRACES / name).is_file():
                missing.append(f"{path.relative_to(REPO)}: {name}")

    assert [] == missing


def test_no_test_or_bench_reads_traces_from_outside_the_repository() -> None:
    """Only the ARI declarations may come from ../shared; traces never do."""
    offenders = []
    for path in _python_sources():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if _OUTSIDE_RE.search(line) and "asterisk-traces" in line:
                offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")

    assert [] == offenders


@pytest.mark.skipif(
    not (SHARED / "asterisk-traces").is_dir(),
    reason="the reference traces are not beside the checkout (nothing to compare the copies to)",
)
def test_trace_copies_equal_the_recorded_originals() -> None:
    """Every copied trace is byte-for-byte the one recorded from Asterisk 22.10.1."""
    differing = [
        p.name
        for p in sorted(TRACES.iterdir())
        if p.name != "README.md"
        and p.read_bytes() != (SHARED / "asterisk-traces" / p.name).read_bytes()
    ]

    assert [] == differing
