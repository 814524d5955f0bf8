"""Operators' and data subjects' duties on the ledger: show, tail, export, erase, purge.

This module owns reading decisions for people (with their personal values when still present,
and the facts linked to each with the effective outcome they add up to),
erasure of one number's personal data and recordings, retention purges, and the one rule for
deleting recording files: only regular files inside the configured recording directory, never
through ``..`` or a symlink. Every erase and purge appends a chained audit event (``ledger_events``)
whose detail holds digests and decision ids only, never a plain number. It must not print or
parse arguments (``commands/ledger.py`` does).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import asyncpg

from asterisk_recorder.errors import LedgerError
from asterisk_recorder.flow.facts import effective_outcome
from asterisk_recorder.ledger.chain import append_event
from asterisk_recorder.ledger.keys import DigestKey
from asterisk_recorder.ledger.receipts import prove_decision
from asterisk_recorder.ledger.records import (
    TIME_FIELDS,
    Row,
    build_event_record,
    from_micros,
    micros_of,
)
from asterisk_recorder.ledger.text import clean

__all__ = [
    "EraseResult",
    "PurgeResult",
    "count_older_than",
    "decision_view",
    "delete_recording",
    "erase_number",
    "export_number",
    "fact_view",
    "follow",
    "purge_older_than",
    "show_call",
    "tail",
    "with_facts",
]

_SELECT = """
SELECT d.*, p.decision_id IS NOT NULL AS has_personal, p.caller_number, p.caller_name,
       p.called_number, p.party_numbers
FROM decisions d LEFT JOIN decision_personal p USING (decision_id)
"""
_BY_NUMBER = (
    "WHERE (d.caller_number_digest = $1 OR d.called_number_digest = $1 OR d.parties @> $2::jsonb)"
)
_ERASABLE = (
    "SELECT d.decision_id, d.recording_path FROM decisions d "  # noqa: S608 - constants only
    + _BY_NUMBER
    + " AND EXISTS (SELECT 1 FROM decision_personal p WHERE p.decision_id = d.decision_id)"
    " ORDER BY d.seq"
)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def _key_view(key: dict[str, Any]) -> dict[str, Any]:
    """One key as shown: digit and time; when recorded, its phase, offset and effect.

    ``offset_ms`` is milliseconds from the start of the prompt play the key came during or
    after (null: that play had not started, i.e. type-ahead); ``counted`` says whether the
    key made the decision. Rows stored before these fields existed show digit and time only.
    """
    view: dict[str, Any] = {"digit": key["digit"], "at": _iso(from_micros(key["at_us"]))}
    if "phase" in key:
        view["phase"] = key["phase"]
    if "offset_us" in key:
        offset = key["offset_us"]
        view["offset_ms"] = None if offset is None else offset / 1000
    if "effect" in key:
        view["effect"] = key["effect"]
        view["counted"] = bool(key.get("counted"))
    return view


def decision_view(row: Row) -> dict[str, Any]:
    """A JSON-ready view of one decision row (personal values ``None`` once erased)."""
    parties = json.loads(row["parties"])
    numbers = json.loads(row["party_numbers"]) if row["has_personal"] else None
    for index, party in enumerate(parties):
        party["number"] = numbers[index] if numbers and index < len(numbers) else None
    view: dict[str, Any] = {
        "seq": row["seq"],
        "decision_id": str(row["decision_id"]),
        "driver": row["driver"],
        "channel_id": row["channel_id"],
        "channel_name": row["channel_name"],
        "uniqueid": row["uniqueid"],
        "linkedid": row["linkedid"],
        "asterisk_id": row["asterisk_id"],
        "instance_id": row["instance_id"],
        "personal_data_erased": not row["has_personal"],
        "caller_number": row["caller_number"],
        "caller_name": row["caller_name"],
        "called_number": row["called_number"],
        "parties": parties,
        "mode": row["mode"],
        "policy_rows": list(row["policy_rows"]),
        "policy_version": row["policy_version"],
        "prompt_id": row["prompt_id"],
        "language": row["language"],
        "keys": [_key_view(k) for k in json.loads(row["keys"])],
        "outcome": row["outcome"],
        "reason": row["reason"],
    }
    for name in TIME_FIELDS:
        view[name] = _iso(row[name])
    view["recording_path"] = row["recording_path"]
    view["text_notes"] = json.loads(row["text_notes"])
    view["hash"] = bytes(row["hash"]).hex()
    view["stored_at"] = _iso(row["stored_at"])
    return view


def fact_view(row: Row) -> dict[str, Any]:
    """A JSON-ready view of one ``ledger_facts`` row."""
    decision_id = row["decision_id"]
    return {
        "seq": row["seq"],
        "fact_id": str(row["fact_id"]),
        "kind": row["kind"],
        "decision_id": None if decision_id is None else str(decision_id),
        "at": _iso(row["at"]),
        "actor": row["actor"],
        "payload": json.loads(row["payload"]),
        "text_notes": json.loads(row["text_notes"]),
        "hash": bytes(row["hash"]).hex(),
        "stored_at": _iso(row["stored_at"]),
    }


async def with_facts(conn: asyncpg.Connection, views: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add ``facts`` (chain order) and ``effective`` to each decision view; return ``views``.

    ``effective`` is ``flow.facts.effective_outcome`` of the decision's outcome and its facts:
    ``{"status", "claimed", "mismatch", "summary"}``.
    """
    by_id: dict[str, list[dict[str, Any]]] = {view["decision_id"]: [] for view in views}
    if views and await conn.fetchval("SELECT to_regclass('ledger_facts') IS NOT NULL"):
        rows = await conn.fetch(
            "SELECT * FROM ledger_facts WHERE decision_id = ANY($1::uuid[]) ORDER BY seq",
            list(by_id),
        )
        for row in rows:
            by_id[str(row["decision_id"])].append(fact_view(row))
    for view in views:
        facts = by_id[view["decision_id"]]
        effective = effective_outcome(view["outcome"], ((f["kind"], f["payload"]) for f in facts))
        view["facts"] = facts
        view["effective"] = {
            "status": effective.status,
            "claimed": effective.claimed,
            "mismatch": effective.mismatch,
            "summary": effective.summary,
        }
    return views


def _number_args(key: DigestKey, number: str) -> tuple[bytes, str]:
    if not number:
        raise LedgerError("an empty number matches every withheld call; give a number")
    digest = key.digest(clean(number).text)
    return digest, json.dumps([{"number_digest": digest.hex()}])


async def _key_mismatch(conn: asyncpg.Connection, key: DigestKey) -> str | None:
    other = await conn.fetchval(
        "SELECT key_id FROM decisions WHERE key_id <> $1 ORDER BY seq DESC LIMIT 1", key.key_id
    )
    return None if other is None else str(other)


async def export_number(
    conn: asyncpg.Connection, key: DigestKey, number: str, *, receipts: bool = False
) -> list[dict[str, Any]]:
    """Every decision about ``number`` (as caller, called or any party), oldest first.

    Each decision carries its ``facts`` and ``effective`` outcome (``with_facts``); with
    ``receipts``, also its consent ``receipt`` (``receipts.prove_decision``), or
    ``receipt_unavailable`` saying why (no checkpoint covers it yet).

    Raises:
        LedgerError: ``number`` is empty, or rows were written with another digest key (the
            search would silently miss them).
    """
    digest, party = _number_args(key, number)
    rows = await conn.fetch(_SELECT + _BY_NUMBER + " ORDER BY d.seq", digest, party)
    if not rows and (other := await _key_mismatch(conn, key)) is not None:
        raise LedgerError(
            f"no match, and the ledger holds rows digested with another key ({other}, this "
            f"process uses {key.key_id}): configure ledger.digest_key like the controllers"
        )
    views = await with_facts(conn, [decision_view(r) for r in rows])
    if receipts:
        for view in views:
            try:
                view["receipt"] = await prove_decision(conn, view["decision_id"])
            except LedgerError as exc:
                view["receipt_unavailable"] = str(exc)
    return views


async def show_call(conn: asyncpg.Connection, call_id: str) -> list[dict[str, Any]]:
    """Decisions whose decision id, uniqueid, linkedid or channel id is ``call_id``.

    Each decision carries its ``facts`` and ``effective`` outcome (``with_facts``).
    """
    try:
        as_uuid: uuid.UUID | None = uuid.UUID(call_id)
    except ValueError:
        as_uuid = None
    text = clean(call_id).text
    rows = await conn.fetch(
        _SELECT + "WHERE d.decision_id = $1 OR d.uniqueid = $2 OR d.linkedid = $2 "
        "OR d.channel_id = $2 ORDER BY d.seq",
        as_uuid,
        text,
    )
    return await with_facts(conn, [decision_view(r) for r in rows])


async def tail(conn: asyncpg.Connection, count: int) -> list[dict[str, Any]]:
    """The newest ``count`` decisions, oldest first."""
    rows = await conn.fetch(
        f"SELECT * FROM ({_SELECT} ORDER BY d.seq DESC LIMIT $1) t ORDER BY seq",  # noqa: S608
        count,
    )
    return [decision_view(r) for r in rows]


async def follow(
    conn: asyncpg.Connection, after_seq: int, *, interval: float = 1.0
) -> AsyncIterator[dict[str, Any]]:
    """Yield decisions stored after position ``after_seq`` as they arrive (polls)."""
    last = after_seq
    while True:
        rows = await conn.fetch(_SELECT + "WHERE d.seq > $1 ORDER BY d.seq LIMIT 1000", last)
        for row in rows:
            last = row["seq"]
            yield decision_view(row)
        if not rows:
            await asyncio.sleep(interval)


def delete_recording(path: str | None, root: Path) -> str:
    """Delete one recording if (and only if) it is a regular file inside ``root``.

    Returns ``deleted``, ``missing``, ``refused`` (outside ``root``, relative, ``..``, a
    symlink, not a regular file) or ``failed`` (the OS refused).
    """
    if not path:
        return "missing"
    candidate = PurePosixPath(path)
    if not candidate.is_absolute() or ".." in candidate.parts or "\x00" in path:
        return "refused"
    root_real = os.path.realpath(root)
    real = os.path.realpath(path)
    if real == root_real or os.path.commonpath([real, root_real]) != root_real:
        return "refused"
    if os.path.islink(path):
        return "refused"
    try:
        if not os.path.isfile(real):
            return "missing" if not os.path.lexists(real) else "refused"
        os.unlink(real)
    except FileNotFoundError:
        return "missing"
    except OSError:
        return "failed"
    return "deleted"


@dataclass(frozen=True, slots=True)
class EraseResult:
    """What an erasure did; ``event_seq`` is the chained audit event's position."""

    decisions: list[str]
    personal_rows_removed: int
    recordings: dict[str, list[str]] = field(default_factory=dict)
    event_seq: int | None = None


PurgeResult = EraseResult
"""A purge reports the same counts, summed over its chunks (``event_seq`` is the last)."""


def _delete_recordings(rows: Sequence[Row], root: Path) -> dict[str, list[str]]:
    outcome: dict[str, list[str]] = {}
    for row in rows:
        if row["recording_path"] is None:
            continue
        status = delete_recording(row["recording_path"], root)
        outcome.setdefault(status, []).append(row["recording_path"])
    return outcome


async def _forget(
    conn: asyncpg.Connection,
    key: DigestKey,
    kind: str,
    actor: str,
    rows: Sequence[Row],
    recordings: dict[str, list[str]],
    extra: dict[str, Any],
) -> tuple[int, int]:
    ids = [row["decision_id"] for row in rows]
    async with conn.transaction():
        removed = int(await conn.fetchval("SELECT ledger_forget($1::uuid[])", ids))
        detail = {
            **extra,
            "decisions": [str(i) for i in ids],
            "personal_rows_removed": removed,
            "recordings": {status: len(paths) for status, paths in recordings.items()},
            "recordings_not_deleted": sorted(
                p for status, paths in recordings.items() if status != "deleted" for p in paths
            ),
        }
        event = build_event_record(kind, actor, time.time(), detail, key)
        seq = await append_event(conn, event)
    return removed, seq


async def erase_number(
    conn: asyncpg.Connection,
    key: DigestKey,
    number: str,
    recording_dir: Path,
    *,
    actor: str = "cli",
) -> EraseResult:
    """Remove the personal data of every decision about ``number`` and delete their recordings.

    The decision rows (and the chain) stay; an ``erase`` event recording the number's digest,
    the decision ids and the recording counts is appended to the chain.
    """
    digest, party = _number_args(key, number)
    rows = list(await conn.fetch(_ERASABLE, digest, party))
    recordings = _delete_recordings(rows, recording_dir)
    removed, seq = await _forget(
        conn, key, "erase", actor, rows, recordings, {"number_digest": digest.hex()}
    )
    return EraseResult([str(r["decision_id"]) for r in rows], removed, recordings, seq)


async def count_older_than(conn: asyncpg.Connection, older_than: float) -> int:
    """How many decisions decided before ``older_than`` (epoch) still hold personal data."""
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM decisions d JOIN decision_personal p USING (decision_id) "
            "WHERE d.decided_at < $1",
            datetime.fromtimestamp(older_than, UTC),
        )
    )


async def purge_older_than(
    conn: asyncpg.Connection,
    key: DigestKey,
    older_than: float,
    recording_dir: Path,
    *,
    actor: str = "cli",
    chunk: int = 500,
    progress: Callable[[int, int], None] | None = None,
) -> PurgeResult:
    """Retention: remove personal data and recordings of decisions older than ``older_than``.

    ``older_than`` is an epoch time. Works in chunks of ``chunk`` decisions, each its own
    transaction with its own chained ``purge`` event; ``progress(done, total)`` after each.
    """
    cutoff = datetime.fromtimestamp(older_than, UTC)
    total = await count_older_than(conn, older_than)
    ids: list[str] = []
    removed_total = 0
    summary: dict[str, list[str]] = {}
    seq: int | None = None
    if progress is not None:
        progress(0, total)
    while True:
        rows = list(
            await conn.fetch(
                "SELECT d.decision_id, d.recording_path FROM decisions d "
                "JOIN decision_personal p USING (decision_id) WHERE d.decided_at < $1 "
                "ORDER BY d.seq LIMIT $2",
                cutoff,
                chunk,
            )
        )
        if not rows:
            break
        recordings = _delete_recordings(rows, recording_dir)
        removed, seq = await _forget(
            conn,
            key,
            "purge",
            actor,
            rows,
            recordings,
            {"older_than_us": micros_of(cutoff)},
        )
        removed_total += removed
        ids += [str(r["decision_id"]) for r in rows]
        for status, paths in recordings.items():
            summary.setdefault(status, []).extend(paths)
        if progress is not None:
            progress(len(ids), max(total, len(ids)))
    return PurgeResult(ids, removed_total, summary, seq)
