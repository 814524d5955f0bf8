"""One call path: the same scenario through ARI and FastAGI gives the same decision and contract.

Each scenario runs once over ARI (the shipped fake Asterisk on a real socket, the real
controller) and once over FastAGI (a scripted Asterisk on a real socket, the real FastAGI
server). Both run the one driver core; the test asserts identical decisions, ledger records,
``RECORDER_*`` channel variables and ``consent.decided`` fields (apart from the transport's own
counters and the identifiers a driver picks).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

import pytest
from structlog.testing import capture_logs

from asterisk_recorder.agi.server import FastAgiServer
from asterisk_recorder.agi.session import SessionResult, consent_handler
from asterisk_recorder.controller.app import AriController, ControllerHooks
from asterisk_recorder.drivers.ports import CallReport, CoreHooks
from asterisk_recorder.flow import ConsentFlow
from asterisk_recorder.flow.decision import ConsentDecision
from asterisk_recorder.flow.settings import FlowSettings
from asterisk_recorder.ledger.keys import DigestKey
from asterisk_recorder.ledger.records import build_decision_record
from asterisk_recorder.ledger.sink import MemorySink
from asterisk_recorder.policy import PolicyEngine
from asterisk_recorder.settings import AgiSettings, PolicySettings
from asterisk_recorder.testing import FakeAsterisk
from asterisk_recorder.testing.agi_peer import (
    Behaviour,
    Finish,
    HangUp,
    Press,
    ScriptedAsterisk,
    Silence,
    environment_lines,
)

BASE_ENV = (
    # The block Asterisk 22.10.1 sends (shared/asterisk-traces/agi-optout-ari-originate).
    "agi_network: yes", "agi_network_script: consent", "agi_request: agi://127.0.0.1:4573/consent",
    "agi_channel: Local/s@consent-agi-00000035;2", "agi_language: en", "agi_type: Local",
    "agi_uniqueid: 1795449978.119", "agi_version: 22.10.1", "agi_callerid: 5551234",
    "agi_calleridname: Consent Probe", "agi_callingpres: 0", "agi_callingani2: 0",
    "agi_callington: 0", "agi_callingtns: 0", "agi_dnid: unknown", "agi_rdnis: unknown",
    "agi_context: consent-agi", "agi_extension: s", "agi_priority: 2", "agi_enhanced: 0.0",
    "agi_accountcode: ", "agi_threadid: 140510021412544",
)
ASTERISK_ID = "02:fc:00:00:00:01"
"""The entity id the fake Asterisk reports over ARI; the scripted one answers ``${ENTITYID}``."""
FLOW = FlowSettings(input_timeout=0.3, max_retries=0)
CALLER = "+14155551234"
CALLED = "+12125550000"
TRANSPORT_FIELDS = frozenset({"agi_commands", "agi_error", "rest_errors"})
"""Fields only one transport has: its own counters."""
PER_CALL_FIELDS = frozenset({
    "call_id", "channel_id", "channel", "uniqueid", "linkedid", "decision_id", "latency_ms",
    "session_ms", "timestamp",
})
"""Fields that differ between any two calls (identifiers and durations)."""


@dataclass(frozen=True)
class Scenario:
    """One caller behaviour, told to each transport in its own terms."""

    name: str
    policy: str
    ari: str  # "press_during:D", "press_after:D", "silence", "hangup_during"
    agi_prompts: tuple[Behaviour, ...]
    agi_waits: tuple[Behaviour, ...] = ()


SCENARIOS = [
    Scenario("opt-out key during the disclosure", "opt_out", "press_during:1", (Press("1"),)),
    Scenario("silence after an opt-out disclosure", "opt_out", "silence", (Finish(),),
             (Silence(),)),
    Scenario("opt-in accepted after the disclosure", "opt_in", "press_after:1", (Finish(),),
             (Press("1"),)),
    Scenario("opt-in declined after the disclosure", "opt_in", "press_after:2", (Finish(),),
             (Press("2"),)),
    Scenario("opt-in without a key", "opt_in", "silence", (Finish(),), (Silence(),)),
    Scenario("announce only", "announce", "silence", (Finish(),)),
    Scenario("never recorded", "never", "silence", ()),
    Scenario("hang-up during the disclosure", "opt_out", "hangup_during", (HangUp(),)),
]


@dataclass
class Outcome:
    """What one transport produced for a scenario."""

    decision: ConsentDecision
    variables: dict[str, str]
    decided: dict[str, Any]
    report: CallReport


def _engine() -> PolicyEngine:
    return PolicyEngine.from_settings(PolicySettings(site_jurisdiction="US-NY"))


async def _over_ari(scenario: Scenario) -> Outcome:
    engine = _engine()
    sink = MemorySink()
    reports: list[CallReport] = []
    async with FakeAsterisk(time_scale=0.05) as fake:
        controller = AriController(
            fake.settings(),
            flow_factory=lambda: ConsentFlow(FLOW, engine),
            sink=sink,
            instance_id="same-instance",
            hooks=ControllerHooks(core=CoreHooks(on_finished=reports.append)),
        )
        task = asyncio.create_task(controller.run())
        try:
            await fake.wait_for_app("consent-recorder")
            with capture_logs() as logs:
                ch = await fake.originate(
                    caller_number=CALLER, caller_name="Consent Probe", extension=CALLED,
                    variables={"RECORDER_POLICY": scenario.policy},
                )
                action, _, digit = scenario.ari.partition(":")
                variables: dict[str, str] = {}
                if action == "press_during":
                    await fake.wait_for_event("PlaybackStarted", channel_id=ch.id)
                    await fake.send_dtmf(ch.id, digit)
                elif action == "press_after":
                    await fake.wait_for_event("PlaybackFinished", channel_id=ch.id)
                    await fake.send_dtmf(ch.id, digit)
                elif action == "hangup_during":
                    await fake.wait_for_event("PlaybackStarted", channel_id=ch.id)
                    await fake.hangup(ch.id)
                if action != "hangup_during":
                    record = await fake.wait_for_continue(ch.id)
                    variables = {k: v for k, v in record.variables.items()
                                 if k.startswith("RECORDER_") and k != "RECORDER_POLICY"}
                for _ in range(200):
                    if reports:
                        break
                    await asyncio.sleep(0.01)
            decided = [e for e in logs if e["event"] == "consent.decided"]
        finally:
            controller.stop()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, 10)
    assert 1 == len(sink.decisions) == len(decided) == len(reports)
    return Outcome(sink.decisions[0], variables, decided[0], reports[0])


async def _over_agi(scenario: Scenario) -> Outcome:
    engine = _engine()
    sink = MemorySink()
    results: list[SessionResult] = []
    server = FastAgiServer(
        AgiSettings(host="127.0.0.1", port=0, read_timeout=2.0),
        consent_handler(
            lambda: ConsentFlow(FLOW, engine), sink, instance_id="same-instance",
            on_result=results.append, settle_timeout=0.3,
        ),
    )
    await server.start()
    try:
        env = environment_lines(BASE_ENV, {
            "network_script": f"consent?policy={scenario.policy}",
            "request": f"agi://127.0.0.1:4573/consent?policy={scenario.policy}",
            "callerid": CALLER,
            "extension": CALLED,
        })
        peer = ScriptedAsterisk(
            env, variables={"ENTITYID": ASTERISK_ID},
            prompts=list(scenario.agi_prompts), waits=list(scenario.agi_waits),
        )
        with capture_logs() as logs:
            await peer.connect("127.0.0.1", server.port)
            for _ in range(200):
                if results:
                    break
                await asyncio.sleep(0.01)
        decided = [e for e in logs if e["event"] == "consent.decided"]
    finally:
        await server.close(grace=1.0)
    assert 1 == len(sink.decisions) == len(decided) == len(results)
    variables = {k: v for k, v in peer.variables.items() if k.startswith("RECORDER_")}
    return Outcome(sink.decisions[0], variables, decided[0], results[0].report)


def _same_decision(d: ConsentDecision) -> dict[str, Any]:
    """The decision without what a transport or a moment picks (ids, times, channel names)."""
    return {
        "mode": d.mode, "outcome": d.outcome, "reason": d.reason, "record": d.record,
        "policy_rows": d.policy_rows, "policy_version": d.policy_version,
        "prompt_id": d.prompt_id, "language": d.language, "keys": [k.digit for k in d.keys],
        "caller": d.caller_number, "called": d.called_number, "parties": d.parties,
        "instance_id": d.instance_id, "answered": d.answered_at is not None,
        "disclosed": d.disclosure_started_at is not None,
        "recording_path": d.recording_path is not None,
    }


def _same_record(d: ConsentDecision) -> dict[str, Any]:
    """The ledger record's fields, without ids, times and the channel identity."""
    fields = build_decision_record(d, DigestKey(b"k" * 32)).fields
    skip = {"decision_id", "channel_id", "channel_name", "uniqueid", "linkedid", "driver",
            "recording_path"}
    same = {k: v for k, v in fields.items()
            if k not in skip and not k.endswith("_us") and not k.endswith("_at")}
    same["keys"] = [key["digit"] for key in fields["keys"]]
    return same


def _same_variables(variables: dict[str, str], d: ConsentDecision) -> dict[str, str]:
    return {k: v.replace(d.decision_id, "<id>") for k, v in variables.items()}


def _same_fields(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items()
            if k not in TRANSPORT_FIELDS | PER_CALL_FIELDS | {"driver"}}


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
async def test_ari_and_fastagi_decide_and_hand_back_the_same_way(scenario: Scenario) -> None:
    """Same scenario, both drivers: same decision, ledger record, variables and log fields."""
    ari = await _over_ari(scenario)
    agi = await _over_agi(scenario)

    assert "ari" == ari.decision.driver
    assert "agi" == agi.decision.driver
    assert _same_decision(ari.decision) == _same_decision(agi.decision)
    assert _same_record(ari.decision) == _same_record(agi.decision)
    assert _same_variables(ari.variables, ari.decision) == _same_variables(
        agi.variables, agi.decision
    )
    assert _same_fields(ari.decided) == _same_fields(agi.decided)
    assert set(ari.decided) - TRANSPORT_FIELDS == set(agi.decided) - TRANSPORT_FIELDS
    assert ari.report.fate is not None
    assert agi.report.fate is not None
    assert (ari.report.fate.fate, ari.report.fate.told) == (
        agi.report.fate.fate, agi.report.fate.told
    )
