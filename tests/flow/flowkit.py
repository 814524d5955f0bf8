"""Helpers for the consent-flow tests: a call, an engine, a flow driven into any state."""

from __future__ import annotations

import uuid
from dataclasses import replace
from functools import lru_cache

from asterisk_recorder.flow import ConsentFlow, State
from asterisk_recorder.flow.actions import (
    Action,
    CancelTimer,
    PlayPrompt,
    SetVariables,
    StartTimer,
    StoreDecision,
)
from asterisk_recorder.flow.events import (
    Answered,
    CallerHungUp,
    CallInfo,
    CallOffered,
    DecisionStored,
    Event,
    PromptFinished,
    PromptStarted,
    TimerExpired,
)
from asterisk_recorder.flow.settings import FlowSettings
from asterisk_recorder.policy import Mode, PolicyEngine
from asterisk_recorder.settings import PolicySettings

DECISION_ID = "3f2b8c1e-6a4d-4e0f-9b7a-1c2d3e4f5a6b"
"""The decision id of the calls built here (a canonical UUID)."""

T0 = 1_795_000_000.0
"""Offer time of the calls built here (2026-11-18 UTC)."""


@lru_cache(maxsize=8)
def engine(site: str = "US-NY") -> PolicyEngine:
    """A policy engine over the shipped table (cached: building one parses the table)."""
    return PolicyEngine.from_settings(PolicySettings(site_jurisdiction=site))


def call(
    mode: Mode | None = Mode.OPT_OUT,
    *,
    caller: str = "+12125550100",
    called: str = "+12125550199",
    language: str = "en",
    decision_id: str = DECISION_ID,
    jurisdiction: str | None = None,
    caller_name: str = "Alice",
) -> CallInfo:
    """A call whose mode is forced by ``RECORDER_POLICY`` (None: decided by the numbers)."""
    return CallInfo(
        decision_id=decision_id,
        driver="ari",
        channel_id="1700000000.1",
        channel_name="PJSIP/alice-00000001",
        uniqueid="1700000000.1",
        linkedid="1700000000.1",
        asterisk_id="pbx1",
        instance_id="test",
        caller_number=caller,
        caller_name=caller_name,
        called_number=called,
        language=language,
        policy_override=mode.value if mode is not None else None,
        jurisdiction_override=jurisdiction,
    )


def new_flow(settings: FlowSettings | None = None, site: str = "US-NY") -> ConsentFlow:
    """A fresh flow with default (or given) settings."""
    return ConsentFlow(settings or FlowSettings(), engine(site))


def feed(flow: ConsentFlow, *events: Event) -> list[Action]:
    """Feed ``events`` in order and return every action emitted."""
    actions: list[Action] = []
    for event in events:
        actions.extend(flow.handle(event))
    return actions


def flow_in(
    state: State, mode: Mode = Mode.OPT_OUT, settings: FlowSettings | None = None
) -> ConsentFlow:
    """A flow driven into ``state`` through the ordinary path (opt-out call by default).

    ``PROMPTING`` is past ``PromptStarted``: the disclosure is audible, keys are not type-ahead.
    """
    flow = new_flow(settings)
    if state is State.NEW:
        return flow
    feed(flow, CallOffered(T0, call(mode)))
    if state is State.ANSWERING:
        return flow
    feed(flow, Answered(T0 + 0.1), PromptStarted(T0 + 0.2))
    if state is State.PROMPTING:
        return flow
    if state in (State.STORING_GONE, State.ENDED):
        feed(flow, CallerHungUp(T0 + 1))
        if state is State.ENDED:
            feed(flow, DecisionStored(T0 + 1.1, DECISION_ID))
        return flow
    feed(flow, PromptFinished(T0 + 8))
    if state is State.AWAITING_INPUT:
        return flow
    feed(flow, TimerExpired(T0 + 13, "input"))
    if state is State.STORING:
        return flow
    feed(flow, DecisionStored(T0 + 13.1, DECISION_ID))
    assert state is State.HANDED_BACK
    return flow


def summary(actions: list[Action]) -> list[tuple[str, ...]]:
    """Actions as comparable tuples: type name plus the fields that matter."""
    out: list[tuple[str, ...]] = []
    for action in actions:
        name = type(action).__name__
        if isinstance(action, (StartTimer, CancelTimer)):
            out.append((name, action.name))
        elif isinstance(action, StoreDecision):
            out.append((name, action.decision.outcome.value))
        elif isinstance(action, SetVariables):
            out.append((name, dict(action.variables)["RECORDER_DECISION"]))
        elif isinstance(action, PlayPrompt):
            out.append((name, action.sound, action.language, action.escape_digits))
        else:
            out.append((name,))
    return out


def settings(**kwargs: object) -> FlowSettings:
    """``FlowSettings`` with ``kwargs`` replaced."""
    return replace(FlowSettings(), **kwargs)  # type: ignore[arg-type]


def new_decision_id() -> str:
    """A fresh canonical decision id."""
    return str(uuid.uuid4())
