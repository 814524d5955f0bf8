"""Data-subject duties: export, erase, purge; recordings deleted only inside their directory."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncpg
import pytest

from asterisk_recorder.flow.decision import ConsentDecision, PartyRecord
from asterisk_recorder.ledger import Ledger
from asterisk_recorder.ledger.admin import (
    delete_recording,
    erase_number,
    export_number,
    purge_older_than,
    show_call,
)
from asterisk_recorder.ledger.database import connect_app
from asterisk_recorder.ledger.keys import DigestKey
from asterisk_recorder.ledger.verify import verify_chain
from asterisk_recorder.policy.modes import Mode
from asterisk_recorder.settings import LedgerSettings

Factory = Callable[..., ConsentDecision]
ALICE = "+12125550100"
BOB = "+442079460000"


def _call(
    factory: Factory, rec_dir: Path, caller: str, called: str, **changes: object
) -> ConsentDecision:
    decision_id = str(uuid.uuid4())
    path = rec_dir / "2026" / "11" / "23" / f"{decision_id}.wav"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF")
    return factory(
        decision_id=decision_id,
        caller_number=caller,
        called_number=called,
        parties=(
            PartyRecord("caller", caller, "US-NY", "US-NY", Mode.OPT_OUT),
            PartyRecord("called", called, "GB", "GB", Mode.ANNOUNCE),
        ),
        recording_path=str(path),
        **changes,
    )


def _exists(path: str | None) -> bool:
    return path is not None and Path(path).exists()


@pytest.fixture
def rec_dir(tmp_path: Path) -> Path:
    """The configured recording directory."""
    directory = tmp_path / "recordings"
    directory.mkdir()
    return directory


@pytest.fixture
async def app(ledger_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection with the application's rights."""
    conn = await connect_app(ledger_dsn)
    try:
        yield conn
    finally:
        await conn.close()


async def _store(dsn: str, settings: LedgerSettings, decisions: list[ConsentDecision]) -> None:
    async with Ledger.open(dsn, settings) as ledger:
        for decision in decisions:
            await ledger.store(decision)


async def test_export_finds_a_number_as_caller_and_as_called(
    ledger_dsn: str,
    ledger_settings: LedgerSettings,
    decision_factory: Factory,
    rec_dir: Path,
    app: asyncpg.Connection,
    digest_key: DigestKey,
) -> None:
    """Export returns every call the number took part in, with recording paths."""
    calls = [
        _call(decision_factory, rec_dir, ALICE, BOB),
        _call(decision_factory, rec_dir, BOB, ALICE),
        _call(decision_factory, rec_dir, BOB, "+15555550123"),
    ]
    await _store(ledger_dsn, ledger_settings, calls)

    exported = await export_number(app, digest_key, ALICE)

    assert [c.decision_id for c in calls[:2]] == [r["decision_id"] for r in exported]
    assert [c.recording_path for c in calls[:2]] == [r["recording_path"] for r in exported]
    assert [ALICE, BOB] == [exported[0]["caller_number"], exported[0]["called_number"]]


async def test_erase_removes_personal_data_and_recordings_and_keeps_the_chain(
    ledger_dsn: str,
    ledger_settings: LedgerSettings,
    decision_factory: Factory,
    rec_dir: Path,
    app: asyncpg.Connection,
    digest_key: DigestKey,
) -> None:
    """After erasure: no plain values, recordings gone, other calls intact, chain verifies."""
    alice_call = _call(decision_factory, rec_dir, ALICE, BOB)
    other = _call(decision_factory, rec_dir, BOB, "+15555550123")
    await _store(ledger_dsn, ledger_settings, [alice_call, other])

    result = await erase_number(app, digest_key, ALICE, rec_dir)

    assert ([alice_call.decision_id], 1) == (result.decisions, result.personal_rows_removed)
    assert {"deleted": [alice_call.recording_path]} == result.recordings
    assert not _exists(alice_call.recording_path)
    assert _exists(other.recording_path)
    exported = await export_number(app, digest_key, ALICE)
    assert (True, None, None) == (
        exported[0]["personal_data_erased"],
        exported[0]["caller_number"],
        exported[0]["caller_name"],
    )
    assert ALICE not in json.dumps(exported)
    event = await app.fetchrow("SELECT * FROM ledger_events")
    assert ("erase", 3) == (event["kind"], event["seq"])
    assert ALICE not in event["detail"]
    assert [alice_call.decision_id] == json.loads(event["detail"])["decisions"]
    report = await verify_chain(app, digest_key)
    assert (True, 3) == (report.ok, report.rows)


async def test_erase_event_is_chained_so_editing_it_is_reported(
    ledger_dsn: str,
    ledger_settings: LedgerSettings,
    decision_factory: Factory,
    rec_dir: Path,
    app: asyncpg.Connection,
    owner: asyncpg.Connection,
    digest_key: DigestKey,
) -> None:
    """The audit event of an erasure is part of the chain."""
    await _store(ledger_dsn, ledger_settings, [_call(decision_factory, rec_dir, ALICE, BOB)])
    await erase_number(app, digest_key, ALICE, rec_dir)
    async with owner.transaction():
        await owner.execute("SET LOCAL session_replication_role = replica")
        await owner.execute("UPDATE ledger_events SET actor = 'someone else'")

    report = await verify_chain(app, digest_key)

    assert (False, 2) == (report.ok, report.position)


async def test_purge_forgets_only_decisions_older_than_the_cutoff(
    ledger_dsn: str,
    ledger_settings: LedgerSettings,
    decision_factory: Factory,
    rec_dir: Path,
    app: asyncpg.Connection,
    digest_key: DigestKey,
) -> None:
    """Retention removes old personal data and recordings in chunks, each recorded."""
    now = time.time()
    old = [
        _call(decision_factory, rec_dir, ALICE, BOB, decided_at=now - 100 * 86400) for _ in range(5)
    ]
    new = _call(decision_factory, rec_dir, ALICE, BOB, decided_at=now)
    await _store(ledger_dsn, ledger_settings, [*old, new])
    seen: list[tuple[int, int]] = []

    result = await purge_older_than(
        app,
        digest_key,
        now - 90 * 86400,
        rec_dir,
        chunk=2,
        progress=lambda done, total: seen.append((done, total)),
    )

    assert sorted(d.decision_id for d in old) == sorted(result.decisions)
    assert 5 == len(result.recordings["deleted"])
    assert [(0, 5), (2, 5), (4, 5), (5, 5)] == seen
    assert _exists(new.recording_path)
    assert 3 == await app.fetchval("SELECT count(*) FROM ledger_events WHERE kind = 'purge'")
    assert 1 == await app.fetchval("SELECT count(*) FROM decision_personal")
    assert (await verify_chain(app, digest_key)).ok


def test_recording_outside_the_directory_is_never_deleted(tmp_path: Path) -> None:
    """Paths escaping the directory by '..', absolute elsewhere, or symlinks are refused."""
    root = tmp_path / "recordings"
    root.mkdir()
    victim = tmp_path / "victim.wav"
    victim.write_bytes(b"keep me")
    (root / "link.wav").symlink_to(victim)
    (root / "linkdir").symlink_to(tmp_path)

    results = [
        delete_recording(str(root / ".." / "victim.wav"), root),
        delete_recording(str(victim), root),
        delete_recording(str(root / "link.wav"), root),
        delete_recording(str(root / "linkdir" / "victim.wav"), root),
        delete_recording("victim.wav", root),
        delete_recording(str(root), root),
    ]

    assert ["refused"] * 6 == results
    assert victim.exists()


def test_recording_inside_the_directory_is_deleted_once(tmp_path: Path) -> None:
    """A real file inside the directory is deleted; a second attempt says it is missing."""
    root = tmp_path / "recordings"
    (root / "2026").mkdir(parents=True)
    target = root / "2026" / "call.wav"
    target.write_bytes(b"RIFF")

    assert ["deleted", "missing"] == [
        delete_recording(str(target), root),
        delete_recording(str(target), root),
    ]


async def test_erase_refuses_a_stored_path_outside_the_directory(
    ledger_dsn: str,
    ledger_settings: LedgerSettings,
    decision_factory: Factory,
    rec_dir: Path,
    app: asyncpg.Connection,
    digest_key: DigestKey,
    tmp_path: Path,
) -> None:
    """A recording path pointing outside the directory is reported, not deleted."""
    outside = tmp_path / "outside.wav"
    outside.write_bytes(b"keep")
    decision = decision_factory(
        caller_number=ALICE, recording_path=str(rec_dir / ".." / "outside.wav")
    )
    await _store(ledger_dsn, ledger_settings, [decision])

    result = await erase_number(app, digest_key, ALICE, rec_dir)

    assert {"refused": [decision.recording_path]} == result.recordings
    assert _exists(str(outside))
    assert 1 == result.personal_rows_removed
    detail = json.loads(await app.fetchval("SELECT detail FROM ledger_events"))
    assert [decision.recording_path] == detail["recordings_not_deleted"]


async def test_show_call_finds_a_decision_by_each_of_its_call_ids(
    ledger_dsn: str,
    ledger_settings: LedgerSettings,
    decision_factory: Factory,
    app: asyncpg.Connection,
) -> None:
    """Decision id, uniqueid, linkedid and channel id each find the call."""
    decision = decision_factory(uniqueid="1763.1", linkedid="1763.0", channel_id="chan-7")
    await _store(
        ledger_dsn, ledger_settings, [decision, decision_factory(uniqueid="9", linkedid="9")]
    )

    found = [
        [v["decision_id"] for v in await show_call(app, call_id)]
        for call_id in (decision.decision_id, "1763.1", "1763.0", "chan-7")
    ]

    assert [[decision.decision_id]] * 4 == found
