"""The Asterisk Manager Interface wire format, without I/O.

This module owns ``AmiMessage`` (one response or event: ordered ``Key: Value`` fields),
``AmiParser`` (bytes in, messages out: the banner line, CRLF- or LF-separated fields, a blank
line ending each message, bounded sizes) and ``encode_action`` (an action as bytes). It must not
do I/O. ``encode_message`` writes any message (the fake Asterisk's responses and events too).
The encoders refuse any key or value holding CR or LF, and keys holding ``:``, so text
from a caller (a caller id, a reason) can never become an extra AMI header.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from asterisk_recorder.errors import AmiProtocolError

__all__ = ["MAX_FIELDS", "MAX_LINE", "AmiMessage", "AmiParser", "encode_action", "encode_message"]

MAX_LINE = 8192
"""Longest line accepted from Asterisk."""
MAX_FIELDS = 512
"""Most fields one message may have."""
_KEY = re.compile(r"[A-Za-z0-9_()-]{1,64}")


@dataclass(frozen=True, slots=True)
class AmiMessage:
    """One message from Asterisk (a response or an event), fields in order."""

    fields: tuple[tuple[str, str], ...]

    def get(self, name: str) -> str | None:
        """The first value of ``name`` (case-insensitive), or None."""
        low = name.lower()
        for key, value in self.fields:
            if key.lower() == low:
                return value
        return None

    @property
    def is_event(self) -> bool:
        """An ``Event:`` message."""
        return self.get("Event") is not None

    @property
    def is_response(self) -> bool:
        """A ``Response:`` message."""
        return self.get("Response") is not None

    @property
    def name(self) -> str:
        """The event name, or the response value (``Success``, ``Error``, ...)."""
        return self.get("Event") or self.get("Response") or ""

    @property
    def action_id(self) -> str | None:
        """The ``ActionID`` echoed by Asterisk."""
        return self.get("ActionID")


class AmiParser:
    """Feed bytes with ``feed``; complete messages come back in order."""

    def __init__(self) -> None:
        self._buffer = b""
        self._fields: list[tuple[str, str]] = []
        self.banner: str | None = None

    def feed(self, data: bytes) -> list[AmiMessage]:
        """Parse ``data``; the messages it completed.

        Raises:
            AmiProtocolError: a line longer than ``MAX_LINE``, too many fields, or a line that
                is no ``Key: Value``.
        """
        self._buffer += data
        out: list[AmiMessage] = []
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                if len(self._buffer) > MAX_LINE:
                    raise AmiProtocolError(f"AMI line longer than {MAX_LINE} bytes")
                return out
            if end > MAX_LINE:
                raise AmiProtocolError(f"AMI line longer than {MAX_LINE} bytes")
            raw, self._buffer = self._buffer[:end], self._buffer[end + 1:]
            line = raw.rstrip(b"\r").decode("utf-8", "replace")
            if self.banner is None:
                if not line.startswith("Asterisk Call Manager/"):
                    raise AmiProtocolError("not an Asterisk manager interface (no banner)")
                self.banner = line
                continue
            if not line:
                if self._fields:
                    out.append(AmiMessage(tuple(self._fields)))
                    self._fields = []
                continue
            key, sep, value = line.partition(":")
            if not sep or not key.strip():
                if self._fields:  # a continuation line (Command output): keep it as data
                    self._fields.append(("Output", line))
                    continue
                raise AmiProtocolError("AMI line is not 'Key: Value'")
            if len(self._fields) >= MAX_FIELDS:
                raise AmiProtocolError(f"AMI message with more than {MAX_FIELDS} fields")
            self._fields.append((key.strip(), value.lstrip(" ")))


def encode_action(name: str, fields: Mapping[str, str] | Iterable[tuple[str, str]],
                  action_id: str) -> bytes:
    """``Action: name`` with ``fields`` and ``ActionID`` as CRLF lines and a blank line.

    Raises:
        AmiProtocolError: a key that is not ``[A-Za-z0-9_()-]``, or a value with CR or LF.
    """
    items = list(fields.items()) if isinstance(fields, Mapping) else list(fields)
    return encode_message([("Action", name), *items, ("ActionID", action_id)])


def encode_message(fields: Iterable[tuple[str, str]]) -> bytes:
    """Any message (an action, a response, an event) as CRLF lines and a blank line.

    Raises:
        AmiProtocolError: a key that is not ``[A-Za-z0-9_()-]``, or a value with CR, LF or NUL.
    """
    out = []
    for key, value in fields:
        if not _KEY.fullmatch(key):
            raise AmiProtocolError(f"AMI key {key[:40]!r} is not allowed")
        if "\r" in value or "\n" in value or "\x00" in value:
            raise AmiProtocolError(f"AMI value of {key} holds a line break: refused")
        out.append(f"{key}: {value}\r\n")
    out.append("\r\n")
    return "".join(out).encode("utf-8")
