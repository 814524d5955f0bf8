"""End-to-end consent scenarios against a real Asterisk 22 and a real ``asterisk-recorder serve``.

Each call is simulated as in tests/data/asterisk-traces: ``POST /channels`` originates
``Local/<policy>@e2e-in`` into the ``caller-sim`` app; the ``;2`` half runs the suite's dialplan,
which ``Gosub``s into the project's ``dialplan/recorder.conf``; the caller presses keys with
``POST /channels/{;1}/dtmf``. Assertions cover the dialplan contract (``RECORDER_*`` variables,
MixMonitor run or not, the far side reached), the ledger row, and the file on disk.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest
from e2e_harness import (
    SAFE_RECORDING,
    Call,
    CallerSim,
    RecorderProcess,
    file_size,
    ledger_row,
    wav_files,
)

pytestmark = pytest.mark.e2e

WAV_HEADER = 44
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


async def talk_then_hang_up(call: Call, seconds: float = 2.0) -> None:
    """Stay bridged with the far side for ``seconds``, then the caller hangs up."""
    await asyncio.sleep(seconds)
    await call.hang_up()
    await call.wait_destroyed()


async def assert_far_side_reached(call: Call) -> None:
    """The call went on to ``Dial`` and the far side answered."""
    await call.sim.wait_for(
        lambda e: (
            e.get("type") == "ChannelVarset"
            and e.get("variable") == "DIALSTATUS"
            and e.get("value") == "ANSWER"
            and (e.get("channel") or {}).get("id") == call.dialplan_id
        ),
        10,
        "DIALSTATUS=ANSWER",
    )
    assert "Dial" in call.dialplan_apps()


async def assert_recorded(
    call: Call, consent: dict[str, str], recordings_dir: Path, pg_dsn: str, outcome: str
) -> None:
    """A decision to record: ledger row, MixMonitor, and a non-empty wav where the ledger says."""
    assert "record" == consent["Decision"]
    assert outcome == consent["Outcome"]
    assert "yes" == consent["Recording"]
    assert re.fullmatch(UUID, consent["DecisionId"])
    row = await ledger_row(pg_dsn, decision_id=consent["DecisionId"])
    assert outcome == row.outcome
    assert row.recording_path is not None
    assert SAFE_RECORDING.match(row.recording_path)
    assert row.recording_path.startswith(str(recordings_dir) + "/")
    assert consent["DecisionId"] in Path(row.recording_path).name
    assert "MixMonitor" in call.dialplan_apps()
    await assert_far_side_reached(call)
    await talk_then_hang_up(call)
    closed = await call.wait_user_event("RecordingClosed")
    assert row.recording_path == closed["File"]
    recording = Path(row.recording_path)
    size = file_size(recording)
    assert size is not None, f"no recording at {recording}"
    # RecordingClosed carries no Size: STAT() is refused after ARI set a variable on the
    # channel (an ERROR per call), and the sealer measures the closed file itself.
    assert "Size" not in closed
    assert consent["DecisionId"] == closed["DecisionId"]
    assert size > WAV_HEADER + 8000, f"recording {recording} has only {size} bytes"
    assert [recording] == wav_files(recordings_dir)


async def assert_not_recorded(
    call: Call, consent: dict[str, str], recordings_dir: Path, pg_dsn: str, outcome: str
) -> None:
    """A decision not to record: ledger row, no MixMonitor, no file, the call still connects."""
    assert "skip" == consent["Decision"]
    assert outcome == consent["Outcome"]
    assert "no" == consent["Recording"]
    row = await ledger_row(pg_dsn, decision_id=consent["DecisionId"])
    assert outcome == row.outcome
    assert "MixMonitor" not in call.dialplan_apps()
    await assert_far_side_reached(call)
    await talk_then_hang_up(call, 1.0)
    assert [] == call.user_events("RecordingStarted")
    assert [] == wav_files(recordings_dir)


async def test_silent_acceptance_records_a_nonempty_wav_where_the_ledger_says(
    recorder: RecorderProcess, caller: CallerSim, recordings_dir: Path, pg_dsn: str
) -> None:
    """Opt-out mode, no key pressed: recorded, and the wav is at the ledger's path."""
    call = await caller.originate("Local/opt_out@e2e-in")
    await call.wait_playback_started()
    consent = await call.wait_user_event("E2EConsent", within=30)
    await assert_recorded(call, consent, recordings_dir, pg_dsn, "recorded_notified")
    row = await ledger_row(pg_dsn, decision_id=consent["DecisionId"])
    assert "opt_out" == row.mode
    assert "ari" == row.driver
    assert call.dialplan_id == row.channel_id
    code, out, err = await recorder.ledger("show", "--call", call.dialplan_id, "--json")
    assert 0 == code, err
    [shown] = [json.loads(line) for line in out.splitlines()]
    assert consent["DecisionId"] == shown["decision_id"]
    assert "recorded_notified" == shown["outcome"]
    assert row.recording_path == shown["recording_path"]
    code, out, err = await recorder.ledger("verify", "--json")
    assert 0 == code, err
    report = json.loads(out)
    assert report["ok"] is True
    assert 2 == report["rows"]  # the decision and its call.fate fact (no sealer runs here)


async def test_opt_out_key_during_disclosure_skips_recording(
    recorder: RecorderProcess, caller: CallerSim, recordings_dir: Path, pg_dsn: str
) -> None:
    """Opt-out mode, key 1 during the disclosure: not recorded, ledger says opted out."""
    call = await caller.originate("Local/opt_out@e2e-in")
    await call.wait_playback_started()
    await asyncio.sleep(0.3)
    await call.dtmf("1")
    consent = await call.wait_user_event("E2EConsent", within=10)
    await assert_not_recorded(call, consent, recordings_dir, pg_dsn, "not_recorded_opted_out")
    # The disclosure was cut short by the key (DELETE /playbacks/{id} reports state "done").
    assert ["done"] == [p["state"] for p in call.playbacks("PlaybackFinished")]


async def test_opt_in_accept_key_records(
    recorder: RecorderProcess, caller: CallerSim, recordings_dir: Path, pg_dsn: str
) -> None:
    """Opt-in mode, key 1 after the disclosure ended: recorded with consent."""
    call = await caller.originate("Local/opt_in@e2e-in")
    await call.wait_playback_started()
    target = f"channel:{call.dialplan_id}"  # the accept key counts only after the prompt
    await call.sim.wait_for(
        lambda e: e.get("type") == "PlaybackFinished"
        and e.get("playback", {}).get("target_uri") == target,
        30, f"PlaybackFinished on {call.dialplan_id}",
    )
    await call.dtmf("1")
    consent = await call.wait_user_event("E2EConsent", within=10)
    await assert_recorded(call, consent, recordings_dir, pg_dsn, "recorded_consented")


async def test_opt_in_decline_key_skips_recording(
    recorder: RecorderProcess, caller: CallerSim, recordings_dir: Path, pg_dsn: str
) -> None:
    """Opt-in mode, key 2: not recorded, ledger says declined."""
    call = await caller.originate("Local/opt_in@e2e-in")
    await call.wait_playback_started()
    await asyncio.sleep(0.3)
    await call.dtmf("2")
    consent = await call.wait_user_event("E2EConsent", within=10)
    await assert_not_recorded(call, consent, recordings_dir, pg_dsn, "not_recorded_declined")


async def test_opt_in_without_a_key_times_out_unrecorded(
    recorder: RecorderProcess, caller: CallerSim, recordings_dir: Path, pg_dsn: str
) -> None:
    """Opt-in mode, no key at all: the input timeout means no consent, not recorded."""
    call = await caller.originate("Local/opt_in@e2e-in")
    await call.wait_playback_started()
    consent = await call.wait_user_event("E2EConsent", within=30)
    await assert_not_recorded(call, consent, recordings_dir, pg_dsn, "not_recorded_no_consent")


async def test_caller_hang_up_during_disclosure_is_stored_as_abandoned(
    recorder: RecorderProcess, caller: CallerSim, recordings_dir: Path, pg_dsn: str
) -> None:
    """The caller hangs up 0.4 s into the disclosure: abandoned, never handed back, no file."""
    call = await caller.originate("Local/opt_out@e2e-in")
    await call.wait_playback_started()
    await asyncio.sleep(0.4)
    await call.hang_up()
    await call.wait_destroyed()
    row = await ledger_row(pg_dsn, channel_id=call.dialplan_id)
    assert "abandoned" == row.outcome
    assert row.recording_path is None
    assert [] == call.user_events("E2EConsent")
    assert "Dial" not in call.dialplan_apps()
    assert [] == wav_files(recordings_dir)


async def test_controller_stopped_fails_closed_and_the_call_still_connects(
    caller: CallerSim, recordings_dir: Path
) -> None:
    """No controller running: Stasis fails at once, nothing is recorded, the call goes on."""
    call = await caller.originate("Local/opt_out@e2e-in")
    consent = await call.wait_user_event("E2EConsent", within=10)
    assert "skip" == consent["Decision"]
    assert "controller_unavailable" == consent["Outcome"]
    assert "FAILED" == consent["Status"]
    assert "" == consent["DecisionId"]
    unavailable = await call.wait_user_event("RecorderUnavailable")
    assert "no" == unavailable["FailOpen"]
    assert "MixMonitor" not in call.dialplan_apps()
    await assert_far_side_reached(call)
    await talk_then_hang_up(call, 1.0)
    assert [] == wav_files(recordings_dir)


async def wait_prompt_started(
    recorder: RecorderProcess, uniqueid: str, within: float = 15.0
) -> None:
    """The FastAGI session sent STREAM FILE for ``uniqueid`` (its debug log line says so)."""
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        if any(
            r.get("event") == "agi.prompt.started" and r.get("uniqueid") == uniqueid
            for r in recorder.log_records()
        ):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"no STREAM FILE for {uniqueid}:\n{recorder.log_tail()}")


async def test_fastagi_opt_out_key_skips_recording(
    agi_recorder: RecorderProcess, caller: CallerSim, recordings_dir: Path, pg_dsn: str
) -> None:
    """The FastAGI path: key 1 during the disclosure skips the recording, ledger driver agi."""
    call = await caller.originate("Local/opt_out@e2e-agi-in")
    await call.wait_answered()
    await wait_prompt_started(agi_recorder, call.dialplan_id)
    await call.dtmf("1")
    consent = await call.wait_user_event("E2EConsent", within=15)
    assert "agi" == consent["Driver"]
    assert "SUCCESS" == consent["Status"]
    await assert_not_recorded(call, consent, recordings_dir, pg_dsn, "not_recorded_opted_out")
    row = await ledger_row(pg_dsn, decision_id=consent["DecisionId"])
    assert "agi" == row.driver


async def test_fastagi_silent_acceptance_records(
    agi_recorder: RecorderProcess, caller: CallerSim, recordings_dir: Path, pg_dsn: str
) -> None:
    """The FastAGI path: announce mode records, with the wav at the ledger's path."""
    call = await caller.originate("Local/announce@e2e-agi-in")
    consent = await call.wait_user_event("E2EConsent", within=20)
    assert "agi" == consent["Driver"]
    await assert_recorded(call, consent, recordings_dir, pg_dsn, "recorded_notified")


HOSTILE_CALLER_IDS = [
    # (callerId sent to Asterisk, name and number Asterisk parses out of it)
    pytest.param(
        '"a,b)|${EXTEN}" <+1212555,0100>',
        "a,b)|${EXTEN}",
        "+1212555,0100",
        id="commas-paren-pipe-dollar",
    ),
    pytest.param(
        '"../../etc/passwd\\" \'x\'" <../../../tmp/x>',
        "../../etc/passwd\" 'x'",
        "../../../tmp/x",
        id="dotdot-quotes",
    ),
    pytest.param('"line\nbreak" <555\n0100>', "line\nbreak", "555\n0100", id="newline"),
    pytest.param('"' + "A" * 10_000 + '" <' + "9" * 200 + ">", "A" * 10_000, "9" * 200, id="10kB"),
    pytest.param(
        '"${SHELL(touch /tmp/pwned)}" <$[1+1]>',
        "${SHELL(touch /tmp/pwned)}",
        "$[1+1]",
        id="dialplan-functions",
    ),
]


@pytest.mark.parametrize(("caller_id", "name", "number"), HOSTILE_CALLER_IDS)
async def test_hostile_caller_id_never_reaches_the_recording_path(
    recorder: RecorderProcess,
    caller: CallerSim,
    recordings_dir: Path,
    pg_dsn: str,
    caller_id: str,
    name: str,
    number: str,
) -> None:
    """A hostile caller id is recorded safely: path from config, date and decision id only."""
    call = await caller.originate("Local/announce@e2e-in", caller_id=caller_id)
    consent = await call.wait_user_event("E2EConsent", within=20)
    # The hostile text really reached the channel the controller handled...
    assert {"name": name, "number": number} == call.caller_seen()
    assert [] == call.user_events("RecordingRejected")
    await assert_recorded(call, consent, recordings_dir, pg_dsn, "recorded_notified")
    row = await ledger_row(pg_dsn, decision_id=consent["DecisionId"])
    assert row.recording_path is not None
    relative = Path(row.recording_path).relative_to(recordings_dir)
    assert re.fullmatch(r"\d{4}/\d{2}/\d{2}/" + UUID + r"\.wav", str(relative))
    assert file_size(Path("/tmp/pwned")) is None
    # ...and is kept verbatim as evidence, while the path stayed config + date + id.
    code, out, err = await recorder.ledger("show", "--call", consent["DecisionId"], "--json")
    assert 0 == code, err
    [shown] = [json.loads(line) for line in out.splitlines()]
    assert number == shown["caller_number"]
    assert name == shown["caller_name"]


async def test_controller_sigterm_during_disclosure_hands_the_call_back_unrecorded(
    recorder: RecorderProcess, caller: CallerSim, recordings_dir: Path, pg_dsn: str
) -> None:
    """SIGTERM mid-disclosure (grace 1 s): serve exits 0, the call connects unrecorded."""
    call = await caller.originate("Local/opt_out@e2e-in")
    await call.wait_playback_started()
    assert 0 == await recorder.stop()
    consent = await call.wait_user_event("E2EConsent", within=20)
    assert "skip" == consent["Decision"]
    assert "no" == consent["Recording"]
    assert "MixMonitor" not in call.dialplan_apps()
    await assert_far_side_reached(call)
    await talk_then_hang_up(call, 1.0)
    assert [] == wav_files(recordings_dir)
    row = await ledger_row(pg_dsn, channel_id=call.dialplan_id)
    assert "failed" == row.outcome
    assert row.recording_path is None


async def test_controller_killed_mid_disclosure_then_restarted_hands_the_parked_call_back(
    recorder: RecorderProcess, caller: CallerSim, recordings_dir: Path
) -> None:
    """SIGKILL mid-disclosure, then a new serve: the parked call is resynced, not recorded."""
    call = await caller.originate("Local/opt_out@e2e-in")
    await call.wait_playback_started()
    await recorder.kill()
    await asyncio.sleep(1.0)
    assert [] == call.user_events("E2EConsent")
    await recorder.start()
    consent = await call.wait_user_event("E2EConsent", within=20)
    assert "skip" == consent["Decision"]
    assert "no" == consent["Recording"]
    assert "MixMonitor" not in call.dialplan_apps()
    await assert_far_side_reached(call)
    await talk_then_hang_up(call, 1.0)
    assert [] == wav_files(recordings_dir)


@pytest.mark.parametrize(
    ("caller_number", "called_number", "mode", "prompt"),
    [
        pytest.param("+14155550100", "+12125550100", "opt_out", "consent-opt-out", id="CA-to-NY"),
        pytest.param("+12125550199", "+12125550100", "announce", "consent-announce", id="NY-to-NY"),
    ],
)
async def test_policy_table_decides_from_the_real_numbers(
    recorder: RecorderProcess,
    caller: CallerSim,
    pg_dsn: str,
    caller_number: str,
    called_number: str,
    mode: str,
    prompt: str,
) -> None:
    """No override: the table picks the strictest party's mode and its prompt is played."""
    call = await caller.originate(
        f"Local/{called_number}@e2e-table-in", caller_id=f'"Table" <{caller_number}>'
    )
    await call.wait_playback_started()
    [started] = call.playbacks("PlaybackStarted")
    assert f"sound:recorder/{prompt}" == started["media_uri"]
    consent = await call.wait_user_event("E2EConsent", within=20)
    row = await ledger_row(pg_dsn, decision_id=consent["DecisionId"])
    assert mode == row.mode
    assert "recorded_notified" == row.outcome
    await talk_then_hang_up(call, 0.5)
