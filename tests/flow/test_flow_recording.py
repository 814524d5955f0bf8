"""Recording path and MixMonitor options are built from configuration, date and decision id only."""

from __future__ import annotations

import re

import pytest
from flowkit import DECISION_ID, T0, call, feed, new_decision_id, new_flow

from asterisk_recorder.errors import FlowError
from asterisk_recorder.flow import (
    check_recording_settings,
    mixmonitor_options,
    recording_path,
    validate_decision_id,
)
from asterisk_recorder.flow.actions import SetVariables, StoreDecision
from asterisk_recorder.flow.events import (
    Answered,
    CallOffered,
    DecisionStored,
    DigitReceived,
    PromptFinished,
)
from asterisk_recorder.flow.settings import RecordingSettings
from asterisk_recorder.policy import Mode

SAFE_VALUE = re.compile(r"^[A-Za-z0-9_./()-]*$")


def test_path_uses_the_utc_date_of_the_decision() -> None:
    """2026-11-18 23:59:59 UTC goes under 2026/11/18 whatever the local time zone."""
    path = recording_path(RecordingSettings(directory="/rec/"), DECISION_ID, 1795046399.0)

    assert f"/rec/2026/11/18/{DECISION_ID}.wav" == path


def test_path_uses_the_configured_format() -> None:
    """The extension is the configured file format."""
    settings = RecordingSettings(directory="/srv/calls", file_format="wav49")

    assert f"/srv/calls/1970/01/01/{DECISION_ID}.wav49" == recording_path(settings, DECISION_ID, 0)


@pytest.mark.parametrize(
    "decision_id",
    [
        "", "not-a-uuid", "../../etc/passwd", DECISION_ID.upper(), "{" + DECISION_ID + "}",
        "urn:uuid:" + DECISION_ID, DECISION_ID + "\n", DECISION_ID + ",b", DECISION_ID[:-1],
        DECISION_ID.replace("-", ""), "3f2b8c1e-6a4d-4e0f-9b7a-1c2d3e4f5a6b)x",
    ],
)
def test_non_canonical_decision_ids_are_refused(decision_id: str) -> None:
    """Only a canonical lowercase UUID can name a recording file."""
    with pytest.raises(FlowError, match="not a canonical lowercase UUID"):
        recording_path(RecordingSettings(), decision_id, T0)


def test_validate_decision_id_returns_a_good_id() -> None:
    """A uuid4 string passes unchanged."""
    fresh = new_decision_id()

    assert fresh == validate_decision_id(fresh)


@pytest.mark.parametrize("when", [float("nan"), float("inf"), -1.0, 1e13])
def test_out_of_range_times_are_refused(when: float) -> None:
    """Non-finite or out-of-range decision times raise FlowError."""
    with pytest.raises(FlowError, match="not an epoch time"):
        recording_path(RecordingSettings(), DECISION_ID, when)


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        (RecordingSettings(directory="relative"), "recording.directory"),
        (RecordingSettings(directory="/var/../etc"), "must not contain '..'"),
        (RecordingSettings(directory="/var/rec,x"), "recording.directory"),
        (RecordingSettings(directory="/var/${X}"), "recording.directory"),
        (RecordingSettings(file_format="WAV"), "recording.file_format"),
        (RecordingSettings(file_format="wav)"), "recording.file_format"),
        (RecordingSettings(mixmonitor_options="b,B(5)"), "recording.mixmonitor_options"),
        (RecordingSettings(mixmonitor_options="b)"), "recording.mixmonitor_options"),
        (RecordingSettings(mixmonitor_options="i(${X})"), "recording.mixmonitor_options"),
    ],
)
def test_unsafe_recording_settings_are_reported_and_refused(
    settings: RecordingSettings, field: str
) -> None:
    """Settings that could break out of a MixMonitor argument are named and refused."""
    assert any(field in p for p in check_recording_settings(settings))
    with pytest.raises(FlowError):
        recording_path(settings, DECISION_ID, T0)


@pytest.mark.parametrize(
    ("base", "start_beep", "beep", "expected"),
    [
        ("b", False, None, "b"),
        ("b", True, None, "bp"),
        ("bp", True, None, "bp"),
        ("b", False, 15, "bB(15)"),
        ("bB(10)", False, 15, "bB(10)"),
        ("bB(30)", True, 15, "bpB(15)"),
        ("", False, None, ""),
        ("bi(MIXID)", False, 15, "bi(MIXID)B(15)"),
    ],
)
def test_mixmonitor_options(base: str, start_beep: bool, beep: int | None, expected: str) -> None:
    """Base options, plus p for a start beep, plus B(n) with the shorter interval winning."""
    settings = RecordingSettings(mixmonitor_options=base, start_beep=start_beep)

    assert expected == mixmonitor_options(settings, beep)


@pytest.mark.parametrize("beep", [0, -5, 3601, True])
def test_bad_beep_interval_is_refused(beep: int) -> None:
    """A beep interval outside 1..3600 raises FlowError."""
    with pytest.raises(FlowError, match="beep interval"):
        mixmonitor_options(RecordingSettings(), beep)


HOSTILE = [
    "+1415555,0100", "4155550100)", "${SHELL}", "$(reboot)", "415|555", "'\"quoted\"'",
    "line\nbreak", "nul\x00byte", "../../../etc/passwd", "x" * 10_000, "\udcff\udcfe",
    "1,b)|System(rm -rf /)", "\r\nAGI: EXEC", "`id`",
]


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_caller_text_never_reaches_file_or_options(hostile: str) -> None:
    """Caller id number/name and dialled number cannot reach RECORDER_FILE or the options."""
    flow = new_flow()
    info = call(Mode.NONE, caller=hostile, called=hostile, caller_name=hostile,
                language=hostile, jurisdiction=hostile)

    actions = feed(flow, CallOffered(T0, info), DecisionStored(T0 + 0.1, DECISION_ID))

    variables = dict(next(a for a in actions if isinstance(a, SetVariables)).variables)
    assert "record" == variables["RECORDER_DECISION"]
    assert f"/var/spool/asterisk/monitor/recorder/2026/11/18/{DECISION_ID}.wav" == (
        variables["RECORDER_FILE"]
    )
    assert "b" == variables["RECORDER_MIXMON_OPTIONS"]
    for value in variables.values():
        assert SAFE_VALUE.match(value), value
    decision = next(a for a in actions if isinstance(a, StoreDecision)).decision
    assert (hostile, hostile) == (decision.caller_number, decision.caller_name)


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_numbers_in_an_opt_in_call_still_give_safe_variables(hostile: str) -> None:
    """Through a whole consented opt-in call, hostile numbers leave only safe variable values."""
    flow = new_flow()
    actions = feed(
        flow,
        CallOffered(T0, call(Mode.OPT_IN, caller=hostile, called=hostile)),
        Answered(T0 + 0.1),
        PromptFinished(T0 + 5),
        DigitReceived(T0 + 6, "1"),
    )
    stored = next(a for a in actions if isinstance(a, StoreDecision)).decision
    actions = flow.handle(DecisionStored(T0 + 11, stored.decision_id))

    variables = dict(next(a for a in actions if isinstance(a, SetVariables)).variables)
    assert ("opt_in", "recorded_consented") == (stored.mode.value, stored.outcome.value)
    assert stored.recording_path == variables["RECORDER_FILE"]
    for value in variables.values():
        assert SAFE_VALUE.match(value), value
