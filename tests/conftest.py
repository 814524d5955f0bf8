"""Fixtures shared by the whole suite (PostgreSQL, the fake Asterisk, test data, reference files).

PostgreSQL is real: ``ASTERISK_RECORDER_TEST_DSN`` names an external server, otherwise the suite
starts its own embedded PostgreSQL once per session. Every test that asks for ``pg_dsn`` gets a
fresh, empty database of its own, dropped afterwards. Nothing is skipped for lack of a database.

The recorded Asterisk traces are test data inside the repository (``tests/data/asterisk-traces``,
fixture ``traces_dir``): the suite needs nothing beside the checkout. Only Asterisk's own ARI
declarations (``ari-api-docs``, fixture ``ari_api_docs``) come from outside, from
``ASTERISK_RECORDER_ARI_API_DOCS`` or ``../shared/ari-api-docs``; the tests that need them are
skipped, with the reason, when they are absent. This module must not read traces from outside
the repository.
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

TESTS = Path(__file__).resolve().parent
TRACES = TESTS / "data" / "asterisk-traces"
"""The recorded Asterisk 22.10.1 traces the tests replay (test data, part of the repository)."""
SHARED = TESTS.parent.parent / "shared"
"""The project's read-only reference material, when it sits beside the checkout (optional)."""


def ari_api_docs_dir() -> Path:
    """Where Asterisk's ARI declarations are looked for (they may be absent)."""
    configured = os.environ.get("ASTERISK_RECORDER_ARI_API_DOCS")
    return Path(configured) if configured else SHARED / "ari-api-docs"


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
def traces_dir() -> Path:
    """The recorded Asterisk traces (tests/data/asterisk-traces)."""
    assert TRACES.is_dir(), f"test data missing: {TRACES}"
    return TRACES


@pytest.fixture
def ari_api_docs() -> Path:
    """Asterisk 22's ARI declarations (swagger JSON); the test is skipped when they are absent."""
    directory = ari_api_docs_dir()
    if not (directory / "events.json").is_file():
        pytest.skip(
            f"Asterisk's ARI declarations not found at {directory} (reference material outside "
            "the repository): put them there or set ASTERISK_RECORDER_ARI_API_DOCS"
        )
    return directory


__all__ = ["SHARED", "TRACES", "ari_api_docs_dir", "with_database"]
