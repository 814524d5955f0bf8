"""A network path to PostgreSQL that silently stops answering (asyncpg's own proxy style)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from ledger_helpers import pending_spool_ids

from asterisk_recorder.flow.decision import ConsentDecision
from asterisk_recorder.ledger import Ledger
from asterisk_recorder.ledger.database import connect_app
from asterisk_recorder.ledger.keys import DigestKey
from asterisk_recorder.ledger.spool import Spool
from asterisk_recorder.ledger.verify import verify_chain
from asterisk_recorder.settings import LedgerSettings

Factory = Callable[..., ConsentDecision]


class BlackholeProxy:
    """TCP on 127.0.0.1 forwarding to PostgreSQL's unix socket, until told to go silent."""

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        self.silent = False
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Listen on an ephemeral loopback port."""
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Close the listener and every relay."""
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            while data := await reader.read(65536):
                if self.silent:  # swallow: the peer waits forever, like a dead network
                    continue
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.silent:
            self._track(asyncio.create_task(self._pipe(reader, writer)))  # never answers
            return
        up_reader, up_writer = await asyncio.open_unix_connection(self.socket_path)
        self._track(asyncio.create_task(self._pipe(reader, up_writer)))
        self._track(asyncio.create_task(self._pipe(up_reader, writer)))

    def _track(self, task: asyncio.Task[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


@pytest.fixture
async def proxied(ledger_dsn: str) -> AsyncIterator[tuple[BlackholeProxy, str]]:
    """A proxy in front of the test database and a DSN that goes through it."""
    parts = urlsplit(ledger_dsn)
    host = parse_qs(parts.query)["host"][0]
    port = parts.port or 5432
    proxy = BlackholeProxy(f"{host}/.s.PGSQL.{port}")
    await proxy.start()
    try:
        yield proxy, f"postgresql://postgres@127.0.0.1:{proxy.port}{parts.path}"
    finally:
        await proxy.stop()


async def test_silent_network_spools_while_silent_then_replays_once(
    proxied: tuple[BlackholeProxy, str],
    ledger_dsn: str,
    ledger_settings: LedgerSettings,
    decision_factory: Factory,
    digest_key: DigestKey,
) -> None:
    """PostgreSQL stops answering: decisions are acknowledged from the spool; later stored once."""
    proxy, dsn = proxied
    before = [decision_factory() for _ in range(5)]
    during = [decision_factory() for _ in range(5)]
    after = [decision_factory() for _ in range(5)]
    async with Ledger.open(dsn, ledger_settings, retry_interval=0.1, connect_timeout=0.5) as ledger:
        first = [await ledger.store(d) for d in before]
        proxy.silent = True
        # every store returns while the network is still silent: the acks come from the spool
        second = await asyncio.wait_for(asyncio.gather(*(ledger.store(d) for d in during)), 30)
        spooled_while_silent = await asyncio.to_thread(
            pending_spool_ids, Path(ledger_settings.spool_dir)
        )
        proxy.silent = False
        third = [await ledger.store(d) for d in after]
        deadline = time.monotonic() + 20
        while not ledger.healthy:
            assert time.monotonic() < deadline, "never recovered"
            await asyncio.sleep(0.05)

    assert [False] * 5 == [r.spooled for r in first]
    assert [(d.decision_id, True) for d in during] == [(r.decision_id, r.spooled) for r in second]
    assert [d.decision_id for d in during] == spooled_while_silent
    assert [d.decision_id for d in after] == [r.decision_id for r in third]
    assert 0 == Spool(Path(ledger_settings.spool_dir)).status().pending
    conn = await connect_app(ledger_dsn)
    try:
        ids = [
            str(r[0]) for r in await conn.fetch("SELECT decision_id FROM decisions ORDER BY seq")
        ]
        report = await verify_chain(conn, digest_key)
    finally:
        await conn.close()
    assert [d.decision_id for d in [*before, *during, *after]] == ids
    assert (True, 15) == (report.ok, report.rows)
