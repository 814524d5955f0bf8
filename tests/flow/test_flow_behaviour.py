"""Consent flow behaviour: keys, retries, timeouts, languages, failures, the decision record."""

from __future__ import annotations

import math
import re
from dataclasses import replace

import pytest
from flowkit import (
    DECISION_ID,
    T0,
    call,
    engine,
    feed,
    flow_in,
    new_flow,
    settings,
    summary,
)

from asterisk_recorder.errors import FlowError
from asterisk_recorder.flow import ConsentFlow, State, check_flow_settings, language_chain
from asterisk_recorder.flow.actions import HandBack, PlayPrompt, SetVariables, StoreDecision
from asterisk_recorder.flow.decision import KeyEffect, KeyPhase, KeyPress, Outcome, PartyRecord
from asterisk_recorder.flow.events import (
    ActionFailed,
    Answered,
    CallerHungUp,
    CallOffered,
    DecisionStored,
    DecisionStoreFailed,
    DigitReceived,
    PromptFailed,
    PromptFinished,
    PromptStarted,
    TimerExpired,
)
from asterisk_recorder.flow.settings import PromptSettings, RecordingSettings
from asterisk_recorder.policy import Mode

FILE_RE = re.compile(
    r"^/var/spool/asterisk/monitor/recorder/\d{4}/\d{2}/\d{2}/"
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.wav$"
)


def variables(flow: ConsentFlow, actions: list[object]) -> dict[str, str]:
    """The RECORDER_* variables of the SetVariables action in ``actions``."""
    found = [a for a in actions if isinstance(a, SetVariables)]
    assert 1 == len(found)
    return dict(found[0].variables)


def offered_and_played(mode: Mode, **kw: object) -> ConsentFlow:
    """A flow whose disclosure has started (answered, prompt playing)."""
    flow = new_flow(settings(**kw)) if kw else new_flow()
    feed(flow, CallOffered(T0, call(mode)), Answered(T0 + 0.1), PromptStarted(T0 + 0.2))
    return flow


def test_opt_out_key_during_disclosure_skips_recording() -> None:
    """Barge-in: the opt-out key during the disclosure stops it and skips recording."""
    flow = offered_and_played(Mode.OPT_OUT)

    actions = flow.handle(DigitReceived(T0 + 3, "1"))
    after = flow.handle(DecisionStored(T0 + 3.1, DECISION_ID))

    assert [
        ("StopPrompt",), ("CancelTimer", "guard"), ("StoreDecision", "not_recorded_opted_out"),
    ] == summary(actions)
    assert {
        "RECORDER_DECISION": "skip", "RECORDER_OUTCOME": "not_recorded_opted_out",
        "RECORDER_DECISION_ID": DECISION_ID, "RECORDER_FILE": "", "RECORDER_MIXMON_OPTIONS": "",
        "RECORDER_MODE": "opt_out",
    } == variables(flow, after)
    assert isinstance(after[-1], HandBack)
    assert flow.done


def test_opt_out_silence_records_with_notice() -> None:
    """No key after the disclosure and the input timeout: recorded_notified, with a file."""
    flow = offered_and_played(Mode.OPT_OUT)

    feed(flow, PromptFinished(T0 + 8), TimerExpired(T0 + 13, "input"))
    out = variables(flow, flow.handle(DecisionStored(T0 + 13.1, DECISION_ID)))

    assert "record" == out["RECORDER_DECISION"]
    assert "recorded_notified" == out["RECORDER_OUTCOME"]
    assert FILE_RE.match(out["RECORDER_FILE"])
    assert "b" == out["RECORDER_MIXMON_OPTIONS"]


def test_prompt_escape_digits_are_the_keys_that_can_count_during_it() -> None:
    """PlayPrompt's AGI escape digits: refusal keys; the accept key only with an accept point.

    By default the accept key counts only after the prompt ended, so it must not cut it short.
    """
    escapes = {}
    for mode, after in ((Mode.OPT_OUT, None), (Mode.OPT_IN, None), (Mode.OPT_IN, 3.0),
                        (Mode.ANNOUNCE, None)):
        flow = new_flow(settings(prompts=PromptSettings(opt_in_accept_after=after)))
        actions = feed(flow, CallOffered(T0, call(mode)), Answered(T0 + 0.1))
        escapes[mode, after] = next(
            a for a in actions if isinstance(a, PlayPrompt)
        ).escape_digits

    assert {(Mode.OPT_OUT, None): "1", (Mode.OPT_IN, None): "2", (Mode.OPT_IN, 3.0): "12",
            (Mode.ANNOUNCE, None): ""} == escapes


def test_keys_are_configurable_per_mode() -> None:
    """A configured opt-out key of ``#`` refuses; ``1`` then is just an invalid key."""
    flow = offered_and_played(Mode.OPT_OUT, opt_out_key="#")
    feed(flow, PromptFinished(T0 + 8))

    first = flow.handle(DigitReceived(T0 + 9, "1"))
    second = flow.handle(DigitReceived(T0 + 10, "#"))

    assert ("PlayPrompt", "recorder/consent-opt-out", "en", "#") in summary(first)
    assert [("StopPrompt",), ("CancelTimer", "guard"),
            ("StoreDecision", "not_recorded_opted_out")] == summary(second)


def test_invalid_key_during_disclosure_is_kept_but_does_not_interrupt() -> None:
    """A key that is not valid for the mode is kept as evidence; the prompt keeps playing."""
    flow = offered_and_played(Mode.OPT_OUT)

    actions = flow.handle(DigitReceived(T0 + 2, "7"))

    assert ([], State.PROMPTING) == (actions, flow.state)
    feed(flow, PromptFinished(T0 + 8), TimerExpired(T0 + 13, "input"))
    assert flow.decision is not None
    assert (
        KeyPress("7", T0 + 2, T0 + 0.2, KeyPhase.DURING_PROMPT, KeyEffect.NO_EFFECT),
    ) == flow.decision.keys


def test_invalid_keys_reprompt_up_to_max_retries_then_opt_out_records() -> None:
    """Invalid keys after an opt-out disclosure re-play it max_retries times, then it records."""
    flow = offered_and_played(Mode.OPT_OUT, max_retries=2)
    plays = 0
    t = T0 + 8
    for _ in range(3):
        feed(flow, PromptFinished(t))
        actions = flow.handle(DigitReceived(t + 1, "9"))
        plays += sum(isinstance(a, PlayPrompt) for a in actions)
        t += 10

    assert 2 == plays
    assert flow.decision is not None
    assert Outcome.RECORDED_NOTIFIED == flow.decision.outcome
    assert "no retries left (2)" in flow.decision.reason


def test_opt_in_accept_key_records_with_consent() -> None:
    """Opt-in: the accept key records (recorded_consented)."""
    flow = offered_and_played(Mode.OPT_IN)
    feed(flow, PromptFinished(T0 + 8))

    actions = flow.handle(DigitReceived(T0 + 9, "1"))

    assert [("CancelTimer", "input"), ("StoreDecision", "recorded_consented")] == summary(actions)
    assert flow.decision is not None
    assert flow.decision.record


def test_opt_in_decline_key_does_not_record() -> None:
    """Opt-in: the decline key refuses (not_recorded_declined)."""
    flow = offered_and_played(Mode.OPT_IN)

    flow.handle(DigitReceived(T0 + 2, "2"))

    assert flow.decision is not None
    assert Outcome.NOT_RECORDED_DECLINED == flow.decision.outcome


def test_opt_in_silence_reprompts_then_gives_up_without_consent() -> None:
    """Opt-in: each timeout re-plays the prompt until max_retries, then no consent."""
    flow = offered_and_played(Mode.OPT_IN, max_retries=1)
    feed(flow, PromptFinished(T0 + 8))

    first = flow.handle(TimerExpired(T0 + 13, "input"))
    feed(flow, PromptFinished(T0 + 20))
    second = flow.handle(TimerExpired(T0 + 25, "input"))

    assert [("PlayPrompt", "recorder/consent-opt-in", "en", "2"),
            ("StartTimer", "guard")] == summary(first)
    assert [("StoreDecision", "not_recorded_no_consent")] == summary(second)


def test_opt_in_invalid_keys_end_without_consent() -> None:
    """Opt-in with max_retries=0: one invalid key means no consent."""
    flow = offered_and_played(Mode.OPT_IN, max_retries=0)
    feed(flow, PromptFinished(T0 + 8))

    flow.handle(DigitReceived(T0 + 9, "5"))

    assert flow.decision is not None
    assert Outcome.NOT_RECORDED_NO_CONSENT == flow.decision.outcome


def test_opt_in_accept_key_before_the_disclosure_is_not_consent() -> None:
    """The accept key pressed while answering is kept but is not consent."""
    flow = new_flow()
    feed(flow, CallOffered(T0, call(Mode.OPT_IN)), DigitReceived(T0 + 0.05, "1"))

    assert State.ANSWERING == flow.state
    assert flow.decision is None


def test_announce_records_after_the_disclosure_without_waiting() -> None:
    """Announce: the disclosure ends and the call is recorded_notified at once."""
    flow = offered_and_played(Mode.ANNOUNCE)

    ignored = flow.handle(DigitReceived(T0 + 1, "1"))
    actions = flow.handle(PromptFinished(T0 + 6))

    assert [] == ignored
    assert [("CancelTimer", "guard"), ("StoreDecision", "recorded_notified")] == summary(actions)


def test_never_skips_the_prompt_and_does_not_record() -> None:
    """Never: no answer, no prompt, not_recorded_policy straight away."""
    flow = new_flow()

    actions = flow.handle(CallOffered(T0, call(Mode.NEVER)))

    assert [("StoreDecision", "not_recorded_policy")] == summary(actions)
    assert flow.decision is not None
    assert flow.decision.prompt_id is None


def test_none_records_without_notice_and_without_prompt() -> None:
    """None: recorded_no_notice with no answer and no prompt."""
    flow = new_flow()

    actions = flow.handle(CallOffered(T0, call(Mode.NONE)))

    assert [("StoreDecision", "recorded_no_notice")] == summary(actions)


def test_never_plays_its_prompt_when_configured() -> None:
    """With play_prompt_for_never and a sound, never plays it, then does not record."""
    prompts = PromptSettings(never="recorder/not-recorded")
    flow = new_flow(settings(play_prompt_for_never=True, prompts=prompts))

    actions = feed(flow, CallOffered(T0, call(Mode.NEVER)), Answered(T0 + 0.1))
    end = flow.handle(PromptFinished(T0 + 3))

    assert ("PlayPrompt", "recorder/not-recorded", "en", "") in summary(actions)
    assert [("CancelTimer", "guard"), ("StoreDecision", "not_recorded_policy")] == summary(end)


def test_none_plays_its_prompt_when_configured() -> None:
    """With play_prompt_for_none and a sound, none plays it, then records."""
    prompts = PromptSettings(none="recorder/none")
    flow = new_flow(settings(play_prompt_for_none=True, prompts=prompts))

    feed(flow, CallOffered(T0, call(Mode.NONE)), Answered(T0 + 0.1))
    end = flow.handle(PromptFinished(T0 + 3))

    assert ("StoreDecision", "recorded_no_notice") in summary(end)


def test_without_answer_channel_the_prompt_plays_at_once() -> None:
    """answer_channel off: no Answer action, the prompt starts on CallOffered."""
    flow = new_flow(settings(answer_channel=False))

    actions = flow.handle(CallOffered(T0, call(Mode.OPT_OUT)))

    assert [("PlayPrompt", "recorder/consent-opt-out", "en", "1"),
            ("StartTimer", "guard")] == summary(actions)


def test_language_chain_falls_back_from_region_to_language_to_default() -> None:
    """fr_CA -> fr -> en, limited to the configured languages."""
    assert ("fr_CA", "fr", "en") == language_chain("fr_CA", ("en", "fr", "fr_CA"), "en")
    assert ("fr", "en") == language_chain("fr_CA", ("en", "fr"), "en")
    assert ("en",) == language_chain("de_DE", ("en", "fr"), "en")
    assert ("en",) == language_chain("", ("en",), "en")


@pytest.mark.parametrize(
    "language", ["../../etc", "en,evil", "${LANG}", "fr\nEXEC", "fr\x00", "x" * 10_000]
)
def test_channel_language_text_never_reaches_a_prompt(language: str) -> None:
    """Only configured languages are ever played, whatever the channel says."""
    flow = new_flow(settings(prompts=PromptSettings(languages=("en", "fr"))))

    actions = feed(flow, CallOffered(T0, call(Mode.OPT_OUT, language=language)),
                   Answered(T0 + 0.1))

    plays = [a for a in actions if isinstance(a, PlayPrompt)]
    assert ["en"] == [p.language for p in plays]


def test_channel_language_is_trimmed_of_whitespace() -> None:
    """``fr`` with a stray newline still selects the configured ``fr`` sounds."""
    assert ("fr", "en") == language_chain(" fr\n", ("en", "fr"), "en")


def test_prompt_failure_tries_the_next_language_then_fails_closed() -> None:
    """PromptFailed walks the chain fr_CA -> fr -> en, then fails closed with a reason."""
    langs = PromptSettings(languages=("en", "fr", "fr_CA"))
    flow = new_flow(settings(prompts=langs))
    feed(flow, CallOffered(T0, call(Mode.OPT_OUT, language="fr_CA")), Answered(T0 + 0.1))

    second = flow.handle(PromptFailed(T0 + 0.2, "no such file"))
    third = flow.handle(ActionFailed(T0 + 0.3, "PlayPrompt", "500"))
    last = flow.handle(PromptFailed(T0 + 0.4, "no such file"))

    assert ("PlayPrompt", "recorder/consent-opt-out", "fr", "1") in summary(second)
    assert ("PlayPrompt", "recorder/consent-opt-out", "en", "1") in summary(third)
    assert [("CancelTimer", "guard"), ("StoreDecision", "failed")] == summary(last)
    assert flow.decision is not None
    assert not flow.decision.record
    assert "could not be played (fr_CA, fr, en): no such file" in flow.decision.reason


def test_prompt_guard_timer_fails_closed() -> None:
    """A prompt that never reports its end is stopped when the guard runs out: failed."""
    flow = offered_and_played(Mode.OPT_OUT, guard_timeout=30.0)

    actions = flow.handle(TimerExpired(T0 + 30.1, "guard"))

    assert [("StopPrompt",), ("StoreDecision", "failed")] == summary(actions)
    assert flow.decision is not None
    assert "prompt did not finish within 30s; mode forced by RECORDER_POLICY" == (
        flow.decision.reason
    )


def test_stale_input_timer_during_the_prompt_is_ignored() -> None:
    """An input-timer expiry while the prompt plays changes nothing."""
    flow = offered_and_played(Mode.OPT_OUT)

    assert [] == flow.handle(TimerExpired(T0 + 5, "input"))
    assert State.PROMPTING == flow.state


@pytest.mark.parametrize(
    "gone", [CallerHungUp(T0 + 4), ActionFailed(T0 + 4, "PlayPrompt", "404", channel_gone=True)]
)
def test_hangup_before_the_decision_stores_abandoned_without_hand_back(gone: object) -> None:
    """Hang-up (or channel gone) mid-disclosure: abandoned is stored, nothing handed back."""
    flow = offered_and_played(Mode.OPT_OUT)

    first = flow.handle(gone)  # type: ignore[arg-type]
    second = flow.handle(DecisionStored(T0 + 4.1, DECISION_ID))

    assert [("CancelTimer", "guard"), ("StoreDecision", "abandoned")] == summary(first)
    assert ([], State.ENDED) == (second, flow.state)


def test_hangup_while_storing_suppresses_the_hand_back() -> None:
    """The caller hangs up after the decision: stored as decided, no SetVariables/HandBack."""
    flow = flow_in(State.STORING)

    feed(flow, CallerHungUp(T0 + 14))
    after = flow.handle(DecisionStored(T0 + 14.1, DECISION_ID))

    assert [] == after
    assert State.ENDED == flow.state


def test_store_failure_hands_back_without_recording() -> None:
    """DecisionStoreFailed: hand back with skip and outcome failed; no file."""
    flow = flow_in(State.STORING)

    out = variables(flow, flow.handle(DecisionStoreFailed(T0 + 14, "spool full")))

    assert ("skip", "failed", "", "") == (
        out["RECORDER_DECISION"], out["RECORDER_OUTCOME"], out["RECORDER_FILE"],
        out["RECORDER_MIXMON_OPTIONS"],
    )
    assert DECISION_ID == out["RECORDER_DECISION_ID"]
    assert flow.decision is not None
    assert Outcome.RECORDED_NOTIFIED == flow.decision.outcome


def test_stored_ack_for_another_decision_is_ignored() -> None:
    """DecisionStored with a different id does not hand back."""
    flow = flow_in(State.STORING)

    actions = flow.handle(DecisionStored(T0 + 14, "00000000-0000-4000-8000-000000000000"))

    assert ([], State.STORING, 1) == (actions, flow.state, flow.ignored)


def test_decision_records_parties_policy_prompt_keys_and_times() -> None:
    """The decision holds everything the ledger keeps about the call."""
    flow = new_flow(site="US-NY")
    feed(
        flow,
        CallOffered(T0, call(None, caller="+14105550100", called="+12125550100")),
        Answered(T0 + 0.5),
        PromptStarted(T0 + 0.6),
        DigitReceived(T0 + 2.0, "5"),
        PromptFinished(T0 + 8.0),
        TimerExpired(T0 + 13.0, "input"),
    )
    d = flow.decision

    assert d is not None
    assert Mode.OPT_OUT == d.mode
    assert (
        PartyRecord("caller", "+14105550100", "US-MD", "US-MD", Mode.OPT_OUT),
        PartyRecord("called", "+12125550100", "US-NY", "US", Mode.ANNOUNCE),
        PartyRecord("site", "", "US-NY", "US", Mode.ANNOUNCE),
    ) == d.parties
    assert ("US-MD", "US") == d.policy_rows
    assert engine().version == d.policy_version
    assert ("recorder/consent-opt-out", "en") == (d.prompt_id, d.language)
    assert (
        KeyPress("5", T0 + 2.0, T0 + 0.6, KeyPhase.DURING_PROMPT, KeyEffect.NO_EFFECT),
    ) == d.keys
    assert (T0, T0 + 0.5, T0 + 0.6, T0 + 8.0, T0 + 13.0) == (
        d.offered_at, d.answered_at, d.disclosure_started_at, d.disclosure_finished_at,
        d.decided_at,
    )
    assert f"/var/spool/asterisk/monitor/recorder/2026/11/18/{DECISION_ID}.wav" == (
        d.recording_path
    )
    assert ("ari", "PJSIP/alice-00000001", "Alice") == (d.driver, d.channel_name, d.caller_name)


def test_connecticut_party_adds_a_periodic_beep_to_the_options() -> None:
    """A Connecticut caller adds B(15); start_beep adds p."""
    flow = new_flow(settings(recording=RecordingSettings(start_beep=True)))
    feed(flow, CallOffered(T0, call(None, caller="+18605550100")), Answered(T0 + 0.1),
         PromptFinished(T0 + 5), TimerExpired(T0 + 10, "input"))

    out = variables(flow, flow.handle(DecisionStored(T0 + 10.1, DECISION_ID)))

    assert "bpB(15)" == out["RECORDER_MIXMON_OPTIONS"]


def test_non_uuid_decision_id_is_driver_misuse() -> None:
    """CallOffered with a decision id that is not a UUID raises FlowError; the flow stays NEW."""
    flow = new_flow()

    with pytest.raises(FlowError, match="not a canonical lowercase UUID"):
        flow.handle(CallOffered(T0, call(decision_id="../../etc/passwd")))

    assert State.NEW == flow.state


def test_events_after_the_end_are_ignored_without_error() -> None:
    """A done flow ignores everything, including a second CallOffered."""
    flow = flow_in(State.HANDED_BACK)

    actions = feed(flow, CallerHungUp(T0 + 20), CallOffered(T0 + 21, call()),
                   DecisionStored(T0 + 22, DECISION_ID), DigitReceived(T0 + 23, "1"))

    assert ([], State.HANDED_BACK, 4) == (actions, flow.state, flow.ignored)


def test_non_dtmf_digit_is_ignored() -> None:
    """A digit value that is not a DTMF key is counted as ignored and not kept."""
    flow = offered_and_played(Mode.OPT_OUT)

    actions = feed(flow, DigitReceived(T0 + 1, "11"), DigitReceived(T0 + 1, "x"),
                   DigitReceived(T0 + 1, ""))

    assert ([], 3, State.PROMPTING) == (actions, flow.ignored, flow.state)


def test_non_finite_decision_time_fails_closed() -> None:
    """A NaN time at the decision cannot date a file: failed, not recorded, no exception."""
    flow = flow_in(State.AWAITING_INPUT)

    flow.handle(TimerExpired(math.nan, "input"))

    assert flow.decision is not None
    assert Outcome.FAILED == flow.decision.outcome
    assert "recording path not built" in flow.decision.reason
    assert () == flow.errors


def test_store_decision_comes_before_set_variables_and_hand_back() -> None:
    """Order of a whole call: StoreDecision, then (after the ack) SetVariables and HandBack."""
    flow = new_flow()
    actions = feed(flow, CallOffered(T0, call()), Answered(T0 + 0.1), PromptFinished(T0 + 5),
                   TimerExpired(T0 + 10, "input"), DecisionStored(T0 + 10.1, DECISION_ID))

    kinds = [type(a) for a in actions]
    assert kinds.index(StoreDecision) < kinds.index(SetVariables) < kinds.index(HandBack)
    assert HandBack is kinds[-1]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"opt_out_key": "11"}, "flow.opt_out_key '11' must be one DTMF key"),
        ({"opt_in_accept_key": "2"}, "must differ"),
        ({"input_timeout": 0}, "flow.input_timeout 0 must be a number of seconds"),
        ({"guard_timeout": math.inf}, "flow.guard_timeout inf"),
        ({"max_retries": -1}, "flow.max_retries -1 must be an integer 0..10"),
        ({"prompts": PromptSettings(opt_out="")}, "flow.prompts.opt_out must name a sound"),
        ({"prompts": PromptSettings(opt_in="../x")}, "flow.prompts.opt_in '../x'"),
        ({"prompts": PromptSettings(languages=("en,fr",))}, "'en,fr' is not a language code"),
        ({"recording": RecordingSettings(directory="rel/dir")}, "must be an absolute path"),
        ({"recording": RecordingSettings(mixmonitor_options="b,x")}, "mixmonitor_options"),
    ],
)
def test_invalid_flow_settings_are_refused(change: dict[str, object], expected: str) -> None:
    """check_flow_settings names each problem; ConsentFlow refuses such settings."""
    bad = settings(**change)

    assert any(expected in p for p in check_flow_settings(bad)), check_flow_settings(bad)
    with pytest.raises(FlowError, match="invalid flow settings"):
        ConsentFlow(bad, engine())


def test_default_flow_settings_are_valid() -> None:
    """The shipped defaults pass the check."""
    assert [] == check_flow_settings(settings())


def test_decision_field_order_used_by_the_machine_matches_the_dataclass() -> None:
    """The machine builds ConsentDecision positionally; its field list must match exactly."""
    from dataclasses import fields

    from asterisk_recorder.flow.decision import ConsentDecision
    from asterisk_recorder.flow.machine import _DECISION_FIELDS

    assert tuple(f.name for f in fields(ConsentDecision)) == _DECISION_FIELDS


def test_recording_outcomes_match_outcome_records() -> None:
    """The machine's fast tuple of recording outcomes agrees with ``Outcome.records``."""
    from asterisk_recorder.flow.machine import _RECORDING

    assert {o for o in Outcome if o.records} == set(_RECORDING)


def test_ignored_overrides_are_recorded_in_the_decision_reason() -> None:
    """A bad RECORDER_POLICY value is ignored and the decision's reason says so."""
    flow = new_flow()
    info = replace(call(None, caller="+14155550100"), policy_override="sometimes")

    feed(flow, CallOffered(T0, info), Answered(T0 + 0.1), PromptFinished(T0 + 5),
         TimerExpired(T0 + 10, "input"))

    assert flow.decision is not None
    assert (
        "disclosure played, no opt-out key (timeout); RECORDER_POLICY 'sometimes' ignored: "
        "not one of never, opt_in, opt_out, announce, none"
    ) == flow.decision.reason


@pytest.mark.parametrize("state", [State.ANSWERING, State.PROMPTING, State.AWAITING_INPUT])
def test_driver_abort_before_the_decision_fails_closed(state: State) -> None:
    """An ActionFailed the flow does not expect (a driver's Abort on shutdown) fails closed."""
    flow = flow_in(state)

    actions = flow.handle(ActionFailed(T0 + 30, "Abort", "shutting down"))

    assert ("StoreDecision", "failed") == summary(actions)[-1]
    assert (state is State.PROMPTING) == (("StopPrompt",) in summary(actions))
    assert flow.decision is not None
    assert flow.decision.reason.startswith("Abort failed: shutting down")


@pytest.mark.parametrize("action", ["StopPrompt", "CancelTimer"])
def test_harmless_action_failures_are_ignored(action: str) -> None:
    """A failed StopPrompt or CancelTimer changes nothing."""
    flow = flow_in(State.AWAITING_INPUT)

    assert [] == flow.handle(ActionFailed(T0 + 9, action, "already gone"))
    assert (State.AWAITING_INPUT, 1) == (flow.state, flow.ignored)


def test_an_object_that_is_not_an_event_is_ignored() -> None:
    """Handing the flow something that is not one of its events is ignored, not an error."""
    flow = flow_in(State.PROMPTING)

    actions = flow.handle("garbage")  # type: ignore[arg-type]

    assert ([], State.PROMPTING, 1, ()) == (actions, flow.state, flow.ignored, flow.errors)
