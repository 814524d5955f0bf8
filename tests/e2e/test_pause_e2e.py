"""End to end against a real Asterisk 22: a recording paused for a card payment, for real.

``serve`` runs with ``[ami]`` (the suite's manager.conf user) and ``[pause]`` (the HTTP API with
a token); the real sealer seals the file with the PCI check on. A recorded call is paused over
``POST /calls/{id}/pause`` (AMI ``MixMonitorMute`` direction both), resumed five seconds later,
and hung up. The sealed recording is opened again: the paused span is one run of exact digital
zero where the ledger says, about five seconds long, and the file keeps the call's length.
A second call is paused and the controller is killed while paused: the restarted controller
takes the pause up from the ledger and its watchdog resumes the recording at ``max_pause``.
"""

from __future__ import annotations

import array
import asyncio
import io
import time
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from conftest import SealerSetup, controller_config
from e2e_harness import AriTarget, Call, CallerSim, RecorderProcess, free_port, recording_facts

from asterisk_recorder.ledger import migrate

pytestmark = pytest.mark.e2e

TOKEN = "e2e-pause-token-0123456789abcdef"
MAX_PAUSE = 6.0
RATE = 8000


def _pause_config(target: AriTarget, dsn: str, recordings: Path, tmp_path: Path,
                  http_port: int) -> Path:
    extra = f"""
[ami]
enabled = true
host = "127.0.0.1"
port = {target.ami_port}
username = "{target.ami_user}"
secret = "{target.ami_secret}"

[pause]
enabled = true
max_pause = {MAX_PAUSE}
retry_every = 1.0
api_token = "{TOKEN}"
"""
    config = tmp_path / "asterisk-recorder.toml"
    config.write_text(controller_config(
        target, dsn=dsn, recordings=recordings, spool=tmp_path / "spool", http_port=http_port,
        agi=True, extra=extra, mixmonitor_options=""))
    return config


@pytest.fixture
async def recorder(
    ari_target: AriTarget, pg_dsn: str, recordings_dir: Path, tmp_path: Path
) -> AsyncIterator[RecorderProcess]:
    """``serve`` (ARI and FastAGI) with AMI and the pause API on (the suite's sealer fixture
    runs beside it)."""
    await migrate(pg_dsn)
    http_port = free_port()
    config = _pause_config(ari_target, pg_dsn, recordings_dir, tmp_path, http_port)
    process = RecorderProcess(config_file=config, log_file=tmp_path / "serve.log",
                              http_port=http_port)
    await process.start()
    try:
        yield process
    finally:
        code = await process.stop()
        assert code in (0, -9), f"serve exited with {code}:\n{process.log_tail()}"


async def _api(recorder: RecorderProcess, method: str, path: str,
               **body: str) -> tuple[int, dict[str, Any]]:
    url = f"http://127.0.0.1:{recorder.http_port}{path}"
    headers = {"Authorization": f"Bearer {TOKEN}", "X-Recorder-Actor": "e2e-agent"}
    async with aiohttp.ClientSession() as session, session.request(
            method, url, headers=headers, json=body or None) as reply:
        return reply.status, await reply.json(content_type=None)


async def _known(recorder: RecorderProcess, decision_id: str, within: float = 10.0) -> None:
    """Wait until the controller has learned the recording from AMI (RecordingStarted)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        status, _ = await _api(recorder, "GET", f"/calls/{decision_id}/recording")
        if status == 200:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the controller never learned the recording of {decision_id}:\n"
                         f"{recorder.log_tail()}")


async def _recorded_call(caller: CallerSim, context: str = "e2e-in") -> tuple[Call, str]:
    call = await caller.originate(f"Local/announce@{context}")
    consent = await call.wait_user_event("E2EConsent", within=20)
    assert consent["Decision"] == "record", consent
    assert consent["Recording"] == "yes", consent
    assert consent["Driver"] == ("agi" if "agi" in context else "ari"), consent
    return call, consent["DecisionId"]


def _zero_runs(audio: bytes, shortest: float = 0.5) -> tuple[int, list[tuple[float, float]]]:
    """Frames of a 16-bit mono WAV and its runs of exact zero longer than ``shortest`` s."""
    with wave.open(io.BytesIO(audio)) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (RATE, 1, 2)
        frames = wav.getnframes()
        samples = array.array("h", wav.readframes(frames))
    runs, start = [], None
    for i, value in enumerate([*samples, 1]):
        if value == 0 and start is None:
            start = i
        elif value != 0 and start is not None:
            if i - start > shortest * RATE:
                runs.append((start / RATE, i / RATE))
            start = None
    return frames, runs


def _span(sealed: dict[str, Any]) -> tuple[float, float]:
    [span] = str(sealed["pause_spans"]).split(",")
    first, last = span.split("-")
    return float(first), float(last)


async def _opened(sealer: SealerSetup, decision_id: str, tmp_path: Path) -> bytes:
    out = tmp_path / f"{decision_id}.wav"
    code, _, err = await sealer.process.cli(
        "recording", "open", decision_id, "--out", str(out), "--private-keys",
        str(sealer.private_keys), "--reason", "e2e: check the paused span")
    assert code == 0, err
    return out.read_bytes()


@pytest.mark.parametrize("context", ["e2e-in", "e2e-agi-in"], ids=["ari", "fastagi"])
async def test_a_five_second_pause_is_exact_zero_in_the_sealed_file_and_keeps_its_length(
    recorder: RecorderProcess, sealer: SealerSetup, caller: CallerSim, pg_dsn: str,
    tmp_path: Path, context: str,
) -> None:
    """Pause over the API 2 s into the recording, resume 5 s later, hang up 2 s after: the
    ledger has paused/resumed with offsets, recording.sealed lists the span and a passed PCI
    check, and the file has one ~5 s run of exact zero at that offset in a ~9 s recording;
    the same whether the consent ran over ARI or FastAGI."""
    call, decision_id = await _recorded_call(caller, context)
    started = time.monotonic()
    await _known(recorder, decision_id)
    await asyncio.sleep(max(0.0, 2.0 - (time.monotonic() - started)))
    status, paused = await _api(recorder, "POST", f"/calls/{decision_id}/pause",
                                reason="card payment")
    assert status == 200, paused
    await asyncio.sleep(5.0)
    status, resumed = await _api(recorder, "POST", f"/calls/{decision_id}/resume",
                                 reason="payment taken")
    assert status == 200, resumed
    await asyncio.sleep(2.0)
    await call.hang_up()
    await call.wait_destroyed()
    wall = time.monotonic() - started

    facts = await recording_facts(pg_dsn, decision_id, until="recording.sealed", within=40)
    kinds = [kind for kind, _ in facts]
    assert kinds[:4] == ["recording.paused", "recording.resumed", "recording.closed",
                         "recording.sealed"], kinds
    pause, resume, closed, sealed = (payload for _, payload in facts[:4])
    assert (pause["source"], pause["reason"]) == ("api", "card payment")
    conn = await asyncpg.connect(pg_dsn)
    try:
        actors = await conn.fetch(
            "SELECT kind, actor FROM ledger_facts WHERE decision_id::text = $1 "
            "AND kind IN ('recording.paused', 'recording.resumed') ORDER BY seq", decision_id)
    finally:
        await conn.close()
    assert [(r["kind"], r["actor"]) for r in actors] == [
        ("recording.paused", "api:e2e-agent"), ("recording.resumed", "api:e2e-agent")]
    assert resume["source"] == "api"
    assert 4.5 <= resume["offset_s"] - pause["offset_s"] <= 6.0
    assert sealed["pauses"] == 1
    assert sealed["pci_passed"] is True, sealed
    assert sealed["pci_silent_spans"] == 1
    assert sealed["pci_dtmf_hits"] == 0
    first, last = _span(sealed)
    assert abs(first - pause["offset_s"]) < 0.01

    audio = await _opened(sealer, decision_id, tmp_path)
    frames, runs = _zero_runs(audio)
    length = frames / RATE
    assert abs(length - closed["duration_s"]) < 0.01
    # MixMonitor writes nothing until media flows (the far side answers, ~0.7 s here); after
    # that the file keeps wall time, the muted five seconds included
    assert wall - 1.5 <= length <= wall + 0.5
    [(zero_from, zero_to)] = runs
    assert 4.5 <= zero_to - zero_from <= 6.0
    lag = wall - length  # at most this much earlier than the wall clock, never later
    print(f"e2e pause: wall {wall:.2f} s, file {length:.2f} s, ledger span {first:.2f}-"
          f"{last:.2f}, zero run {zero_from:.2f}-{zero_to:.2f}")
    assert first - lag - 0.5 <= zero_from <= first + 0.5
    assert last - lag - 0.5 <= zero_to <= last + 0.5


async def test_a_pause_survives_a_controller_killed_mid_pause_and_the_watchdog_resumes_it(
    recorder: RecorderProcess, sealer: SealerSetup, caller: CallerSim, pg_dsn: str,
    tmp_path: Path,
) -> None:
    """SIGKILL while paused, restart: the new controller restores the pause from the ledger
    and resumes it at max_pause (source watchdog, an alert logged); audio returns after it."""
    call, decision_id = await _recorded_call(caller)
    await _known(recorder, decision_id)
    await asyncio.sleep(1.0)
    status, paused = await _api(recorder, "POST", f"/calls/{decision_id}/pause",
                                reason="card payment")
    assert status == 200, paused
    paused_at = time.monotonic()
    await asyncio.sleep(1.0)
    await recorder.kill()
    await recorder.start()
    facts = await recording_facts(pg_dsn, decision_id, until="recording.resumed",
                                  within=MAX_PAUSE + 10)
    resumed_after = time.monotonic() - paused_at
    await asyncio.sleep(2.0)
    await call.hang_up()
    await call.wait_destroyed()

    resume = next(payload for kind, payload in facts if kind == "recording.resumed")
    assert resume["source"] == "watchdog", resume
    assert MAX_PAUSE - 0.5 <= resumed_after <= MAX_PAUSE + 5
    records = recorder.log_records()
    assert any(r.get("event") == "pause.restored" and r.get("decision_id") == decision_id
               for r in records), recorder.log_tail()
    assert any(r.get("event") == "pause.alert" and r.get("decision_id") == decision_id
               for r in records), recorder.log_tail()

    facts = await recording_facts(pg_dsn, decision_id, until="recording.sealed", within=40)
    sealed = next(payload for kind, payload in facts if kind == "recording.sealed")
    assert sealed["pci_passed"] is True, sealed
    first, last = _span(sealed)
    audio = await _opened(sealer, decision_id, tmp_path)
    frames, runs = _zero_runs(audio)
    [(zero_from, zero_to)] = runs
    assert first - 1.5 <= zero_from <= first + 0.5
    assert last - 1.5 <= zero_to <= last + 0.5
    assert MAX_PAUSE - 0.5 <= zero_to - zero_from <= MAX_PAUSE + 1.0
    assert frames / RATE >= zero_to + 1.0  # the call was recorded again after the resume
