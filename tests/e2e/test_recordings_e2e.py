"""End-to-end recording lifecycle against a real Asterisk 22: closed, sealed, verified, opened.

A real ``asterisk-recorder serve`` decides, the real dialplan starts MixMonitor, the real
``asterisk-recorder sealer`` (a subprocess, with a key made by ``recording keys create``) sees
the file MixMonitor closes, seals it and removes the plaintext; ``recording verify`` and
``recording open`` are run as the operator would. The audio is compared through the SHA-256
the sealer recorded at close (``recording.closed``): the plaintext is gone by then, which is
the point.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import wave
from pathlib import Path

import pytest
from conftest import SealerSetup
from e2e_harness import (
    Call,
    CallerSim,
    RecorderProcess,
    asterisk_errors,
    file_size,
    ledger_row,
    recording_facts,
    run_cli,
    wav_files,
)

pytestmark = pytest.mark.e2e


def messages_log() -> Path | None:
    """Asterisk's messages.log of the runtime ``run_local_asterisk.sh`` made (None: unknown)."""
    run = os.environ.get("ASTERISK_RECORDER_E2E_RUN_DIR")
    return Path(run) / "log" / "messages.log" if run else None


def log_offset() -> int:
    """Where Asterisk's messages.log ends now (0 when there is none)."""
    log = messages_log()
    return log.stat().st_size if log is not None and log.is_file() else 0


def read_bytes(path: Path) -> bytes:
    """The whole content of ``path``."""
    return path.read_bytes()


async def recorded_call(caller: CallerSim, talk: float = 2.0) -> tuple[Call, dict[str, str]]:
    """An announce-mode ARI call that records, stays bridged ``talk`` seconds, then hangs up."""
    call = await caller.originate("Local/announce@e2e-in")
    consent = await call.wait_user_event("E2EConsent", within=20)
    assert "record" == consent["Decision"], consent
    await asyncio.sleep(talk)
    await call.hang_up()
    await call.wait_destroyed()
    await call.wait_user_event("RecordingClosed")
    return call, consent


async def test_a_recorded_call_is_closed_sealed_verified_and_opened_to_the_same_audio(
    recorder: RecorderProcess,
    sealer: SealerSetup,
    caller: CallerSim,
    recordings_dir: Path,
    pg_dsn: str,
    tmp_path: Path,
) -> None:
    """MixMonitor's file: recording.closed then .sealed, plaintext gone, verify ok, same audio."""
    since = log_offset()
    call, consent = await recorded_call(caller)
    decision_id = consent["DecisionId"]
    row = await ledger_row(pg_dsn, decision_id=decision_id)
    assert row.recording_path is not None
    plain = Path(row.recording_path)

    facts = await recording_facts(pg_dsn, decision_id, until="recording.sealed", within=30)
    assert ["recording.closed", "recording.sealed"] == [kind for kind, _ in facts]
    closed, sealed_fact = facts[0][1], facts[1][1]
    assert str(plain.relative_to(recordings_dir)) == closed["file"]
    assert "wav" == closed["format"]
    assert 8000 == closed["sample_rate"]
    assert closed["empty"] is False
    assert closed["header_complete"] is True
    assert closed["bytes"] > 44 + 8000
    assert closed["sha256"] == sealed_fact["plain_sha256"]
    assert closed["bytes"] == sealed_fact["plain_bytes"]
    assert sealer.kek_id == sealed_fact["kek_id"]

    # The plaintext is gone; only the envelope is left, where recording.sealed says.
    assert file_size(plain) is None
    assert [] == wav_files(recordings_dir)
    envelope = sealer.sealed / sealed_fact["file"]
    assert [envelope] == wav_files(sealer.sealed)
    # format v2: the sealed digest is the chunk root (checked against the file just below)
    assert sealed_fact["chunk_root"] == sealed_fact["sealed_sha256"]
    assert [] == wav_files(sealer.quarantine)

    # recording verify: without a key (structure, chunk digests), then with every tag.
    code, out, err = await run_cli("recording", "verify", str(envelope), "--json")
    assert 0 == code, err
    keyless = json.loads(out)
    assert keyless["ok"] is True
    assert keyless["tags_checked"] is False
    assert sealed_fact["chunk_root"] == keyless["chunk_root"]
    assert sealed_fact["sealed_sha256"] == keyless["sealed_sha256"]
    code, out, err = await run_cli(
        "recording", "verify", str(envelope), "--private-keys", str(sealer.private_keys),
        "--json",
    )
    assert 0 == code, err
    full = json.loads(out)
    assert full["tags_checked"] is True
    assert decision_id == full["recording_id"]
    assert closed["sha256"] == full["plain_sha256"]

    # recording open: a WAV with exactly the bytes MixMonitor closed, the access in the ledger.
    opened = tmp_path / "opened.wav"
    code, out, err = await sealer.process.cli(
        "recording", "open", str(envelope), "--out", str(opened), "--private-keys",
        str(sealer.private_keys), "--reason", "e2e check",
    )
    assert 0 == code, err
    audio = read_bytes(opened)
    assert closed["sha256"] == hashlib.sha256(audio).hexdigest()
    with wave.open(io.BytesIO(audio)) as wav:
        assert 8000 == wav.getframerate()
        assert 1 == wav.getnchannels()
        frames = wav.getnframes()
        assert frames > 8000  # more than a second of the two seconds bridged
        data = wav.readframes(frames)
    assert closed["bytes"] - 44 == len(data)
    assert abs(frames / 8000 - closed["duration_s"]) < 0.01
    kinds = [kind for kind, _ in await recording_facts(pg_dsn, decision_id)]
    assert ["recording.closed", "recording.sealed", "recording.accessed"] == kinds

    # The chain holds the new facts; Asterisk logged no ERROR for this normal recorded call.
    code, out, err = await recorder.ledger("verify", "--json")
    assert 0 == code, err
    assert json.loads(out)["ok"] is True
    log = messages_log()
    if log is not None:
        assert [] == asterisk_errors(log, since), f"Asterisk logged errors for {call.dialplan_id}"


async def test_an_opted_out_call_leaves_no_file_and_no_recording_facts(
    recorder: RecorderProcess,
    sealer: SealerSetup,
    caller: CallerSim,
    recordings_dir: Path,
    pg_dsn: str,
) -> None:
    """Opt-out key during the disclosure: no file anywhere, no recording.* fact, no quarantine."""
    call = await caller.originate("Local/opt_out@e2e-in")
    await call.wait_playback_started()
    await asyncio.sleep(0.3)
    await call.dtmf("1")
    consent = await call.wait_user_event("E2EConsent", within=10)
    assert "skip" == consent["Decision"]
    assert "not_recorded_opted_out" == consent["Outcome"]
    await asyncio.sleep(1.0)
    await call.hang_up()
    await call.wait_destroyed()
    await asyncio.sleep(2.5)  # more than one scan interval of the sealer
    assert [] == wav_files(recordings_dir)
    assert [] == wav_files(sealer.sealed)
    assert [] == wav_files(sealer.quarantine)
    assert [] == await recording_facts(pg_dsn, consent["DecisionId"])
    assert "MixMonitor" not in call.dialplan_apps()
