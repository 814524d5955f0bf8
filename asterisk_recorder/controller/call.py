"""One call's consent flow driven over ARI: the thin driver around ``flow.ConsentFlow``.

This module owns the translation between ARI (REST calls and WebSocket events about ONE channel)
and the pure consent state machine: ARI events become flow events, flow actions become REST
calls. It must not decide anything itself (the flow and the policy do), must not touch other
channels, and must never leave the channel parked in Stasis: whatever happens, the session ends
with the channel handed back (fail-closed, not recorded) or gone.

Ordering: the controller feeds this session's queue in the order events arrived on the socket;
the session handles one item at a time, so a slow call never delays another (each session is its
own task) and one call's events are never reordered.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from asterisk_recorder.ari.events import (
    ChannelDestroyed,
    ChannelDtmfReceived,
    ChannelHangupRequest,
    PlaybackFinished,
    PlaybackStarted,
    StasisEnd,
)
from asterisk_recorder.ari.models import Channel
from asterisk_recorder.errors import (
    AriConflict,
    AriConnectionError,
    AriError,
    AriHttpError,
    AriNotFound,
    AriTimeout,
    LedgerError,
)
from asterisk_recorder.flow.actions import (
    Action,
    Answer,
    CancelTimer,
    HandBack,
    PlayPrompt,
    SetVariables,
    StartTimer,
    StopPrompt,
    StoreDecision,
)
from asterisk_recorder.flow.decision import ConsentDecision
from asterisk_recorder.flow.events import (
    ActionFailed,
    Answered,
    CallerHungUp,
    CallInfo,
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
from asterisk_recorder.ledger.sink import DecisionSink

__all__ = ["AriCallPort", "CallSession", "CallStats", "call_info_from_channel", "parse_stasis_args"]

FAIL_CLOSED_VARIABLES: tuple[tuple[str, str], ...] = (
    ("RECORDER_DECISION", "skip"),
    ("RECORDER_OUTCOME", "failed"),
    ("RECORDER_FILE", ""),
    ("RECORDER_MIXMON_OPTIONS", ""),
)
"""What a channel is handed back with when the flow could not finish: not recorded."""


class AriCallPort(Protocol):
    """The ARI REST calls a call session needs (``AriClient`` satisfies it)."""

    async def answer(self, channel_id: str) -> None:
        """``POST /channels/{id}/answer``."""
        ...

    async def play(
        self, channel_id: str, media: str, *, lang: str | None = None,
        playback_id: str | None = None,
    ) -> Any:
        """``POST /channels/{id}/play``."""
        ...

    async def stop_playback(self, playback_id: str) -> None:
        """``DELETE /playbacks/{id}``."""
        ...

    async def set_variable(self, channel_id: str, variable: str, value: str) -> None:
        """``POST /channels/{id}/variable``."""
        ...

    async def continue_in_dialplan(self, channel_id: str) -> None:
        """``POST /channels/{id}/continue``."""
        ...


class FlowLike(Protocol):
    """What the session needs of ``ConsentFlow`` (kept narrow so tests can read it)."""

    @property
    def done(self) -> bool:
        """True once the flow reached a terminal state."""
        ...

    @property
    def decision(self) -> ConsentDecision | None:
        """The decision, once made."""
        ...

    def handle(self, event: Event) -> list[Action]:
        """Feed one event; get the actions to carry out."""
        ...


@dataclass(slots=True)
class CallStats:
    """Measurements of one session, for metrics and the canonical log line.

    Attributes:
        reactions: seconds from an ARI event received to the first REST request it caused.
        rest_errors: ARI errors met (status or exception name).
        handed_back: the channel was returned to dialplan.
        fail_closed: the safety net handed it back without the flow's own variables.
    """

    reactions: list[float]
    rest_errors: list[str]
    handed_back: bool = False
    fail_closed: bool = False


@dataclass(frozen=True, slots=True)
class _Timer:
    name: str


@dataclass(frozen=True, slots=True)
class _Abort:
    reason: str


_QueueItem = Any  # ARI event, _Timer or _Abort


def parse_stasis_args(args: tuple[str, ...]) -> dict[str, str]:
    """Read ``Stasis(app,policy=opt_in,lang=fr)`` or positional ``Stasis(app,opt_in,fr)`` args.

    Positional arguments are ``policy`` then ``lang``; ``linkedid=`` carries
    ``${CHANNEL(linkedid)}`` from the dialplan subroutine. Empty values are dropped. Unknown keys
    are ignored (the dialplan may pass more for other apps).
    """
    out: dict[str, str] = {}
    positional = ("policy", "lang")
    known = (*positional, "linkedid")
    pos = 0
    for raw in args:
        if "=" in raw:
            key, _, value = raw.partition("=")
            key = key.strip().lower()
        else:
            if pos >= len(positional):
                continue
            key, value = positional[pos], raw
            pos += 1
        value = value.strip()
        if key in known and value:
            out[key] = value
    return out


def call_info_from_channel(
    channel: Channel,
    args: tuple[str, ...],
    *,
    asterisk_id: str,
    instance_id: str,
    decision_id: str | None = None,
) -> CallInfo:
    """Build the flow's ``CallInfo`` from a StasisStart channel snapshot and Stasis args.

    Numbers come from the snapshot: the caller id, and the called number from the
    ``RECORDER_CALLED`` channel variable (an operator override), else ``CALLERID(dnid)``, else
    the dialplan extension (``s`` inside a Gosub means unknown): list them in ``ari.conf``
    ``channelvars``. Overrides come from Stasis args and from the ``channelvars``
    (``RECORDER_POLICY``, ``RECORDER_JURISDICTION``, ``RECORDER_LANGUAGE``).
    Caller-controlled text is carried as-is: it is evidence, and the flow never lets it reach
    a file name or an option.
    """
    parsed = parse_stasis_args(args)
    variables: Mapping[str, str] = channel.channelvars
    policy = parsed.get("policy") or variables.get("RECORDER_POLICY") or None
    jurisdiction = variables.get("RECORDER_JURISDICTION") or None
    language = parsed.get("lang") or variables.get("RECORDER_LANGUAGE") or channel.language or "en"
    linkedid = parsed.get("linkedid") or variables.get("CHANNEL(linkedid)", "")
    return CallInfo(
        decision_id=decision_id or str(uuid.uuid4()),
        driver="ari",
        channel_id=channel.id,
        channel_name=channel.name,
        uniqueid=channel.id,
        linkedid=linkedid or channel.id,
        asterisk_id=asterisk_id,
        instance_id=instance_id,
        caller_number=channel.caller.number,
        caller_name=channel.caller.name,
        called_number=(
            variables.get("RECORDER_CALLED")
            or variables.get("CALLERID(dnid)")
            or _dialled(channel.dialplan.exten)
        ),
        language=language,
        policy_override=policy,
        jurisdiction_override=jurisdiction,
    )


def _dialled(exten: str) -> str:
    """The dialplan extension as the called number, unless it is a pattern-less ``s``."""
    return "" if exten in ("s", "") else exten


class CallSession:
    """Drives one channel's ``ConsentFlow`` over ARI until the channel is handed back or gone.

    Args:
        call: what the flow is offered.
        channel_state: the channel's state at StasisStart (``Up`` skips the answer request).
        flow: a fresh consent flow for this call.
        port: the ARI REST calls (an ``AriClient``).
        sink: where the decision is stored (the ledger).
        clock: wall-clock seconds (``time.time``); the flow never reads a clock itself.
        on_reaction: called with each event-to-REST reaction time in seconds.
        received: ``time.monotonic()`` when the StasisStart arrived (for the reaction time).
    """

    def __init__(
        self,
        call: CallInfo,
        *,
        channel_state: str,
        flow: FlowLike,
        port: AriCallPort,
        sink: DecisionSink,
        clock: Callable[[], float] = time.time,
        on_reaction: Callable[[float], None] | None = None,
        received: float | None = None,
    ) -> None:
        self.call = call
        self.channel_id = call.channel_id
        self._up = channel_state == "Up"
        self._flow = flow
        self._port = port
        self._sink = sink
        self._clock = clock
        self._on_reaction = on_reaction
        self._queue: asyncio.Queue[tuple[float | None, _QueueItem]] = asyncio.Queue()
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._playback_id: str | None = None
        self._gone = False
        self._received: float | None = None
        self._offered_received = received
        self.stats = CallStats(reactions=[], rest_errors=[])
        self.started = time.monotonic()

    # --- feeding -----------------------------------------------------------------------

    def feed(self, event: object) -> None:
        """Queue an ARI event about this channel (called by the controller, in socket order)."""
        self._queue.put_nowait((time.monotonic(), event))

    def abort(self, reason: str) -> None:
        """Ask the flow to fail closed now (shutdown, resync): hand back, not recorded."""
        self._queue.put_nowait((None, _Abort(reason)))

    def channel_gone(self) -> None:
        """The channel no longer exists (found missing on resync, or Asterisk restarted)."""
        self._queue.put_nowait((None, ChannelGoneMarker))

    @property
    def decision(self) -> ConsentDecision | None:
        """The flow's decision, once made."""
        return self._flow.decision

    @property
    def playback_id(self) -> str | None:
        """The id of the disclosure playback currently known to this session."""
        return self._playback_id

    # --- running -----------------------------------------------------------------------

    async def run(self) -> ConsentDecision | None:
        """Run the flow to its end; return the decision (None if the flow never decided)."""
        try:
            self._received = self._offered_received
            await self._step(CallOffered(at=self._clock(), call=self.call))
            while not self._flow.done:
                received, item = await self._queue.get()
                event = self._translate(item)
                if event is None:
                    continue
                self._received = received
                await self._step(event)
        finally:
            for handle in self._timers.values():
                handle.cancel()
            self._timers.clear()
            if not self.stats.handed_back and not self._gone:
                await self._fail_closed_handback()
        return self._flow.decision

    async def _step(self, first: Event) -> None:
        pending: deque[Event] = deque([first])
        while pending:
            event = pending.popleft()
            for action in self._flow.handle(event):
                follow = await self._execute(action)
                if follow is not None:
                    pending.append(follow)

    def _translate(self, item: _QueueItem) -> Event | None:
        now = self._clock()
        if isinstance(item, _Timer):
            if self._timers.pop(item.name, None) is None:
                return None  # cancelled after it fired but before we got here
            return TimerExpired(at=now, name=item.name)
        if isinstance(item, _Abort):
            return ActionFailed(at=now, action="Abort", reason=item.reason, channel_gone=False)
        if item is ChannelGoneMarker:
            self._gone = True
            return CallerHungUp(at=now)
        if isinstance(item, ChannelDtmfReceived):
            return DigitReceived(at=now, digit=item.digit)
        if isinstance(item, PlaybackStarted):
            if item.playback.id != self._playback_id:
                return None
            return PromptStarted(at=now)
        if isinstance(item, PlaybackFinished):
            if item.playback.id != self._playback_id:
                return None
            self._playback_id = None
            if item.playback.state == "failed":
                if self._gone:
                    return None  # cut by the hang-up; CallerHungUp already told the flow
                return PromptFailed(at=now, reason="playback failed (sound missing or unplayable)")
            return PromptFinished(at=now)
        if isinstance(item, ChannelHangupRequest | ChannelDestroyed):
            if self._gone:
                return None
            self._gone = True
            return CallerHungUp(at=now)
        if isinstance(item, StasisEnd):
            if self.stats.handed_back or self._gone:
                return None
            self._gone = True  # left Stasis without our continue: hung up or redirected
            return CallerHungUp(at=now)
        return None

    # --- actions -----------------------------------------------------------------------

    def _reacted(self) -> None:
        if self._received is not None:
            delay = time.monotonic() - self._received
            self._received = None
            self.stats.reactions.append(delay)
            if self._on_reaction is not None:
                self._on_reaction(delay)

    def _failed(self, action: Action, exc: AriError) -> ActionFailed:
        self.stats.rest_errors.append(_status_label(exc))
        gone = isinstance(exc, AriNotFound)
        if gone:
            self._gone = True
        return ActionFailed(
            at=self._clock(), action=type(action).__name__, reason=str(exc), channel_gone=gone
        )

    async def _execute(self, action: Action) -> Event | None:
        match action:
            case Answer():
                if self._up:
                    return Answered(at=self._clock())
                try:
                    self._reacted()
                    await self._port.answer(self.channel_id)
                except AriError as exc:
                    return self._failed(action, exc)
                self._up = True
                return Answered(at=self._clock())
            case PlayPrompt(sound=sound, language=language):
                playback_id = str(uuid.uuid4())
                self._playback_id = playback_id
                try:
                    self._reacted()
                    await self._port.play(
                        self.channel_id, f"sound:{sound}", lang=language, playback_id=playback_id
                    )
                except AriError as exc:
                    self._playback_id = None
                    if isinstance(exc, AriNotFound):
                        return self._failed(action, exc)
                    return PromptFailed(at=self._clock(), reason=f"play failed: {exc}")
                return None
            case StopPrompt():
                if self._playback_id is None:
                    return None
                try:
                    self._reacted()
                    await self._port.stop_playback(self._playback_id)
                except AriNotFound:
                    return None  # already finished; its PlaybackFinished is on its way
                except AriError as exc:
                    return self._failed(action, exc)
                return None
            case StartTimer(name=name, seconds=seconds):
                old = self._timers.pop(name, None)
                if old is not None:
                    old.cancel()
                loop = asyncio.get_running_loop()
                self._timers[name] = loop.call_later(
                    seconds, self._queue.put_nowait, (None, _Timer(name))
                )
                return None
            case CancelTimer(name=name):
                handle = self._timers.pop(name, None)
                if handle is not None:
                    handle.cancel()
                return None
            case StoreDecision(decision=decision):
                try:
                    receipt = await self._sink.store(decision)
                except LedgerError as exc:
                    return DecisionStoreFailed(at=self._clock(), reason=str(exc))
                return DecisionStored(
                    at=self._clock(), decision_id=receipt.decision_id, spooled=receipt.spooled
                )
            case SetVariables(variables=variables):
                if self._gone:
                    return None
                try:
                    for name, value in variables:
                        self._reacted()
                        await self._port.set_variable(self.channel_id, name, value)
                except AriError as exc:
                    failed = self._failed(action, exc)
                    if not failed.channel_gone:
                        # Never leave a half-written "record" for dialplan: skip it.
                        with contextlib.suppress(AriError):
                            await self._port.set_variable(
                                self.channel_id, "RECORDER_DECISION", "skip"
                            )
                    return failed
                return None
            case HandBack():
                if self._gone:
                    return None
                try:
                    self._reacted()
                    await self._port.continue_in_dialplan(self.channel_id)
                except (AriNotFound, AriConflict):
                    self._gone = True  # hung up, or already out of Stasis
                    return None
                except AriError as exc:
                    return self._failed(action, exc)
                self.stats.handed_back = True
                return None

    async def _fail_closed_handback(self) -> None:
        """Safety net: the flow ended (or crashed) without handing back a live channel."""
        self.stats.fail_closed = True
        try:
            if self._playback_id is not None:
                with contextlib.suppress(AriNotFound):
                    await self._port.stop_playback(self._playback_id)
            for name, value in FAIL_CLOSED_VARIABLES:
                await self._port.set_variable(self.channel_id, name, value)
            await self._port.continue_in_dialplan(self.channel_id)
            self.stats.handed_back = True
        except AriError as exc:
            self.stats.rest_errors.append(_status_label(exc))


def _status_label(exc: AriError) -> str:
    """The ``status`` label of ``asterisk_recorder_ari_rest_errors_total``."""
    if isinstance(exc, AriHttpError):
        return str(exc.status)
    if isinstance(exc, AriTimeout):
        return "timeout"
    if isinstance(exc, AriConnectionError):
        return "connection"
    return "protocol"


class _ChannelGone:
    def __repr__(self) -> str:
        return "ChannelGone"


ChannelGoneMarker = _ChannelGone()
