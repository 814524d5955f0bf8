"""Storing decisions: committed, complete, idempotent, chained in a total order."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import asyncpg
import pytest

from asterisk_recorder.errors import LedgerError
from asterisk_recorder.flow.decision import ConsentDecision
from asterisk_recorder.ledger import Ledger, StoreReceipt
from asterisk_recorder.ledger.database import connect_app
from asterisk_recorder.ledger.keys import DigestKey
from asterisk_recorder.ledger.verify import verify_chain
from asterisk_recorder.settings import LedgerSettings

Factory = Callable[..., ConsentDecision]


async def test_store_returns_committed_receipt_and_row_holds_every_field(
    ledger_dsn: str,
    ledger_settings: LedgerSettings,
    decision_factory: Factory,
    owner: asyncpg.Connection,
    digest_key: DigestKey,
) -> None:
    """A stored decision is acknowledged as committed and every field is in the row."""
    decision = decision_factory()
    async with Ledger.open(ledger_dsn, ledger_settings, instance_id="ctl-1") as ledger:
        receipt = await ledger.store(decision)

    assert StoreReceipt(decision.decision_id, spooled=False) == receipt
    row = await owner.fetchrow("SELECT * FROM decisions JOIN decision_personal USING (decision_id)")
    assert row is not None
    assert decision.decision_id == str(row["decision_id"])
    assert (decision.driver, decision.channel_id, decision.channel_name) == (
        row["driver"],
        row["channel_id"],
        row["channel_name"],
    )
    assert (decision.uniqueid, decision.linkedid, decision.asterisk_id, decision.instance_id) == (
        row["uniqueid"],
        row["linkedid"],
        row["asterisk_id"],
        row["instance_id"],
    )
    assert (decision.caller_number, decision.caller_name, decision.called_number) == (
        row["caller_number"],
        row["caller_name"],
        row["called_number"],
    )
    assert digest_key.digest(decision.caller_number) == row["caller_number_digest"]
    parties = json.loads(row["parties"])
    assert [p.jurisdiction for p in decision.parties] == [p["jurisdiction"] for p in parties]
    assert [p.mode.value for p in decision.parties] == [p["mode"] for p in parties]
    assert [p.number for p in decision.parties] == json.loads(row["party_numbers"])
    assert (decision.mode.value, list(decision.policy_rows), decision.policy_version) == (
        row["mode"],
        row["policy_rows"],
        row["policy_version"],
    )
    assert (decision.prompt_id, decision.language) == (row["prompt_id"], row["language"])
    assert [{"digit": "1", "at_us": 1763900003250000}] == json.loads(row["keys"])
    assert (decision.outcome.value, decision.reason) == (row["outcome"], row["reason"])
    assert decision.offered_at == pytest.approx(row["offered_at"].timestamp(), abs=1e-6)
    assert decision.answered_at == pytest.approx(row["answered_at"].timestamp(), abs=1e-6)
    assert decision.disclosure_started_at == pytest.approx(
        row["disclosure_started_at"].timestamp(), abs=1e-6
    )
    assert decision.disclosure_finished_at == pytest.approx(
        row["disclosure_finished_at"].timestamp(), abs=1e-6
    )
    assert decision.decided_at == pytest.approx(row["decided_at"].timestamp(), abs=1e-6)
    assert decision.recording_path == row["recording_path"]
    assert 1 == row["seq"]


async def test_storing_the_same_decision_twice_keeps_one_row(
    ledger_dsn: str,
    ledger_settings: LedgerSettings,
    decision_factory: Factory,
    owner: asyncpg.Connection,
) -> None:
    """The decision id is the idempotency key."""
    decision = decision_factory()
    async with Ledger.open(ledger_dsn, ledger_settings) as ledger:
        await ledger.store(decision)
        await asyncio.gather(ledger.store(decision), ledger.store(decision))

    assert 1 == await owner.fetchval("SELECT count(*) FROM decisions")
    assert 1 == await owner.fetchval("SELECT seq FROM ledger_head")


async def test_two_instances_writing_at_once_build_one_total_chain(
    ledger_dsn: str,
    ledger_settings: LedgerSettings,
    decision_factory: Factory,
    tmp_path: Path,
    digest_key: DigestKey,
) -> None:
    """Concurrent writers never fork the chain: positions are 1..N and it verifies."""
    other = replace(ledger_settings, spool_dir=str(tmp_path / "spool2"))
    async with (
        Ledger.open(ledger_dsn, ledger_settings, instance_id="a") as first,
        Ledger.open(ledger_dsn, other, instance_id="b") as second,
    ):
        receipts = await asyncio.gather(
            *(first.store(decision_factory()) for _ in range(150)),
            *(second.store(decision_factory()) for _ in range(150)),
        )

    assert [False] * 300 == [r.spooled for r in receipts]
    conn = await connect_app(ledger_dsn)
    try:
        seqs = [r[0] for r in await conn.fetch("SELECT seq FROM decisions ORDER BY seq")]
        report = await verify_chain(conn, digest_key)
    finally:
        await conn.close()
    assert list(range(1, 301)) == seqs
    assert (True, 300) == (report.ok, report.rows)


async def test_decision_id_that_is_not_a_uuid_is_rejected_clearly(
    ledger_dsn: str, ledger_settings: LedgerSettings, decision_factory: Factory
) -> None:
    """A malformed id is refused with a LedgerError before anything is written."""
    async with Ledger.open(ledger_dsn, ledger_settings) as ledger:
        with pytest.raises(LedgerError, match="not a UUID"):
            await ledger.store(decision_factory(decision_id="'); DROP TABLE decisions; --"))


async def test_non_finite_time_is_rejected_clearly(
    ledger_dsn: str, ledger_settings: LedgerSettings, decision_factory: Factory
) -> None:
    """A NaN timestamp is refused with a LedgerError naming it."""
    async with Ledger.open(ledger_dsn, ledger_settings) as ledger:
        with pytest.raises(LedgerError, match="timestamp"):
            await ledger.store(decision_factory(decided_at=float("nan")))


async def test_decision_is_stored_even_if_the_caller_is_cancelled(
    ledger_dsn: str,
    ledger_settings: LedgerSettings,
    decision_factory: Factory,
    owner: asyncpg.Connection,
) -> None:
    """A hung-up call cancels its task; the decision it handed over is still committed."""
    decision = decision_factory()
    async with Ledger.open(ledger_dsn, ledger_settings) as ledger:
        task = asyncio.create_task(ledger.store(decision))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    assert [decision.decision_id] == [
        str(r[0]) for r in await owner.fetch("SELECT decision_id FROM decisions")
    ]
