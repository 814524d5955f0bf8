"""PostgreSQL stopped in the middle of a stream of decisions, then restarted."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from ledger_helpers import FIXED_KEY

from asterisk_recorder.embedded_pg import EmbeddedPostgres
from asterisk_recorder.flow.decision import ConsentDecision
from asterisk_recorder.flow.facts import CALL_FATE, CALL_HANDED_BACK, LedgerFact
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
    tmp_path: Path,
) -> None:
    """PostgreSQL down mid-stream: every decision stored once, in order; the chain verifies."""
    dsn = own_server.dsn
    await migrate(dsn)
    decisions = [decision_factory() for _ in range(300)]
    acked: list[StoreReceipt] = []  # in the order store() returned

    async def one(ledger: Ledger, decision: ConsentDecision) -> None:
        acked.append(await ledger.store(decision))

    async def stream(ledger: Ledger, chunk: list[ConsentDecision]) -> None:
        await asyncio.gather(*(one(ledger, d) for d in chunk))

    async with Ledger.open(dsn, ledger_settings, retry_interval=0.05) as ledger:
        await stream(ledger, decisions[:100])
        stopping = asyncio.create_task(asyncio.to_thread(own_server.stop))
        await stream(ledger, decisions[100:150])  # some race the shutdown
        await stopping
        await stream(ledger, decisions[150:200])  # PostgreSQL is gone
        assert ledger.spool_depth >= 50
        acked_while_down = len(acked)
        await asyncio.to_thread(own_server.start)
        await stream(ledger, decisions[200:300])
        deadline = time.monotonic() + 20
        while not ledger.healthy:
            assert time.monotonic() < deadline, "spool not replayed"
            await asyncio.sleep(0.05)

    conn = await connect_app(dsn)
    try:
        chain = [
            str(r[0]) for r in await conn.fetch("SELECT decision_id FROM decisions ORDER BY seq")
        ]
        report = await verify_chain(conn, digest_key)
    finally:
        await conn.close()
    verify = await asyncio.to_thread(_cli_verify, tmp_path, dsn)
    # Documented order: decisions committed before the outage in the order they were
    # acknowledged, then every spooled decision in spool order (= the order of their
    # acknowledgements), then those committed once the spool was drained.
    committed_before = [r.decision_id for r in acked[:acked_while_down] if not r.spooled]
    spooled = [r.decision_id for r in acked if r.spooled]
    committed_after = [r.decision_id for r in acked[acked_while_down:] if not r.spooled]
    assert 300 == len(acked)
    assert 50 <= len(spooled)
    assert [*committed_before, *spooled, *committed_after] == chain
    assert sorted(d.decision_id for d in decisions) == sorted(chain)
    assert (True, 300) == (report.ok, report.rows)
    assert (0, True, 300) == (verify.returncode, *_ok_rows(verify.stdout))


def _cli_verify(workdir: Path, dsn: str) -> subprocess.CompletedProcess[str]:
    """Run ``asterisk-recorder ledger verify --json`` against ``dsn`` (blocking)."""
    (workdir / "recordings").mkdir(exist_ok=True)
    config = workdir / "recorder.toml"
    config.write_text(
        "[ari]\nenabled = false\n"
        f'[database]\ndsn = "{dsn}"\n'
        f'[ledger]\nspool_dir = "{workdir / "cli-spool"}"\ndigest_key = "{FIXED_KEY}"\n'
        f'[recording]\ndirectory = "{workdir / "recordings"}"\n'
    )
    script = Path(sys.executable).parent / "asterisk-recorder"
    return subprocess.run(
        [str(script), "ledger", "verify", "--json", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def _ok_rows(stdout: str) -> tuple[bool, int]:
    report = json.loads(stdout)
    return bool(report["ok"]), int(report["rows"])


async def test_postgres_stopped_mid_stream_keeps_facts_once_and_behind_their_decisions(
    own_server: EmbeddedPostgres,
    ledger_settings: LedgerSettings,
    decision_factory: Factory,
    digest_key: DigestKey,
) -> None:
    """Calls storing a decision then two facts while PostgreSQL stops and starts: every
    decision and fact is in the chain once, in acknowledgement order, each fact after its
    decision, and the chain verifies."""
    dsn = own_server.dsn
    await migrate(dsn)
    acked: list[tuple[str, StoreReceipt]] = []  # ("decision" | "fact", receipt) in ack order

    async def call(ledger: Ledger) -> None:
        decision = decision_factory()
        acked.append(("decision", await ledger.store(decision)))
        told = LedgerFact(
            CALL_HANDED_BACK, decision.decision_id, time.time(), "ctl-1", {"told": "record"}
        )
        acked.append(("fact", await ledger.record_fact(told)))
        final = LedgerFact(
            CALL_FATE,
            decision.decision_id,
            time.time(),
            "ctl-1",
            {"fate": "recorded", "reason": "MixMonitor started"},
        )
        acked.append(("fact", await ledger.record_fact(final)))

    async def calls(ledger: Ledger, count: int) -> None:
        await asyncio.gather(*(call(ledger) for _ in range(count)))

    async with Ledger.open(dsn, ledger_settings, retry_interval=0.05) as ledger:
        await calls(ledger, 40)
        stopping = asyncio.create_task(asyncio.to_thread(own_server.stop))
        await calls(ledger, 30)  # some race the shutdown
        await stopping
        await calls(ledger, 30)  # PostgreSQL is gone
        acked_while_down = len(acked)
        await asyncio.to_thread(own_server.start)
        await calls(ledger, 40)
        deadline = time.monotonic() + 20
        while not ledger.healthy:
            assert time.monotonic() < deadline, "spool not replayed"
            await asyncio.sleep(0.05)

    conn = await connect_app(dsn)
    try:
        chain = [
            (int(r["seq"]), str(r["id"]), r["decision_seq"])
            for r in await conn.fetch(
                "SELECT seq, decision_id AS id, NULL::bigint AS decision_seq FROM decisions "
                "UNION ALL SELECT f.seq, f.fact_id, d.seq FROM ledger_facts f "
                "JOIN decisions d ON d.decision_id = f.decision_id ORDER BY 1"
            )
        ]
        report = await verify_chain(conn, digest_key)
    finally:
        await conn.close()

    def entry(receipt: StoreReceipt) -> str:
        return receipt.fact_id or receipt.decision_id

    committed_before = [entry(r) for _, r in acked[:acked_while_down] if not r.spooled]
    spooled = [entry(r) for _, r in acked if r.spooled]
    committed_after = [entry(r) for _, r in acked[acked_while_down:] if not r.spooled]
    assert 140 * 3 == len(acked)
    assert 30 <= len(spooled)
    assert [*committed_before, *spooled, *committed_after] == [i for _, i, _ in chain]
    assert all(d is None or d < seq for seq, _, d in chain)
    assert (True, 420) == (report.ok, report.rows)
