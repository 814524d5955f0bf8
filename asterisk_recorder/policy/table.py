"""The policy table: one row per jurisdiction, loaded from TOML and validated.

This module owns the ``PolicyRow`` / ``PolicyTable`` types, the loading and validation of the
shipped ``default_policy.toml`` and of an operator's table file, and the row-by-row merge of the
two. It reads only those TOML files (stdlib ``tomllib``); it must not do any other I/O and must
not know about phone numbers (``numbers.py``) or calls (``engine.py``).

Every problem raises ``PolicyError`` naming the file, the row and the field.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from asterisk_recorder.errors import PolicyError
from asterisk_recorder.policy.modes import Mode

__all__ = [
    "DEFAULT_TABLE_NAME",
    "JURISDICTION_RE",
    "PolicyRow",
    "PolicyTable",
    "default_table",
    "load_table_file",
    "merge_tables",
    "parse_table",
]

DEFAULT_TABLE_NAME = "default_policy.toml"
"""File name of the shipped table inside the ``asterisk_recorder.policy`` package."""

JURISDICTION_RE = re.compile(r"^[A-Z]{2}(?:-[A-Z0-9]{1,3})?$")
"""A jurisdiction code: ISO 3166-1 alpha-2, optionally ``-`` and a subdivision (``US-CA``)."""

_COUNTRY_RE = re.compile(r"^[A-Z]{2}$")
_ROW_FIELDS = frozenset({"name", "mode", "law", "source", "note", "beep_interval", "applies_to"})
_TOP_FIELDS = frozenset({"version", "rows"})
_MAX_TEXT = 2000
_MODES = {m.value: m for m in Mode}


@dataclass(frozen=True, slots=True)
class PolicyRow:
    """One jurisdiction's rule.

    Attributes:
        id: the jurisdiction code (``US-CA``, ``GB``) or a group code (``EU``).
        mode: the recording mode this jurisdiction requires.
        name: human name, e.g. ``California``.
        law: the law the row rests on.
        source: a URL or citation for ``law``.
        note: caveats (contested statutes, nuances), may be empty.
        beep_interval: seconds between MixMonitor beeps (``B(n)``), or None.
        applies_to: for a group row, the country codes it covers; empty otherwise.
        origin: where the row came from: ``default`` or the operator's file path.
    """

    id: str
    mode: Mode
    name: str
    law: str
    source: str
    note: str = ""
    beep_interval: int | None = None
    applies_to: tuple[str, ...] = ()
    origin: str = "default"


@dataclass(frozen=True, slots=True)
class PolicyTable:
    """A validated set of rows plus the version string that identifies it in the ledger."""

    version: str
    rows: Mapping[str, PolicyRow]

    def get(self, row_id: str) -> PolicyRow | None:
        """The row with this id, or None."""
        return self.rows.get(row_id)


def _fail(origin: str, row: str | None, field: str | None, problem: str) -> PolicyError:
    where = f"policy table {origin}"
    if row is not None:
        where += f": row {row!r}"
    if field is not None:
        where += f": field {field!r}"
    return PolicyError(f"{where}: {problem}")


def _text(
    origin: str, row_id: str, raw: Mapping[str, object], field: str, *, required: bool,
    default: str = "",
) -> str:
    value = raw.get(field)
    if value is None:
        if required:
            raise _fail(origin, row_id, field, "is required")
        return default
    if not isinstance(value, str):
        raise _fail(origin, row_id, field, f"must be a string, not {type(value).__name__}")
    value = value.strip()
    if required and not value:
        raise _fail(origin, row_id, field, "must not be empty")
    if len(value) > _MAX_TEXT:
        raise _fail(origin, row_id, field, f"is longer than {_MAX_TEXT} characters")
    return value


def _parse_row(origin: str, row_id: str, raw: object, *, operator: bool) -> PolicyRow:
    if not JURISDICTION_RE.match(row_id):
        raise _fail(
            origin, row_id, None,
            "is not a jurisdiction code (expected e.g. US, US-CA, CA-ON, AU-NSW)",
        )
    if not isinstance(raw, Mapping):
        raise _fail(origin, row_id, None, "must be a table of fields")
    unknown = sorted(set(raw) - _ROW_FIELDS)
    if unknown:
        raise _fail(
            origin, row_id, unknown[0],
            f"is not a row field (allowed: {', '.join(sorted(_ROW_FIELDS))})",
        )
    mode_raw = raw.get("mode")
    if mode_raw is None:
        raise _fail(origin, row_id, "mode", "is required")
    if not isinstance(mode_raw, str) or mode_raw not in _MODES:
        raise _fail(
            origin, row_id, "mode",
            f"{mode_raw!r} is not one of {', '.join(m.value for m in Mode)}",
        )
    beep = raw.get("beep_interval")
    if beep is not None and (
        isinstance(beep, bool) or not isinstance(beep, int) or not 1 <= beep <= 3600
    ):
        raise _fail(origin, row_id, "beep_interval", f"{beep!r} is not an integer 1..3600")
    applies_raw = raw.get("applies_to", [])
    if not isinstance(applies_raw, list) or not all(isinstance(c, str) for c in applies_raw):
        raise _fail(origin, row_id, "applies_to", "must be a list of country codes")
    applies: list[str] = []
    for code in applies_raw:
        if not _COUNTRY_RE.match(code):
            raise _fail(origin, row_id, "applies_to", f"{code!r} is not a 2-letter country code")
        applies.append(code)
    if applies and "-" in row_id:
        raise _fail(
            origin, row_id, "applies_to", "only a country-level or group row may list countries"
        )
    return PolicyRow(
        id=row_id,
        mode=_MODES[mode_raw],
        name=_text(origin, row_id, raw, "name", required=False, default=row_id),
        law=_text(origin, row_id, raw, "law", required=not operator, default="operator policy"),
        source=_text(origin, row_id, raw, "source", required=not operator, default=origin),
        note=_text(origin, row_id, raw, "note", required=False),
        beep_interval=beep,
        applies_to=tuple(applies),
        origin="default" if not operator else origin,
    )


def parse_table(text: str, origin: str, *, operator: bool = False) -> PolicyTable:
    """Parse and validate a policy table from TOML text.

    Args:
        text: the TOML document.
        origin: its file name, used in error messages and as the rows' ``origin``.
        operator: an operator's override table: ``law``/``source`` become optional and
            ``version`` defaults to a digest of ``text``.

    Raises:
        PolicyError: bad TOML, an unknown field, a bad mode, code or beep interval, a missing
            ``law`` or ``source`` in the default table.
    """
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _fail(origin, None, None, f"is not valid TOML: {exc}") from exc
    unknown = sorted(set(doc) - _TOP_FIELDS)
    if unknown:
        raise _fail(origin, None, unknown[0], "is not a top-level key (allowed: version, rows)")
    version = doc.get("version")
    if version is None:
        if not operator:
            raise _fail(origin, None, "version", "is required")
        version = "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
    if not isinstance(version, str) or not version.strip() or len(version) > 64:
        raise _fail(origin, None, "version", "must be a non-empty string of at most 64 characters")
    rows_raw = doc.get("rows", {})
    if not isinstance(rows_raw, dict):
        raise _fail(origin, None, "rows", "must be a table of rows ([rows.US-CA] ...)")
    rows = {
        row_id: _parse_row(origin, row_id, raw, operator=operator)
        for row_id, raw in rows_raw.items()
    }
    if not operator and not rows:
        raise _fail(origin, None, "rows", "the default table has no rows")
    return PolicyTable(version=version.strip(), rows=rows)


def load_table_file(path: str | Path) -> PolicyTable:
    """Read and validate an operator's table file.

    Raises:
        PolicyError: the file cannot be read, is not UTF-8, or does not validate.
    """
    origin = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise _fail(origin, None, None, f"cannot be read: {exc.strerror or exc}") from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _fail(origin, None, None, f"is not UTF-8: {exc}") from exc
    return parse_table(text, origin, operator=True)


@lru_cache(maxsize=1)
def default_table() -> PolicyTable:
    """The shipped table ``default_policy.toml`` (parsed once per process)."""
    package = resources.files("asterisk_recorder.policy")
    text = package.joinpath(DEFAULT_TABLE_NAME).read_text(encoding="utf-8")
    return parse_table(text, DEFAULT_TABLE_NAME)


def merge_tables(base: PolicyTable, override: PolicyTable) -> PolicyTable:
    """``base`` with ``override``'s rows replacing (or adding) rows of the same id.

    The version becomes ``<base version>+<override version>`` so the ledger can tell which
    operator table was in force.
    """
    rows = dict(base.rows)
    rows.update(override.rows)
    return PolicyTable(version=f"{base.version}+{override.version}", rows=rows)
