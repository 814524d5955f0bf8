"""The pause book: pausing and resuming a running recording, the payment rules and the watchdog."""

from __future__ import annotations

import pytest

from asterisk_recorder.errors import FlowError
from asterisk_recorder.flow.facts import LedgerFact
from asterisk_recorder.flow.pause import (
    TRANSITIONS,
    Alert,
    ContextEntered,
    Mute,
    MuteDone,
    MuteFailed,
    PauseBook,
    PauseRequested,
    PauseRules,
    PauseState,
    QueueJoined,
    QueueLeft,
    RecordingClosed,
    RecordingStarted,
    Refuse,
    Restored,
    ResumeRequested,
    Tick,
    WriteFact,
)

DECISION = "0b3c4a52-2f0e-4d4e-9d7c-3b1f2a6e7c01"
RULES = PauseRules(max_pause=180.0, payment_contexts=("payment-ivr",),
                   payment_queues=("payments",), retry_every=5.0)


def started(book: PauseBook, at: float = 1000.0) -> None:
    assert book.handle(RecordingStarted(at, DECISION, "PJSIP/alice-00000001", "1700.1",
                                        "1700.1", "0x7f01", "/rec/a.wav")) == []


def paused(book: PauseBook, at: float, source: str = "api") -> WriteFact:
    actions = book.handle(PauseRequested(at, source, "agent:7", "card payment",
                                         decision_id=DECISION))
    assert actions == [Mute(DECISION, "PJSIP/alice-00000001", "0x7f01", True)]
    (fact,) = book.handle(MuteDone(at + 0.01, DECISION, True))
    assert isinstance(fact, WriteFact)
    return fact


def as_fact(action: WriteFact) -> LedgerFact:
    return LedgerFact(action.kind, action.decision_id, action.at, action.actor,
                      dict(action.payload), fact_id=action.fact_id)


def test_pause_mutes_then_writes_the_fact_with_offset_actor_and_reason() -> None:
    """A pause mutes first; only the confirmed mute becomes recording.paused (offset from start)."""
    book = PauseBook(RULES)
    started(book)
    fact = paused(book, 1012.5)
    payload = dict(fact.payload)
    assert fact.kind == "recording.paused"
    assert payload["offset_s"] == 12.51
    assert (payload["source"], payload["reason"], fact.actor) == ("api", "card payment",
                                                                   "agent:7")
    as_fact(fact)  # the ledger's own check accepts it
    assert book.view(DECISION) is not None
    assert book.view(DECISION).state is PauseState.PAUSED  # type: ignore[union-attr]


def test_resume_unmutes_and_links_the_resumed_fact_to_its_pause() -> None:
    """A resume writes recording.resumed naming the pause it ends and how long it lasted."""
    book = PauseBook(RULES)
    started(book)
    pause = paused(book, 1010.0)
    assert book.handle(ResumeRequested(1015.0, "feature", "agent:7", "done",
                                       decision_id=DECISION)) == [
        Mute(DECISION, "PJSIP/alice-00000001", "0x7f01", False)]
    (fact,) = book.handle(MuteDone(1015.0, DECISION, False))
    assert isinstance(fact, WriteFact)
    payload = dict(fact.payload)
    assert payload["pause_fact_id"] == pause.fact_id
    assert payload["paused_s"] == pytest.approx(4.99)
    assert payload["offset_s"] == 15.0
    as_fact(fact)
    assert book.view(DECISION).state is PauseState.RECORDING  # type: ignore[union-attr]


def test_a_second_pause_does_not_extend_the_first() -> None:
    """Pausing while paused changes nothing: the watchdog still counts from the first pause."""
    book = PauseBook(RULES)
    started(book)
    paused(book, 1000.0)
    assert book.handle(PauseRequested(1100.0, "api", "agent:7", "again",
                                      decision_id=DECISION)) == []
    actions = book.handle(Tick(1180.5))
    assert isinstance(actions[0], Alert)
    assert actions[0].kind == "pause_overdue"
    assert isinstance(actions[1], Mute)
    assert actions[1].mute is False


def test_watchdog_resumes_an_overdue_pause_and_alerts() -> None:
    """A pause longer than max_pause is resumed by the watchdog, with an alert and a fact."""
    book = PauseBook(RULES)
    started(book)
    paused(book, 1000.0)
    assert book.handle(Tick(1179.0)) == []
    alert, mute = book.handle(Tick(1181.0))
    assert isinstance(alert, Alert)
    assert "resumed by the watchdog" in alert.message
    assert isinstance(mute, Mute)
    (fact,) = book.handle(MuteDone(1181.0, DECISION, False))
    assert isinstance(fact, WriteFact)
    assert dict(fact.payload)["source"] == "watchdog"


def test_payment_context_pauses_and_leaving_it_resumes() -> None:
    """Entering a payment context pauses automatically; leaving it resumes automatically."""
    book = PauseBook(RULES)
    started(book)
    assert book.handle(ContextEntered(1005.0, "1700.1", "default")) == []
    (mute,) = book.handle(ContextEntered(1010.0, "1700.1", "payment-ivr"))
    assert isinstance(mute, Mute)
    assert mute.mute
    (fact,) = book.handle(MuteDone(1010.0, DECISION, True))
    assert isinstance(fact, WriteFact)
    assert dict(fact.payload)["source"] == "context"
    assert dict(fact.payload)["payment"] == "context:payment-ivr"
    assert book.handle(ContextEntered(1012.0, "1700.1", "payment-ivr")) == []
    (mute,) = book.handle(ContextEntered(1030.0, "1700.1", "agents"))
    assert isinstance(mute, Mute)
    assert not mute.mute


def test_resume_is_refused_while_in_the_payment_context() -> None:
    """An agent's resume during the payment IVR is refused (409), the recording stays paused."""
    book = PauseBook(RULES)
    started(book)
    book.handle(ContextEntered(1010.0, "1700.1", "payment-ivr"))
    book.handle(MuteDone(1010.0, DECISION, True))
    (refusal,) = book.handle(ResumeRequested(1020.0, "api", "agent:7", "done",
                                             decision_id=DECISION))
    assert isinstance(refusal, Refuse)
    assert refusal.status == 409
    assert "payment-ivr" in refusal.message
    assert book.view(DECISION).state is PauseState.PAUSED  # type: ignore[union-attr]


def test_overdue_in_payment_alerts_once_and_resumes_on_leaving() -> None:
    """Past max_pause inside the payment queue: one alert, kept paused, resumed on leaving."""
    book = PauseBook(RULES)
    started(book)
    book.handle(QueueJoined(1000.0, "1700.1", "payments"))
    book.handle(MuteDone(1000.0, DECISION, True))
    (alert,) = book.handle(Tick(1200.0))
    assert isinstance(alert, Alert)
    assert alert.kind == "pause_overdue_in_payment"
    assert book.handle(Tick(1300.0)) == []
    (mute,) = book.handle(QueueLeft(1310.0, "1700.1", "payments"))
    assert isinstance(mute, Mute)
    assert not mute.mute


def test_a_manual_pause_survives_a_pass_through_the_payment_context() -> None:
    """A pause the agent made is not ended by the channel leaving the payment IVR."""
    book = PauseBook(RULES)
    started(book)
    paused(book, 1000.0, source="feature")
    assert book.handle(ContextEntered(1001.0, "1700.1", "payment-ivr")) == []
    assert book.handle(ContextEntered(1050.0, "1700.1", "agents")) == []
    assert book.view(DECISION).state is PauseState.PAUSED  # type: ignore[union-attr]


def test_pause_for_an_unknown_call_is_refused_with_an_alert() -> None:
    """Nothing is known of the call: 404 and an alert (card data may be recorded)."""
    book = PauseBook(RULES)
    alert, refusal = book.handle(PauseRequested(1.0, "feature", "agent", "x", linkedid="99.1"))
    assert isinstance(alert, Alert)
    assert "card data may be recorded" in alert.message
    assert isinstance(refusal, Refuse)
    assert refusal.status == 404


def test_feature_code_on_the_agent_leg_finds_the_call_by_linkedid() -> None:
    """The agent's channel shares the call's linkedid: its feature code pauses the recording."""
    book = PauseBook(RULES)
    started(book)
    (mute,) = book.handle(PauseRequested(1003.0, "feature", "agent:PJSIP/bob", "feature code",
                                         linkedid="1700.1"))
    assert isinstance(mute, Mute)
    assert mute.decision_id == DECISION


def test_failed_pause_alerts_and_keeps_recording() -> None:
    """AMI refused the mute: an alert, a 503, and the recording is still recording."""
    book = PauseBook(RULES)
    started(book)
    book.handle(PauseRequested(1001.0, "api", "a", "r", decision_id=DECISION))
    alert, refusal = book.handle(MuteFailed(1001.0, DECISION, True, "AMI unavailable"))
    assert isinstance(alert, Alert)
    assert alert.kind == "pause_failed"
    assert isinstance(refusal, Refuse)
    assert refusal.status == 503
    assert book.view(DECISION).state is PauseState.RECORDING  # type: ignore[union-attr]


def test_failed_resume_is_retried_by_the_watchdog() -> None:
    """A resume that failed alerts and is tried again after retry_every."""
    book = PauseBook(RULES)
    started(book)
    paused(book, 1000.0)
    book.handle(ResumeRequested(1010.0, "api", "a", "r", decision_id=DECISION))
    actions = book.handle(MuteFailed(1010.0, DECISION, False, "AMI unavailable"))
    assert any(isinstance(a, Alert) and a.kind == "resume_failed" for a in actions)
    assert book.handle(Tick(1012.0)) == []
    (mute,) = book.handle(Tick(1015.5))
    assert isinstance(mute, Mute)
    assert not mute.mute


def test_a_pause_open_at_hangup_is_closed_in_the_ledger() -> None:
    """The recording ends while paused: recording.resumed with source close; the book forgets it."""
    book = PauseBook(RULES)
    started(book)
    pause = paused(book, 1000.0)
    (fact,) = book.handle(RecordingClosed(1020.0, uniqueid="1700.1"))
    assert isinstance(fact, WriteFact)
    assert fact.kind == "recording.resumed"
    assert dict(fact.payload)["source"] == "close"
    assert dict(fact.payload)["pause_fact_id"] == pause.fact_id
    assert book.view(DECISION) is None


def test_restored_pause_keeps_its_watchdog() -> None:
    """A pause taken up after a restart is resumed by the watchdog on time."""
    book = PauseBook(RULES)
    restored = Restored(1100.0, DECISION, "PJSIP/alice-00000001", "1700.1", "1700.1",
                        "0x7f01", 1000.0, 1005.0, "api", "agent:7", "card",
                        "4d1c2b9e-0000-4000-8000-000000000001")
    assert book.handle(restored) == []
    alert, mute = book.handle(Tick(1186.0))
    assert isinstance(alert, Alert)
    assert isinstance(mute, Mute)
    (fact,) = book.handle(MuteDone(1186.0, DECISION, False))
    assert isinstance(fact, WriteFact)
    assert dict(fact.payload)["pause_fact_id"] == "4d1c2b9e-0000-4000-8000-000000000001"
    assert dict(fact.payload)["offset_s"] == 186.0


def test_entering_payment_while_a_resume_is_under_way_pauses_again() -> None:
    """The unmute lands after the channel entered the payment IVR: it is muted again at once."""
    book = PauseBook(RULES)
    started(book)
    paused(book, 1000.0)
    book.handle(ResumeRequested(1010.0, "api", "a", "r", decision_id=DECISION))
    assert book.handle(ContextEntered(1010.1, "1700.1", "payment-ivr")) == []
    fact, mute = book.handle(MuteDone(1010.2, DECISION, False))
    assert isinstance(fact, WriteFact)
    assert isinstance(mute, Mute)
    assert mute.mute


def test_events_that_make_no_sense_are_ignored_and_counted() -> None:
    """A stale MuteDone or events for unknown channels never raise; they are counted."""
    book = PauseBook(RULES)
    started(book)
    assert book.handle(MuteDone(1.0, DECISION, True)) == []
    assert book.handle(ContextEntered(1.0, "nobody", "payment-ivr")) == []
    assert book.handle(RecordingClosed(1.0, decision_id="other")) == []
    assert book.ignored == 3


def test_rules_refuse_a_non_positive_max_pause() -> None:
    """PauseRules(max_pause=0) is a FlowError."""
    with pytest.raises(FlowError, match="max_pause"):
        PauseRules(max_pause=0)


def test_the_table_has_no_rows_for_closed_recordings() -> None:
    """CLOSED is terminal: the table holds no transition out of it."""
    assert not [key for key in TRANSITIONS if key[0] is PauseState.CLOSED]
