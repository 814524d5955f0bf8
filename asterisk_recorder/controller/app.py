"""The ARI controller for one Asterisk server: event stream in, one call session per channel.

This module owns the dispatch of one server's ARI events to per-channel ``CallSession`` tasks,
resynchronisation after every (re)connect (``GET /applications/{app}``: channels still parked in
Stasis are handed back fail-closed or resumed, never left parked), draining on shutdown, and the
reaction to ``ApplicationReplaced``. It must not decide consent (the flow does) and must not
talk to PostgreSQL directly (it writes through a ``DecisionSink``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field

import structlog

from asterisk_recorder.ari.client import AriClient
from asterisk_recorder.ari.events import (
    ApplicationReplaced,
    Connected,
    Disconnected,
    PlaybackFinished,
    PlaybackStarted,
    StasisStart,
    StreamEvent,
)
from asterisk_recorder.ari.stream import EventStream
from asterisk_recorder.controller.call import CallSession, call_info_from_channel
from asterisk_recorder.drivers.core import FlowLike
from asterisk_recorder.drivers.ports import FAIL_CLOSED_VARIABLES, CallFate, CoreHooks, Fate
from asterisk_recorder.errors import AriConflict, AriError, AriNotFound
from asterisk_recorder.flow.ports import DecisionSink
from asterisk_recorder.settings import AriServerSettings

__all__ = ["RESYNC_SETTLE", "SWEEP_INTERVAL", "AriController", "ControllerHooks"]

log = structlog.get_logger("asterisk_recorder.controller")

RESYNC_SETTLE = 0.5
"""Seconds to wait before adopting a parked channel, for its StasisStart still in flight."""

SWEEP_INTERVAL = 5.0
"""Seconds between two sweeps for channels left parked in the app (hand-back lost, orphans)."""


@dataclass(slots=True)
class ControllerHooks:
    """Callbacks the service wires to metrics (all optional); ``core`` goes to every call."""

    core: CoreHooks = field(default_factory=CoreHooks)
    on_reaction: Callable[[float], None] = lambda seconds: None
    on_reconnect: Callable[[str], None] = lambda server: None
    on_rest_error: Callable[[str, str], None] = lambda server, status: None


@dataclass(slots=True)
class _State:
    sessions: dict[str, CallSession] = field(default_factory=dict)
    tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    stuck: dict[str, CallFate] = field(default_factory=dict)
    playbacks: dict[str, str] = field(default_factory=dict)


class AriController:
    """Runs the consent flow for every channel dialplan hands to ``server.app``.

    Args:
        server: which Asterisk, which app, which credentials.
        flow_factory: returns a fresh ``ConsentFlow`` for each call.
        sink: the ledger (or any ``DecisionSink``).
        instance_id: this controller instance, recorded with every decision.
        resync_action: ``handback`` (fail-closed) or ``resume`` for channels found parked in
            Stasis after a reconnect that this process has no session for.
        hooks: metrics and logging callbacks.
        clock: wall-clock seconds for the flow's timestamps.
    """

    def __init__(
        self,
        server: AriServerSettings,
        *,
        flow_factory: Callable[[], FlowLike],
        sink: DecisionSink,
        instance_id: str,
        resync_action: str = "handback",
        hooks: ControllerHooks | None = None,
        clock: Callable[[], float] = time.time,
        sweep_interval: float = SWEEP_INTERVAL,
    ) -> None:
        self.server = server
        self._flow_factory = flow_factory
        self._sink = sink
        self._instance_id = instance_id
        self._resync_action = resync_action
        self._hooks = hooks or ControllerHooks()
        self._clock = clock
        self._sweep_interval = sweep_interval
        self._state = _State()
        self._client: AriClient | None = None
        self._stream: EventStream | None = None
        self._draining = False
        self._stopped = asyncio.Event()
        self._side_tasks: set[asyncio.Task[None]] = set()
        self.connected = False
        """True while the event WebSocket is up."""
        self.replaced = False
        """True after Asterisk told us another client took over the app."""
        self.asterisk_id = ""

    # --- public ------------------------------------------------------------------------

    @property
    def active_calls(self) -> int:
        """Calls currently in a consent flow on this server."""
        return len(self._state.tasks)

    @property
    def ready(self) -> bool:
        """The WebSocket is up and no other client replaced us."""
        return self.connected and not self.replaced

    async def run(self) -> None:
        """Connect and serve calls until ``stop()``; reconnects forever in between."""
        async with AriClient(self.server) as client:
            self._client = client
            stream = EventStream(self.server, session=client.session())
            self._stream = stream
            async with stream:
                if self._stopped.is_set():
                    await stream.close()
                self._spawn(self._sweep_loop())
                try:
                    async for event in stream:
                        self._dispatch(event)
                finally:
                    await self._finish_sessions()
            self._stream = None
            self._client = None

    async def drain(self, grace: float) -> None:
        """Stop taking calls, give in-flight flows ``grace`` seconds, then fail the rest closed.

        New calls that arrive while draining are handed back at once, not recorded.
        """
        self._draining = True
        tasks = list(self._state.tasks.values())
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for key, session in list(self._state.sessions.items()):
                if self._state.tasks.get(key) in pending:
                    session.abort("controller shutting down")
            if pending:
                await asyncio.wait(pending, timeout=max(2.0, self.server.request_timeout))
        self.stop()

    def stop(self) -> None:
        """Stop at once (sessions still running are failed closed before ``run`` returns)."""
        self._draining = True
        self._stopped.set()
        if self._stream is not None:
            self._spawn(self._stream.close())

    # --- dispatch ----------------------------------------------------------------------

    def _dispatch(self, event: StreamEvent) -> None:
        if isinstance(event, Connected):
            self.connected = True
            if event.reconnected:
                self._hooks.on_reconnect(self.server.name)
            log.info("ari.connected", server=self.server.name, connection=event.connection)
            # Only the sessions alive now can have missed events; calls that start after this
            # point are complete, whatever the resync snapshot (taken later) says.
            self._spawn(self._resync(dict(self._state.sessions), event.reconnected))
            return
        if isinstance(event, Disconnected):
            self.connected = False
            log.warning("ari.disconnected", server=self.server.name, reason=event.reason)
            return
        if isinstance(event, ApplicationReplaced):
            self.replaced = True
            log.error(
                "ari.application_replaced",
                server=self.server.name,
                app=event.application,
                hint="another client connected with the same app name; give each controller "
                "instance its own app",
            )
            return
        asterisk_id = getattr(event, "asterisk_id", "")
        if isinstance(asterisk_id, str) and asterisk_id:
            self.asterisk_id = asterisk_id
        if isinstance(event, StasisStart):
            if event.application != self.server.app:
                return
            self._start_session(event)
            return
        if isinstance(event, PlaybackStarted | PlaybackFinished):
            session = self._state.sessions.get(_playback_channel(event.playback.target_uri))
            if session is not None:
                session.feed(event)
            return
        channel = getattr(event, "channel", None)
        channel_id = getattr(channel, "id", None)
        if isinstance(channel_id, str):
            session = self._state.sessions.get(channel_id)
            if session is not None:
                session.feed(event)

    def _start_session(
        self, event: StasisStart, *, abort_reason: str | None = None
    ) -> CallSession | None:
        channel = event.channel
        existing = self._state.sessions.get(channel.id)
        if existing is not None and not existing.handed_back:
            return None  # the same call, already running
        # (A channel handed back and re-entering the app, e.g. a second Gosub, is a new call.)
        info = call_info_from_channel(
            channel, event.args, asterisk_id=event.asterisk_id or self.asterisk_id,
            instance_id=self._instance_id,
        )
        assert self._client is not None
        session = CallSession(
            info,
            channel_state=channel.state,
            flow=self._flow_factory(),
            port=self._client,
            sink=self._sink,
            hooks=self._hooks.core,
            clock=self._clock,
            on_reaction=self._hooks.on_reaction,
            received=time.monotonic(),
        )
        if self._draining:
            abort_reason = "controller shutting down"
        if abort_reason is not None:
            session.abort(abort_reason)
        self._state.sessions[channel.id] = session
        self._state.tasks[channel.id] = asyncio.create_task(
            self._run_session(session), name=f"call-{channel.id}"
        )
        return session

    async def _run_session(self, session: CallSession) -> None:
        try:
            report = await session.run()  # the core contains every error of its call
            if report.fate is not None and report.fate.fate == Fate.STUCK and not report.hung_up:
                self._state.stuck[session.channel_id] = report.fate
                self._spawn(self._sweep_soon())
        finally:
            for status in session.stats.rest_errors:
                self._hooks.on_rest_error(self.server.name, status)
            if self._state.sessions.get(session.channel_id) is session:
                del self._state.sessions[session.channel_id]
                self._state.tasks.pop(session.channel_id, None)

    def _spawn(self, coro: Coroutine[object, object, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    async def _resync(self, before: dict[str, CallSession], reconnected: bool) -> None:
        """After (re)connect: settle the calls that lived through the gap, adopt orphans.

        Asterisk does not queue events while no socket is connected, so a session that was
        running across a reconnect may have missed the caller's key or hang-up: it is failed
        closed (handed back, not recorded) when its channel is still in the app, and ended as
        gone when it is not. Channels parked in the app without a session (this process
        restarted, or their StasisStart was lost) are handed back fail-closed, or resumed with
        ``resync_action = "resume"``.
        """
        client = self._client
        if client is None:
            return
        try:
            app = await client.get_application(self.server.app)
        except AriError as exc:
            log.warning("ari.resync_failed", server=self.server.name, error=str(exc))
            for session in before.values():
                if reconnected:
                    session.abort("ARI event stream was interrupted; events may be lost")
            return
        parked = set(app.channel_ids)
        for channel_id, session in before.items():
            if self._state.sessions.get(channel_id) is not session:
                continue  # already finished
            if channel_id not in parked:
                session.channel_gone()
            elif reconnected:
                session.abort("ARI event stream was interrupted; a key press may have been lost")
        for channel_id in list(self._state.stuck):
            if channel_id in self._state.sessions:
                continue
            fate = self._state.stuck.pop(channel_id)
            await self._release_stuck(channel_id, fate, parked=channel_id in parked)
        orphans = parked - set(self._state.sessions)
        if not orphans:
            return
        # A StasisStart may still be on its way for a channel the snapshot already lists.
        await asyncio.sleep(RESYNC_SETTLE)
        for channel_id in sorted(orphans - set(self._state.sessions)):
            try:
                channel = await client.get_channel(channel_id)
            except AriNotFound:
                continue
            except AriError as exc:
                log.warning("ari.resync_channel_failed", channel_id=channel_id, error=str(exc))
                continue
            if channel_id in self._state.sessions:
                continue
            resume = self._resync_action == "resume" and not self._draining
            log.info(
                "ari.resync_parked_channel",
                channel_id=channel_id,
                action="resume" if resume else "handback",
            )
            synthetic = StasisStart(
                application=self.server.app,
                timestamp="resync",
                asterisk_id=self.asterisk_id,
                args=(),
                channel=channel,
            )
            self._start_session(
                synthetic,
                abort_reason=None if resume else "found parked in Stasis after a reconnect",
            )

    async def _sweep_loop(self) -> None:
        """Every ``sweep_interval`` seconds, while a hand-back failed for good: hand it back.

        A hand-back that failed for good (Asterisk's HTTP sessions exhausted, say) leaves the
        caller parked; this finds it without waiting for a reconnect, and keeps trying until
        Asterisk answers again.
        """
        while not self._stopped.is_set():
            await asyncio.sleep(self._sweep_interval)
            # Only while a caller is known to be left parked: listing every channel of a busy
            # app every few seconds would load Asterisk for nothing (orphans of a restart are
            # found at every (re)connect).
            if self.connected and not self._draining and self._state.stuck:
                await self._resync(dict(self._state.sessions), False)

    async def _sweep_soon(self) -> None:
        """A call's hand-back failed for good: sweep in a second instead of waiting."""
        await asyncio.sleep(1.0)
        if self.connected and not self._draining:
            await self._resync(dict(self._state.sessions), False)

    async def _release_stuck(self, channel_id: str, fate: CallFate, *, parked: bool) -> None:
        """Hand back, not recorded, a channel whose own hand-back failed; record its fate."""
        client = self._client
        if client is None:
            return
        new_fate, reason = Fate.HUNG_UP, "gone before the sweep found it"
        if parked:
            try:
                for name, value in FAIL_CLOSED_VARIABLES:
                    await client.set_variable(channel_id, name, value)
                await client.continue_in_dialplan(channel_id)
            except (AriNotFound, AriConflict):
                pass
            except AriError as exc:
                log.warning("ari.sweep_handback_failed", channel_id=channel_id, error=str(exc))
                self._state.stuck[channel_id] = fate  # try again at the next sweep
                return
            else:
                new_fate, reason = Fate.UNRECORDED, "handed back fail-closed by the sweep"
        log.warning(
            "ari.swept_channel", channel_id=channel_id, decision_id=fate.decision_id,
            fate=new_fate,
        )
        record = self._hooks.core.record_fate
        if record is not None and fate.decision_id:
            try:
                await record(CallFate(
                    decision_id=fate.decision_id, fate=new_fate, told="skip" if parked else "",
                    reason=reason, attempts=fate.attempts + 1, at=self._clock(),
                    driver="ari",
                ))
            except Exception as exc:
                log.error("call.fate_not_recorded", decision_id=fate.decision_id, error=str(exc))

    async def _finish_sessions(self) -> None:
        for session in list(self._state.sessions.values()):
            session.abort("controller stopping")
        tasks = list(self._state.tasks.values())
        if tasks:
            await asyncio.wait(tasks, timeout=max(2.0, self.server.request_timeout))
        stuck = list(self._state.tasks.values())
        for task in stuck:
            task.cancel()  # each session's own clean-up still hands its channel back
        if stuck:
            await asyncio.wait(stuck, timeout=max(2.0, self.server.request_timeout))
        for side in list(self._side_tasks):
            if side is not asyncio.current_task():
                side.cancel()


def _playback_channel(target_uri: str) -> str:
    kind, _, ident = target_uri.partition(":")
    return ident if kind == "channel" else ""
