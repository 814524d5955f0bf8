"""Quarantine and several hosts, against the real ledger: quarantined audio is sealed (never
plaintext on disk, any file system), files edited or replaced after their close are told apart,
and each host's sealer declares absent only its own decisions."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sealer_helpers import SealerEnv, facts_of, sealer_for

from asterisk_recorder.flow.decision import Outcome
from asterisk_recorder.flow.facts import LedgerFact
from asterisk_recorder.ledger import migrate
from asterisk_recorder.recordings import files
from asterisk_recorder.recordings.envelope import open_stream, verify
from asterisk_recorder.recordings.sealer import sealed_path_for
from asterisk_recorder.recordings.wav import tone_pcm, write_wav


def kinds(facts: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [kind for kind, _payload in facts]


def plaintext_files(root: Path) -> list[Path]:
    """Files below ``root`` that are not sealed envelopes."""
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.name.endswith(".arrec"))


def opened(env: SealerEnv, path: Path) -> bytes:
    with open(path, "rb") as handle:
        verify(handle, opener=env.key_store().opener())
        handle.seek(0)
        return b"".join(open_stream(handle, env.key_store().opener()))


@pytest.fixture
def shm_dir() -> Iterator[Path]:
    """A fresh directory on /dev/shm (tmpfs), removed afterwards; skipped without one."""
    if not os.path.isdir("/dev/shm") or not os.access("/dev/shm", os.W_OK):
        pytest.skip("no writable /dev/shm on this machine")
    where = Path(tempfile.mkdtemp(prefix="rec14-", dir="/dev/shm"))
    try:
        yield where
    finally:
        shutil.rmtree(where, ignore_errors=True)


async def test_a_declined_file_is_sealed_into_quarantine_and_only_the_private_key_opens_it(
    env: SealerEnv,
) -> None:
    """recording.quarantined carries both digests and the key id; the envelope opens to the
    file's bytes; no plaintext is left anywhere."""
    kek_id = env.create_key()
    decision, path = await env.decision(outcome=Outcome.NOT_RECORDED_DECLINED, reason="decline")
    write_wav(path, tone_pcm(2.0))
    plain = path.read_bytes()
    async with sealer_for(env) as sealer:
        await sealer.scan()
    [(kind, payload)] = await facts_of(env.dsn, decision.decision_id)
    assert (kind, payload["reason"], payload["kek_id"]) == ("recording.quarantined", "declined",
                                                            kek_id)
    assert payload["plain_sha256"] == payload["sha256"]
    target = env.paths.quarantine / payload["moved_to"]
    assert opened(env, target) == plain
    with open(target, "rb") as handle:
        assert verify(handle).sealed_sha256 == payload["sealed_sha256"]
    assert plaintext_files(env.paths.quarantine) == []
    assert not path.exists()
    assert sealer.metrics.quarantined.value(reason="declined") == 1


async def test_without_a_key_a_file_to_quarantine_stays_in_place_alerted_and_is_sealed_later(
    env: SealerEnv,
) -> None:
    """Key unavailable: the orphan's plaintext stays where it is (the tmpfs), nothing is written
    to the quarantine, the failure is counted; once the key exists it is sealed there."""
    orphan = env.paths.recordings / "stray.wav"
    write_wav(orphan, tone_pcm(1.0))
    plain = orphan.read_bytes()
    async with sealer_for(env) as sealer:
        await sealer.scan()
        assert orphan.read_bytes() == plain
        assert sorted(p for p in env.paths.quarantine.rglob("*") if p.is_file()) == []
        assert await facts_of(env.dsn, None) == []
        assert sealer.metrics.failures.value(cause="key") == 1
        assert "no key" in sealer.last_problem
        env.create_key()
        await sealer.scan()
    [(_kind, payload)] = await facts_of(env.dsn, None)
    assert payload["reason"] == "orphan"
    assert opened(env, env.paths.quarantine / payload["moved_to"]) == plain
    assert not orphan.exists()


async def test_quarantine_never_overwrites_an_earlier_quarantined_file_of_the_same_name(
    env: SealerEnv,
) -> None:
    """A second stray of the same name gets ``.1`` before ``.arrec``; both open."""
    env.create_key()
    stray = env.paths.recordings / "stray.wav"
    write_wav(stray, tone_pcm(1.0))
    first = stray.read_bytes()
    async with sealer_for(env) as sealer:
        await sealer.scan()
        write_wav(stray, tone_pcm(2.0))
        second = stray.read_bytes()
        await sealer.scan()
    names = sorted(p.name for p in env.paths.quarantine.rglob("*") if p.is_file())
    assert names == ["stray.wav.1.arrec", "stray.wav.arrec"]
    assert opened(env, env.paths.quarantine / "stray.wav.arrec") == first
    assert opened(env, env.paths.quarantine / "stray.wav.1.arrec") == second


async def test_recordings_on_a_tmpfs_are_sealed_and_quarantined_onto_another_file_system(
    pg_dsn: str, tmp_path: Path, shm_dir: Path,
) -> None:
    """recording.directory on /dev/shm, sealed and quarantine dirs on /tmp's file system: no
    EXDEV, one decision sealed, one orphan sealed into quarantine, no plaintext on /tmp."""
    if os.stat(shm_dir).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("/dev/shm and the test directory are the same file system here")
    await migrate(pg_dsn)
    env = SealerEnv(tmp_path, pg_dsn, recordings_dir=shm_dir / "rec")
    env.paths.recordings.mkdir()
    env.create_key()
    decision, path = await env.decision()
    write_wav(path, tone_pcm(2.0))
    orphan = env.paths.recordings / "stray.wav"
    write_wav(orphan, tone_pcm(1.0))
    orphan_plain = orphan.read_bytes()
    async with sealer_for(env) as sealer:
        await sealer.scan()
    assert kinds(await facts_of(env.dsn, decision.decision_id)) == [
        "recording.closed", "recording.sealed"]
    [(_kind, payload)] = await facts_of(env.dsn, None)
    assert payload["reason"] == "orphan"
    assert opened(env, env.paths.quarantine / payload["moved_to"]) == orphan_plain
    assert sealed_path_for(env.paths, path).is_file()
    assert plaintext_files(env.paths.quarantine) == []
    assert plaintext_files(env.paths.sealed) == []
    assert [p for p in env.paths.recordings.rglob("*") if p.is_file()] == []


def test_durable_move_copies_across_file_systems_to_a_private_file(
    tmp_path: Path, shm_dir: Path,
) -> None:
    """A real EXDEV (/dev/shm -> /tmp): copied, fsynced, renamed, source unlinked, mode 0600,
    no temporary file left; an existing target is refused with the source kept."""
    if os.stat(shm_dir).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("/dev/shm and the test directory are the same file system here")
    source = shm_dir / "a.bin"
    data = os.urandom(3 << 20)
    source.write_bytes(data)
    source.chmod(0o644)
    target = tmp_path / "moved" / "a.bin"
    target.parent.mkdir()
    files.durable_move(source, target)
    assert not source.exists()
    assert target.read_bytes() == data
    assert target.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.bin"]
    source.write_bytes(b"again")
    with pytest.raises(FileExistsError):
        files.durable_move(source, target)
    assert source.read_bytes() == b"again"


async def test_a_file_edited_in_place_after_its_close_is_quarantined_as_edited(
    env: SealerEnv,
) -> None:
    """Same size, one byte changed after recording.closed: quarantined ``edited`` with the new
    digest, never recording.sealed; the edited bytes are sealed in quarantine (nothing lost)."""
    decision, path = await env.decision()
    write_wav(path, tone_pcm(2.0))
    async with sealer_for(env) as sealer:
        await sealer.scan()  # no key yet: closed (digest recorded), not sealed
        size = path.stat().st_size
        with open(path, "r+b") as handle:
            handle.seek(1000)
            byte = handle.read(1)
            handle.seek(1000)
            handle.write(bytes([byte[0] ^ 0xFF]))
        assert path.stat().st_size == size
        edited = path.read_bytes()
        env.create_key()
        await sealer.scan()
    facts = await facts_of(env.dsn, decision.decision_id)
    assert kinds(facts) == ["recording.closed", "recording.quarantined"]
    closed, quarantined = facts[0][1], facts[1][1]
    assert quarantined["reason"] == "edited"
    assert quarantined["sha256"] != closed["sha256"]
    assert opened(env, env.paths.quarantine / quarantined["moved_to"]) == edited
    assert not sealed_path_for(env.paths, path).exists()
    assert not path.exists()


async def test_a_file_replaced_by_a_rename_after_its_close_is_quarantined_as_replaced(
    env: SealerEnv,
) -> None:
    """Another file renamed onto the recording's name after recording.closed: ``replaced``,
    never recording.sealed; the replacement is sealed in quarantine."""
    decision, path = await env.decision()
    write_wav(path, tone_pcm(2.0))
    async with sealer_for(env) as sealer:
        await sealer.scan()
        other = path.with_name(".incoming")
        write_wav(other, tone_pcm(2.0, frequency=660.0))  # same size, other audio
        os.rename(other, path)
        replacement = path.read_bytes()
        env.create_key()
        await sealer.scan()
    facts = await facts_of(env.dsn, decision.decision_id)
    assert kinds(facts) == ["recording.closed", "recording.quarantined"]
    assert facts[1][1]["reason"] == "replaced"
    assert opened(env, env.paths.quarantine / facts[1][1]["moved_to"]) == replacement
    assert not sealed_path_for(env.paths, path).exists()


async def test_two_sealers_on_one_ledger_each_mark_absent_only_their_own_hosts_decisions(
    pg_dsn: str, tmp_path: Path,
) -> None:
    """Host A and host B, one ledger, one recorded call each without a file and one with: each
    sealer (recordings.asterisk_ids) declares only its own missing one absent, once."""
    await migrate(pg_dsn)
    hosts = {"pbx-a": SealerEnv(tmp_path / "a", pg_dsn), "pbx-b": SealerEnv(tmp_path / "b", pg_dsn)}
    missing: dict[str, str] = {}
    present: dict[str, str] = {}
    ended = time.time()
    for host, env in hosts.items():
        env.paths.recordings.mkdir(parents=True)
        env.create_key()
        lost, _path = await env.decision(asterisk_id=host)
        kept, kept_path = await env.decision(asterisk_id=host)
        write_wav(kept_path, tone_pcm(1.0))
        missing[host], present[host] = lost.decision_id, kept.decision_id
        for one in (lost, kept):
            await env.fact(LedgerFact("call.fate", one.decision_id, ended, "ctl-1",
                                      {"fate": "recorded", "reason": "MixMonitor started"}))
    other = {"pbx-a": "pbx-b", "pbx-b": "pbx-a"}
    for host, env in hosts.items():
        async with sealer_for(env, clock=lambda: ended + 301.0, absent_after=300.0,
                              asterisk_ids=(host,)) as sealer:
            await sealer.scan()
            await sealer.scan()
        assert sealer.metrics.absent.value() == 1
        assert kinds(await facts_of(pg_dsn, missing[host])) == ["recording.absent"]
        if host == "pbx-a":  # B's sealer has not run yet: A's left B's decision alone
            assert await facts_of(pg_dsn, missing[other[host]]) == []
    for host in hosts:
        assert kinds(await facts_of(pg_dsn, missing[host])) == ["recording.absent"]
        assert kinds(await facts_of(pg_dsn, present[host])) == [
            "recording.closed", "recording.sealed"]


async def test_without_asterisk_ids_a_sealer_would_mark_another_hosts_decision_absent(
    env: SealerEnv,
) -> None:
    """The default (empty: all hosts) still sweeps every decision, as one sealer per ledger
    needs; a filter naming another host sweeps none of them."""
    decision, _path = await env.decision(asterisk_id="pbx-b")
    ended = time.time()
    await env.fact(LedgerFact("call.fate", decision.decision_id, ended, "ctl-1",
                              {"fate": "recorded", "reason": "MixMonitor started"}))
    async with sealer_for(env, clock=lambda: ended + 301.0, absent_after=300.0,
                          asterisk_ids=("pbx-a",)) as sealer:
        await sealer.scan()
    assert await facts_of(env.dsn, decision.decision_id) == []
    async with sealer_for(env, clock=lambda: ended + 301.0, absent_after=300.0) as sealer:
        await sealer.scan()
    assert kinds(await facts_of(env.dsn, decision.decision_id)) == ["recording.absent"]
