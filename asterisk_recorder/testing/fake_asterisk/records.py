"""What the fake reports back to a test: requests answered, events sent, calls continued.

This module owns the frozen records a test reads from ``FakeAsterisk`` (``requests``,
``ws_requests``, ``events``, ``continues`` and ``FakeChannel.continued``) and the Asterisk-style
timestamp they and the events carry. It must not hold state or know the fake's machinery.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = ["ContinueRecord", "RecordedRequest", "SentEvent", "now_iso"]


def now_iso() -> str:
    """Now in Asterisk's event timestamp format (``2026-01-02T03:04:05.678+0000``)."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return stamp[:-3] + "+0000"


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One REST request the fake answered.

    Attributes:
        method / path: as on the wire (``path`` starts with ``/ari``).
        query: the query parameters (last value wins for repeated names).
        body: the request body as text ("" when none).
        headers: request headers (``Authorization`` included, so tests can check it).
        at: ``time.monotonic()`` when it arrived.
        status: the status code answered.
    """

    method: str
    path: str
    query: Mapping[str, str]
    body: str
    headers: Mapping[str, str]
    at: float
    status: int


@dataclass(frozen=True, slots=True)
class ContinueRecord:
    """Where ``continue`` sent a channel and what its variables were at that moment."""

    channel_id: str
    context: str
    extension: str
    priority: int | None
    label: str
    variables: Mapping[str, str]
    at: float


@dataclass(frozen=True, slots=True)
class SentEvent:
    """An event the fake emitted for ``app`` (``delivered`` is False if no socket owned it)."""

    app: str
    event: Mapping[str, Any]
    delivered: bool
    at: float
