"""Property tests: random event sequences never break the consent flow's promises.

Over 10,000 generated calls in total (6,000 + 4,000 examples): no exception from any event in
any state; exactly one StoreDecision per offered call; SetVariables + HandBack only after the
decision was stored and never after a hang-up; no recording after the opt-out key pressed once
the prompt started; no recording in opt_in without the accept key, nor with an accept key
pressed before prompt start + ``opt_in_accept_after`` (before ``PromptFinished`` when None);
no key before the prompt started (type-ahead) ever decides; at most one key counts, and it is
the last; recordings only ever get a path built from the decision id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from flowkit import DECISION_ID, T0, call, engine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asterisk_recorder.flow import ConsentFlow, State
from asterisk_recorder.flow.actions import HandBack, PlayPrompt, SetVariables, StoreDecision
from asterisk_recorder.flow.decision import COUNTED_EFFECTS, KeyEffect, Outcome
from asterisk_recorder.flow.events import (
    ActionFailed,
    Answered,
    CallerHungUp,
    CallOffered,
    DecisionStored,
    DecisionStoreFailed,
    DigitReceived,
    Event,
    PromptFailed,
    PromptFinished,
    PromptStarted,
    TimerExpired,
)
from asterisk_recorder.flow.settings import FlowSettings, PromptSettings
from asterisk_recorder.policy import Mode

OTHER_ID = "00000000-0000-4000-8000-000000000000"
PATH_RE = re.compile(
    r"^/var/spool/asterisk/monitor/recorder/\d{4}/\d{2}/\d{2}/" + DECISION_ID + r"\.wav$"
)
PROMPT_STATES = (State.ANSWERING, State.PROMPTING, State.AWAITING_INPUT)


DIGITS = [*"0123456789*#AD", "", "12", "x"]
TIMERS = ["guard", "input", "other"]
ACTIONS = ["Answer", "PlayPrompt", "StopPrompt", "StartTimer", "CancelTimer", "StoreDecision",
           "SetVariables", "HandBack"]


def make_event(kind: int, arg: int, t: float) -> Event:
    """Event number ``kind`` (0..10) with a small integer ``arg`` choosing its details."""
    if kind == 0:
        return Answered(t)
    if kind == 1:
        return PromptStarted(t)
    if kind == 2:
        return PromptFinished(t)
    if kind == 3:
        return PromptFailed(t, "missing")
    if kind == 4:
        return DigitReceived(t, DIGITS[arg % len(DIGITS)])
    if kind == 5:
        return TimerExpired(t, TIMERS[arg % len(TIMERS)])
    if kind == 6:
        return CallerHungUp(t)
    if kind == 7:
        return ActionFailed(t, ACTIONS[arg % len(ACTIONS)], "boom", channel_gone=arg % 3 == 0)
    if kind == 8:
        return DecisionStored(t, DECISION_ID if arg % 4 else OTHER_ID)
    if kind == 9:
        return DecisionStoreFailed(t, "down")
    return CallOffered(t, call(Mode.OPT_OUT))


def to_events(data: bytes) -> list[Event]:
    """Three bytes per event (kind, detail, time gap) -> events with non-decreasing times."""
    events: list[Event] = []
    t = T0
    for i in range(0, len(data) - 2, 3):
        t += data[i + 2] / 8
        events.append(make_event(data[i] % 11, data[i + 1], t))
    return events


event_sequences = st.binary(max_size=75).map(to_events)
"""Up to 25 arbitrary events, in any order, with non-decreasing times (one cheap draw)."""

SETTINGS_VARIANTS = [
    FlowSettings(
        opt_out_key=out_key, opt_in_accept_key=accept, opt_in_decline_key=decline,
        max_retries=retries, answer_channel=answer, play_prompt_for_never=play,
        play_prompt_for_none=play, prompts=replace(prompts, opt_in_accept_after=after),
    )
    for out_key, accept, decline in (("1", "1", "2"), ("#", "5", "*"), ("9", "1", "2"))
    for retries in (0, 1, 3)
    for answer in (True, False)
    for play in (True, False)
    for prompts in (
        PromptSettings(),
        PromptSettings(languages=("en", "fr", "fr_CA"), never="rec/never", none="rec/none"),
    )
    for after in (None, 0.0, 0.4, 2.5)
]
flow_settings = st.sampled_from(SETTINGS_VARIANTS)


@dataclass
class Run:
    """What happened when a sequence was fed to a flow."""

    flow: ConsentFlow
    mode: Mode
    stores: int = 0
    handbacks: int = 0
    set_vars_before_handback: bool = True
    handback_before_ack: bool = False
    handback_after_hangup: bool = False
    refused_before_decision: bool = False
    accepted_before_decision: bool = False
    type_ahead_decided: bool = False
    consent_before_informed: bool = False


def drive(flow_settings_: FlowSettings, mode: Mode, events: list[Event], language: str) -> Run:
    """Offer a call, feed ``events``, then a hang-up and the ledger's ack; check each step."""
    flow = ConsentFlow(flow_settings_, engine())
    run = Run(flow=flow, mode=mode)
    acked = False
    gone = False
    after = flow_settings_.prompts.opt_in_accept_after
    prompt_began = False  # a PromptStarted/PromptFinished was handled while prompting
    finished = False  # a PromptFinished was handled while prompting
    play_start: float | None = None  # PromptStarted of the current play (reset by PlayPrompt)
    stream = [CallOffered(T0, call(mode, language=language)), *events,
              CallerHungUp(T0 + 10_000), DecisionStored(T0 + 10_001, DECISION_ID)]
    for event in stream:
        before = flow.state
        decided_before = flow.decision is not None
        actions = flow.handle(event)  # must never raise
        if before is State.PROMPTING and isinstance(event, PromptStarted | PromptFinished):
            prompt_began = True
            finished |= isinstance(event, PromptFinished)
            if isinstance(event, PromptStarted) and play_start is None:
                play_start = event.at
        if isinstance(event, DigitReceived) and not decided_before and flow.decision is not None:
            run.type_ahead_decided |= not prompt_began
            if flow.decision.outcome is Outcome.RECORDED_CONSENTED:
                informed = finished or (
                    after is not None and play_start is not None
                    and event.at - play_start >= after
                )
                run.consent_before_informed |= not informed
        if any(isinstance(a, PlayPrompt) for a in actions):
            play_start = None
        if isinstance(event, DigitReceived) and not decided_before and before in PROMPT_STATES:
            if (mode is Mode.OPT_OUT and event.digit == flow_settings_.opt_out_key
                    and prompt_began):
                run.refused_before_decision = True
            if mode is Mode.OPT_IN and event.digit == flow_settings_.opt_in_accept_key and (
                before is not State.ANSWERING
            ):
                run.accepted_before_decision = True
        if decided_before and (
            (isinstance(event, DecisionStored) and event.decision_id == DECISION_ID)
            or isinstance(event, DecisionStoreFailed)
            or (isinstance(event, ActionFailed) and event.action == "StoreDecision")
        ):
            acked = True
        if before not in (State.HANDED_BACK, State.ENDED) and (
            isinstance(event, CallerHungUp)
            or (isinstance(event, ActionFailed) and event.channel_gone)
        ):
            gone = True
        for i, action in enumerate(actions):
            if isinstance(action, StoreDecision):
                run.stores += 1
            if isinstance(action, HandBack):
                run.handbacks += 1
                run.handback_before_ack |= not acked
                run.handback_after_hangup |= gone
                run.set_vars_before_handback &= i > 0 and isinstance(actions[i - 1], SetVariables)
    return run


def check(run: Run, flow_settings_: FlowSettings) -> None:
    """The promises every call keeps."""
    flow = run.flow
    decision = flow.decision
    assert () == flow.errors
    assert 1 == run.stores
    assert decision is not None
    assert flow.done
    assert run.handbacks <= 1
    assert run.set_vars_before_handback
    assert not run.handback_before_ack
    assert not run.handback_after_hangup
    if run.refused_before_decision:
        assert not decision.record
    assert not run.type_ahead_decided
    assert not run.consent_before_informed
    counted = [i for i, k in enumerate(decision.keys) if k.counted]
    assert counted in ([], [len(decision.keys) - 1])
    assert all(k.phase is not None and k.effect is not None for k in decision.keys)
    if decision.outcome is Outcome.RECORDED_CONSENTED:
        assert KeyEffect.CONSENT is decision.keys[-1].effect
    elif counted:
        assert decision.keys[-1].effect in COUNTED_EFFECTS - {KeyEffect.CONSENT}
    if run.mode is Mode.OPT_IN and decision.record:
        assert run.accepted_before_decision
        assert Outcome.RECORDED_CONSENTED == decision.outcome
    if run.mode is Mode.NEVER:
        assert not decision.record
    if decision.record:
        assert decision.recording_path is not None
        assert PATH_RE.match(decision.recording_path)
    else:
        assert None is decision.recording_path
    if flow.state is State.HANDED_BACK:
        variables = dict(flow.variables)
        recorded = variables["RECORDER_DECISION"] == "record"
        assert recorded == bool(variables["RECORDER_FILE"])
        if recorded:
            assert decision.record
            assert decision.recording_path == variables["RECORDER_FILE"]
        elif decision.record:  # the store failed: handed back not recorded, outcome failed
            assert "failed" == variables["RECORDER_OUTCOME"]


@settings(max_examples=6000, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(
    flow_settings_=flow_settings,
    mode=st.sampled_from(list(Mode)),
    events=event_sequences,
    language=st.sampled_from(["en", "fr_CA", "fr", "de", "", "x,y"]),
)
def test_random_event_sequences_keep_every_promise(
    flow_settings_: FlowSettings, mode: Mode, events: list[Event], language: str
) -> None:
    """Any events in any order: one decision, hand-back only after it, keys respected."""
    check(drive(flow_settings_, mode, events, language), flow_settings_)


KEYS = list("0123456789#*")


def to_plausible(data: bytes) -> list[Event]:
    """Mostly well-formed rounds: prompt start, then finish / key / failure / guard, then input.

    The first byte picks the ledger's answer; then three bytes per prompt round.
    """
    t = T0
    events: list[Event] = [Answered(t + 0.1)]
    for i in range(1, len(data) - 2, 3):
        kind, key, after = data[i] % 4, data[i + 1], data[i + 2]
        t += 10
        events.append(PromptStarted(t))
        if kind == 1:
            events.append(DigitReceived(t + 0.5, KEYS[key % len(KEYS)]))
        elif kind == 2:
            events.append(PromptFailed(t + 0.5, "missing"))
            continue
        elif kind == 3:
            events.append(TimerExpired(t + 120, "guard"))
        events.append(PromptFinished(t + 1))
        if after % 2:
            events.append(DigitReceived(t + 2, KEYS[after % len(KEYS)]))
        else:
            events.append(TimerExpired(t + 6, "input"))
    stored = not data or data[0] % 2 == 0
    events.append(DecisionStored(t + 7, DECISION_ID) if stored else DecisionStoreFailed(t + 7, "x"))
    return events


plausible_calls = st.binary(min_size=4, max_size=19).map(to_plausible)
"""Realistic call shapes, so the decision paths are reached often."""


@settings(max_examples=4000, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(
    flow_settings_=flow_settings,
    mode=st.sampled_from([Mode.OPT_IN, Mode.OPT_OUT, Mode.ANNOUNCE]),
    events=plausible_calls,
)
def test_plausible_calls_keep_every_promise(
    flow_settings_: FlowSettings, mode: Mode, events: list[Event]
) -> None:
    """Realistic call shapes reach the decision paths often; the same promises hold."""
    check(drive(flow_settings_, mode, events, "fr_CA"), flow_settings_)
