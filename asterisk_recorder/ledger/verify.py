"""Walking the hash chain: the check behind ``asterisk-recorder ledger verify``.

This module owns recomputing every row's canonical body and hash in chain order (decisions,
facts and audit events share one sequence), checking each row's ``prev_hash`` and position, the
personal values against their digests (when the key matches), that a fact's decision comes
before it in the chain, that every decision whose personal row is gone is named by a later
``erase`` or ``purge`` event, and the head. While walking it also computes the Merkle tree over
the rows (RFC 9162, leaf input = the row's chain hash), so the caller can compare the roots at
the sizes it asks for with signed checkpoints (``ledger.audit``). It reports the FIRST break
and stops. Read-only: it runs in a REPEATABLE READ, READ ONLY transaction.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from asterisk_recorder.ledger.keys import DigestKey
from asterisk_recorder.ledger.merkle import CompactRange, leaf_hash
from asterisk_recorder.ledger.records import (
    GENESIS,
    Row,
    chain_hash,
    decision_body_from_row,
    event_body_from_row,
    fact_body_from_row,
)

__all__ = ["VerifyReport", "verify_chain"]


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """The result of walking the chain.

    Attributes:
        ok: no break found.
        rows: rows checked before the first break (all rows when ``ok``).
        head_seq / head_hash: the chain head (hex hash) as recorded; anchor it elsewhere.
        position: chain position of the first break.
        entry_id: decision id (or fact id, or event id) at the break; ``None`` when the break is
            in the head (``at_head``), which is no row of its own.
        reason: what is wrong there.
        unchecked_personal: personal rows not checked because they were written with another key.
        at_head: the rows all verify but ``ledger_head`` disagrees with where the chain ends.
        last_entry_id: id of the last row that verified (``None`` when none did).
        roots: the Merkle root of the first ``n`` rows for every size ``n`` asked for that the
            walk reached (the rows that verified).
        root: the Merkle root over every row that verified.
    """

    ok: bool
    rows: int
    head_seq: int
    head_hash: str
    position: int | None = None
    entry_id: str | None = None
    reason: str | None = None
    unchecked_personal: int = 0
    at_head: bool = False
    last_entry_id: str | None = None
    roots: Mapping[int, bytes] = field(default_factory=dict)
    root: bytes = b""


_DECISIONS = """
SELECT d.*, p.decision_id AS p_id, p.caller_number AS p_caller_number,
       p.caller_name AS p_caller_name, p.called_number AS p_called_number,
       p.party_numbers AS p_party_numbers
FROM decisions d LEFT JOIN decision_personal p USING (decision_id)
ORDER BY d.seq
"""


def _personal_problem(row: Row, key: DigestKey) -> str | None:
    if row["p_id"] is None:
        return None
    for name in ("caller_number", "caller_name", "called_number"):
        if key.digest(row[f"p_{name}"]) != bytes(row[f"{name}_digest"]):
            return f"personal field {name} does not match its digest (edited)"
    numbers = json.loads(row["p_party_numbers"])
    parties = json.loads(row["parties"])
    if not isinstance(numbers, list) or len(numbers) != len(parties):
        return "personal party numbers do not match the parties (edited)"
    for number, party in zip(numbers, parties, strict=True):
        if not isinstance(number, str) or key.digest(number).hex() != party.get("number_digest"):
            return "a personal party number does not match its digest (edited)"
    return None


_FACTS = """
SELECT f.*, d.seq AS decision_seq
FROM ledger_facts f LEFT JOIN decisions d ON d.decision_id = f.decision_id
ORDER BY f.seq
"""


class _Stream:
    """One table's rows in ``seq`` order, with the next row looked ahead."""

    def __init__(self, kind: str, rows: AsyncIterator[Row]) -> None:
        self.kind = kind
        self._rows = rows
        self.head: Row | None = None

    async def advance(self) -> None:
        self.head = await anext(self._rows, None)


async def _listed(rows: list[Any]) -> AsyncIterator[Row]:
    for row in rows:
        yield row


async def _merged(conn: asyncpg.Connection) -> AsyncIterator[tuple[str, Row]]:
    """Every chained row of every table, in ``seq`` order."""
    events = list(await conn.fetch("SELECT * FROM ledger_events ORDER BY seq"))
    streams = [
        _Stream("decision", conn.cursor(_DECISIONS, prefetch=2000).__aiter__()),
        _Stream("event", _listed(events)),
    ]
    if await conn.fetchval("SELECT to_regclass('ledger_facts') IS NOT NULL"):
        streams.append(_Stream("fact", conn.cursor(_FACTS, prefetch=2000).__aiter__()))
    for stream in streams:
        await stream.advance()
    while True:
        live = [s for s in streams if s.head is not None]
        if not live:
            return
        first = min(live, key=lambda s: int(s.head["seq"]) if s.head is not None else 0)
        row = first.head
        assert row is not None
        yield first.kind, row
        await first.advance()


def _entry_id(kind: str, row: Row) -> str:
    name = {"decision": "decision_id", "fact": "fact_id", "event": "event_id"}[kind]
    return str(row[name])


def _body(kind: str, row: Row) -> bytes:
    if kind == "decision":
        return decision_body_from_row(row)
    if kind == "fact":
        return fact_body_from_row(row)
    return event_body_from_row(row)


_ERASING_EVENTS = frozenset({"erase", "purge"})


def _erased_ids(row: Row) -> list[str]:
    """The decision ids an ``erase`` or ``purge`` event says it removed the personal data of."""
    detail = json.loads(row["detail"]) if isinstance(row["detail"], str) else row["detail"]
    ids = detail.get("decisions") if isinstance(detail, dict) else None
    return [str(i) for i in ids] if isinstance(ids, list) else []


async def verify_chain(
    conn: asyncpg.Connection, key: DigestKey | None = None, *, sizes: Collection[int] = ()
) -> VerifyReport:
    """Walk the whole chain; return where it first breaks (or that it holds).

    ``sizes``: tree sizes whose Merkle root the report carries (``roots``), e.g. the sizes of
    every stored and witnessed checkpoint.
    """
    wanted = frozenset(sizes)
    tree = CompactRange()
    roots: dict[int, bytes] = {}
    if 0 in wanted:
        roots[0] = tree.root()
    without_personal: dict[str, int] = {}
    erased: set[str] = set()
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        head = await conn.fetchrow("SELECT seq, hash FROM ledger_head WHERE id = 1")
        head_seq = int(head["seq"]) if head is not None else 0
        head_hash = bytes(head["hash"]).hex() if head is not None else ""
        expected = 1
        running = GENESIS
        unchecked = 0
        last_entry: str | None = None

        def broken(position: int, entry: str | None, reason: str) -> VerifyReport:
            return VerifyReport(
                False,
                expected - 1,
                head_seq,
                head_hash,
                position,
                entry,
                reason,
                unchecked,
                last_entry_id=last_entry,
                roots=roots,
                root=tree.root(),
            )

        async for kind, row in _merged(conn):
            entry = _entry_id(kind, row)
            seq = int(row["seq"])
            if seq > expected:
                return broken(
                    expected, entry, f"row {expected} is missing (deleted); next row is {seq}"
                )
            if seq < expected:
                return broken(seq, entry, f"a second row claims position {seq} (inserted)")
            if bytes(row["prev_hash"]) != running:
                return broken(
                    seq, entry, "prev_hash does not match the previous row (inserted or removed)"
                )
            body = _body(kind, row)
            digest = chain_hash(running, seq, body)
            if digest != bytes(row["hash"]):
                return broken(seq, entry, f"the {kind} row does not match its hash (edited)")
            if kind == "decision" and key is not None:
                if row["key_id"] != key.key_id:
                    unchecked += row["p_id"] is not None
                else:
                    problem = _personal_problem(row, key)
                    if problem is not None:
                        return broken(seq, entry, problem)
            if kind == "fact" and row["decision_id"] is not None:
                decision_seq = row["decision_seq"]
                if decision_seq is None or int(decision_seq) > seq:
                    return broken(
                        seq,
                        entry,
                        f"the fact names decision {row['decision_id']}, which is not earlier "
                        "in the chain (inserted)",
                    )
            if kind == "decision" and row["p_id"] is None:
                without_personal[entry] = seq
            if kind == "event" and row["kind"] in _ERASING_EVENTS:
                erased.update(_erased_ids(row))
            running = digest
            expected += 1
            last_entry = entry
            tree.append(leaf_hash(digest))
            if seq in wanted:
                roots[seq] = tree.root()
        last = expected - 1
        if head_seq != last or bytes.fromhex(head_hash) != running:
            return VerifyReport(
                False,
                last,
                head_seq,
                head_hash,
                last + 1 if head_seq > last else head_seq,
                None,
                f"the head records {head_seq} rows but the chain ends at {last} "
                "(rows deleted at the end, or the head was edited)",
                unchecked,
                at_head=True,
                last_entry_id=last_entry,
                roots=roots,
                root=tree.root(),
            )
        unexplained = sorted(
            (seq, entry) for entry, seq in without_personal.items() if entry not in erased
        )
        if unexplained:
            seq, entry = unexplained[0]
            return VerifyReport(
                False,
                last,
                head_seq,
                head_hash,
                seq,
                entry,
                f"the personal data of this decision is gone but no erase or purge event records "
                f"its erasure ({len(unexplained)} such decision(s); deleted outside the product)",
                unchecked,
                last_entry_id=last_entry,
                roots=roots,
                root=tree.root(),
            )
        return VerifyReport(
            True,
            last,
            head_seq,
            head_hash,
            unchecked_personal=unchecked,
            last_entry_id=last_entry,
            roots=roots,
            root=tree.root(),
        )
