"""Inputs of the consent state machine.

This module owns the event types a driver (ARI controller, FastAGI session) feeds into
``ConsentFlow.handle``. Pure standard library; no I/O. Every event carries ``at``, the time it
happened in Unix epoch seconds, supplied by the driver: the flow never reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ActionFailed",
    "Answered",
    "CallInfo",
    "CallOffered",
    "CallerHungUp",
    "DecisionStoreFailed",
    "DecisionStored",
    "DigitReceived",
    "Event",
    "PromptFailed",
    "PromptFinished",
    "PromptStarted",
    "TimerExpired",
]


@dataclass(frozen=True, slots=True)
class CallInfo:
    """What the driver knows about a call when it is offered.

    Caller-controlled text (``caller_number``, ``caller_name``, ``called_number``) is kept as
    evidence only: it never reaches a file name, a MixMonitor argument or a command.

    Attributes:
        decision_id: a fresh UUID (string) chosen by the driver; the ledger's idempotency key.
        driver: ``ari`` or ``agi``.
        channel_id: the ARI channel id (AGI: ``agi_uniqueid``).
        channel_name: e.g. ``PJSIP/alice-00000001``.
        uniqueid: Asterisk's ``UNIQUEID``.
        linkedid: Asterisk's ``LINKEDID`` (ties the legs of a call together).
        asterisk_id: the Asterisk system name or entity id.
        instance_id: this controller instance.
        caller_number: caller id number as Asterisk gave it.
        caller_name: caller id name as Asterisk gave it.
        called_number: the dialled number (extension or DNID).
        language: the channel language, e.g. ``en`` or ``fr_CA``.
        policy_override: a mode name from ``RECORDER_POLICY`` or a Stasis/AGI argument.
        jurisdiction_override: a jurisdiction code from ``RECORDER_JURISDICTION``.
    """

    decision_id: str
    driver: str
    channel_id: str
    channel_name: str
    uniqueid: str
    linkedid: str
    asterisk_id: str
    instance_id: str
    caller_number: str
    caller_name: str
    called_number: str
    language: str
    policy_override: str | None = None
    jurisdiction_override: str | None = None


@dataclass(frozen=True, slots=True)
class CallOffered:
    """The call entered the consent flow (StasisStart, or an AGI session began)."""

    at: float
    call: CallInfo


@dataclass(frozen=True, slots=True)
class Answered:
    """The channel is answered (the ``Answer`` action succeeded, or it was already up)."""

    at: float


@dataclass(frozen=True, slots=True)
class PromptStarted:
    """The disclosure prompt started playing."""

    at: float


@dataclass(frozen=True, slots=True)
class PromptFinished:
    """The disclosure prompt played to its end, or was stopped at our request."""

    at: float


@dataclass(frozen=True, slots=True)
class PromptFailed:
    """The prompt could not be played (missing sound, playback failed)."""

    at: float
    reason: str


@dataclass(frozen=True, slots=True)
class DigitReceived:
    """The caller pressed a DTMF key (one of ``0-9 * # A-D``)."""

    at: float
    digit: str


@dataclass(frozen=True, slots=True)
class TimerExpired:
    """A timer started by a ``StartTimer`` action ran out."""

    at: float
    name: str


@dataclass(frozen=True, slots=True)
class CallerHungUp:
    """The caller hung up (or the channel is otherwise gone)."""

    at: float


@dataclass(frozen=True, slots=True)
class ActionFailed:
    """An action could not be carried out.

    Attributes:
        action: the action's class name, e.g. ``PlayPrompt``.
        reason: why, for the ledger's ``reason``.
        channel_gone: True when the failure means the channel no longer exists (ARI 404).
    """

    at: float
    action: str
    reason: str
    channel_gone: bool = False


@dataclass(frozen=True, slots=True)
class DecisionStored:
    """The ledger acknowledged the decision (committed, or fsynced to the spool)."""

    at: float
    decision_id: str
    spooled: bool = False


@dataclass(frozen=True, slots=True)
class DecisionStoreFailed:
    """The ledger could not acknowledge the decision at all."""

    at: float
    reason: str


Event = (
    CallOffered
    | Answered
    | PromptStarted
    | PromptFinished
    | PromptFailed
    | DigitReceived
    | TimerExpired
    | CallerHungUp
    | ActionFailed
    | DecisionStored
    | DecisionStoreFailed
)
"""Any input of the consent state machine."""
