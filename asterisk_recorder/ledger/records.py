"""Rows of the ledger and their canonical encoding (the input of the hash chain).

This module owns turning a ``ConsentDecision`` (or a ``LedgerFact``) into database values plus
the canonical bytes that are hashed, turning a database row back into the same canonical bytes
(for ``verify``), and the chain hash itself. See docs/ledger.md for the encoding. Pure
computation: no I/O, no asyncpg.

Canonical encoding (version 1): a JSON object with keys sorted, separators ``,`` and ``:``, ASCII
only (``ensure_ascii``); times are integer microseconds since the Unix epoch; personal fields appear
only as hex HMAC-SHA256 digests. Members added later (a key's ``phase``, ``effect``, ``counted``,
``offset_us``) are written only when known, so older rows keep their exact bytes. The hash of
row ``seq`` is
``SHA-256(b"asterisk-recorder/ledger/v1\\0" || prev_hash || seq as 8-byte big-endian || body)``.
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from asterisk_recorder.errors import LedgerError
from asterisk_recorder.flow.decision import ConsentDecision, KeyPress
from asterisk_recorder.flow.facts import MAX_ACTOR_CHARS, MAX_TEXT_CHARS, LedgerFact, check_fact
from asterisk_recorder.ledger.keys import DigestKey
from asterisk_recorder.ledger.text import MAX_CHARS, clean

__all__ = [
    "DECISION_COLUMNS",
    "EVENT_COLUMNS",
    "FACT_COLUMNS",
    "GENESIS",
    "MAX_PAYLOAD_BYTES",
    "PERSONAL_COLUMNS",
    "TIME_FIELDS",
    "DecisionRecord",
    "EventRecord",
    "FactRecord",
    "Row",
    "build_decision_record",
    "build_event_record",
    "build_fact_record",
    "canonical",
    "chain_hash",
    "decision_body_from_row",
    "event_body_from_row",
    "fact_body_from_row",
    "from_micros",
    "micros",
    "micros_of",
]

GENESIS = bytes(32)
"""``prev_hash`` of the first row."""

_DOMAIN = b"asterisk-recorder/ledger/v1\x00"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)

TIME_FIELDS = (
    "offered_at",
    "answered_at",
    "disclosure_started_at",
    "disclosure_finished_at",
    "decided_at",
)
"""Timestamp columns of a decision (``<name>_us`` in the canonical body)."""

_TEXT_FIELDS = (
    "driver",
    "channel_id",
    "channel_name",
    "uniqueid",
    "linkedid",
    "asterisk_id",
    "instance_id",
    "policy_version",
    "language",
    "reason",
)
_DIGEST_FIELDS = ("caller_number", "caller_name", "called_number")

DECISION_COLUMNS = (
    "seq",
    "decision_id",
    *_TEXT_FIELDS,
    "caller_number_digest",
    "caller_name_digest",
    "called_number_digest",
    "parties",
    "mode",
    "policy_rows",
    "prompt_id",
    "keys",
    "outcome",
    *TIME_FIELDS,
    "recording_path",
    "text_notes",
    "key_id",
    "prev_hash",
    "hash",
)
"""Columns of ``decisions`` written by the ledger, in COPY order."""

PERSONAL_COLUMNS = ("decision_id", "caller_number", "caller_name", "called_number", "party_numbers")
"""Columns of ``decision_personal``."""

EVENT_COLUMNS = (
    "seq",
    "event_id",
    "kind",
    "at",
    "actor",
    "detail",
    "key_id",
    "prev_hash",
    "hash",
)
"""Columns of ``ledger_events`` written by the ledger."""

FACT_COLUMNS = (
    "seq",
    "fact_id",
    "kind",
    "decision_id",
    "at",
    "actor",
    "payload",
    "text_notes",
    "prev_hash",
    "hash",
)
"""Columns of ``ledger_facts`` written by the ledger, in COPY order."""

MAX_PAYLOAD_BYTES = 32768
"""Largest canonical payload (bytes); also a CHECK in migration 0003."""


class Row(Protocol):
    """A database row as read back (``asyncpg.Record`` or a dict)."""

    def __getitem__(self, key: str, /) -> Any: ...


_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
)
_PLAIN = json.JSONEncoder(ensure_ascii=True, allow_nan=False)


def canonical(fields: Mapping[str, Any]) -> bytes:
    """The canonical bytes of ``fields`` (sorted keys, compact, ASCII JSON)."""
    return _CANONICAL.encode(fields).encode("ascii")


def chain_hash(prev_hash: bytes, seq: int, body: bytes) -> bytes:
    """The hash of row ``seq`` whose canonical body is ``body``."""
    return hashlib.sha256(_DOMAIN + prev_hash + seq.to_bytes(8, "big") + body).digest()


def micros(at: float) -> int:
    """Epoch seconds -> integer microseconds (what is stored and hashed).

    Raises:
        LedgerError: ``at`` is not a finite time PostgreSQL can hold.
    """
    value: object = at  # drivers are typed, but the ledger must not trust them
    if not isinstance(value, int | float) or not math.isfinite(value) or not -1e11 < value < 1e11:
        raise LedgerError(f"not a storable timestamp: {at!r}")
    return round(value * 1_000_000)


def from_micros(value: int) -> datetime:
    """Integer microseconds -> an aware UTC datetime (exact)."""
    return _EPOCH + value * _MICRO


def micros_of(value: datetime) -> int:
    """An aware datetime read back from PostgreSQL -> integer microseconds (exact)."""
    return (value - _EPOCH) // _MICRO


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """A decision ready for the chain.

    Attributes:
        decision_id: the canonical UUID text (the idempotency key).
        body: canonical bytes hashed into the chain.
        values: ``decisions`` column values between ``seq`` and ``prev_hash``.
        personal: the ``decision_personal`` row.
        fields: the canonical fields (what ``body`` encodes).
    """

    decision_id: str
    body: bytes
    values: tuple[Any, ...]
    personal: tuple[Any, ...]
    fields: dict[str, Any]


@dataclass(frozen=True, slots=True)
class EventRecord:
    """An audit event (erase, purge) ready for the chain."""

    event_id: str
    body: bytes
    values: tuple[Any, ...]
    fields: dict[str, Any]


@dataclass(frozen=True, slots=True)
class FactRecord:
    """A fact ready for the chain.

    Attributes:
        fact_id: the canonical UUID text (the idempotency key).
        decision_id: the canonical UUID text of the decision it is about, or ``None``.
        body: canonical bytes hashed into the chain.
        values: ``ledger_facts`` column values between ``seq`` and ``prev_hash``.
        fields: the canonical fields (what ``body`` encodes).
    """

    fact_id: str
    decision_id: str | None
    body: bytes
    values: tuple[Any, ...]
    fields: dict[str, Any]


def _opt_micros(at: float | None) -> int | None:
    return None if at is None else micros(at)


def _key_fields(digit: str, press: KeyPress) -> dict[str, Any]:
    """One key of the canonical body.

    ``digit`` and ``at_us`` always; a key that knows its timing adds ``phase``, ``effect``,
    ``counted`` and ``offset_us`` (microseconds from its prompt play's start; null when that
    play had not started). Keys written before these fields existed keep the two members, so
    their rows encode (and verify) exactly as before.
    """
    at_us = micros(press.at)
    entry: dict[str, Any] = {"digit": digit, "at_us": at_us}
    if press.phase is not None:
        entry["phase"] = press.phase.value
    if press.effect is not None:
        entry["effect"] = press.effect.value
        entry["counted"] = press.counted
    if press.phase is not None or press.prompt_started_at is not None:
        started = press.prompt_started_at
        entry["offset_us"] = None if started is None else at_us - micros(started)
    return entry


def build_decision_record(decision: ConsentDecision, key: DigestKey) -> DecisionRecord:
    """Clean, digest and encode ``decision``.

    Raises:
        LedgerError: the decision id is not a UUID or a time is not a finite number.
    """
    try:
        decision_uuid = uuid.UUID(str(decision.decision_id))
    except ValueError as exc:
        raise LedgerError(f"decision_id {decision.decision_id!r} is not a UUID") from exc
    notes: dict[str, Any] = {}

    def text(name: str, value: object) -> str:
        if (
            type(value) is str
            and value.isascii()
            and "\x00" not in value
            and len(value) <= MAX_CHARS
        ):
            return value  # the common case, without building a Cleaned
        cleaned = clean(value if isinstance(value, str) else str(value))
        if cleaned.note is not None:
            notes[name] = cleaned.note
        return cleaned.text

    fields: dict[str, Any] = {"kind": "decision", "decision_id": str(decision_uuid)}
    for name in _TEXT_FIELDS:
        fields[name] = text(name, getattr(decision, name))
    plain = {name: text(name, getattr(decision, name)) for name in _DIGEST_FIELDS}
    for name in _DIGEST_FIELDS:
        fields[f"{name}_digest"] = key.digest(plain[name]).hex()
    party_numbers: list[str] = []
    parties: list[dict[str, Any]] = []
    for index, party in enumerate(decision.parties):
        number = text(f"parties.{index}.number", party.number)
        party_numbers.append(number)
        parties.append(
            {
                "party": text(f"parties.{index}.party", party.party),
                "number_digest": key.digest(number).hex(),
                "jurisdiction": text(f"parties.{index}.jurisdiction", party.jurisdiction),
                "row_id": text(f"parties.{index}.row_id", party.row_id),
                "mode": party.mode.value,
            }
        )
    fields["parties"] = parties
    fields["mode"] = decision.mode.value
    fields["policy_rows"] = [
        text(f"policy_rows.{i}", row) for i, row in enumerate(decision.policy_rows)
    ]
    fields["prompt_id"] = (
        None if decision.prompt_id is None else text("prompt_id", decision.prompt_id)
    )
    fields["keys"] = [_key_fields(text(f"keys.{i}.digit", k.digit), k)
                      for i, k in enumerate(decision.keys)]
    fields["outcome"] = decision.outcome.value
    fields["offered_at_us"] = micros(decision.offered_at)
    fields["answered_at_us"] = _opt_micros(decision.answered_at)
    fields["disclosure_started_at_us"] = _opt_micros(decision.disclosure_started_at)
    fields["disclosure_finished_at_us"] = _opt_micros(decision.disclosure_finished_at)
    fields["decided_at_us"] = micros(decision.decided_at)
    fields["recording_path"] = (
        None if decision.recording_path is None else text("recording_path", decision.recording_path)
    )
    fields["text_notes"] = notes
    fields["key_id"] = key.key_id
    values = _decision_values(fields, decision_uuid)
    personal = (
        decision_uuid,
        plain["caller_number"],
        plain["caller_name"],
        plain["called_number"],
        _PLAIN.encode(party_numbers),
    )
    return DecisionRecord(str(decision_uuid), canonical(fields), values, personal, fields)


def _decision_values(fields: Mapping[str, Any], decision_uuid: uuid.UUID) -> tuple[Any, ...]:
    def when(name: str) -> datetime | None:
        value = fields[f"{name}_us"]
        return None if value is None else from_micros(value)

    return (
        decision_uuid,
        *(fields[name] for name in _TEXT_FIELDS),
        *(bytes.fromhex(fields[f"{name}_digest"]) for name in _DIGEST_FIELDS),
        _PLAIN.encode(fields["parties"]),
        fields["mode"],
        list(fields["policy_rows"]),
        fields["prompt_id"],
        _PLAIN.encode(fields["keys"]),
        fields["outcome"],
        *(when(name) for name in TIME_FIELDS),
        fields["recording_path"],
        _PLAIN.encode(fields["text_notes"]),
        fields["key_id"],
    )


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def decision_body_from_row(row: Row) -> bytes:
    """Rebuild the canonical body of a ``decisions`` row as read back from PostgreSQL."""
    fields: dict[str, Any] = {"kind": "decision", "decision_id": str(row["decision_id"])}
    for name in _TEXT_FIELDS:
        fields[name] = row[name]
    for name in _DIGEST_FIELDS:
        fields[f"{name}_digest"] = bytes(row[f"{name}_digest"]).hex()
    fields["parties"] = _json(row["parties"])
    fields["mode"] = row["mode"]
    fields["policy_rows"] = list(row["policy_rows"])
    fields["prompt_id"] = row["prompt_id"]
    fields["keys"] = _json(row["keys"])
    fields["outcome"] = row["outcome"]
    for name in TIME_FIELDS:
        value = row[name]
        fields[f"{name}_us"] = None if value is None else micros_of(value)
    fields["recording_path"] = row["recording_path"]
    fields["text_notes"] = _json(row["text_notes"])
    fields["key_id"] = row["key_id"]
    return canonical(fields)


def build_event_record(
    kind: str, actor: str, at: float, detail: Mapping[str, Any], key: DigestKey
) -> EventRecord:
    """Encode an audit event (``erase``, ``purge``); ``detail`` must hold no plain personal data."""
    event_id = str(uuid.uuid4())
    fields: dict[str, Any] = {
        "kind": "event",
        "event_kind": kind,
        "event_id": event_id,
        "at_us": micros(at),
        "actor": clean(actor).text,
        "detail": dict(detail),
        "key_id": key.key_id,
    }
    body = canonical(fields)
    values = (
        uuid.UUID(event_id),
        kind,
        from_micros(fields["at_us"]),
        fields["actor"],
        json.dumps(fields["detail"], ensure_ascii=True, sort_keys=True),
        key.key_id,
    )
    return EventRecord(event_id, body, values, fields)


def event_body_from_row(row: Row) -> bytes:
    """Rebuild the canonical body of a ``ledger_events`` row as read back from PostgreSQL."""
    fields = {
        "kind": "event",
        "event_kind": row["kind"],
        "event_id": str(row["event_id"]),
        "at_us": micros_of(row["at"]),
        "actor": row["actor"],
        "detail": _json(row["detail"]),
        "key_id": row["key_id"],
    }
    return canonical(fields)


def _bounded(value: str, limit: int) -> tuple[str, dict[str, Any] | None]:
    """``clean`` then truncate to ``limit`` characters; the note says what changed."""
    cleaned = clean(value)
    if len(cleaned.text) <= limit:
        return cleaned.text, cleaned.note
    original_bytes = (
        cleaned.note["original_bytes"]
        if cleaned.note is not None
        else len(value.encode("utf-8", "surrogatepass"))
    )
    note = {
        "escaped": bool(cleaned.note is not None and cleaned.note["escaped"]),
        "truncated": True,
        "original_chars": len(value),
        "original_bytes": original_bytes,
    }
    return cleaned.text[:limit], note


def build_fact_record(fact: LedgerFact) -> FactRecord:
    """Check, clean and encode ``fact`` (which must carry its ``fact_id``).

    Caller-influenced text (payload strings, the actor) is made storable and bounded: NUL and
    lone surrogates escaped, longer than ``MAX_TEXT_CHARS`` truncated, each change noted in
    ``text_notes``. The payload is kept as canonical JSON text, so the body rebuilt from the
    database is byte-identical.

    Raises:
        LedgerError: the fact breaks a rule of ``check_fact``, has no fact id, or its
            canonical payload is larger than ``MAX_PAYLOAD_BYTES``.
    """
    check_fact(fact)
    if fact.fact_id is None:
        raise LedgerError(f"fact {fact.kind} has no fact_id")
    fact_uuid = uuid.UUID(fact.fact_id)
    decision_uuid = None if fact.decision_id is None else uuid.UUID(fact.decision_id)
    notes: dict[str, Any] = {}
    actor, note = _bounded(fact.actor, MAX_ACTOR_CHARS)
    if note is not None:
        notes["actor"] = note
    payload: dict[str, Any] = {}
    for key, value in fact.payload.items():
        if isinstance(value, str):
            text, note = _bounded(value, MAX_TEXT_CHARS)
            if note is not None:
                notes[f"payload.{key}"] = note
            payload[key] = text
        else:
            payload[key] = value
    payload_text = canonical(payload).decode("ascii")
    if len(payload_text) > MAX_PAYLOAD_BYTES:
        raise LedgerError(
            f"fact {fact.kind}: payload is {len(payload_text)} bytes encoded; "
            f"at most {MAX_PAYLOAD_BYTES}"
        )
    fields: dict[str, Any] = {
        "kind": "fact",
        "fact_kind": fact.kind,
        "fact_id": str(fact_uuid),
        "decision_id": None if decision_uuid is None else str(decision_uuid),
        "at_us": micros(fact.at),
        "actor": actor,
        "payload": payload,
        "text_notes": notes,
    }
    values = (
        fact_uuid,
        fact.kind,
        decision_uuid,
        from_micros(fields["at_us"]),
        actor,
        payload_text,
        _PLAIN.encode(notes),
    )
    return FactRecord(
        str(fact_uuid), fields["decision_id"], canonical(fields), values, fields
    )


def fact_body_from_row(row: Row) -> bytes:
    """Rebuild the canonical body of a ``ledger_facts`` row as read back from PostgreSQL."""
    decision_id = row["decision_id"]
    fields = {
        "kind": "fact",
        "fact_kind": row["kind"],
        "fact_id": str(row["fact_id"]),
        "decision_id": None if decision_id is None else str(decision_id),
        "at_us": micros_of(row["at"]),
        "actor": row["actor"],
        "payload": json.loads(row["payload"]),
        "text_notes": _json(row["text_notes"]),
    }
    return canonical(fields)
