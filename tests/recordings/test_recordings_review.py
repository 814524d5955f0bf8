"""Fixes from a review of asterisk_recorder/recordings/: descriptors, directory fsync, names
that reach paths, links in the recording directory, key files written completely."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sealer_helpers import SealerEnv, facts_of, sealer_for

from asterisk_recorder.recordings import files
from asterisk_recorder.recordings.inotify import CloseWatcher
from asterisk_recorder.recordings.wav import tone_pcm, write_wav


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def test_a_watcher_that_cannot_start_leaves_no_inotify_descriptor(tmp_path: Path) -> None:
    """start() outside a running event loop fails and closes its inotify descriptor."""
    watcher = CloseWatcher(tmp_path, lambda _path: None)
    before = open_fds()
    for _ in range(5):
        with pytest.raises(RuntimeError):
            watcher.start()
    assert open_fds() <= before
    assert watcher.watching == 0
    watcher.close()  # still safe


def test_durable_dirs_creates_each_level_private_and_refuses_a_path_outside_its_top(
    tmp_path: Path,
) -> None:
    """New YYYY/MM/DD levels are created (0700 when private), twice is fine, outside refused."""
    top = tmp_path / "quarantine"
    top.mkdir(mode=0o700)
    made = files.durable_dirs(top / "2026" / "12" / "04", top, private=True)
    assert made.is_dir()
    for level in (top / "2026", top / "2026" / "12", made):
        assert level.stat().st_mode & 0o777 == 0o700
    assert files.durable_dirs(made, top, private=True) == made
    with pytest.raises(ValueError, match=r"not below|is not in the subpath"):
        files.durable_dirs(tmp_path / "elsewhere", top)
    with pytest.raises(ValueError, match="not below"):
        files.durable_dirs(top / ".." / "escape", top)
    assert not (tmp_path / "escape").exists()


async def test_a_link_in_the_recording_directory_is_never_followed_sealed_or_removed(
    env: SealerEnv,
) -> None:
    """A symlink named like a recording (to a file the sealer may read) and a FIFO: no fact,
    nothing sealed or quarantined, the link and its target untouched; real files still seal."""
    env.create_key()
    secret = env.root / "secret.txt"
    secret.write_bytes(b"not a recording")
    decision, path = await env.decision()
    path.parent.mkdir(parents=True)
    path.symlink_to(secret)
    fifo = path.with_name("pipe.wav")
    os.mkfifo(fifo)
    real, real_path = await env.decision()
    write_wav(real_path, tone_pcm(1.0))
    async with sealer_for(env) as sealer:
        await sealer.scan()
        await sealer.scan()
        assert "not a regular file" in sealer.last_problem
    assert await facts_of(env.dsn, decision.decision_id) == []
    assert await facts_of(env.dsn, None) == []
    assert path.is_symlink()
    assert secret.read_bytes() == b"not a recording"
    assert [p for p in env.paths.quarantine.rglob("*") if p.is_file()] == []
    assert [k for k, _p in await facts_of(env.dsn, real.decision_id)] == [
        "recording.closed", "recording.sealed"]
    assert [p.name for p in env.paths.sealed.rglob("*") if p.is_file()] == [
        real_path.name + ".arrec"]


def test_a_key_file_that_cannot_be_put_in_place_leaves_no_temporary_copy(tmp_path: Path) -> None:
    """The rename onto the final name fails (a directory is there): the error surfaces and no
    ``.<name>.*.tmp`` with key material stays in the key directory."""
    from asterisk_recorder.recordings import keys

    target = tmp_path / "standard-202612-abcd0123.key.pem"
    target.mkdir()
    (target / "occupied").write_text("x")
    with pytest.raises(IsADirectoryError):
        keys._write_private(target, b"-----BEGIN PRIVATE KEY-----\n", 0o600)
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]


async def test_a_malformed_seal_note_is_kept_for_an_operator_and_other_files_still_seal(
    env: SealerEnv,
) -> None:
    """A ``.pending.json`` beside a real envelope but missing its digests (or naming a plaintext
    outside the recording directory): retried and reported, not a crash of the whole scan."""
    import json

    from asterisk_recorder.recordings.envelope import seal

    env.create_key()
    day = env.paths.sealed / "2026" / "12" / "01"
    day.mkdir(parents=True)
    source = env.root / "some.wav"
    write_wav(source, tone_pcm(1.0))
    kek = env.key_store().current("standard", _month())
    with open(source, "rb") as src, open(day / "x.wav.arrec", "wb") as dst:
        info = seal(src, dst, recording_id="x", kek=kek)
    (env.paths.recordings / "2026" / "12" / "01").mkdir(parents=True)
    note = day / "x.wav.arrec.pending.json"  # the right sealed digest, but no kek_id
    note.write_text(json.dumps({"decision_id": "x", "plain": "2026/12/01/x.wav",
                                "closed_at": 1.0, "sealed_sha256": info.sealed_sha256,
                                "plain_sha256": info.plain_sha256}))
    other = day / "y.wav.arrec.pending.json"
    other.write_text(json.dumps({"decision_id": "y", "plain": "../../etc/y.wav",
                                 "closed_at": 1.0, "plain_sha256": "0" * 64,
                                 "sealed_sha256": "0" * 64, "kek_id": "k"}))
    real, real_path = await env.decision()
    write_wav(real_path, tone_pcm(1.0))
    async with sealer_for(env) as sealer:
        await sealer.scan()
        assert "unreadable seal note" in sealer.last_problem
    assert [k for k, _p in await facts_of(env.dsn, real.decision_id)] == [
        "recording.closed", "recording.sealed"]
    assert note.exists()
    assert other.exists()
    assert (day / "x.wav.arrec").exists()


def _month() -> str:
    from sealer_helpers import month_now

    return month_now()
