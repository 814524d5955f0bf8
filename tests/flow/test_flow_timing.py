"""When a key counts: type-ahead, the opt-in accept point, prompts cut short, the key evidence.

A key counts as consent only once the caller can have heard which key means what: after the
prompt ended, or from ``prompts.opt_in_accept_after`` seconds into it. Refusals (opt-out key,
decline key) count from the first moment of the prompt. Keys before any prompt started
(type-ahead) count as nothing. Every key is kept with its phase, prompt start and effect.
"""

from __future__ import annotations

import math

import pytest
from flowkit import T0, call, engine, feed, new_flow, settings, summary

from asterisk_recorder.errors import FlowError
from asterisk_recorder.flow import ConsentFlow, State, check_flow_settings
from asterisk_recorder.flow.decision import KeyEffect, KeyPhase, KeyPress, Outcome
from asterisk_recorder.flow.events import (
    Answered,
    CallOffered,
    DigitReceived,
    PromptFailed,
    PromptFinished,
    PromptStarted,
    TimerExpired,
)
from asterisk_recorder.flow.settings import FlowSettings, PromptSettings
from asterisk_recorder.policy import Mode

START = T0 + 0.2
"""When the first prompt play starts in these tests."""


def accept_after(seconds: float | None, **kw: object) -> FlowSettings:
    """Default flow settings with ``prompts.opt_in_accept_after`` set."""
    return settings(prompts=PromptSettings(opt_in_accept_after=seconds), **kw)


def playing(mode: Mode, flow_settings: FlowSettings | None = None) -> ConsentFlow:
    """A flow whose first prompt play started at ``START``."""
    flow = new_flow(flow_settings)
    feed(flow, CallOffered(T0, call(mode)), Answered(T0 + 0.1), PromptStarted(START))
    return flow


def effects(flow: ConsentFlow) -> list[tuple[str, KeyPhase | None, KeyEffect | None]]:
    """The decision's keys as (digit, phase, effect)."""
    assert flow.decision is not None
    return [(k.digit, k.phase, k.effect) for k in flow.decision.keys]


# -- type-ahead ------------------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "digit"), [(Mode.OPT_OUT, "1"), (Mode.OPT_IN, "2"),
                                             (Mode.OPT_IN, "1")])
def test_type_ahead_while_answering_counts_as_nothing(mode: Mode, digit: str) -> None:
    """A key before the disclosure (left over from an IVR menu) neither refuses nor consents."""
    flow = new_flow()

    actions = feed(flow, CallOffered(T0, call(mode)), DigitReceived(T0 + 0.05, digit))

    assert State.ANSWERING == flow.state
    assert None is flow.decision
    assert ("StoreDecision", "not_recorded_opted_out") not in summary(actions)


def test_type_ahead_after_play_was_asked_but_before_it_started_counts_as_nothing() -> None:
    """Between PlayPrompt and PromptStarted the opt-out key is still type-ahead; silence records."""
    flow = new_flow()
    feed(flow, CallOffered(T0, call(Mode.OPT_OUT)), Answered(T0 + 0.1))

    barge = flow.handle(DigitReceived(T0 + 0.15, "1"))
    feed(flow, PromptStarted(START), PromptFinished(T0 + 5), TimerExpired(T0 + 10, "input"))

    assert [] == barge
    assert flow.decision is not None
    assert Outcome.RECORDED_NOTIFIED == flow.decision.outcome
    assert (
        KeyPress("1", T0 + 0.15, None, KeyPhase.BEFORE_PROMPT, KeyEffect.TYPE_AHEAD),
    ) == flow.decision.keys
    assert not flow.decision.keys[0].counted


def test_type_ahead_then_a_refusal_during_the_prompt_opts_out() -> None:
    """The caller who pressed early can still refuse once the prompt plays: both keys are kept."""
    flow = new_flow()
    feed(flow, CallOffered(T0, call(Mode.OPT_OUT)), DigitReceived(T0 + 0.05, "1"),
         Answered(T0 + 0.1), PromptStarted(START))

    actions = flow.handle(DigitReceived(START + 2, "1"))

    assert ("StopPrompt",) == summary(actions)[0]
    assert [("1", KeyPhase.BEFORE_PROMPT, KeyEffect.TYPE_AHEAD),
            ("1", KeyPhase.DURING_PROMPT, KeyEffect.OPT_OUT)] == effects(flow)
    assert flow.decision is not None
    assert Outcome.NOT_RECORDED_OPTED_OUT == flow.decision.outcome


# -- refusals count at once ------------------------------------------------------------------


def test_opt_out_key_counts_from_the_first_moment_of_the_prompt() -> None:
    """Opt-out 11 ms into the prompt still refuses (the safe direction), with barge-in."""
    flow = playing(Mode.OPT_OUT)

    actions = flow.handle(DigitReceived(START + 0.011, "1"))

    assert [("StopPrompt",), ("CancelTimer", "guard"),
            ("StoreDecision", "not_recorded_opted_out")] == summary(actions)
    assert flow.decision is not None
    key = flow.decision.keys[0]
    assert (KeyPhase.DURING_PROMPT, KeyEffect.OPT_OUT, True) == (key.phase, key.effect,
                                                                 key.counted)
    assert key.offset == pytest.approx(0.011, abs=1e-6)
    assert "caller pressed the opt-out key 1 0.011 s into the prompt" in flow.decision.reason


@pytest.mark.parametrize("after", [None, 4.0])
def test_opt_in_decline_key_counts_at_any_time_during_the_prompt(after: float | None) -> None:
    """The decline key refuses even before the accept point."""
    flow = playing(Mode.OPT_IN, accept_after(after))

    actions = flow.handle(DigitReceived(START + 0.011, "2"))

    assert ("StopPrompt",) == summary(actions)[0]
    assert flow.decision is not None
    assert Outcome.NOT_RECORDED_DECLINED == flow.decision.outcome
    assert [("2", KeyPhase.DURING_PROMPT, KeyEffect.DECLINE)] == effects(flow)


# -- the accept point ------------------------------------------------------------------------


def test_accept_key_during_the_prompt_is_too_early_by_default() -> None:
    """The demo's case: accept 11 ms into the prompt is not consent; it is kept as too_early."""
    flow = playing(Mode.OPT_IN)

    early = flow.handle(DigitReceived(START + 0.011, "1"))
    late = flow.handle(DigitReceived(START + 5.9, "1"))

    assert ([], [], State.PROMPTING, None) == (early, late, flow.state, flow.decision)
    assert 2 == len(flow._keys)
    assert all(k.effect is KeyEffect.TOO_EARLY for k in flow._keys)


def test_accept_key_after_the_prompt_ended_is_consent_and_keeps_the_early_one() -> None:
    """After PromptFinished the accept key records; the ledger shows the early press too."""
    flow = playing(Mode.OPT_IN)
    feed(flow, DigitReceived(START + 0.011, "1"), PromptFinished(START + 6))

    actions = flow.handle(DigitReceived(START + 7, "1"))

    assert [("CancelTimer", "input"), ("StoreDecision", "recorded_consented")] == summary(actions)
    assert [("1", KeyPhase.DURING_PROMPT, KeyEffect.TOO_EARLY),
            ("1", KeyPhase.AFTER_PROMPT, KeyEffect.CONSENT)] == effects(flow)
    assert flow.decision is not None
    assert [False, True] == [k.counted for k in flow.decision.keys]
    assert [START, START] == [k.prompt_started_at for k in flow.decision.keys]
    assert "caller pressed the accept key 1 after the prompt ended" in flow.decision.reason
    assert START + 6 == flow.decision.disclosure_finished_at


def test_accept_after_counts_from_the_configured_point_of_the_prompt() -> None:
    """With opt_in_accept_after=3: 2.9 s in is too early, 3.0 s in is consent with barge-in."""
    flow = playing(Mode.OPT_IN, accept_after(3.0))

    early = flow.handle(DigitReceived(START + 2.875, "1"))
    counted = flow.handle(DigitReceived(START + 3.125, "1"))

    assert [] == early
    assert [("StopPrompt",), ("CancelTimer", "guard"),
            ("StoreDecision", "recorded_consented")] == summary(counted)
    assert [("1", KeyPhase.DURING_PROMPT, KeyEffect.TOO_EARLY),
            ("1", KeyPhase.DURING_PROMPT, KeyEffect.CONSENT)] == effects(flow)
    assert flow.decision is not None
    assert "3.125 s into the prompt (counts from 3 s)" in flow.decision.reason
    assert None is flow.decision.disclosure_finished_at


def test_accept_after_zero_accepts_from_the_prompt_start_but_not_type_ahead() -> None:
    """opt_in_accept_after=0: the accept key counts from PromptStarted, never before it."""
    flow = new_flow(accept_after(0.0))
    feed(flow, CallOffered(T0, call(Mode.OPT_IN)), DigitReceived(T0 + 0.05, "1"),
         Answered(T0 + 0.1), PromptStarted(START))

    flow.handle(DigitReceived(START, "1"))

    assert [("1", KeyPhase.BEFORE_PROMPT, KeyEffect.TYPE_AHEAD),
            ("1", KeyPhase.DURING_PROMPT, KeyEffect.CONSENT)] == effects(flow)


def test_accept_point_is_measured_from_the_start_of_each_play() -> None:
    """A failed first language does not count toward the accept point of the next one."""
    flow = new_flow(settings(prompts=PromptSettings(opt_in_accept_after=3.0,
                                                    languages=("de", "en"))))
    feed(flow, CallOffered(T0, call(Mode.OPT_IN, language="de")), Answered(T0 + 0.1),
         PromptStarted(START), PromptFailed(START + 3.5, "missing"), PromptStarted(START + 4))

    early = flow.handle(DigitReceived(START + 5, "1"))
    counted = flow.handle(DigitReceived(START + 7, "1"))

    assert [] == early
    assert ("StoreDecision", "recorded_consented") in summary(counted)
    assert [START + 4, START + 4] == [k.prompt_started_at for k in flow._keys]


def test_accept_key_in_a_replay_counts_once_the_prompt_was_heard_to_its_end() -> None:
    """After one full play and an invalid key, the accept key counts during the replay."""
    flow = playing(Mode.OPT_IN)
    feed(flow, PromptFinished(START + 6), DigitReceived(START + 7, "5"))
    assert State.PROMPTING == flow.state

    actions = flow.handle(DigitReceived(START + 7.5, "1"))

    assert [("StopPrompt",), ("CancelTimer", "guard"),
            ("StoreDecision", "recorded_consented")] == summary(actions)
    assert [("5", KeyPhase.AFTER_PROMPT, KeyEffect.INVALID),
            ("1", KeyPhase.DURING_PROMPT, KeyEffect.CONSENT)] == effects(flow)
    assert flow.decision is not None
    assert "the prompt had played to its end before" in flow.decision.reason


def test_prompt_shorter_than_the_accept_point_informs_when_it_ends() -> None:
    """No key during a prompt that ends before its accept point: the end of it still informs."""
    flow = playing(Mode.OPT_IN, accept_after(30.0))
    feed(flow, PromptFinished(START + 6))

    flow.handle(DigitReceived(START + 7, "1"))

    assert flow.decision is not None
    assert Outcome.RECORDED_CONSENTED == flow.decision.outcome


# -- a prompt cut short by an early key (AGI escape digit) -----------------------------------


def test_prompt_cut_short_by_an_early_accept_key_plays_again() -> None:
    """AGI: the early accept key stopped STREAM FILE; the prompt replays, then consent counts."""
    flow = playing(Mode.OPT_IN, accept_after(3.0))

    feed(flow, DigitReceived(START + 1, "1"))
    replay = flow.handle(PromptFinished(START + 1))  # the AGI driver reports the stop
    assert [("CancelTimer", "guard"), ("PlayPrompt", "recorder/consent-opt-in", "en", "12"),
            ("StartTimer", "guard")] == summary(replay)
    feed(flow, PromptStarted(START + 1.1), PromptFinished(START + 7.1))
    assert State.AWAITING_INPUT == flow.state
    flow.handle(DigitReceived(START + 8, "1"))

    assert flow.decision is not None
    assert Outcome.RECORDED_CONSENTED == flow.decision.outcome
    assert [KeyEffect.TOO_EARLY, KeyEffect.CONSENT] == [k.effect for k in flow.decision.keys]


def test_prompt_cut_short_without_retries_left_is_not_consent() -> None:
    """max_retries=0: a prompt cut short before it named the accept key ends without consent."""
    flow = playing(Mode.OPT_IN, accept_after(3.0, max_retries=0))
    feed(flow, DigitReceived(START + 1, "1"))

    actions = flow.handle(PromptFinished(START + 1))

    assert [("CancelTimer", "guard"), ("StoreDecision", "not_recorded_no_consent")] == summary(
        actions
    )
    assert flow.decision is not None
    assert "cut short by the accept key before it named that key" in flow.decision.reason


def test_early_key_on_ari_does_not_replay_a_prompt_that_reached_its_accept_point() -> None:
    """ARI keeps playing after an early key: a finish past the accept point informs as usual."""
    flow = playing(Mode.OPT_IN, accept_after(3.0))
    feed(flow, DigitReceived(START + 1, "1"))

    actions = flow.handle(PromptFinished(START + 6))

    assert [("CancelTimer", "guard"), ("StartTimer", "input")] == summary(actions)


# -- settings --------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [-0.5, math.inf, math.nan, True, "3"])
def test_bad_accept_point_is_refused(bad: object) -> None:
    """opt_in_accept_after must be finite and >= 0, or None; ConsentFlow refuses anything else."""
    bad_settings = accept_after(bad)  # type: ignore[arg-type]

    problems = check_flow_settings(bad_settings)

    assert any("flow.prompts.opt_in_accept_after" in p for p in problems), problems
    with pytest.raises(FlowError, match="opt_in_accept_after"):
        ConsentFlow(bad_settings, engine())


@pytest.mark.parametrize("good", [None, 0, 0.0, 2.5, 600])
def test_good_accept_points_pass_the_check(good: float | None) -> None:
    """None, zero and positive finite numbers of seconds are accepted."""
    assert [] == check_flow_settings(accept_after(good))


def test_default_accept_point_is_the_end_of_the_prompt() -> None:
    """The shipped default is None: opt-in consent only after PromptFinished."""
    assert None is PromptSettings().opt_in_accept_after
