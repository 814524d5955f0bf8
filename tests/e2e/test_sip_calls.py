"""End-to-end consent scenarios over real SIP/RTP on loopback (SIPp as the phone and far side).

Needs chan_pjsip in the Asterisk under test, the suite's pjsip.conf (endpoints ``e2e-caller``
and ``e2e-callee``) and the ``sipp`` binary (Debian package ``sip-tester``). The caller presses
keys with RFC 4733 events; the caller simulator only watches (it subscribes to the caller's
endpoint), so every assertion is about what Asterisk, the controller and the ledger did.
"""

from __future__ import annotations

import asyncio
import re
import shutil
from pathlib import Path

import pytest
from e2e_harness import (
    DTMF_PCAP,
    SPEECH_PCAP,
    CallerSim,
    RecorderProcess,
    SipCall,
    file_size,
    ledger_row,
    wav_files,
)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp (Debian sip-tester) not found"),
]


async def place(
    caller: CallerSim,
    tmp_path: Path,
    service: str,
    *,
    before_ms: int,
    pcap: str,
    after_ms: int,
    caller_name: bytes = b"E2E SIP Caller",
) -> tuple[SipCall, asyncio.Task[None]]:
    """Start a SIPp call in the background and return it with its task."""
    await caller.watch_sip_caller()
    sip = SipCall(
        target=caller.target,
        workdir=tmp_path,
        service=service,
        before_ms=before_ms,
        pcap=pcap,
        after_ms=after_ms,
        caller_name=caller_name,
    )
    return sip, asyncio.create_task(sip.run())


async def test_sip_opt_out_key_skips_recording(
    recorder: RecorderProcess, caller: CallerSim, recordings_dir: Path, pg_dsn: str, tmp_path: Path
) -> None:
    """Over SIP: key 1 (RFC 4733) during the disclosure, not recorded, the far side answers."""
    sip, task = await place(
        caller, tmp_path, "opt_out", before_ms=1500, pcap=DTMF_PCAP.format(digit=1), after_ms=2500
    )
    call = await caller.sip_call()
    consent = await call.wait_user_event("E2EConsent", within=15)
    assert "skip" == consent["Decision"]
    assert "not_recorded_opted_out" == consent["Outcome"]
    await task
    assert 0 == sip.uac_exit, sip.errors()
    assert 0 == sip.uas_exit, sip.errors()
    row = await ledger_row(pg_dsn, decision_id=consent["DecisionId"])
    assert "not_recorded_opted_out" == row.outcome
    assert call.dialplan_id == row.channel_id
    assert "MixMonitor" not in call.dialplan_apps()
    assert [] == wav_files(recordings_dir)


async def test_sip_silent_acceptance_records_the_conversation(
    recorder: RecorderProcess, caller: CallerSim, recordings_dir: Path, pg_dsn: str, tmp_path: Path
) -> None:
    """Over SIP: announce mode, the caller talks, the wav at the ledger's path is non-empty."""
    sip, task = await place(
        caller, tmp_path, "announce", before_ms=3500, pcap=SPEECH_PCAP, after_ms=3000
    )
    call = await caller.sip_call()
    consent = await call.wait_user_event("E2EConsent", within=15)
    assert "record" == consent["Decision"]
    assert "recorded_notified" == consent["Outcome"]
    await task
    assert 0 == sip.uac_exit, sip.errors()
    closed = await call.wait_user_event("RecordingClosed")
    row = await ledger_row(pg_dsn, decision_id=consent["DecisionId"])
    assert row.recording_path == closed["File"]
    assert row.recording_path is not None
    size = file_size(Path(row.recording_path))
    assert size is not None
    # RecordingClosed carries no Size: STAT() is refused after ARI set a variable on the
    # channel (an ERROR per call), and the sealer measures the closed file itself.
    assert "Size" not in closed
    assert consent["DecisionId"] == closed["DecisionId"]
    assert size > 44 + 16000
    assert [Path(row.recording_path)] == wav_files(recordings_dir)


async def test_sip_controller_stopped_fails_closed_and_the_far_side_answers(
    caller: CallerSim, recordings_dir: Path, tmp_path: Path
) -> None:
    """Over SIP, no controller: nothing recorded, the call still reaches the far side."""
    sip, task = await place(
        caller, tmp_path, "opt_out", before_ms=500, pcap=SPEECH_PCAP, after_ms=1000
    )
    call = await caller.sip_call()
    consent = await call.wait_user_event("E2EConsent", within=15)
    assert "skip" == consent["Decision"]
    assert "controller_unavailable" == consent["Outcome"]
    await task
    assert 0 == sip.uac_exit, sip.errors()
    assert 0 == sip.uas_exit, sip.errors()
    assert "ANSWER" == call.variables().get("DIALSTATUS")
    assert "MixMonitor" not in call.dialplan_apps()
    assert [] == wav_files(recordings_dir)


HOSTILE_DISPLAY_NAME = b'a,b)|${EXTEN} \\"q\\" ../../x $(id) \xff\xfe not utf-8'
"""A From display name with dialplan syntax, quotes, a path, shell syntax and invalid UTF-8."""


async def test_sip_hostile_display_name_is_recorded_safely(
    recorder: RecorderProcess, caller: CallerSim, recordings_dir: Path, pg_dsn: str, tmp_path: Path
) -> None:
    """Over SIP, a hostile (and not even UTF-8) caller name changes nothing about the file."""
    sip, task = await place(
        caller,
        tmp_path,
        "announce",
        before_ms=3500,
        pcap=SPEECH_PCAP,
        after_ms=1500,
        caller_name=HOSTILE_DISPLAY_NAME,
    )
    call = await caller.sip_call()
    consent = await call.wait_user_event("E2EConsent", within=15)
    seen = call.caller_seen()
    assert "a,b)|${EXTEN}" in seen["name"]
    assert "record" == consent["Decision"]
    assert [] == call.user_events("RecordingRejected")
    await task
    assert 0 == sip.uac_exit, sip.errors()
    row = await ledger_row(pg_dsn, decision_id=consent["DecisionId"])
    assert "recorded_notified" == row.outcome
    assert row.recording_path is not None
    relative = Path(row.recording_path).relative_to(recordings_dir)
    assert re.fullmatch(r"\d{4}/\d{2}/\d{2}/[0-9a-f-]{36}\.wav", str(relative))
    assert [Path(row.recording_path)] == wav_files(recordings_dir)
