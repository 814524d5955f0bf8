"""The sealer in-process against the real ledger: closure, sealing, quarantine, absence, faults."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from sealer_helpers import SealerEnv, facts_of, sealer_for

from asterisk_recorder.flow.decision import Outcome
from asterisk_recorder.flow.facts import LedgerFact, effective_outcome
from asterisk_recorder.recordings.envelope import SealInfo, open_stream, verify
from asterisk_recorder.recordings.files import FAULT_ENV
from asterisk_recorder.recordings.sealer import sealed_path_for
from asterisk_recorder.recordings.wav import WAV_HEADER_BYTES, tone_pcm, write_wav


def kinds(facts: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [kind for kind, _payload in facts]


def expected_info(payload: dict[str, Any]) -> SealInfo:
    return SealInfo(**{name: payload[name] for name in SealInfo.__slots__})


def files_below(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


async def test_a_closed_recording_is_sealed_verified_and_its_plaintext_removed(
    env: SealerEnv,
) -> None:
    """closed WAV -> recording.closed with its header facts, then a verifiable sealed envelope."""
    kek_id = env.create_key()
    decision, path = await env.decision()
    pcm = tone_pcm(3.0)
    write_wav(path, pcm)
    plain = path.read_bytes()
    async with sealer_for(env) as sealer:
        await sealer.scan()
    facts = await facts_of(env.dsn, decision.decision_id)
    assert kinds(facts) == ["recording.closed", "recording.sealed"]
    closed, sealed = facts[0][1], facts[1][1]
    assert closed["bytes"] == len(plain) == WAV_HEADER_BYTES + len(pcm)
    assert (closed["format"], closed["sample_rate"], closed["channels"]) == ("wav", 8000, 1)
    assert closed["duration_s"] == 3.0
    assert closed["empty"] is False
    assert sealed["kek_id"] == kek_id
    assert sealed["plain_sha256"] == closed["sha256"]
    assert not path.exists()
    target = sealed_path_for(env.paths, path)
    assert sealed["file"] == str(target.relative_to(env.paths.sealed))
    with open(target, "rb") as handle:
        verify(handle, expected=expected_info(sealed), opener=env.key_store().opener())
        handle.seek(0)
        assert b"".join(open_stream(handle, env.key_store().opener())) == plain
    assert sealer.metrics.sealed.value() == 1
    assert sealer.metrics.closed.value() == 1
    assert effective_outcome("recorded_consented", facts).summary.startswith("recorded")


async def test_inotify_reports_a_close_before_any_scan(env: SealerEnv) -> None:
    """With scans an hour apart, files closed after start are sealed: IN_CLOSE_WRITE, and a
    look into each new YYYY/MM/DD directory (its file may close before its watch exists)."""
    env.create_key()
    decision, path = await env.decision()
    path.parent.mkdir(parents=True)
    other, other_path = await env.decision(day="2031/01/02")
    stop = asyncio.Event()
    async with sealer_for(env) as sealer:
        task = asyncio.create_task(sealer.run(stop))
        while sealer.scans < 1:
            await asyncio.sleep(0.01)
        write_wav(path, tone_pcm(1.0))
        write_wav(other_path, tone_pcm(1.0))
        for _ in range(1000):
            if sealer.metrics.sealed.value() == 2 or task.done():
                break
            await asyncio.sleep(0.01)
        stop.set()
        await task
    assert sealer.scans == 1
    for one in (decision, other):
        assert kinds(await facts_of(env.dsn, one.decision_id)) == [
            "recording.closed", "recording.sealed"]
    assert (await facts_of(env.dsn, decision.decision_id))[0][1]["source"] == "inotify"


async def test_a_file_named_by_no_decision_is_quarantined_and_alerted(env: SealerEnv) -> None:
    """Orphans (unknown UUID, or no UUID at all) are sealed into a 0700 quarantine with a fact
    each (both digests, key id); no plaintext is left, the private key opens them."""
    kek_id = env.create_key()
    unknown = env.recording_path(str(uuid.uuid4()))
    stray = env.paths.recordings / "stray.wav"
    write_wav(unknown, tone_pcm(0.5))
    write_wav(stray, tone_pcm(0.5))
    plains = {unknown.name: unknown.read_bytes(), stray.name: stray.read_bytes()}
    async with sealer_for(env) as sealer:
        await sealer.scan()
    assert not unknown.exists()
    assert not stray.exists()
    moved = files_below(env.paths.quarantine)
    assert sorted(p.name for p in moved) == sorted([unknown.name + ".arrec", "stray.wav.arrec"])
    assert stat.S_IMODE(env.paths.quarantine.stat().st_mode) == 0o700
    orphans = await facts_of(env.dsn, None)
    assert sorted(p["reason"] for _k, p in orphans) == ["orphan", "orphan"]
    for _kind, payload in orphans:
        assert payload["kek_id"] == kek_id
        assert payload["plain_sha256"] == payload["sha256"]
        target = env.paths.quarantine / payload["moved_to"]
        with open(target, "rb") as handle:
            assert verify(handle, opener=env.key_store().opener()).sealed_sha256 == (
                payload["sealed_sha256"])
            handle.seek(0)
            assert b"".join(open_stream(handle, env.key_store().opener())) == (
                plains[target.name.removesuffix(".arrec")])
    assert sealer.metrics.quarantined.value(reason="orphan") == 2
    assert files_below(env.paths.sealed) == []


async def test_an_orphan_waits_for_a_decision_the_ledger_may_still_receive(
    env: SealerEnv,
) -> None:
    """Within orphan_after a file of an unknown decision is kept, then sealed once it arrives."""
    env.create_key()
    decision_id = str(uuid.uuid4())
    path = env.recording_path(decision_id)
    write_wav(path, tone_pcm(0.5))
    async with sealer_for(env, orphan_after=600.0) as sealer:
        await sealer.scan()
        assert path.exists()
        assert files_below(env.paths.quarantine) == []
        await env.decision(decision_id=decision_id)
        await sealer.scan()
    assert kinds(await facts_of(env.dsn, decision_id)) == ["recording.closed", "recording.sealed"]


async def test_a_file_of_a_decision_that_said_skip_is_quarantined(env: SealerEnv) -> None:
    """A declined decision's file is never sealed: recording.quarantined names the decision."""
    env.create_key()
    decision, path = await env.decision(outcome=Outcome.NOT_RECORDED_DECLINED,
                                                reason="decline key")
    write_wav(path, tone_pcm(0.5))
    async with sealer_for(env) as sealer:
        await sealer.scan()
    facts = await facts_of(env.dsn, decision.decision_id)
    assert kinds(facts) == ["recording.quarantined"]
    assert facts[0][1]["reason"] == "declined"
    assert files_below(env.paths.sealed) == []
    assert not path.exists()


async def test_a_header_only_file_is_reported_empty_and_not_sealed(env: SealerEnv) -> None:
    """44 bytes of header: recording.closed(empty), recording.absent, quarantined (deleted:
    no audio to keep); not sealed, nothing left anywhere."""
    env.create_key()
    decision, path = await env.decision()
    write_wav(path, b"")
    async with sealer_for(env) as sealer:
        await sealer.scan()
    facts = await facts_of(env.dsn, decision.decision_id)
    assert kinds(facts) == ["recording.closed", "recording.absent", "recording.quarantined"]
    assert facts[0][1]["empty"] is True
    assert facts[0][1]["bytes"] == WAV_HEADER_BYTES
    assert facts[2][1]["reason"] == "empty"
    assert facts[2][1]["deleted"] is True
    assert effective_outcome("recorded_consented", facts).status == "not_recorded"
    assert files_below(env.paths.sealed) == []
    assert files_below(env.paths.quarantine) == []
    assert not path.exists()


async def test_a_zero_length_file_is_reported_once_settled(env: SealerEnv) -> None:
    """0 bytes and no writer after settle_after: empty, absent, quarantined."""
    env.create_key()
    decision, path = await env.decision()
    path.parent.mkdir(parents=True)
    path.touch()
    old = time.time() - 120
    os.utime(path, (old, old))
    async with sealer_for(env, settle_after=60.0) as sealer:
        await sealer.scan()
    facts = await facts_of(env.dsn, decision.decision_id)
    assert kinds(facts) == ["recording.closed", "recording.absent", "recording.quarantined"]
    assert facts[0][1]["bytes"] == 0
    assert facts[0][1]["empty"] is True
    assert facts[2][1]["deleted"] is True
    assert not path.exists()
    assert files_below(env.paths.quarantine) == []


async def test_a_file_still_being_written_is_left_alone(env: SealerEnv) -> None:
    """An unfinished header while a process writes it: nothing happens; once closed, sealed."""
    env.create_key()
    decision, path = await env.decision()
    write_wav(path, tone_pcm(1.0), complete=False)
    old = time.time() - 120
    os.utime(path, (old, old))
    writer = open(path, "ab")  # noqa: SIM115 - held open like MixMonitor's file
    try:
        async with sealer_for(env, settle_after=60.0) as sealer:
            await sealer.scan()
            assert path.exists()
            assert await facts_of(env.dsn, decision.decision_id) == []
            assert sealer.metrics.recording_now.value() == 1
    finally:
        writer.close()
    os.utime(path, (old, old))
    async with sealer_for(env, settle_after=60.0) as sealer:
        await sealer.scan()
    facts = await facts_of(env.dsn, decision.decision_id)
    assert kinds(facts) == ["recording.closed", "recording.sealed"]
    assert facts[0][1]["header_complete"] is False
    assert facts[0][1]["source"] == "scan"


async def test_without_a_key_the_plaintext_is_kept_alerted_and_sealed_later(
    env: SealerEnv,
) -> None:
    """Key backend unavailable: closed is recorded, the file stays, /readyz fails; then sealed."""
    decision, path = await env.decision()
    write_wav(path, tone_pcm(1.0))
    now = [time.time()]
    async with sealer_for(env, clock=lambda: now[0], max_lag=60.0) as sealer:
        await sealer.scan()
        assert path.exists()
        assert sealer.metrics.failures.value(cause="key") == 1
        assert sealer.readiness().ready
        now[0] += 120.0
        report = sealer.readiness()
        assert not report.ready
        assert report.failing == ("seal_lag",)
        assert "no key" in report.checks[1].detail
        env.create_key()
        await sealer.scan()
        assert sealer.readiness().ready
    assert kinds(await facts_of(env.dsn, decision.decision_id)) == [
        "recording.closed", "recording.sealed"]
    assert not path.exists()


async def test_a_file_changed_between_close_and_seal_is_quarantined(env: SealerEnv) -> None:
    """The digest at close differs from the file's at seal time: quarantined as edited (the
    same file written to; a file renamed over it is ``replaced``, test_sealer_quarantine)."""
    decision, path = await env.decision()
    write_wav(path, tone_pcm(1.0))
    async with sealer_for(env) as sealer:
        await sealer.scan()  # no key yet: closed, not sealed
        with open(path, "r+b") as handle:
            handle.seek(100)
            handle.write(b"\x00\x01")
        env.create_key()
        await sealer.scan()
    facts = await facts_of(env.dsn, decision.decision_id)
    assert kinds(facts) == ["recording.closed", "recording.quarantined"]
    assert facts[1][1]["reason"] == "edited"
    assert files_below(env.paths.sealed) == []
    assert not path.exists()


async def test_disk_full_while_sealing_keeps_the_plaintext_and_retries(
    env: SealerEnv, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """ENOSPC mid-file (the os.write hook): no half file, plaintext kept, sealed on retry."""
    env.create_key()
    decision, path = await env.decision()
    write_wav(path, tone_pcm(10.0))  # 160 kB: several writes
    monkeypatch.setenv(FAULT_ENV, "enospc:1")
    async with sealer_for(env) as sealer:
        await sealer.scan()
        assert path.exists()
        assert files_below(env.paths.sealed) == []
        assert sealer.metrics.failures.value(cause="disk") == 1
        await sealer.scan()
    assert kinds(await facts_of(env.dsn, decision.decision_id)) == [
        "recording.closed", "recording.sealed"]
    assert not path.exists()


async def test_a_decision_recorded_without_any_file_gets_recording_absent(
    env: SealerEnv,
) -> None:
    """call.fate recorded, no file after absent_after: recording.absent with a reason."""
    decision, path = await env.decision()
    kept, kept_path = await env.decision()
    write_wav(kept_path, tone_pcm(1.0), complete=False)  # still recording: not absent
    ended = time.time()
    for one in (decision, kept):
        await env.fact(LedgerFact("call.fate", one.decision_id, ended, "ctl-1",
                                  {"fate": "recorded", "reason": "MixMonitor started"}))
    async with sealer_for(env, clock=lambda: ended + 10.0, absent_after=300.0) as sealer:
        await sealer.scan()
        assert await facts_of(env.dsn, decision.decision_id) == []
    async with sealer_for(env, clock=lambda: ended + 301.0, absent_after=300.0) as sealer:
        await sealer.scan()
        await sealer.scan()
    facts = await facts_of(env.dsn, decision.decision_id)
    assert kinds(facts) == ["recording.absent"]
    assert "no file appeared within 300 s" in facts[0][1]["reason"]
    assert await facts_of(env.dsn, kept.decision_id) == []
    assert not path.exists()


def _mount(*args: str) -> bool:
    return subprocess.run(["mount", *args], capture_output=True, check=False).returncode == 0


def _mount_tmpfs(where: Path, size: str) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    return _mount("-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where))


def _umount(where: Path) -> None:
    subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)


async def test_a_really_full_sealed_disk_keeps_the_plaintext_until_there_is_room(
    env: SealerEnv,
) -> None:
    """A 64 KiB tmpfs as the sealed directory: real ENOSPC, no half file; grown, it seals."""
    if os.geteuid() != 0 or not _mount_tmpfs(env.paths.sealed, "64k"):
        pytest.skip("mounting a tmpfs needs root (the os.write hook test covers ENOSPC)")
    try:
        env.create_key()
        decision, path = await env.decision()
        write_wav(path, tone_pcm(5.0))  # 80 kB > 64 KiB
        async with sealer_for(env) as sealer:
            await sealer.scan()
            assert path.exists()
            assert [p for p in env.paths.sealed.rglob("*") if p.is_file()] == []
            assert sealer.metrics.failures.value(cause="disk") == 1
            assert _mount("-o", "remount,size=1m", str(env.paths.sealed))
            await sealer.scan()
        assert kinds(await facts_of(env.dsn, decision.decision_id)) == [
            "recording.closed", "recording.sealed"]
        assert not path.exists()
    finally:
        _umount(env.paths.sealed)
