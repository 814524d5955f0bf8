"""Fixtures shared by the whole suite (PostgreSQL, the fake Asterisk, the reference material).

PostgreSQL is real: ``ASTERISK_RECORDER_TEST_DSN`` names an external server, otherwise the suite
starts its own embedded PostgreSQL once per session. Every test that asks for ``pg_dsn`` gets a
fresh, empty database of its own, dropped afterwards. Nothing is skipped for lack of a database.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from asterisk_recorder.ari import AriClient, EventStream
from asterisk_recorder.embedded_pg import EmbeddedPostgres
from asterisk_recorder.testing import FakeAsterisk

SHARED = Path(__file__).resolve().parent.parent.parent / "shared"
"""The read-only reference material (ARI api-docs, Asterisk traces) beside the checkout."""


def with_database(dsn: str, database: str) -> str:
    """Return ``dsn`` pointing at ``database`` instead of the one it names."""
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


@pytest.fixture(scope="session")
def pg_server_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """DSN of a running PostgreSQL server (maintenance database)."""
    external = os.environ.get("ASTERISK_RECORDER_TEST_DSN")
    if external:
        yield external
        return
    server = EmbeddedPostgres(tmp_path_factory.mktemp("pg") / "data", delete_on_stop=True)
    dsn = server.start()
    try:
        yield dsn
    finally:
        server.stop()


@pytest.fixture
async def pg_dsn(pg_server_dsn: str) -> AsyncIterator[str]:
    """DSN of a fresh, empty database on the test server; dropped after the test."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(pg_server_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield with_database(pg_server_dsn, name)
    finally:
        admin = await asyncpg.connect(pg_server_dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture
async def fake() -> AsyncIterator[FakeAsterisk]:
    """A running fake Asterisk with time scaled down 20x."""
    async with FakeAsterisk(time_scale=0.05) as server:
        yield server


@pytest.fixture
async def ari(fake: FakeAsterisk) -> AsyncIterator[AriClient]:
    """An ARI client pointed at the fake."""
    async with AriClient(fake.settings()) as client:
        yield client


@pytest.fixture
async def events(fake: FakeAsterisk) -> AsyncIterator[EventStream]:
    """A connected event stream for ``consent-recorder`` (its first ``Connected`` consumed)."""
    async with EventStream(fake.settings(), reconnect_initial=0.01) as stream:
        first = await stream.get()
        assert "Connected" == first.type
        await fake.wait_for_app("consent-recorder")
        yield stream


@pytest.fixture
def shared_dir() -> Path:
    """Path of ../shared (ARI api-docs and Asterisk traces)."""
    assert SHARED.is_dir(), f"reference material not found at {SHARED}"
    return SHARED


__all__ = ["SHARED", "with_database"]
