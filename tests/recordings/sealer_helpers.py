"""Helpers of the sealer tests: a migrated ledger, decisions, keys, facts read back."""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from asterisk_recorder.flow.decision import ConsentDecision, KeyPress, Outcome, PartyRecord
from asterisk_recorder.flow.facts import LedgerFact
from asterisk_recorder.ledger.store import Ledger
from asterisk_recorder.policy.modes import Mode
from asterisk_recorder.recordings.catalog import Catalog
from asterisk_recorder.recordings.keys import KeyStore
from asterisk_recorder.recordings.sealer import Sealer, SealerPaths
from asterisk_recorder.settings import LedgerSettings, RecordingsSettings, Secret

__all__ = [
    "FIXED_KEY",
    "SealerEnv",
    "facts_of",
    "make_decision",
    "month_now",
    "sealer_for",
]

FIXED_KEY = "test-digest-key-0123456789abcdef"


def month_now() -> str:
    """The current UTC month, ``YYYY-MM`` (the key bucket new recordings are sealed to)."""
    return datetime.now(UTC).strftime("%Y-%m")


def make_decision(**changes: Any) -> ConsentDecision:
    """A recorded opt-in decision of now; ``changes`` override fields."""
    decision_id = changes.pop("decision_id", str(uuid.uuid4()))
    now = time.time()
    base = ConsentDecision(
        decision_id=decision_id,
        driver="agi",
        channel_id="1763900000.42",
        channel_name="PJSIP/alice-00000017",
        uniqueid="1763900000.42",
        linkedid="1763900000.42",
        asterisk_id="08:00:27:aa:bb:cc",
        instance_id="ctl-1",
        caller_number="+12125550100",
        caller_name="Alice",
        called_number="+14155550199",
        parties=(PartyRecord("caller", "+12125550100", "US-NY", "US-NY", Mode.OPT_IN),),
        mode=Mode.OPT_IN,
        policy_rows=("US-NY",),
        policy_version="2026.11-1",
        prompt_id="recorder/consent-opt-in",
        language="en",
        keys=(KeyPress("1", now - 1.0),),
        outcome=Outcome.RECORDED_CONSENTED,
        reason="accept key pressed",
        offered_at=now - 5.0,
        answered_at=now - 4.5,
        disclosure_started_at=now - 4.0,
        disclosure_finished_at=now - 2.0,
        decided_at=now - 1.0,
        recording_path=None,
    )
    return replace(base, **changes)


@dataclass
class SealerEnv:
    """One test's directories, settings, key store and ledger DSN."""

    root: Path
    dsn: str
    recordings_dir: Path | None = None
    """Where MixMonitor's files land (default ``<root>/rec``; a tmpfs in some tests)."""

    @property
    def paths(self) -> SealerPaths:
        return SealerPaths(
            recordings=self.recordings_dir or self.root / "rec",
            sealed=self.root / "sealed",
            quarantine=self.root / "quarantine",
            keys=self.root / "kek-public",
        )

    @property
    def private_dir(self) -> Path:
        return self.root / "kek-private"

    def key_store(self) -> KeyStore:
        return KeyStore(self.paths.keys, self.private_dir)

    def create_key(self) -> str:
        """Create this month's key of class ``standard``; return its id."""
        return self.key_store().create("standard", month_now()).kek_id

    def settings(self, **changes: Any) -> RecordingsSettings:
        base = RecordingsSettings(
            sealed_dir=str(self.paths.sealed),
            quarantine_dir=str(self.paths.quarantine),
            key_dir=str(self.paths.keys),
            retention_class="standard",
            absent_after=300.0,
            scan_interval=3600.0,
            settle_after=3600.0,
            orphan_after=0.0,
            max_lag=60.0,
        )
        return replace(base, **changes)

    def ledger_settings(self) -> LedgerSettings:
        return LedgerSettings(
            spool_dir=str(self.root / "spool"), ack_timeout=2.0, batch_interval=0.002,
            digest_key=Secret(FIXED_KEY),
        )

    def recording_path(self, decision_id: str, fmt: str = "wav") -> Path:
        day = datetime.now(UTC).strftime("%Y/%m/%d")
        return self.paths.recordings / day / f"{decision_id}.{fmt}"

    async def decision(
        self, *, day: str | None = None, **changes: Any
    ) -> tuple[ConsentDecision, Path]:
        """Store a decision whose recording_path is under the recording directory (today, or
        ``day`` as ``YYYY/MM/DD``)."""
        decision_id = changes.pop("decision_id", str(uuid.uuid4()))
        path = self.recording_path(decision_id)
        if day is not None:
            path = self.paths.recordings / day / path.name
        decision = make_decision(decision_id=decision_id, recording_path=str(path), **changes)
        async with Ledger.open(self.dsn, self.ledger_settings()) as ledger:
            await ledger.store(decision)
        return decision, path

    async def fact(self, fact: LedgerFact) -> None:
        async with Ledger.open(self.dsn, self.ledger_settings()) as ledger:
            await ledger.record_fact(fact)


async def facts_of(dsn: str, decision_id: str | None = None) -> list[tuple[str, dict[str, Any]]]:
    """``(kind, payload)`` of the ``recording.*`` facts (of one decision, or with none)."""
    conn = await asyncpg.connect(dsn)
    try:
        if decision_id is None:
            rows = await conn.fetch(
                "SELECT kind, payload FROM ledger_facts WHERE decision_id IS NULL "
                "AND kind LIKE 'recording.%' ORDER BY seq")
        else:
            rows = await conn.fetch(
                "SELECT kind, payload FROM ledger_facts WHERE decision_id = $1 "
                "AND kind LIKE 'recording.%' ORDER BY seq", uuid.UUID(decision_id))
    finally:
        await conn.close()
    return [(row["kind"], json.loads(row["payload"])) for row in rows]


@contextlib.asynccontextmanager
async def sealer_for(
    env: SealerEnv, *, clock: Callable[[], float] = time.time, **settings: Any
) -> AsyncIterator[Sealer]:
    """A sealer on ``env`` with a real ledger; the ledger is flushed when the block ends."""
    catalog = Catalog(env.dsn)
    async with Ledger.open(env.dsn, env.ledger_settings(), instance_id="sealer:test") as ledger:
        sealer = Sealer(env.settings(**settings), env.paths, ledger, catalog,
                        actor="sealer:test", clock=clock)
        sealer.prepare()
        try:
            yield sealer
        finally:
            await catalog.close()
