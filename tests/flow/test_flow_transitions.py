"""Every (state, event type) pair of the transition table: next state and actions (opt-out call)."""

from __future__ import annotations

import itertools

import pytest
from flowkit import DECISION_ID, T0, call, flow_in, summary

from asterisk_recorder.flow import TRANSITIONS, State
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
from asterisk_recorder.flow.machine import EVENT_TYPES
from asterisk_recorder.policy import Mode

AT = T0 + 20

PLAY = ("PlayPrompt", "recorder/consent-opt-out", "en", "1")
IGNORED = "ignored"


def sample(state: State, etype: type) -> Event:
    """The representative event of ``etype`` for ``state`` (the timer/action that matters there)."""
    if etype is CallOffered:
        return CallOffered(AT, call(Mode.OPT_OUT))
    if etype is Answered:
        return Answered(AT)
    if etype is PromptStarted:
        return PromptStarted(AT)
    if etype is PromptFinished:
        return PromptFinished(AT)
    if etype is PromptFailed:
        return PromptFailed(AT, "file not found")
    if etype is DigitReceived:
        return DigitReceived(AT, "1")
    if etype is TimerExpired:
        return TimerExpired(AT, "input" if state is State.AWAITING_INPUT else "guard")
    if etype is CallerHungUp:
        return CallerHungUp(AT)
    if etype is ActionFailed:
        action = {
            State.ANSWERING: "Answer", State.PROMPTING: "PlayPrompt",
            State.AWAITING_INPUT: "StartTimer",
        }.get(state, "StoreDecision")
        return ActionFailed(AT, action, "boom")
    if etype is DecisionStored:
        return DecisionStored(AT, DECISION_ID)
    assert etype is DecisionStoreFailed
    return DecisionStoreFailed(AT, "database down")


S = State
# (state, event type) -> (next state, actions summary) ; IGNORED = no change, no action, counted.
EXPECTED: dict[tuple[State, type], tuple[State, list[tuple[str, ...]]] | str] = {
    (S.NEW, CallOffered): (S.ANSWERING, [("Answer",), ("StartTimer", "guard")]),
    (S.ANSWERING, Answered): (
        S.PROMPTING, [("CancelTimer", "guard"), PLAY, ("StartTimer", "guard")],
    ),
    (S.ANSWERING, DigitReceived): (S.ANSWERING, []),  # type-ahead: kept, counts as nothing
    (S.ANSWERING, TimerExpired): (S.STORING, [("StoreDecision", "failed")]),
    (S.ANSWERING, CallerHungUp): (
        S.STORING_GONE, [("CancelTimer", "guard"), ("StoreDecision", "abandoned")],
    ),
    (S.ANSWERING, ActionFailed): (
        S.STORING, [("CancelTimer", "guard"), ("StoreDecision", "failed")],
    ),
    (S.PROMPTING, PromptStarted): (S.PROMPTING, []),
    (S.PROMPTING, PromptFinished): (
        S.AWAITING_INPUT, [("CancelTimer", "guard"), ("StartTimer", "input")],
    ),
    (S.PROMPTING, PromptFailed): (
        S.STORING, [("CancelTimer", "guard"), ("StoreDecision", "failed")],
    ),
    (S.PROMPTING, DigitReceived): (
        S.STORING,
        [("StopPrompt",), ("CancelTimer", "guard"), ("StoreDecision", "not_recorded_opted_out")],
    ),
    (S.PROMPTING, TimerExpired): (S.STORING, [("StopPrompt",), ("StoreDecision", "failed")]),
    (S.PROMPTING, CallerHungUp): (
        S.STORING_GONE, [("CancelTimer", "guard"), ("StoreDecision", "abandoned")],
    ),
    (S.PROMPTING, ActionFailed): (
        S.STORING, [("CancelTimer", "guard"), ("StoreDecision", "failed")],
    ),
    (S.AWAITING_INPUT, DigitReceived): (
        S.STORING, [("CancelTimer", "input"), ("StoreDecision", "not_recorded_opted_out")],
    ),
    (S.AWAITING_INPUT, TimerExpired): (S.STORING, [("StoreDecision", "recorded_notified")]),
    (S.AWAITING_INPUT, CallerHungUp): (
        S.STORING_GONE, [("CancelTimer", "input"), ("StoreDecision", "abandoned")],
    ),
    (S.AWAITING_INPUT, ActionFailed): (
        S.STORING, [("CancelTimer", "input"), ("StoreDecision", "failed")],
    ),
    (S.STORING, CallerHungUp): (S.STORING_GONE, []),
    (S.STORING, ActionFailed): (S.HANDED_BACK, [("SetVariables", "skip"), ("HandBack",)]),
    (S.STORING, DecisionStored): (S.HANDED_BACK, [("SetVariables", "record"), ("HandBack",)]),
    (S.STORING, DecisionStoreFailed): (
        S.HANDED_BACK, [("SetVariables", "skip"), ("HandBack",)],
    ),
    (S.STORING_GONE, ActionFailed): (S.ENDED, []),
    (S.STORING_GONE, DecisionStored): (S.ENDED, []),
    (S.STORING_GONE, DecisionStoreFailed): (S.ENDED, []),
}

ALL_PAIRS = list(itertools.product(State, EVENT_TYPES))


def test_transition_table_has_every_pair_and_nothing_else() -> None:
    """TRANSITIONS is keyed by exactly every (state, event type) pair."""
    assert set(ALL_PAIRS) == set(TRANSITIONS)
    assert len(State) * 11 == len(TRANSITIONS)


@pytest.mark.parametrize(
    ("state", "etype"), ALL_PAIRS, ids=[f"{s.name}-{e.__name__}" for s, e in ALL_PAIRS]
)
def test_every_state_and_event_pair(state: State, etype: type) -> None:
    """Each pair gives the expected next state and actions; unlisted pairs are ignored."""
    flow = flow_in(state)
    ignored_before = flow.ignored
    decision_before = flow.decision

    actions = flow.handle(sample(state, etype))

    expected = EXPECTED.get((state, etype), IGNORED)
    if expected == IGNORED:
        assert (state, [], ignored_before + 1) == (flow.state, actions, flow.ignored)
        assert decision_before is flow.decision
    else:
        assert isinstance(expected, tuple)
        next_state, expected_actions = expected
        assert next_state == flow.state
        assert expected_actions == summary(actions)
    assert () == flow.errors



def test_docs_show_the_transition_table() -> None:
    """docs/policy.md holds exactly the table generated from TRANSITIONS."""
    from pathlib import Path

    from asterisk_recorder.flow.machine import transition_rows

    docs = (Path(__file__).resolve().parents[2] / "docs" / "policy.md").read_text("utf-8")
    shown = docs.split("<!-- transitions:begin -->\n", 1)[1].split("<!-- transitions:end -->", 1)[0]
    expected = "| state | event | what happens |\n|---|---|---|\n" + "".join(
        f"| `{s}` | `{e}` | {what} |\n" for s, e, what in transition_rows()
    )

    assert expected == shown
