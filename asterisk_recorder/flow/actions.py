"""Outputs of the consent state machine: what the driver must do next.

This module owns the action types ``ConsentFlow.handle`` returns. Pure standard library; no I/O.
A driver carries out the actions in order and reports the results back as events.
"""

from __future__ import annotations

from dataclasses import dataclass

from asterisk_recorder.flow.decision import ConsentDecision

__all__ = [
    "Action",
    "Answer",
    "CancelTimer",
    "HandBack",
    "PlayPrompt",
    "SetVariables",
    "StartTimer",
    "StopPrompt",
    "StoreDecision",
]


@dataclass(frozen=True, slots=True)
class Answer:
    """Answer the channel; report ``Answered`` (or ``ActionFailed``)."""


@dataclass(frozen=True, slots=True)
class PlayPrompt:
    """Play a disclosure prompt.

    Attributes:
        sound: an Asterisk sound id without extension, e.g. ``recorder/opt-out``.
        language: the language to play it in, already resolved through the fallback chain.
        escape_digits: digits that interrupt the prompt (AGI ``STREAM FILE``); ARI stops it on
            any digit via ``StopPrompt``.
    """

    sound: str
    language: str
    escape_digits: str = ""


@dataclass(frozen=True, slots=True)
class StopPrompt:
    """Stop the prompt now (barge-in); the driver reports ``PromptFinished`` when it stopped."""


@dataclass(frozen=True, slots=True)
class StartTimer:
    """Start (or restart) the named timer; report ``TimerExpired(name)`` when it runs out."""

    name: str
    seconds: float


@dataclass(frozen=True, slots=True)
class CancelTimer:
    """Cancel the named timer if it is running."""

    name: str


@dataclass(frozen=True, slots=True)
class StoreDecision:
    """Write the decision to the ledger; report ``DecisionStored`` or ``DecisionStoreFailed``.

    Attributes:
        decision: what to keep.
        handback: the variables the flow hands back once the decision is stored. A driver may
            set them while the store is under way (dialplan reads none before the channel is
            continued), but must continue the channel only after ``DecisionStored``; when the
            store fails the flow hands back other, fail-closed variables that replace them.
    """

    decision: ConsentDecision
    handback: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class SetVariables:
    """Set channel variables, in order (the ``RECORDER_*`` dialplan contract)."""

    variables: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class HandBack:
    """Return the channel to dialplan (ARI ``continue``; AGI: end the session)."""


Action = (
    Answer | PlayPrompt | StopPrompt | StartTimer | CancelTimer | StoreDecision | SetVariables
    | HandBack
)
"""Any output of the consent state machine."""
