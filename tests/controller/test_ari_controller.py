"""The ARI controller runs the consent flow for each call and hands it back to dialplan.

Every test drives the real controller over real sockets against the shipped fake Asterisk and
asserts the REST calls it made, the channel variables dialplan sees and the decision stored.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid

import pytest

from asterisk_recorder.ari.stream import EventStream
from asterisk_recorder.errors import LedgerError
from asterisk_recorder.flow.decision import ConsentDecision, Outcome
from asterisk_recorder.ledger.sink import StoreReceipt
from asterisk_recorder.policy.modes import Mode
from asterisk_recorder.testing import FakeAsterisk
from tests.controller.conftest import Rig, start_rig, stop_rig

UUID_PATH = re.compile(
    r"^/var/spool/asterisk/monitor/recorder/\d{4}/\d{2}/\d{2}/[0-9a-f-]{36}\.wav$"
)


async def wait_decisions(rig: Rig, count: int, within: float = 5.0) -> None:
    """Wait until the sink holds ``count`` decisions."""
    async with asyncio.timeout(within):
        while len(rig.sink.decisions) < count:
            await asyncio.sleep(0.01)


def consent_requests(fake: FakeAsterisk, channel_id: str) -> list[tuple[str, str]]:
    """The controller's REST calls about one channel, as (method, path-suffix) pairs."""
    out = []
    for req in fake.requests:
        if channel_id in req.path or req.path.startswith("/ari/playbacks/"):
            suffix = req.path.split(channel_id, 1)[-1] if channel_id in req.path else "/playback"
            out.append((req.method, suffix or "/"))
    return out


async def test_opt_out_key_during_disclosure_skips_recording(rig: Rig) -> None:
    """A California caller pressing 1 during the disclosure is not recorded."""
    ch = await rig.fake.originate(caller_number="+14155550100", extension="2125550100")
    await rig.fake.wait_for_event("PlaybackStarted", channel_id=ch.id)
    await rig.fake.send_dtmf(ch.id, "1")
    record = await rig.fake.wait_for_continue(ch.id)
    await wait_decisions(rig, 1)

    decision = rig.sink.decisions[0]
    assert Outcome.NOT_RECORDED_OPTED_OUT == decision.outcome
    assert Mode.OPT_OUT == decision.mode
    assert "skip" == record.variables["RECORDER_DECISION"]
    assert "not_recorded_opted_out" == record.variables["RECORDER_OUTCOME"]
    assert decision.decision_id == record.variables["RECORDER_DECISION_ID"]
    assert "" == record.variables["RECORDER_FILE"]
    assert ["1"] == [k.digit for k in decision.keys]


async def test_barge_in_stops_the_playback_before_the_channel_moves_on(rig: Rig) -> None:
    """Opt-out REST sequence: answer, play, DELETE playback and the variables, then continue."""
    ch = await rig.fake.originate(caller_number="+14155550100", extension="2125550100")
    await rig.fake.wait_for_event("PlaybackStarted", channel_id=ch.id)
    await rig.fake.send_dtmf(ch.id, "1")
    record = await rig.fake.wait_for_continue(ch.id)

    sent = consent_requests(rig.fake, ch.id)
    assert [("POST", "/answer"), ("POST", "/play")] == sent[:2]
    # The stop and the variables travel together; continue waits for both.
    assert {("DELETE", "/playback"), ("POST", "/variable")} == set(sent[2:4])
    assert [("POST", "/continue")] == sent[4:]
    packed = next(r for r in rig.fake.requests if r.path.endswith(f"/{ch.id}/variable"))
    assert json.loads(packed.body)["variable"] == (
        "ARRAY(RECORDER_DECISION,RECORDER_OUTCOME,RECORDER_DECISION_ID,RECORDER_FILE,"
        "RECORDER_MIXMON_OPTIONS,RECORDER_MODE)"
    )
    assert "skip" == record.variables["RECORDER_DECISION"]
    assert "not_recorded_opted_out" == record.variables["RECORDER_OUTCOME"]
    assert "" == record.variables["RECORDER_FILE"]


async def test_silent_caller_after_opt_out_offer_is_recorded_with_a_safe_path(rig: Rig) -> None:
    """No key after an opt-out disclosure: recorded, path built from the decision id only."""
    ch = await rig.fake.originate(caller_number="+14155550100", extension="2125550100")
    record = await rig.fake.wait_for_continue(ch.id)
    await wait_decisions(rig, 1)

    decision = rig.sink.decisions[0]
    assert Outcome.RECORDED_NOTIFIED == decision.outcome
    assert "record" == record.variables["RECORDER_DECISION"]
    assert UUID_PATH.match(record.variables["RECORDER_FILE"])
    assert record.variables["RECORDER_FILE"].endswith(f"/{decision.decision_id}.wav")
    assert decision.recording_path == record.variables["RECORDER_FILE"]
    assert "b" == record.variables["RECORDER_MIXMON_OPTIONS"]


async def test_one_party_state_plays_announcement_and_records(rig: Rig) -> None:
    """New York to New York (site US-NY): announce, then recorded without a key."""
    ch = await rig.fake.originate(caller_number="+12125550100", extension="+12125550199")
    record = await rig.fake.wait_for_continue(ch.id)
    await wait_decisions(rig, 1)

    decision = rig.sink.decisions[0]
    assert Mode.ANNOUNCE == decision.mode
    assert Outcome.RECORDED_NOTIFIED == decision.outcome
    assert "record" == record.variables["RECORDER_DECISION"]
    play = next(r for r in rig.fake.requests if r.path.endswith("/play"))
    assert "sound:recorder/consent-announce" == play.query["media"]
    assert "en" == play.query["lang"]


@pytest.mark.parametrize(
    ("keys", "outcome", "decision"),
    [
        ("1", Outcome.RECORDED_CONSENTED, "record"),
        ("2", Outcome.NOT_RECORDED_DECLINED, "skip"),
        ("", Outcome.NOT_RECORDED_NO_CONSENT, "skip"),
    ],
)
async def test_opt_in_caller_from_germany(
    rig: Rig, keys: str, outcome: Outcome, decision: str
) -> None:
    """A German caller is asked to opt in: 1 records, 2 declines, silence records nothing.

    The accept key counts only after the prompt ended; the decline key barges in.
    """
    ch = await rig.fake.originate(caller_number="+4930901820", extension="2125550100")
    await rig.fake.wait_for_event(
        "PlaybackFinished" if keys == "1" else "PlaybackStarted", channel_id=ch.id
    )
    if keys:
        await rig.fake.send_dtmf(ch.id, keys)
    record = await rig.fake.wait_for_continue(ch.id, within=10)
    await wait_decisions(rig, 1)

    assert Mode.OPT_IN == rig.sink.decisions[0].mode
    assert outcome == rig.sink.decisions[0].outcome
    assert decision == record.variables["RECORDER_DECISION"]


async def test_interstate_call_follows_the_stricter_state(rig: Rig) -> None:
    """New York caller to Connecticut: CT's opt-out with a 15 s beep applies."""
    ch = await rig.fake.originate(caller_number="+12125550100", extension="+18605550100")
    record = await rig.fake.wait_for_continue(ch.id)
    await wait_decisions(rig, 1)

    decision = rig.sink.decisions[0]
    assert Mode.OPT_OUT == decision.mode
    assert "US-CT" in decision.policy_rows
    assert "bB(15)" == record.variables["RECORDER_MIXMON_OPTIONS"]


async def test_hang_up_during_disclosure_is_abandoned_and_never_continued(rig: Rig) -> None:
    """The caller hangs up mid-prompt: outcome abandoned, stored, no continue attempted."""
    ch = await rig.fake.originate(caller_number="+14155550100", extension="2125550100")
    await rig.fake.wait_for_event("PlaybackStarted", channel_id=ch.id)
    await rig.fake.hangup(ch.id)
    await wait_decisions(rig, 1)

    assert Outcome.ABANDONED == rig.sink.decisions[0].outcome
    assert [] == [r for r in rig.fake.requests if r.path.endswith("/continue")]
    assert [] == [r for r in rig.fake.requests if r.path.endswith("/variable")]


async def test_channel_gone_mid_request_is_handled_as_abandoned(rig: Rig) -> None:
    """A 404 on the play request (channel vanished) ends the flow as abandoned, quietly."""
    rig.fake.fail("POST", "/ari/channels/*/play", 404, "Channel not found")
    ch = await rig.fake.originate(caller_number="+14155550100", extension="2125550100")
    await wait_decisions(rig, 1)

    assert Outcome.ABANDONED == rig.sink.decisions[0].outcome
    assert rig.fake.channel(ch.id).continued is None


async def test_stasis_argument_policy_never_skips_prompt_and_recording(rig: Rig) -> None:
    """``Stasis(app,policy=never)``: no prompt, handed back with skip."""
    ch = await rig.fake.originate(
        caller_number="+14155550100", extension="2125550100", args=("policy=never", "lang=en")
    )
    record = await rig.fake.wait_for_continue(ch.id)
    await wait_decisions(rig, 1)

    assert Outcome.NOT_RECORDED_POLICY == rig.sink.decisions[0].outcome
    assert "skip" == record.variables["RECORDER_DECISION"]
    assert [] == [r for r in rig.fake.requests if r.path.endswith("/play")]


async def test_channel_variable_override_forces_opt_in(rig: Rig) -> None:
    """``RECORDER_POLICY=opt_in`` from ari.conf channelvars applies to a New York call."""
    ch = await rig.fake.originate(
        caller_number="+12125550100", extension="2125550199",
        variables={"RECORDER_POLICY": "opt_in"},
    )
    await rig.fake.wait_for_event("PlaybackFinished", channel_id=ch.id)  # accept after it
    await rig.fake.send_dtmf(ch.id, "1")
    record = await rig.fake.wait_for_continue(ch.id)
    await wait_decisions(rig, 1)

    assert Mode.OPT_IN == rig.sink.decisions[0].mode
    assert "recorded_consented" == record.variables["RECORDER_OUTCOME"]


HOSTILE = [
    "1234,b,/bin/sh -c id",
    "555) ; System(rm -rf /)",
    "${SHELL(id)}",
    "a|b|c",
    "\"quoted\" 'single'",
    "line1\nline2\r\nSet(X=1)",
    "../../../etc/passwd",
    "nul\x00byte",
    "${CALLERID(num)}${RECORDER_FILE}",
    "x" * 10_000,
]


@pytest.mark.parametrize("hostile", HOSTILE, ids=lambda s: repr(s[:20]))
async def test_hostile_caller_id_never_reaches_file_or_options(rig: Rig, hostile: str) -> None:
    """Caller-controlled name and number never alter RECORDER_FILE or the MixMonitor options."""
    ch = await rig.fake.originate(
        caller_number=hostile, caller_name=hostile, extension=hostile[:80],
        args=("policy=announce",),
    )
    record = await rig.fake.wait_for_continue(ch.id)
    await wait_decisions(rig, 1)

    decision = rig.sink.decisions[0]
    assert "record" == record.variables["RECORDER_DECISION"]
    assert UUID_PATH.match(record.variables["RECORDER_FILE"])
    assert "b" == record.variables["RECORDER_MIXMON_OPTIONS"]
    uuid.UUID(record.variables["RECORDER_DECISION_ID"])
    assert hostile == decision.caller_name  # kept as evidence, untouched


class FailingSink:
    """A ledger that cannot store anything."""

    async def store(self, decision: ConsentDecision) -> StoreReceipt:
        """Always fail."""
        raise LedgerError("database and spool both unavailable")


async def test_store_failure_hands_back_without_recording() -> None:
    """When the decision cannot be stored, the call still proceeds, not recorded."""
    rig = await start_rig(sink=FailingSink())  # type: ignore[arg-type]
    try:
        ch = await rig.fake.originate(caller_number="+12125550100", extension="2125550199")
        record = await rig.fake.wait_for_continue(ch.id)
    finally:
        await stop_rig(rig)

    assert "skip" == record.variables["RECORDER_DECISION"]
    assert "" == record.variables["RECORDER_FILE"]


async def test_slow_call_never_delays_another(rig: Rig) -> None:
    """A call whose answer request hangs does not hold up a second call's flow."""
    rig.fake.delay("POST", "/ari/channels/slow-1/answer", 1.5)
    slow = await rig.fake.originate(
        caller_number="+12125550100", extension="2125550199", channel_id="slow-1"
    )
    fast = await rig.fake.originate(caller_number="+12125550101", extension="2125550199")
    await rig.fake.wait_for_continue(fast.id)

    assert rig.fake.channel(slow.id).continued is None
    await rig.fake.wait_for_continue(slow.id)
    assert 2 == len(rig.sink.decisions)


async def test_key_pressed_while_the_event_socket_was_down_is_never_recorded(rig: Rig) -> None:
    """An opt-out key lost in a WebSocket gap must not lead to a recording: fail closed."""
    ch = await rig.fake.originate(caller_number="+14155550100", extension="2125550100")
    await rig.fake.wait_for_event("PlaybackStarted", channel_id=ch.id)
    connections = rig.fake.ws_connections
    rig.fake.refuse_websockets()
    await rig.fake.drop_websockets()
    await rig.fake.send_dtmf(ch.id, "1")  # delivered to nobody: Asterisk does not queue it
    rig.fake.accept_websockets()
    async with asyncio.timeout(5):
        while rig.fake.ws_connections == connections:
            await asyncio.sleep(0.01)
    record = await rig.fake.wait_for_continue(ch.id)
    await wait_decisions(rig, 1)

    assert "skip" == record.variables["RECORDER_DECISION"]
    assert Outcome.FAILED == rig.sink.decisions[0].outcome
    assert "interrupted" in rig.sink.decisions[0].reason


async def test_call_arriving_during_resync_is_not_mistaken_for_a_lost_one(rig: Rig) -> None:
    """A call whose StasisStart beats the (slow) resync snapshot runs its flow normally."""
    await rig.fake.wait_for_request("GET", "/ari/applications/*")  # the first resync is over
    rig.fake.delay_response("GET", "/ari/applications/*", 0.3, times=1)
    await rig.fake.drop_websockets()
    async with asyncio.timeout(5):
        while rig.controller.connected:
            await asyncio.sleep(0.005)
        while not rig.controller.connected:
            await asyncio.sleep(0.005)
    await asyncio.sleep(0.1)  # the resync snapshot is taken (and held) before the call arrives
    ch = await rig.fake.originate(caller_number="+14155550100", extension="2125550100")
    await rig.fake.wait_for_request("GET", "/ari/applications/*", since=0, within=5)
    record = await rig.fake.wait_for_continue(ch.id)
    await wait_decisions(rig, 1)

    assert "recorded_notified" == record.variables["RECORDER_OUTCOME"]
    assert [Outcome.RECORDED_NOTIFIED] == [d.outcome for d in rig.sink.decisions]


async def test_asterisk_restart_ends_in_flight_calls_as_abandoned(rig: Rig) -> None:
    """Asterisk restarts mid-call (all channels gone): the flow is stored as abandoned."""
    await rig.fake.originate(caller_number="+14155550100", extension="2125550100")
    await rig.fake.wait_for_event("PlaybackStarted")
    await rig.fake.restart()
    await wait_decisions(rig, 1)
    await asyncio.sleep(0.2)

    assert [Outcome.ABANDONED] == [d.outcome for d in rig.sink.decisions]


async def test_channels_parked_before_the_controller_started_are_handed_back() -> None:
    """A channel left parked in the app (controller crashed) is handed back fail-closed."""
    fake = FakeAsterisk(time_scale=0.05)
    await fake.start()
    # Another process held the app when the call arrived, then died without a hand-back.
    async with EventStream(fake.settings("consent-recorder")) as crashed:
        await crashed.wait_connected()
        ch = await fake.originate(caller_number="+14155550100", extension="2125550100")
        await fake.wait_for_event("StasisStart", channel_id=ch.id)
    assert fake.channel(ch.id).continued is None

    rig = await start_rig(fake=fake)
    try:
        record = await fake.wait_for_continue(ch.id)
        await wait_decisions(rig, 1)
    finally:
        await stop_rig(rig)

    assert "skip" == record.variables["RECORDER_DECISION"]
    assert Outcome.FAILED == rig.sink.decisions[0].outcome
    assert "parked" in rig.sink.decisions[0].reason


async def test_application_replaced_marks_controller_not_ready(rig: Rig) -> None:
    """Another client taking the app over makes the controller report not ready."""
    await rig.fake.replace_application("consent-recorder")
    async with asyncio.timeout(5):
        while not rig.controller.replaced:
            await asyncio.sleep(0.01)

    assert False is rig.controller.ready


async def test_shutdown_finishes_in_flight_calls_and_fails_closed_new_ones() -> None:
    """Draining: an in-flight call gets its grace; a call arriving meanwhile is handed back."""
    rig = await start_rig()
    try:
        ch = await rig.fake.originate(caller_number="+14155550100", extension="2125550100")
        await rig.fake.wait_for_event("PlaybackStarted", channel_id=ch.id)
        drain = asyncio.create_task(rig.controller.drain(grace=0.05))
        late = await rig.fake.originate(caller_number="+14155550101", extension="2125550100")
        await drain
        first = await rig.fake.wait_for_continue(ch.id)
        second = await rig.fake.wait_for_continue(late.id)
    finally:
        await stop_rig(rig)

    assert "skip" == first.variables["RECORDER_DECISION"]
    assert "skip" == second.variables["RECORDER_DECISION"]
    assert {Outcome.FAILED} == {d.outcome for d in rig.sink.decisions}


async def test_many_concurrent_calls_each_get_exactly_one_decision(rig: Rig) -> None:
    """Fifty calls at once: fifty decisions, no duplicates, every channel handed back."""
    channels = await asyncio.gather(
        *(rig.fake.originate(caller_number=f"+1212555{i:04d}", extension="2125550199")
          for i in range(50))
    )
    for ch in channels:
        await rig.fake.wait_for_continue(ch.id, within=10)
    await wait_decisions(rig, 50)

    ids = [d.decision_id for d in rig.sink.decisions]
    assert 50 == len(set(ids))
    assert {ch.id for ch in channels} == {d.channel_id for d in rig.sink.decisions}


async def test_called_number_comes_from_dnid_inside_the_gosub(rig: Rig) -> None:
    """Inside ``Gosub(recorder-consent,s,1)`` the extension is ``s``: the DNID channelvar wins."""
    ch = await rig.fake.originate(
        caller_number="+12125550100", extension="s",
        variables={"CALLERID(dnid)": "+18605550100"},
    )
    record = await rig.fake.wait_for_continue(ch.id)
    await wait_decisions(rig, 1)

    assert "+18605550100" == rig.sink.decisions[0].called_number
    assert "US-CT" in rig.sink.decisions[0].policy_rows
    assert "bB(15)" == record.variables["RECORDER_MIXMON_OPTIONS"]


async def test_parked_channel_is_resumed_when_configured() -> None:
    """With ``resync_action = "resume"`` a parked channel gets the whole consent flow."""
    fake = FakeAsterisk(time_scale=0.05)
    await fake.start()
    async with EventStream(fake.settings("consent-recorder")) as crashed:
        await crashed.wait_connected()
        ch = await fake.originate(caller_number="+14155550100", extension="2125550100")
        await fake.wait_for_event("StasisStart", channel_id=ch.id)

    rig = await start_rig(fake=fake, resync_action="resume")
    try:
        await fake.wait_for_event("PlaybackStarted", channel_id=ch.id)
        await fake.send_dtmf(ch.id, "1")
        record = await fake.wait_for_continue(ch.id)
        await wait_decisions(rig, 1)
    finally:
        await stop_rig(rig)

    assert "not_recorded_opted_out" == record.variables["RECORDER_OUTCOME"]


async def test_variable_failure_is_retried_and_never_leaves_a_half_written_record(
    rig: Rig,
) -> None:
    """A 500 on the first /variable: skip is set at once, then the stored decision is retried."""
    rig.fake.fail("POST", "/ari/channels/*/variable", 500, "Internal error", times=1)
    ch = await rig.fake.originate(caller_number="+12125550100", extension="2125550199")
    record = await rig.fake.wait_for_continue(ch.id)
    await wait_decisions(rig, 1)

    mine = [r for r in rig.fake.requests if f"/channels/{ch.id}/" in r.path]
    failed = next(i for i, r in enumerate(mine) if r.path.endswith("/variable") and r.status == 500)
    after = [
        json.loads(r.body)["value"].split(",")[0] for r in mine[failed + 1:]
        if r.path.endswith("/variable")
        and json.loads(r.body)["variable"].startswith(("RECORDER_DECISION", "ARRAY("))
    ]
    continues = [i for i, r in enumerate(mine) if r.path.endswith("/continue")]
    assert ["skip", "record"] == after  # skip at once, then the retry of the whole set
    assert [len(mine) - 1] == continues  # one continue, after every variable
    assert "record" == record.variables["RECORDER_DECISION"]
    assert rig.sink.decisions[0].recording_path == record.variables["RECORDER_FILE"]


async def test_continue_failure_is_retried_with_the_stored_decision(rig: Rig) -> None:
    """A 500 on /continue: retried while the channel lives; handed back as decided, never parked."""
    rig.fake.fail("POST", "/ari/channels/*/continue", 500, "Internal error", times=1)
    ch = await rig.fake.originate(caller_number="+12125550100", extension="2125550199")
    record = await rig.fake.wait_for_continue(ch.id)
    await wait_decisions(rig, 1)

    assert "record" == record.variables["RECORDER_DECISION"]
    assert "recorded_notified" == record.variables["RECORDER_OUTCOME"]
    assert ["500", "204"] == [
        str(r.status) for r in rig.fake.requests if r.path.endswith("/continue")
    ]


async def test_channel_re_entering_the_app_after_hand_back_is_a_new_call(rig: Rig) -> None:
    """A second Stasis() on the same channel right after a hand-back gets its own flow."""
    ch = await rig.fake.originate(caller_number="+12125550100", extension="2125550199")
    await rig.fake.wait_for_continue(ch.id)
    await wait_decisions(rig, 1)
    await rig.fake.send_event("consent-recorder", {
        "type": "StasisStart", "timestamp": "2026-11-23T00:00:00.000+0000",
        "args": [], "channel": rig.fake.snapshot(rig.fake.channel(ch.id)),
        "asterisk_id": rig.fake.asterisk_id, "application": "consent-recorder",
    })
    await wait_decisions(rig, 2)

    assert 2 == len({d.decision_id for d in rig.sink.decisions})


def test_variables_pack_into_one_array_only_when_every_value_is_safe() -> None:
    """ARRAY(...) only for plain names and values without a comma, quote, backslash or control."""
    from asterisk_recorder.drivers.variables import pack_variables as _packed

    assert ("ARRAY(A,B)", "x,") == _packed((("A", "x"), ("B", "")))
    assert None is _packed((("A", "x"),))  # one variable: a plain set
    assert None is _packed((("A", "x,y"), ("B", "z")))  # a comma would shift B
    assert None is _packed((("A", 'say "hi"'), ("B", "z")))
    assert None is _packed((("A", "back\\slash"), ("B", "z")))
    assert None is _packed((("A", "new\nline"), ("B", "z")))
    assert None is _packed((("lower", "x"), ("B", "z")))
