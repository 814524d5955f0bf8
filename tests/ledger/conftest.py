"""Fixtures of the ledger tests: decisions, a migrated database, settings with a fixed key."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncpg
import pytest
from ledger_helpers import FIXED_KEY, make_decision

from asterisk_recorder.flow.decision import ConsentDecision
from asterisk_recorder.ledger import migrate
from asterisk_recorder.ledger.keys import DigestKey
from asterisk_recorder.settings import LedgerSettings, Secret


@pytest.fixture
def decision_factory() -> Callable[..., ConsentDecision]:
    """Build decisions with overrides."""
    return make_decision


@pytest.fixture
def ledger_settings(tmp_path: Path) -> LedgerSettings:
    """Ledger settings with a spool in tmp_path, a fixed key and quick timeouts."""
    return LedgerSettings(
        spool_dir=str(tmp_path / "spool"),
        ack_timeout=0.5,
        batch_interval=0.002,
        batch_max=500,
        digest_key=Secret(FIXED_KEY),
    )


@pytest.fixture
def digest_key() -> DigestKey:
    """The fixed test key."""
    return DigestKey(FIXED_KEY.encode())


@pytest.fixture
async def ledger_dsn(pg_dsn: str) -> str:
    """A fresh database with the ledger schema migrated."""
    await migrate(pg_dsn)
    return pg_dsn


@pytest.fixture
async def owner(ledger_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection as the DSN's own user (a superuser on the test server)."""
    conn = await asyncpg.connect(ledger_dsn)
    try:
        yield conn
    finally:
        await conn.close()
