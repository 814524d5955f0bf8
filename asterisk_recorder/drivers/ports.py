"""The ports of the driver core: what a transport can do to one channel, and what it reports.

This module owns the ``ChannelPort`` protocol (implemented once per transport: ARI in
``ari/port.py``, AGI in ``agi/port.py``), the ``CallReport`` the core produces for every call,
and the hooks the composition root plugs in (metrics, the fate fact). It must not import a
transport, asyncpg or aiohttp: ports point down to the flow, transports implement them.

A port's methods return the flow events their outcome produced (a blocking transport such as
AGI returns ``PromptStarted`` and the prompt's end from ``play``; ARI returns nothing there and
delivers them later from ``next_events``) and raise ``ChannelGone`` or ``ChannelUnreachable``
(``asterisk_recorder.errors``) from the transport's own error. They never decide anything.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from asterisk_recorder.flow.actions import PlayPrompt
from asterisk_recorder.flow.decision import ConsentDecision
from asterisk_recorder.flow.events import CallInfo, Event

__all__ = [
    "FAIL_CLOSED_VARIABLES",
    "CallFate",
    "CallReport",
    "ChannelPort",
    "CoreHooks",
    "Fate",
]

FAIL_CLOSED_VARIABLES: tuple[tuple[str, str], ...] = (
    ("RECORDER_DECISION", "skip"),
    ("RECORDER_OUTCOME", "failed"),
    ("RECORDER_FILE", ""),
    ("RECORDER_MIXMON_OPTIONS", ""),
)
"""What a channel is handed back with when the flow could not finish: not recorded."""


class ChannelPort(Protocol):
    """What one transport can do to one channel (see the module docstring for the contract)."""

    driver: str
    """``ari`` or ``agi``: kept in the decision and the log line."""

    retry_hand_back: bool
    """True when a failed hand-back may succeed on a later try (ARI); False for AGI, whose
    hand-back is the end of a connection that is unusable once it failed."""

    async def describe(self) -> CallInfo:
        """The call as the transport sees it (AGI reads the overrides here)."""
        ...

    def fallback_call(self) -> CallInfo:
        """The call as far as it is known without asking the channel (after a cancellation)."""
        ...

    async def answer(self) -> list[Event]:
        """Answer the channel (nothing when it is up already); report ``Answered``."""
        ...

    async def play(self, prompt: PlayPrompt, *, bound: float) -> list[Event]:
        """Start (ARI) or play (AGI, for at most ``bound`` seconds) the prompt."""
        ...

    async def stop_prompt(self) -> list[Event]:
        """Stop the prompt now (barge-in)."""
        ...

    async def set_variables(self, variables: tuple[tuple[str, str], ...]) -> list[Event]:
        """Set channel variables in order; raise on the first that fails."""
        ...

    async def hand_back(self) -> None:
        """Return the channel to dialplan (ARI ``continue``; AGI: nothing, the session ends)."""
        ...

    async def next_events(self, timeout: float | None) -> list[Event]:  # noqa: ASYNC109
        """Wait at most ``timeout`` seconds (None: no limit) for input; ``[]`` when it ran out."""
        ...

    async def recover(self) -> bool:
        """After a cancellation: make the transport usable again; False when it cannot be."""
        ...

    def report(self) -> Mapping[str, object]:
        """Transport-specific fields for the ``consent.decided`` line (e.g. ``agi_commands``)."""
        ...


class Fate:
    """What finally happened to a channel after its decision (``CallFate.fate``)."""

    RECORDED = "recorded"
    """Dialplan was told ``record`` and the channel went on: MixMonitor starts there."""
    UNRECORDED = "proceeded_unrecorded"
    """The channel went on without being told to record (skip, fail-closed, hand-back lost)."""
    HUNG_UP = "hung_up"
    """The channel was gone before it could be handed back."""
    STUCK = "hand_back_failed"
    """Every hand-back attempt failed while the channel still existed (the sweep takes over)."""


@dataclass(frozen=True, slots=True)
class CallFate:
    """The ledger fact that says what happened to the channel after the decision.

    Attributes:
        decision_id: the decision it completes.
        fate: one of ``Fate``.
        told: what dialplan was told: ``record``, ``skip`` or ``""`` (nothing reached it).
        reason: why, when it is not what the decision said.
        attempts: hand-back attempts made.
        at: when the fate was settled (epoch seconds).
        driver: ``ari`` or ``agi``.
    """

    decision_id: str
    fate: str
    told: str
    reason: str
    attempts: int
    at: float
    driver: str = ""


@dataclass(frozen=True, slots=True)
class CallReport:
    """Everything one call did, for the log line, the metrics and the tests.

    Attributes:
        call: the call as offered to the flow.
        decision: the decision sent to the ledger (None if the flow never got that far).
        stored / spooled: the ledger acknowledged it (spooled: to the local spool).
        handed_back: the channel went back to dialplan with variables set.
        hung_up: the channel was gone before the end.
        fail_closed: the call ended without a usable decision handed back (not recorded).
        aborted: shutdown or a lost event stream failed it closed.
        crashed: the error that ended the call, when one escaped the transport or the flow.
        error: why the transport became unusable, if it did.
        variables: the ``RECORDER_*`` variables set on the channel, in order.
        fate: the ``CallFate`` recorded for the decision.
        seconds: from the call's start to its end.
        transport: ``ChannelPort.report()``.
    """

    call: CallInfo
    decision: ConsentDecision | None
    stored: bool
    spooled: bool
    handed_back: bool
    hung_up: bool
    fail_closed: bool
    aborted: bool
    crashed: str | None
    error: str | None
    variables: tuple[tuple[str, str], ...]
    fate: CallFate | None
    seconds: float
    transport: Mapping[str, object] = field(default_factory=dict)


@dataclass(slots=True)
class CoreHooks:
    """What the composition root plugs into every call (all optional).

    Attributes:
        on_finished: called once per call with its report (metrics).
        on_crash: called when an error escaped the transport or the flow (a counter).
        record_fate: keeps the ``CallFate`` in the ledger (the fact linked to the decision).
        hand_back_retry_for: seconds a failed ARI hand-back is retried while the channel lives.
    """

    on_finished: Callable[[CallReport], None] | None = None
    on_crash: Callable[[str], None] | None = None
    record_fate: Callable[[CallFate], Awaitable[object]] | None = None
    hand_back_retry_for: float = 10.0
