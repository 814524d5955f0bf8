"""Appending to the hash chain inside one PostgreSQL transaction.

This module owns the write path: lock the chain head (``SELECT ... FOR UPDATE``), drop decisions
and facts already stored (the decision id and the fact id are the idempotency keys), number and
hash the rest in order, COPY them in, and move the head. Because every writer holds the head row
lock until commit, the chain order is total across any number of controller instances. It must
not open connections, retry, or spool: callers decide that.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from asterisk_recorder.errors import LedgerError
from asterisk_recorder.ledger.records import (
    DECISION_COLUMNS,
    EVENT_COLUMNS,
    FACT_COLUMNS,
    PERSONAL_COLUMNS,
    DecisionRecord,
    EventRecord,
    FactRecord,
    chain_hash,
)

__all__ = ["APP_ROLE", "append_decisions", "append_entries", "append_event", "lock_head"]

Entry = DecisionRecord | FactRecord

APP_ROLE = "asterisk_recorder_app"
"""The INSERT+SELECT role every ledger connection switches to (created by migration 0001)."""


_LOCK_AND_EXISTING = """
SELECT h.seq, h.hash,
       (SELECT array_agg(d.decision_id) FROM decisions d
        WHERE d.decision_id = ANY($1::uuid[])) AS existing
FROM ledger_head h WHERE h.id = 1 FOR UPDATE OF h
"""

_LOCK_AND_EXISTING_FACTS = """
SELECT h.seq, h.hash,
       (SELECT array_agg(d.decision_id) FROM decisions d
        WHERE d.decision_id = ANY($1::uuid[])) AS existing,
       (SELECT array_agg(f.fact_id) FROM ledger_facts f
        WHERE f.fact_id = ANY($2::uuid[])) AS existing_facts
FROM ledger_head h WHERE h.id = 1 FOR UPDATE OF h
"""


async def lock_head(conn: asyncpg.Connection) -> tuple[int, bytes]:
    """Lock the chain head for this transaction; return ``(last seq, last hash)``."""
    row = await conn.fetchrow("SELECT seq, hash FROM ledger_head WHERE id = 1 FOR UPDATE")
    if row is None:
        raise LedgerError("ledger_head has no row; run 'asterisk-recorder db migrate'")
    return int(row["seq"]), bytes(row["hash"])


async def _move_head(conn: asyncpg.Connection, seq: int, digest: bytes) -> None:
    await conn.execute("UPDATE ledger_head SET seq = $1, hash = $2 WHERE id = 1", seq, digest)


async def append_decisions(
    conn: asyncpg.Connection, records: Sequence[DecisionRecord]
) -> list[str]:
    """Append decision ``records`` in order in ONE transaction; return the ids newly stored."""
    return await append_entries(conn, records)


async def append_entries(conn: asyncpg.Connection, records: Sequence[Entry]) -> list[str]:
    """Append decisions and facts in order in ONE transaction; return the ids newly stored.

    Entries whose decision id (or fact id) is already in the ledger, or repeated in
    ``records``, are skipped, so replays are idempotent. A fact naming a decision that is
    neither stored nor earlier in ``records`` makes PostgreSQL refuse the transaction with a
    foreign-key violation (SQLSTATE 23503).
    """
    decision_ids = [r.decision_id for r in records if isinstance(r, DecisionRecord)]
    fact_ids = [r.fact_id for r in records if isinstance(r, FactRecord)]
    async with conn.transaction():
        # one round trip: lock the head and learn which ids are already stored
        if fact_ids:
            head = await conn.fetchrow(_LOCK_AND_EXISTING_FACTS, decision_ids, fact_ids)
        else:
            head = await conn.fetchrow(_LOCK_AND_EXISTING, decision_ids)
        if head is None:
            raise LedgerError("ledger_head has no row; run 'asterisk-recorder db migrate'")
        seq, prev = int(head["seq"]), bytes(head["hash"])
        existing = {str(i) for i in head["existing"] or ()}
        if fact_ids:
            existing.update(str(i) for i in head["existing_facts"] or ())
        rows: list[tuple[object, ...]] = []
        personal: list[tuple[object, ...]] = []
        facts: list[tuple[object, ...]] = []
        stored: list[str] = []
        for record in records:
            entry_id = record.decision_id if isinstance(record, DecisionRecord) else record.fact_id
            if entry_id in existing:
                continue
            existing.add(entry_id)
            seq += 1
            digest = chain_hash(prev, seq, record.body)
            if isinstance(record, DecisionRecord):
                rows.append((seq, *record.values, prev, digest))
                personal.append(record.personal)
            else:
                facts.append((seq, *record.values, prev, digest))
            stored.append(entry_id)
            prev = digest
        if rows:
            await conn.copy_records_to_table("decisions", records=rows, columns=DECISION_COLUMNS)
            await conn.copy_records_to_table(
                "decision_personal", records=personal, columns=PERSONAL_COLUMNS
            )
        if facts:  # after the decisions: a fact may name a decision of this same batch
            await conn.copy_records_to_table("ledger_facts", records=facts, columns=FACT_COLUMNS)
        if stored:
            await _move_head(conn, seq, prev)
        return stored


async def append_event(conn: asyncpg.Connection, record: EventRecord) -> int:
    """Append one audit event; the caller holds the transaction (and may already hold the head).

    Returns the event's position in the chain.
    """
    seq, prev = await lock_head(conn)
    seq += 1
    digest = chain_hash(prev, seq, record.body)
    await conn.execute(
        f"INSERT INTO ledger_events ({', '.join(EVENT_COLUMNS)}) "  # noqa: S608 - fixed names
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        seq,
        *record.values,
        prev,
        digest,
    )
    await _move_head(conn, seq, digest)
    return seq
