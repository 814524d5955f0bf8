"""Durability: spooled when PostgreSQL does not answer, replayed exactly once when it returns."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import asyncpg
import pytest
from ledger_helpers import pending_spool_ids

from asterisk_recorder.errors import LedgerError
from asterisk_recorder.flow.decision import ConsentDecision
from asterisk_recorder.ledger import Ledger, StoreReceipt, migrate
from asterisk_recorder.ledger.database import connect_app
from asterisk_recorder.ledger.keys import DigestKey
from asterisk_recorder.ledger.spool import QUARANTINE_NAME, SPOOL_NAME, Spool
from asterisk_recorder.ledger.verify import verify_chain
from asterisk_recorder.settings import LedgerSettings

Factory = Callable[..., ConsentDecision]
UNREACHABLE = "postgresql://postgres@/postgres?host=/nonexistent-socket-dir"


async def _wait_until(predicate: Callable[[], bool], limit: float = 15.0) -> None:
    deadline = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def _ids_in_db(dsn: str) -> list[str]:
    conn = await connect_app(dsn)
    try:
        return [
            str(r[0]) for r in await conn.fetch("SELECT decision_id FROM decisions ORDER BY seq")
        ]
    finally:
        await conn.close()


async def test_unreachable_database_spools_and_acknowledges(
    ledger_settings: LedgerSettings, decision_factory: Factory
) -> None:
    """With PostgreSQL away the decision is fsynced to the spool and acknowledged as spooled."""
    decision = decision_factory()
    async with Ledger.open(UNREACHABLE, ledger_settings, retry_interval=10) as ledger:
        receipt = await ledger.store(decision)
        depth = ledger.spool_depth

    assert StoreReceipt(decision.decision_id, spooled=True) == receipt
    assert 1 == depth
    status = Spool(Path(ledger_settings.spool_dir)).status()
    assert (1, 0) == (status.pending, status.quarantined)


async def test_spool_replays_in_order_once_database_returns(
    ledger_dsn: str,
    ledger_settings: LedgerSettings,
    decision_factory: Factory,
    digest_key: DigestKey,
) -> None:
    """Spooled decisions are committed in spool order by the next ledger, exactly once."""
    decisions = [decision_factory() for _ in range(20)]
    async with Ledger.open(UNREACHABLE, ledger_settings, retry_interval=10) as ledger:
        for decision in decisions:
            await ledger.store(decision)
    async with Ledger.open(ledger_dsn, ledger_settings) as ledger:
        await _wait_until(lambda: ledger.healthy)
        await ledger.store(decisions[3])  # a replayed id stored again stays single

    assert [d.decision_id for d in decisions] == await _ids_in_db(ledger_dsn)
    assert 0 == Spool(Path(ledger_settings.spool_dir)).status().pending


async def test_torn_spool_tail_is_quarantined_and_good_lines_replay(
    ledger_dsn: str, ledger_settings: LedgerSettings, decision_factory: Factory
) -> None:
    """A crash mid-write leaves a torn line: it is kept aside and reported, the rest replay."""
    spool = Spool(Path(ledger_settings.spool_dir))
    decisions = [decision_factory() for _ in range(3)]
    spool.append(decisions)
    path = spool.directory / SPOOL_NAME
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 40])  # the third line loses its end

    async with Ledger.open(ledger_dsn, ledger_settings) as ledger:
        await _wait_until(lambda: ledger.healthy)

    assert [d.decision_id for d in decisions[:2]] == await _ids_in_db(ledger_dsn)
    quarantine = (spool.directory / QUARANTINE_NAME).read_text()
    assert decisions[2].decision_id in quarantine
    assert "torn line" in quarantine
    status = spool.status()
    assert (0, 1) == (status.pending, status.quarantined)


async def test_garbled_spool_line_in_the_middle_is_quarantined(
    ledger_dsn: str, ledger_settings: LedgerSettings, decision_factory: Factory
) -> None:
    """A line whose checksum fails is quarantined; the lines around it replay."""
    spool = Spool(Path(ledger_settings.spool_dir))
    decisions = [decision_factory() for _ in range(3)]
    spool.append(decisions)
    path = spool.directory / SPOOL_NAME
    lines = path.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1].replace(b"recorded_consented", b"not_recorded_opted_out")
    path.write_bytes(b"".join(lines))

    async with Ledger.open(ledger_dsn, ledger_settings) as ledger:
        await _wait_until(lambda: ledger.healthy)

    assert [decisions[0].decision_id, decisions[2].decision_id] == await _ids_in_db(ledger_dsn)
    assert "checksum mismatch" in (spool.directory / QUARANTINE_NAME).read_text()


async def test_store_raises_only_when_database_and_spool_both_fail(
    ledger_settings: LedgerSettings, decision_factory: Factory, tmp_path: Path
) -> None:
    """No PostgreSQL and an unwritable spool: store raises LedgerError instead of pretending."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    settings = replace(ledger_settings, spool_dir=str(blocker / "spool"))
    async with Ledger.open(UNREACHABLE, settings, retry_interval=10) as ledger:
        with pytest.raises(LedgerError, match="neither committed nor spooled"):
            await ledger.store(decision_factory())


async def test_commit_that_blocks_past_ack_timeout_is_spooled_then_replayed(
    ledger_dsn: str,
    ledger_settings: LedgerSettings,
    decision_factory: Factory,
    owner: asyncpg.Connection,
    digest_key: DigestKey,
) -> None:
    """PostgreSQL blocked: acknowledged as spooled while still blocked, then replayed once."""
    settings = replace(ledger_settings, ack_timeout=0.2)
    async with Ledger.open(ledger_dsn, settings, retry_interval=0.05) as ledger:
        first = decision_factory()
        await ledger.store(first)
        blocked = decision_factory()
        lock = owner.transaction()
        await lock.start()
        await owner.execute("SELECT * FROM ledger_head FOR UPDATE")  # writers now wait
        try:
            # store returns while the lock is still held: the ack cannot be a commit
            receipt = await asyncio.wait_for(ledger.store(blocked), 30)
            spooled_ids = await asyncio.to_thread(pending_spool_ids, Path(settings.spool_dir))
        finally:
            await lock.rollback()
        await _wait_until(lambda: ledger.healthy)

    assert StoreReceipt(blocked.decision_id, spooled=True) == receipt
    assert [blocked.decision_id] == spooled_ids
    assert [first.decision_id, blocked.decision_id] == await _ids_in_db(ledger_dsn)
    assert 0 == Spool(Path(settings.spool_dir)).status().pending
    conn = await connect_app(ledger_dsn)
    try:
        assert (await verify_chain(conn, digest_key)).ok
    finally:
        await conn.close()


async def test_unmigrated_database_spools_until_migrated(
    pg_dsn: str, ledger_settings: LedgerSettings, decision_factory: Factory
) -> None:
    """Before ``db migrate`` decisions are spooled, and they are replayed once it has run."""
    decision = decision_factory()
    async with Ledger.open(pg_dsn, ledger_settings, retry_interval=0.05) as ledger:
        receipt = await ledger.store(decision)
        await migrate(pg_dsn)
        await _wait_until(lambda: ledger.healthy)

    assert receipt.spooled
    assert [decision.decision_id] == await _ids_in_db(pg_dsn)


async def test_replay_happens_in_the_background_and_new_decisions_queue_behind(
    ledger_dsn: str, ledger_settings: LedgerSettings, decision_factory: Factory
) -> None:
    """Opening does not wait for a replay; a decision stored meanwhile lands after the spool."""
    spooled = [decision_factory() for _ in range(1200)]
    Spool(Path(ledger_settings.spool_dir)).append(spooled)
    fresh = decision_factory()
    async with Ledger.open(ledger_dsn, ledger_settings) as ledger:
        await ledger.store(fresh)
        await _wait_until(lambda: ledger.healthy)

    assert [d.decision_id for d in [*spooled, fresh]] == await _ids_in_db(ledger_dsn)


async def test_two_processes_replaying_one_spool_store_each_decision_once(
    ledger_dsn: str,
    ledger_settings: LedgerSettings,
    decision_factory: Factory,
    digest_key: DigestKey,
) -> None:
    """Two ledgers sharing a spool directory (FastAGI processes) replay it without duplicates."""
    spooled = [decision_factory() for _ in range(800)]
    Spool(Path(ledger_settings.spool_dir)).append(spooled)
    async with (
        Ledger.open(ledger_dsn, ledger_settings, retry_interval=0.05) as first,
        Ledger.open(ledger_dsn, ledger_settings, retry_interval=0.05) as second,
    ):
        await _wait_until(lambda: first.healthy and second.healthy)

    assert sorted(d.decision_id for d in spooled) == sorted(await _ids_in_db(ledger_dsn))
    conn = await connect_app(ledger_dsn)
    try:
        assert (await verify_chain(conn, digest_key)).ok
    finally:
        await conn.close()


async def test_head_moved_back_by_hand_spools_instead_of_rejecting(
    ledger_dsn: str,
    ledger_settings: LedgerSettings,
    decision_factory: Factory,
    owner: asyncpg.Connection,
) -> None:
    """A chain head edited to a taken position cannot cost decisions: they are spooled."""
    async with Ledger.open(ledger_dsn, ledger_settings, retry_interval=10) as ledger:
        await ledger.store(decision_factory())
        await owner.execute("UPDATE ledger_head SET seq = 0")
        receipt = await ledger.store(decision_factory())
        depth = ledger.spool_depth

    assert (True, 1) == (receipt.spooled, depth)
