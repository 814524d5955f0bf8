"""Tamper evidence: any edit, deletion or insertion made directly in SQL breaks the chain."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

import asyncpg
import pytest

from asterisk_recorder.flow.decision import ConsentDecision
from asterisk_recorder.ledger import Ledger
from asterisk_recorder.ledger.database import connect_app
from asterisk_recorder.ledger.keys import DigestKey
from asterisk_recorder.ledger.records import (
    DECISION_COLUMNS,
    build_decision_record,
    chain_hash,
)
from asterisk_recorder.ledger.verify import VerifyReport, verify_chain
from asterisk_recorder.settings import LedgerSettings

Factory = Callable[..., ConsentDecision]


@pytest.fixture
async def five(
    ledger_dsn: str, ledger_settings: LedgerSettings, decision_factory: Factory
) -> list[str]:
    """Five decisions stored in order; returns their ids by chain position."""
    ids = []
    async with Ledger.open(ledger_dsn, ledger_settings) as ledger:
        for _ in range(5):
            decision = decision_factory()
            await ledger.store(decision)
            ids.append(decision.decision_id)
    return ids


async def _verify(dsn: str, key: DigestKey) -> VerifyReport:
    conn = await connect_app(dsn)
    try:
        return await verify_chain(conn, key)
    finally:
        await conn.close()


async def _as_superuser_without_triggers(conn: asyncpg.Connection, sql: str, *args: object) -> None:
    async with conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")
        await conn.execute(sql, *args)


async def test_untouched_chain_verifies(
    ledger_dsn: str, five: list[str], digest_key: DigestKey
) -> None:
    """Five honest rows verify."""
    report = await _verify(ledger_dsn, digest_key)

    assert (True, 5, 5, None) == (report.ok, report.rows, report.head_seq, report.position)


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("UPDATE decisions SET outcome = 'recorded_notified' WHERE seq = 3", "edited"),
        ("UPDATE decisions SET reason = reason || ' ' WHERE seq = 3", "edited"),
        (
            "UPDATE decisions SET decided_at = decided_at + interval '1 microsecond' WHERE seq = 3",
            "edited",
        ),
        ("UPDATE decisions SET keys = '[]' WHERE seq = 3", "edited"),
        ("UPDATE decisions SET hash = decode(repeat('ab', 32), 'hex') WHERE seq = 3", "edited"),
        (
            "UPDATE decisions SET caller_number_digest = decode(repeat('00', 32), 'hex') "
            "WHERE seq = 3",
            "edited",
        ),
        (
            "UPDATE decision_personal SET caller_number = '+15555550000' "
            "WHERE decision_id = (SELECT decision_id FROM decisions WHERE seq = 3)",
            "personal",
        ),
    ],
)
async def test_superuser_edit_of_a_row_is_reported_at_that_row(
    ledger_dsn: str,
    five: list[str],
    owner: asyncpg.Connection,
    digest_key: DigestKey,
    sql: str,
    reason: str,
) -> None:
    """An edit of any field or hash is reported at the edited row's position and id."""
    await _as_superuser_without_triggers(owner, sql)

    report = await _verify(ledger_dsn, digest_key)

    assert (False, 3, five[2]) == (report.ok, report.position, report.entry_id)
    assert reason in (report.reason or "")


async def test_superuser_edit_of_prev_hash_is_reported(
    ledger_dsn: str, five: list[str], owner: asyncpg.Connection, digest_key: DigestKey
) -> None:
    """Rewriting a row's link to its predecessor is reported at that row."""
    await _as_superuser_without_triggers(
        owner, "UPDATE decisions SET prev_hash = decode(repeat('11', 32), 'hex') WHERE seq = 4"
    )

    report = await _verify(ledger_dsn, digest_key)

    assert (False, 4, five[3]) == (report.ok, report.position, report.entry_id)


async def test_superuser_delete_in_the_middle_is_reported(
    ledger_dsn: str, five: list[str], owner: asyncpg.Connection, digest_key: DigestKey
) -> None:
    """A deleted row is reported as missing at its position."""
    await _as_superuser_without_triggers(
        owner, "DELETE FROM decision_personal WHERE decision_id = $1", uuid.UUID(five[2])
    )
    await _as_superuser_without_triggers(owner, "DELETE FROM decisions WHERE seq = 3")

    report = await _verify(ledger_dsn, digest_key)

    assert (False, 3, 2) == (report.ok, report.position, report.rows)
    assert "missing" in (report.reason or "")


async def test_superuser_delete_of_the_last_row_is_reported(
    ledger_dsn: str, five: list[str], owner: asyncpg.Connection, digest_key: DigestKey
) -> None:
    """Removing the newest row leaves the head pointing past the end of the chain."""
    await _as_superuser_without_triggers(
        owner, "DELETE FROM decision_personal WHERE decision_id = $1", uuid.UUID(five[4])
    )
    await _as_superuser_without_triggers(owner, "DELETE FROM decisions WHERE seq = 5")

    report = await _verify(ledger_dsn, digest_key)

    assert (False, 5) == (report.ok, report.position)
    assert "head" in (report.reason or "")


async def test_row_inserted_in_the_middle_with_a_correct_hash_is_reported(
    ledger_dsn: str,
    five: list[str],
    owner: asyncpg.Connection,
    digest_key: DigestKey,
    decision_factory: Factory,
) -> None:
    """A forged row spliced in at position 3 (later rows renumbered) breaks the chain there."""
    prev = bytes(await owner.fetchval("SELECT hash FROM decisions WHERE seq = 2"))
    record = build_decision_record(decision_factory(), digest_key)
    forged = (3, *record.values, prev, chain_hash(prev, 3, record.body))
    async with owner.transaction():
        await owner.execute("SET LOCAL session_replication_role = replica")
        await owner.execute("UPDATE decisions SET seq = seq + 100 WHERE seq >= 3")
        await owner.execute("UPDATE decisions SET seq = seq - 99 WHERE seq >= 100")
        await owner.copy_records_to_table("decisions", records=[forged], columns=DECISION_COLUMNS)

    report = await _verify(ledger_dsn, digest_key)

    assert (False, 4, five[2]) == (report.ok, report.position, report.entry_id)


async def test_row_appended_behind_the_head_is_reported(
    ledger_dsn: str,
    five: list[str],
    owner: asyncpg.Connection,
    digest_key: DigestKey,
    decision_factory: Factory,
) -> None:
    """A forged row added after the last one without moving the head is reported."""
    prev = bytes(await owner.fetchval("SELECT hash FROM decisions WHERE seq = 5"))
    record = build_decision_record(decision_factory(), digest_key)
    forged = (6, *record.values, prev, chain_hash(prev, 6, record.body))
    await owner.copy_records_to_table("decisions", records=[forged], columns=DECISION_COLUMNS)

    report = await _verify(ledger_dsn, digest_key)

    assert (False, 5) == (report.ok, report.head_seq)
    assert "head" in (report.reason or "")


async def test_edited_personal_party_number_is_reported(
    ledger_dsn: str, five: list[str], owner: asyncpg.Connection, digest_key: DigestKey
) -> None:
    """The plain party numbers are checked against their chained digests."""
    await _as_superuser_without_triggers(
        owner,
        "UPDATE decision_personal SET party_numbers = $1 WHERE decision_id = $2",
        json.dumps(["+1", "+2", ""]),
        uuid.UUID(five[0]),
    )

    report = await _verify(ledger_dsn, digest_key)

    assert (False, 1, five[0]) == (report.ok, report.position, report.entry_id)
