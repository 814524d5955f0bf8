"""PostgreSQL stopped in the middle of a stream of decisions, then restarted."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from asterisk_recorder.embedded_pg import EmbeddedPostgres
from asterisk_recorder.flow.decision import ConsentDecision
from asterisk_recorder.ledger import Ledger, StoreReceipt, migrate
from asterisk_recorder.ledger.database import connect_app
from asterisk_recorder.ledger.keys import DigestKey
from asterisk_recorder.ledger.verify import verify_chain
from asterisk_recorder.settings import LedgerSettings

Factory = Callable[..., ConsentDecision]


@pytest.fixture
async def own_server(tmp_path: Path) -> AsyncIterator[EmbeddedPostgres]:
    """A private PostgreSQL this test may stop and start."""
    server = EmbeddedPostgres(tmp_path / "pgdata")
    await asyncio.to_thread(server.start)
    try:
        yield server
    finally:
        await asyncio.to_thread(server.stop)


async def test_postgres_stopped_mid_stream_loses_and_duplicates_nothing(
    own_server: EmbeddedPostgres,
    ledger_settings: LedgerSettings,
    decision_factory: Factory,
    digest_key: DigestKey,
) -> None:
    """300 decisions, PostgreSQL down for part of them: all stored once, chain verifies."""
    dsn = own_server.dsn
    await migrate(dsn)
    decisions = [decision_factory() for _ in range(300)]
    receipts: list[StoreReceipt] = []

    async def stream(ledger: Ledger, chunk: list[ConsentDecision]) -> None:
        results = await asyncio.gather(*(ledger.store(d) for d in chunk))
        receipts.extend(results)

    async with Ledger.open(dsn, ledger_settings, retry_interval=0.05) as ledger:
        await stream(ledger, decisions[:100])
        stopping = asyncio.create_task(asyncio.to_thread(own_server.stop))
        await stream(ledger, decisions[100:150])  # some race the shutdown
        await stopping
        await stream(ledger, decisions[150:200])  # PostgreSQL is gone
        assert ledger.spool_depth >= 50
        await asyncio.to_thread(own_server.start)
        await stream(ledger, decisions[200:300])
        deadline = time.monotonic() + 20
        while not ledger.healthy:
            assert time.monotonic() < deadline, "spool not replayed"
            await asyncio.sleep(0.05)

    conn = await connect_app(dsn)
    try:
        stored = [str(r[0]) for r in await conn.fetch("SELECT decision_id FROM decisions")]
        report = await verify_chain(conn, digest_key)
    finally:
        await conn.close()
    assert 300 == len(receipts)
    assert any(r.spooled for r in receipts)
    assert sorted(d.decision_id for d in decisions) == sorted(stored)
    assert (True, 300) == (report.ok, report.rows)
