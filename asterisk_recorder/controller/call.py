"""The ARI transport of the driver core: one channel's REST calls and events.

This module owns the translation between ARI (REST calls and WebSocket events about ONE channel)
and the driver core's ``ChannelPort``: ARI events become flow events (``next_events``), port
operations become REST calls, ARI errors become ``ChannelGone`` / ``ChannelUnreachable``. It also
owns ``CallSession``, the controller's handle on one call (the core plus this port). It must not
decide anything (the flow and the policy do), must not store or log the call (the core does),
and must not touch other channels.

Ordering: the controller feeds this port's queue in the order events arrived on the socket;
the core handles one item at a time, so a slow call never delays another (each session is its
own task) and one call's events are never reordered.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
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
from asterisk_recorder.drivers.core import CallCore, FlowLike
from asterisk_recorder.drivers.ports import CallReport, CoreHooks
from asterisk_recorder.drivers.variables import pack_variables
from asterisk_recorder.errors import (
    AriConflict,
    AriConnectionError,
    AriError,
    AriHttpError,
    AriNotFound,
    AriServerError,
    AriTimeout,
    ChannelGone,
    ChannelUnreachable,
)
from asterisk_recorder.flow.actions import PlayPrompt
from asterisk_recorder.flow.decision import ConsentDecision
from asterisk_recorder.flow.events import (
    Answered,
    CallerHungUp,
    CallInfo,
    DigitReceived,
    Event,
    PromptFailed,
    PromptFinished,
    PromptStarted,
)
from asterisk_recorder.flow.ports import DecisionSink

__all__ = [
    "AriCallPort",
    "AriPort",
    "CallSession",
    "CallStats",
    "call_info_from_channel",
    "parse_stasis_args",
]


class AriCallPort(Protocol):
    """The ARI REST calls a call needs (``AriClient`` satisfies it)."""

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


@dataclass(slots=True)
class CallStats:
    """Measurements of one call's transport, for metrics.

    Attributes:
        reactions: seconds from an ARI event received to the first REST request it caused.
        rest_errors: ARI errors met (status or exception name).
    """

    reactions: list[float] = field(default_factory=list)
    rest_errors: list[str] = field(default_factory=list)


class _Gone:
    def __repr__(self) -> str:
        return "ChannelGone"


_GONE = _Gone()
_WAKE = object()


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


class AriPort:
    """``ChannelPort`` over ARI for one channel.

    Args:
        call: the call (built from the StasisStart snapshot).
        channel_state: the channel's state at StasisStart (``Up`` skips the answer request).
        rest: the ARI REST calls (an ``AriClient``).
        clock: wall-clock seconds for the events.
        on_reaction: called with each event-to-REST reaction time in seconds.
        received: ``time.monotonic()`` when the StasisStart arrived (for the reaction time).
    """

    driver = "ari"
    retry_hand_back = True

    def __init__(
        self,
        call: CallInfo,
        *,
        channel_state: str,
        rest: AriCallPort,
        clock: Callable[[], float] = time.time,
        on_reaction: Callable[[float], None] | None = None,
        received: float | None = None,
    ) -> None:
        self.call = call
        self.channel_id = call.channel_id
        self._up = channel_state == "Up"
        self._rest = rest
        self._clock = clock
        self._on_reaction = on_reaction
        self._queue: asyncio.Queue[tuple[float | None, object]] = asyncio.Queue()
        self._playback_id: str | None = None
        self._stop_sent: str | None = None
        self._stopping: asyncio.Future[None] | None = None
        self._gone = False
        self._handed_back = False
        self._received: float | None = received
        self.stats = CallStats()

    # -- fed by the controller -----------------------------------------------------------------

    def feed(self, event: object) -> None:
        """Queue an ARI event about this channel (called by the controller, in socket order)."""
        self._queue.put_nowait((time.monotonic(), event))

    def channel_gone(self) -> None:
        """The channel no longer exists (found missing on resync, or Asterisk restarted)."""
        self._queue.put_nowait((None, _GONE))

    @property
    def playback_id(self) -> str | None:
        """The id of the disclosure playback currently known to this port."""
        return self._playback_id

    @property
    def handed_back(self) -> bool:
        """True once ``continue`` succeeded."""
        return self._handed_back

    # -- ChannelPort ---------------------------------------------------------------------------

    async def describe(self) -> CallInfo:
        """The call, as the StasisStart snapshot described it."""
        return self.call

    def fallback_call(self) -> CallInfo:
        """The same call (ARI knows it all at StasisStart)."""
        return self.call

    async def answer(self) -> list[Event]:
        """``POST /channels/{id}/answer`` unless the channel is up already."""
        if not self._up:
            await self._call(self._rest.answer(self.channel_id))
            self._up = True
        return [Answered(self._clock())]

    async def play(self, prompt: PlayPrompt, *, bound: float) -> list[Event]:
        """``POST /channels/{id}/play`` with our own playback id; its events come later."""
        await self._stopped()
        playback_id = str(uuid.uuid4())
        self._playback_id = playback_id
        try:
            await self._call(self._rest.play(
                self.channel_id, f"sound:{prompt.sound}", lang=prompt.language,
                playback_id=playback_id,
            ))
        except ChannelGone:
            self._playback_id = None
            raise
        except ChannelUnreachable as exc:
            self._playback_id = None
            return [PromptFailed(self._clock(), f"play failed: {exc}")]
        return []

    async def stop_prompt(self) -> list[Event]:
        """``DELETE /playbacks/{id}``, sent now, awaited before ``continue`` or the next play.

        Its ``PlaybackFinished`` ends the prompt. Not waiting here lets the ledger commit the
        decision (and the variables travel) while the request is on the wire.
        """
        if self._playback_id is None or self._stop_sent == self._playback_id:
            return []
        playback_id = self._stop_sent = self._playback_id
        self._stopping = asyncio.ensure_future(self._stop(playback_id))
        return []

    async def _stop(self, playback_id: str) -> None:
        try:
            await self._call(self._rest.stop_playback(playback_id))
        except ChannelGone:
            pass  # already finished; its PlaybackFinished is on its way
        except ChannelUnreachable:
            self._stop_sent = None  # the hand-back tries once more

    async def _stopped(self) -> None:
        """Wait for a ``DELETE /playbacks`` still on the wire: a channel's requests keep order."""
        stopping, self._stopping = self._stopping, None
        if stopping is not None:
            with contextlib.suppress(ChannelGone, ChannelUnreachable):
                await stopping

    async def set_variables(self, variables: tuple[tuple[str, str], ...]) -> list[Event]:
        """All of them in one ``POST /channels/{id}/variable`` of ``ARRAY(...)``, if they pack.

        Dialplan reads none of them before ``continue``. Values that could not travel safely in
        an ``ARRAY`` (a comma, a quote, a backslash) are set one request each, in order. A
        failure is raised (the core then sets ``RECORDER_DECISION=skip`` and retries).
        A ``DELETE /playbacks`` still on the wire is not waited for: Asterisk queues the
        variables behind the playback it stops, and ``continue`` waits for both.
        """
        if self._gone:
            raise ChannelGone("channel gone")
        packed = pack_variables(variables)
        if packed is not None:
            # One request for all of them: ARRAY(A,B,...)=a,b,... (func_strings), which Asterisk
            # applies in the channel's control queue like one Set() each.
            name, value = packed
            await self._call(self._rest.set_variable(self.channel_id, name, value))
            return []
        for name, value in variables:
            await self._call(self._rest.set_variable(self.channel_id, name, value))
        return []

    async def hand_back(self) -> None:
        """Stop a playback still running, then ``POST /channels/{id}/continue``."""
        await self._stopped()
        if self._gone:
            raise ChannelGone("channel gone")
        if self._playback_id is not None and self._stop_sent != self._playback_id:
            self._stop_sent = self._playback_id
            with contextlib.suppress(ChannelGone, ChannelUnreachable):
                await self._call(self._rest.stop_playback(self._playback_id))
        try:
            await self._call(self._rest.continue_in_dialplan(self.channel_id), conflict_gone=True)
        except ChannelGone:
            self._gone = True
            raise
        self._handed_back = True

    async def next_events(self, timeout: float | None) -> list[Event]:  # noqa: ASYNC109
        """The next ARI event about this channel, translated; ``[]`` when ``timeout`` ran out."""
        loop = asyncio.get_running_loop()
        wake: asyncio.TimerHandle | None = None
        token = object()
        if timeout is not None:
            wake = loop.call_later(timeout, self._queue.put_nowait, (None, (_WAKE, token)))
        try:
            while True:
                received, item = await self._queue.get()
                if isinstance(item, tuple) and item and item[0] is _WAKE:
                    if wake is not None and item[1] is token:
                        wake = None
                        self._received = None  # a timer is no ARI event to react to
                        return []
                    continue  # a stale wake-up from an earlier wait
                event = self._translate(item)
                if event is not None:
                    self._received = received
                    return [event]
        finally:
            if wake is not None:
                wake.cancel()

    async def recover(self) -> bool:
        """Nothing to recover: every REST request stands alone."""
        return True

    def report(self) -> Mapping[str, object]:
        """The REST errors met, for the log line."""
        return {"rest_errors": list(self.stats.rest_errors)} if self.stats.rest_errors else {}

    # -- helpers -------------------------------------------------------------------------------

    async def _call(
        self, request: Any, *, conflict_gone: bool = False, react: bool = True
    ) -> None:
        """Await one REST request; ARI errors become ``ChannelGone`` / ``ChannelUnreachable``."""
        if react:
            self._reacted()
        try:
            await request
        except AriNotFound as exc:
            self.stats.rest_errors.append(_status_label(exc))
            self._gone = True
            raise ChannelGone(f"channel gone: {exc}") from exc
        except AriConflict as exc:
            self.stats.rest_errors.append(_status_label(exc))
            if conflict_gone:
                raise ChannelGone(f"channel not in the application: {exc}") from exc
            raise ChannelUnreachable(str(exc)) from exc
        except AriError as exc:
            self.stats.rest_errors.append(_status_label(exc))
            retryable = isinstance(exc, AriTimeout | AriConnectionError | AriServerError)
            raise ChannelUnreachable(str(exc), retryable=retryable) from exc

    def _reacted(self) -> None:
        if self._received is not None:
            delay = time.monotonic() - self._received
            self._received = None
            self.stats.reactions.append(delay)
            if self._on_reaction is not None:
                self._on_reaction(delay)

    def _translate(self, item: object) -> Event | None:
        now = self._clock()
        if item is _GONE:
            if self._gone:
                return None
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
            if self._handed_back or self._gone:
                return None
            self._gone = True  # left Stasis without our continue: hung up or redirected
            return CallerHungUp(at=now)
        return None


class CallSession:
    """The controller's handle on one ARI call: the driver core over an ``AriPort``.

    Args:
        call: what the flow is offered.
        channel_state: the channel's state at StasisStart.
        flow: a fresh consent flow for this call.
        port: the ARI REST calls (an ``AriClient``).
        sink: where the decision is stored (the ledger).
        hooks: the composition root's hooks (metrics, fate fact).
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
        hooks: CoreHooks | None = None,
        clock: Callable[[], float] = time.time,
        on_reaction: Callable[[float], None] | None = None,
        received: float | None = None,
    ) -> None:
        self.call = call
        self.channel_id = call.channel_id
        self.port = AriPort(
            call, channel_state=channel_state, rest=port, clock=clock,
            on_reaction=on_reaction, received=received,
        )
        self.core = CallCore(self.port, flow=flow, sink=sink, hooks=hooks, clock=clock)
        self.stats = self.port.stats
        self.started = self.core.started

    def feed(self, event: object) -> None:
        """Queue an ARI event about this channel."""
        self.port.feed(event)

    def abort(self, reason: str) -> None:
        """Fail the call closed now (shutdown, resync): hand back, not recorded."""
        self.core.abort(reason)

    def channel_gone(self) -> None:
        """The channel no longer exists."""
        self.port.channel_gone()

    @property
    def decision(self) -> ConsentDecision | None:
        """The flow's decision, once made."""
        return self.core.decision

    @property
    def playback_id(self) -> str | None:
        """The disclosure playback currently known to this call."""
        return self.port.playback_id

    @property
    def handed_back(self) -> bool:
        """True once the channel went back to dialplan."""
        return self.core.handed_back

    async def run(self) -> CallReport:
        """Run the call to its end; return the core's report."""
        return await self.core.run()


def _status_label(exc: AriError) -> str:
    """The ``status`` label of ``asterisk_recorder_ari_rest_errors_total``."""
    if isinstance(exc, AriHttpError):
        return str(exc.status)
    if isinstance(exc, AriTimeout):
        return "timeout"
    if isinstance(exc, AriConnectionError):
        return "connection"
    return "protocol"
