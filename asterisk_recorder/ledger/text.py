r"""Making caller-controlled text safe to store, reversibly.

This module owns the one rule for text that reaches the ledger. PostgreSQL ``text`` and ``jsonb``
cannot hold NUL or lone surrogates (what invalid UTF-8 from Asterisk becomes when decoded with
``surrogateescape``), so such a string is escaped: a backslash becomes two, NUL becomes the four
characters ``\x00`` and a lone surrogate becomes ``\udcXX``; the escape is noted. Strings longer
than ``MAX_CHARS`` are truncated and the original length is noted. ``restore`` undoes the escape.
Pure standard library; no I/O. It must never raise on any ``str``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

__all__ = ["MAX_CHARS", "Cleaned", "clean", "restore"]

MAX_CHARS = 65536
"""Longest text kept per field; longer values are truncated (the note keeps the original length)."""

_ESCAPE_RE = re.compile(r"\\(\\|x00|u[0-9a-f]{4})")


@dataclass(frozen=True, slots=True)
class Cleaned:
    """A string made storable.

    Attributes:
        text: the value to store.
        note: ``None`` when ``text`` is the original; otherwise what was done:
            ``{"escaped": bool, "truncated": bool, "original_chars": int, "original_bytes": int}``
            (``original_bytes`` counts the UTF-8 bytes Asterisk sent, invalid ones included).
    """

    text: str
    note: dict[str, Any] | None


def _storable(value: str) -> bool:
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _escape_char(ch: str) -> str:
    if ch == "\\":
        return "\\\\"
    if ch == "\x00":
        return "\\x00"
    if "\ud800" <= ch <= "\udfff":
        return f"\\u{ord(ch):04x}"
    return ch


def clean(value: str) -> Cleaned:
    """Return ``value`` made storable in PostgreSQL, with a note when it had to change."""
    storable = _storable(value)
    if storable and len(value) <= MAX_CHARS:
        return Cleaned(value, None)
    text = value if storable else "".join(_escape_char(ch) for ch in value)
    truncated = len(text) > MAX_CHARS
    if truncated:
        text = text[:MAX_CHARS]
    note = {
        "escaped": not storable,
        "truncated": truncated,
        "original_chars": len(value),
        "original_bytes": len(value.encode("utf-8", "surrogateescape"))
        if _surrogates_are_bytes(value)
        else len(value.encode("utf-8", "surrogatepass")),
    }
    return Cleaned(text, note)


def _surrogates_are_bytes(value: str) -> bool:
    """True when every lone surrogate in ``value`` came from ``surrogateescape`` decoding."""
    try:
        value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return False
    return True


def restore(text: str, note: dict[str, Any] | None) -> str:
    """Undo ``clean``'s escaping (a truncated tail stays lost; the note says so)."""
    if not note or not note.get("escaped"):
        return text

    def unescape(match: re.Match[str]) -> str:
        body = match.group(1)
        if body == "\\":
            return "\\"
        if body == "x00":
            return "\x00"
        return chr(int(body[1:], 16))

    return _ESCAPE_RE.sub(unescape, text)
