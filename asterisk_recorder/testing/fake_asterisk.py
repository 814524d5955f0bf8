"""A fake Asterisk 22 speaking the ARI subset asterisk-recorder uses, on a real loopback socket.

This module owns ``FakeAsterisk``: an aiohttp server on 127.0.0.1 (port 0) that serves the REST
resources and the ``/ari/events`` WebSocket the way the real Asterisk 22.10.1 does in the traces
under ``shared/asterisk-traces`` (status codes, event types and order, field names), with Basic
auth checked. It is shipped so integrators can test their own flows, and it must stay a *fake*:
no dialplan, no media, no SIP. What it models:

* calls placed into an app with ``originate()`` (caller id, dialled extension, language,
  channel variables, Stasis args); ``StasisStart`` arrives in state ``Ring`` as in the traces;
* the per-channel Stasis control queue: ``/answer`` and ``/variable`` wait behind a running
  playback and answer when it is done; ``/continue``, ``/play``, ``/ring`` and ``/dtmf`` are
  queued and answered at once (as ``stasis_app_send_command_async`` does);
* playbacks with per-sound durations scaled by ``time_scale``; an unknown sound gives
  ``PlaybackStarted`` then ``PlaybackFinished`` ``failed``; ``DELETE /playbacks/{id}`` still
  gives ``PlaybackFinished`` ``done``;
* caller DTMF (``ChannelDtmfReceived`` at the end of the digit) and hang-up from either side in
  Asterisk's order (``ChannelHangupRequest``, ``PlaybackFinished`` ``failed`` if playing,
  ``StasisEnd``); ``continue`` records where the call went and its variables at that moment;
* fault injection: refuse or drop the WebSocket, fail or delay chosen REST calls, stall,
  restart (all channels gone), ``ApplicationReplaced``, raw (bad) frames;
* a request log and helpers to await what happened.

It must not be imported by production code paths.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import fnmatch
import json
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType, TracebackType
from typing import Any
from urllib.parse import unquote

from aiohttp import WSMsgType, web

from asterisk_recorder.settings import AriServerSettings, Secret

__all__ = [
    "DEFAULT_SOUNDS",
    "ContinueRecord",
    "FakeAsterisk",
    "FakeChannel",
    "RecordedRequest",
    "SentEvent",
]

DEFAULT_SOUNDS: Mapping[str, float] = MappingProxyType(
    {
        "hello-world": 1.40,  # measured in the traces: PlaybackStarted -> Finished 1.402 s
        "beep": 0.25,
        "recorder/consent-announce": 4.0,
        "recorder/consent-opt-in": 6.0,
        "recorder/consent-opt-out": 5.0,
        "silence/1": 1.0,
        "silence/2": 2.0,
    }
)
"""Seconds each known sound plays (before ``time_scale``). Anything else fails like Asterisk."""

_DIGIT_SECONDS = 0.5
_HANGUP_CAUSES = {
    "normal": 16,
    "busy": 17,
    "congestion": 34,
    "no_answer": 19,
    "timeout": 19,
    "rejected": 21,
    "unallocated": 1,
    "normal_unspecified": 31,
    "number_incomplete": 28,
    "codec_mismatch": 58,
    "interworking": 127,
    "failure": 38,
    "answered_elsewhere": 26,
}
_SOFTHANGUP_EXPLICIT = 32
"""ARI ``DELETE /channels/{id}`` is a soft hang-up; its ``ChannelHangupRequest.cause`` carries
the softhangup flag AST_SOFTHANGUP_EXPLICIT (32), as the traces show."""


def _now_iso() -> str:
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return stamp[:-3] + "+0000"


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One REST request the fake answered.

    Attributes:
        method / path: as on the wire (``path`` starts with ``/ari``).
        query: the query parameters (last value wins for repeated names).
        body: the request body as text ("" when none).
        headers: request headers (``Authorization`` included, so tests can check it).
        at: ``time.monotonic()`` when it arrived.
        status: the status code answered.
    """

    method: str
    path: str
    query: Mapping[str, str]
    body: str
    headers: Mapping[str, str]
    at: float
    status: int


@dataclass(frozen=True, slots=True)
class ContinueRecord:
    """Where ``continue`` sent a channel and what its variables were at that moment."""

    channel_id: str
    context: str
    extension: str
    priority: int | None
    label: str
    variables: Mapping[str, str]
    at: float


@dataclass(frozen=True, slots=True)
class SentEvent:
    """An event the fake emitted for ``app`` (``delivered`` is False if no socket owned it)."""

    app: str
    event: Mapping[str, Any]
    delivered: bool
    at: float


@dataclass(eq=False)
class _Playback:
    id: str
    media: list[str]
    channel_id: str
    language: str
    state: str = "queued"
    index: int = 0
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "media_uri": self.media[self.index],
            "target_uri": f"channel:{self.channel_id}",
            "language": self.language,
            "state": self.state,
        }
        if self.index + 1 < len(self.media):
            out["next_media_uri"] = self.media[self.index + 1]
        return out


@dataclass(eq=False)
class _Command:
    kind: str
    run: Callable[[], Awaitable[None]]
    done: asyncio.Future[None] | None = None


class FakeChannel:
    """The fake's view of one channel. Read it in tests; change it only through the fake."""

    def __init__(
        self,
        *,
        channel_id: str,
        name: str,
        caller_name: str,
        caller_number: str,
        context: str,
        extension: str,
        priority: int,
        language: str,
        variables: Mapping[str, str],
        protocol_id: str,
    ) -> None:
        self.id = channel_id
        self.name = name
        self.state = "Ring"
        self.caller_name = caller_name
        self.caller_number = caller_number
        self.context = context
        self.extension = extension
        self.priority = priority
        self.app_name = ""
        self.app_data = ""
        self.language = language
        self.protocol_id = protocol_id
        self.creationtime = _now_iso()
        self.variables: dict[str, str] = dict(variables)
        self.app: str | None = None
        """The Stasis app the channel is in, None outside Stasis."""
        self.args: tuple[str, ...] = ()
        self.hung_up = False
        self.hangup_cause: int | None = None
        self.continued: ContinueRecord | None = None
        self.dtmf_sent: list[str] = []
        """DTMF the app sent *to* the caller with ``POST /dtmf``."""
        self.subscribers: set[str] = set()
        """Apps subscribed with ``POST /applications/{app}/subscription``."""
        self.listed_vars: tuple[str, ...] = tuple(variables)
        """Variables shown as ``channelvars`` when the fake has no ``channelvars`` list."""
        self.playback: _Playback | None = None
        self.queue: asyncio.Queue[_Command] = asyncio.Queue()
        self.worker: asyncio.Task[None] | None = None

    @property
    def in_stasis(self) -> bool:
        """True while the channel is in a Stasis app."""
        return self.app is not None


class _WsConn:
    def __init__(
        self,
        fake: FakeAsterisk,
        ws: web.WebSocketResponse,
        request: web.Request,
        apps: tuple[str, ...],
    ) -> None:
        self.fake = fake
        self.ws = ws
        self.request = request
        self.apps = apps
        self.out: asyncio.Queue[tuple[bytes | str, WSMsgType]] = asyncio.Queue()
        self.sender = asyncio.create_task(self._send_loop())

    async def _send_loop(self) -> None:
        while True:
            data, kind = await self.out.get()
            await self.fake._unstalled.wait()
            if self.ws.closed:
                return
            try:
                if kind is WSMsgType.TEXT and isinstance(data, str):
                    await self.ws.send_str(data)
                else:
                    payload = data.encode() if isinstance(data, str) else data
                    await self.ws.send_frame(payload, kind)
            except (ConnectionError, RuntimeError):
                return


class FakeAsterisk:
    """A fake Asterisk ARI server on 127.0.0.1 for tests.

    Use as ``async with FakeAsterisk() as fake:``; point the client at ``fake.settings(app)``.

    Args:
        username / password: the ARI user (Basic auth, or ``api_key=user:pass``, is checked).
        time_scale: multiplies every simulated duration (sounds, DTMF); 0.05 makes a 1.4 s
            disclosure take 70 ms.
        sounds: seconds per sound id (default ``DEFAULT_SOUNDS``); others fail to play.
        channelvars: variable names listed in each channel snapshot (``ari.conf``
            ``channelvars``); None lists the variables a call was originated with, if any.
        asterisk_id: the ``asterisk_id`` / entity id reported.
    """

    def __init__(
        self,
        *,
        username: str = "asterisk-recorder",
        password: str = "fake-secret",  # noqa: S107 - a throwaway credential of a fake
        time_scale: float = 1.0,
        sounds: Mapping[str, float] | None = None,
        channelvars: Sequence[str] | None = None,
        asterisk_id: str = "02:fc:00:00:00:01",
        version: str = "22.10.1",
    ) -> None:
        self.username = username
        self.password = password
        self.time_scale = time_scale
        self.sounds: dict[str, float] = dict(DEFAULT_SOUNDS if sounds is None else sounds)
        self.channelvars = tuple(channelvars) if channelvars is not None else None
        self.asterisk_id = asterisk_id
        self.version = version
        self.port = 0
        self.requests: list[RecordedRequest] = []
        """Every REST request answered, in order."""
        self.events: list[SentEvent] = []
        """Every event emitted, in order (delivered or not)."""
        self.continues: list[ContinueRecord] = []
        self.ws_connections = 0
        """WebSocket upgrades accepted so far."""
        self.in_flight = 0
        """REST requests received and not answered yet (held by the control queue or a fault)."""
        self.ws_requests: list[RecordedRequest] = []
        """Every WebSocket upgrade request (``status`` is 101 whatever the answer was)."""
        self.ws_refused = 0
        """WebSocket upgrades refused by ``refuse_websockets()`` so far."""
        self.channels: dict[str, FakeChannel] = {}
        self._gone: dict[str, FakeChannel] = {}
        self._playbacks: dict[str, _Playback] = {}
        self._owners: dict[str, _WsConn | None] = {}
        """Registered apps -> the socket that gets their events (None: replaced elsewhere)."""
        self._conns: list[_WsConn] = []
        self._faults: list[_Fault] = []
        self._late: list[_Fault] = []
        self._refuse_ws: int | None = None
        self._autoping = True
        self._unstalled = asyncio.Event()
        self._unstalled.set()
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._counter = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._started = _now_iso()
        self._expected_auth = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode(
            "ascii"
        )

    # --- lifecycle ----------------------------------------------------------------------

    async def __aenter__(self) -> FakeAsterisk:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Listen on 127.0.0.1 (an ephemeral port the first time, the same port afterwards)."""
        app = web.Application()
        app.router.add_route("GET", "/ari/events", self._ws_handler)
        app.router.add_route("*", "/ari/{tail:.*}", self._rest_handler)
        # Requests held by ``delay()`` or ``stall()`` must not hold up stop() for a minute.
        self._runner = web.AppRunner(
            app, handle_signals=False, access_log=None, shutdown_timeout=0.5
        )
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await self._site.start()
        server = self._runner.server
        assert server is not None
        sockets = self._runner.addresses
        self.port = int(sockets[0][1])

    async def stop(self) -> None:
        """Close every socket and stop listening."""
        self._unstalled.set()
        for task in list(self._tasks):
            task.cancel()
        for ch in list(self.channels.values()):
            self._kill_worker(ch)
        for conn in list(self._conns):
            conn.sender.cancel()
        await self._drop_all(abort=False)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        for conn in list(self._conns):
            with contextlib.suppress(asyncio.CancelledError):
                await conn.sender
        self._conns.clear()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` (``/ari`` is added by the client)."""
        return f"http://127.0.0.1:{self.port}"

    def settings(self, app: str = "consent-recorder", **overrides: Any) -> AriServerSettings:
        """``AriServerSettings`` pointing at this fake (fast heartbeat and backoff for tests)."""
        values: dict[str, Any] = {
            "name": "fake",
            "url": self.url,
            "username": self.username,
            "password": Secret(self.password),
            "app": app,
            "request_timeout": 2.0,
            "heartbeat": 5.0,
            "reconnect_max": 0.5,
        }
        values.update(overrides)
        return AriServerSettings(**values)

    # --- calls (the caller's side) ------------------------------------------------------

    async def originate(
        self,
        app: str = "consent-recorder",
        *,
        caller_name: str = "",
        caller_number: str = "",
        extension: str = "s",
        context: str = "default",
        priority: int = 1,
        language: str = "en",
        variables: Mapping[str, str] | None = None,
        args: Sequence[str] = (),
        channel_id: str | None = None,
        name: str | None = None,
        wait_for_app: float = 5.0,
    ) -> FakeChannel:
        """Place a call that runs ``Stasis(app[,args])`` in dialplan.

        The call waits up to ``wait_for_app`` seconds for the app to be registered (a WebSocket
        connected for it). If it is not, the call goes on in dialplan with
        ``STASISSTATUS=FAILED`` like Asterisk does, and no event is sent.
        """
        ch = self._new_channel(
            channel_id=channel_id,
            name=name,
            caller_name=caller_name,
            caller_number=caller_number,
            context=context,
            extension=extension,
            priority=priority,
            language=language,
            variables=variables or {},
        )
        with contextlib.suppress(TimeoutError):
            await self._wait(lambda: app in self._owners, wait_for_app)
        if app not in self._owners:
            ch.variables["STASISSTATUS"] = "FAILED"
            ch.priority += 1
            self._notify()
            return ch
        self._enter_stasis(ch, app, tuple(args))
        return ch

    async def send_dtmf(
        self, channel_id: str, digits: str, *, duration_ms: int = 100, gap_ms: int = 0
    ) -> None:
        """The caller presses ``digits``; each ``ChannelDtmfReceived`` comes at the digit's end."""
        for i, digit in enumerate(digits):
            if i and gap_ms:
                await asyncio.sleep(gap_ms / 1000 * self.time_scale)
            await asyncio.sleep(duration_ms / 1000 * self.time_scale)
            ch = self.channels.get(channel_id)
            if ch is None or ch.app is None:
                return
            self._emit_channel(
                ch, "ChannelDtmfReceived", {"digit": digit, "duration_ms": duration_ms}
            )

    async def hangup(self, channel_id: str, *, cause: int = 16) -> None:
        """The caller hangs up (``ChannelHangupRequest`` with ``cause``, no ``soft``)."""
        ch = self.channels.get(channel_id)
        if ch is None:
            raise KeyError(f"no channel {channel_id!r}")
        self._hangup(ch, {"cause": cause}, destroy_cause=cause)

    def channel(self, channel_id: str) -> FakeChannel:
        """A channel, alive or hung up (``KeyError`` if it never existed)."""
        ch = self.channels.get(channel_id) or self._gone.get(channel_id)
        if ch is None:
            raise KeyError(channel_id)
        return ch

    # --- faults -------------------------------------------------------------------------

    def fail(
        self,
        method: str,
        path: str,
        status: int = 500,
        message: str | None = None,
        *,
        times: int | None = 1,
        raw_body: str | None = None,
    ) -> None:
        """Answer matching REST calls with ``status`` (``path`` is an fnmatch pattern).

        The body is Asterisk's ``{"message": message}``, or ``raw_body`` verbatim (which may be a
        2xx status with a body that is not JSON, to test the client's protocol checks).
        """
        self._faults.append(
            _Fault(
                method.upper(),
                _norm(path),
                status=status,
                message=message or _REASONS.get(status, "Error"),
                times=times,
                raw_body=raw_body,
            )
        )

    def delay(self, method: str, path: str, seconds: float, *, times: int | None = None) -> None:
        """Hold matching REST calls ``seconds`` (real time) before handling them."""
        self._faults.append(_Fault(method.upper(), _norm(path), delay=seconds, times=times))

    def delay_response(
        self, method: str, path: str, seconds: float, *, times: int | None = None
    ) -> None:
        """Answer matching REST calls at once, but hold the answer ``seconds`` on the wire.

        The state the answer shows is the state when the request arrived: a stale snapshot,
        as a slow network or a busy Asterisk gives (``delay`` holds the request instead).
        """
        self._late.append(_Fault(method.upper(), _norm(path), delay=seconds, times=times))

    def clear_faults(self) -> None:
        """Remove every injected REST fault."""
        self._faults.clear()
        self._late.clear()

    def refuse_websockets(self, status: int = 503) -> None:
        """Answer WebSocket upgrades with HTTP ``status`` until ``accept_websockets()``."""
        self._refuse_ws = status

    def answer_pings(self, answer: bool = True) -> None:
        """Whether sockets accepted from now on answer WebSocket pings (False: a silent peer)."""
        self._autoping = answer

    def accept_websockets(self) -> None:
        """Accept WebSocket upgrades again."""
        self._refuse_ws = None

    async def drop_websockets(self, *, abort: bool = False) -> None:
        """Close every event socket (``abort``: reset TCP instead of a close frame)."""
        await self._drop_all(abort=abort)

    def stall(self) -> None:
        """Stop answering: REST calls hang and no event is sent, until ``unstall()``."""
        self._unstalled.clear()

    def unstall(self) -> None:
        """Answer again (held requests and events go out in order)."""
        self._unstalled.set()

    async def restart(self, *, downtime: float = 0.0) -> None:
        """Restart Asterisk: sockets dropped, all channels and playbacks gone, apps unregistered.

        With ``downtime`` the port refuses connections for that many seconds.
        """
        for ch in list(self.channels.values()):
            self._kill_worker(ch)
            ch.hung_up = True
            self._gone[ch.id] = ch
        self.channels.clear()
        self._playbacks.clear()
        self._owners.clear()
        if self._runner is not None:
            await self._drop_all(abort=True)
            await self._runner.cleanup()
            self._runner = None
        await asyncio.sleep(downtime)
        self._started = _now_iso()
        await self.start()
        self._notify()

    async def replace_application(self, app: str) -> None:
        """Another client took ``app`` over: the owner gets ``ApplicationReplaced``.

        Its socket stays open (as Asterisk leaves it) but gets no more events for ``app``.
        """
        owner = self._owners.get(app)
        if owner is not None:
            self._send(owner, app, self._event("ApplicationReplaced", app, {}))
        self._owners[app] = None
        self._notify()

    async def send_raw(self, data: str | bytes, *, binary: bool = False) -> None:
        """Send one raw frame on every open event socket (for bad-input tests).

        ``bytes`` with ``binary=False`` go out as a *text* frame as they are (e.g. invalid UTF-8).
        """
        kind = WSMsgType.BINARY if binary else WSMsgType.TEXT
        for conn in self._conns:
            conn.out.put_nowait((data, kind))

    async def send_event(self, app: str, event: Mapping[str, Any]) -> None:
        """Send a hand-made event dict to ``app``'s socket (``application`` is filled in)."""
        body = {"asterisk_id": self.asterisk_id, "application": app, **event}
        self._deliver(app, body)

    # --- waiting helpers ----------------------------------------------------------------

    async def wait_for_app(self, app: str, within: float = 5.0) -> None:
        """Wait until a socket owns ``app``."""
        await self._wait(lambda: self._owners.get(app) is not None, within)

    async def wait_for_continue(self, channel_id: str, within: float = 5.0) -> ContinueRecord:
        """Wait until ``channel_id`` was continued to dialplan; return where it went."""
        await self._wait(lambda: self.channel(channel_id).continued is not None, within)
        record = self.channel(channel_id).continued
        assert record is not None
        return record

    async def wait_for_hangup(self, channel_id: str, within: float = 5.0) -> None:
        """Wait until ``channel_id`` is hung up."""
        await self._wait(lambda: self.channel(channel_id).hung_up, within)

    async def wait_for_event(
        self,
        event_type: str,
        *,
        channel_id: str | None = None,
        since: int = 0,
        within: float = 5.0,
    ) -> Mapping[str, Any]:
        """Wait for an emitted event of ``event_type`` (optionally about ``channel_id``)."""

        def find() -> Mapping[str, Any] | None:
            for sent in self.events[since:]:
                ev = sent.event
                if ev.get("type") != event_type:
                    continue
                if channel_id is not None and _event_channel_id(ev) != channel_id:
                    continue
                return ev
            return None

        await self._wait(lambda: find() is not None, within)
        found = find()
        assert found is not None
        return found

    async def wait_for_request(
        self, method: str, path: str, *, since: int = 0, within: float = 5.0
    ) -> RecordedRequest:
        """Wait until a request matching ``method`` and the fnmatch ``path`` was answered."""
        pattern = _norm(path)

        def find() -> RecordedRequest | None:
            for req in self.requests[since:]:
                if req.method == method.upper() and fnmatch.fnmatchcase(req.path, pattern):
                    return req
            return None

        await self._wait(lambda: find() is not None, within)
        found = find()
        assert found is not None
        return found

    async def wait_until(self, predicate: Callable[[], bool], within: float = 5.0) -> None:
        """Wait until ``predicate()`` is true; it is re-checked whenever the fake changes."""
        await self._wait(predicate, within)

    async def _wait(self, predicate: Callable[[], bool], within: float) -> None:
        async with asyncio.timeout(within):
            while not predicate():
                changed = self._changed
                await changed.wait()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # --- channel machinery --------------------------------------------------------------

    def _new_channel(
        self,
        *,
        channel_id: str | None,
        name: str | None,
        caller_name: str,
        caller_number: str,
        context: str,
        extension: str,
        priority: int,
        language: str,
        variables: Mapping[str, str],
    ) -> FakeChannel:
        self._counter += 1
        cid = channel_id or f"{int(time.time())}.{self._counter}"
        if cid in self.channels:
            raise ValueError(f"channel id {cid!r} already exists")
        ch = FakeChannel(
            channel_id=cid,
            name=name or f"PJSIP/caller-{self._counter:08x}",
            caller_name=caller_name,
            caller_number=caller_number,
            context=context,
            extension=extension,
            priority=priority,
            language=language,
            variables=variables,
            protocol_id="",
        )
        self.channels[cid] = ch
        return ch

    def _enter_stasis(self, ch: FakeChannel, app: str, args: tuple[str, ...]) -> None:
        ch.app = app
        ch.args = args
        ch.app_name = "Stasis"
        ch.app_data = ",".join((app, *args))
        ch.variables["STASISSTATUS"] = ""
        ch.worker = asyncio.create_task(self._control_loop(ch), name=f"fake-control-{ch.id}")
        self._emit_channel(ch, "StasisStart", {"args": list(args)}, channel_last=True)

    def snapshot(self, ch: FakeChannel) -> dict[str, Any]:
        """The ARI ``Channel`` JSON of ``ch`` as Asterisk 22 renders it."""
        snap: dict[str, Any] = {
            "id": ch.id,
            "name": ch.name,
            "state": ch.state,
            "protocol_id": ch.protocol_id,
            "caller": {"name": ch.caller_name, "number": ch.caller_number},
            "connected": {"name": ch.caller_name, "number": ch.caller_number},
            "accountcode": "",
            "dialplan": {
                "context": ch.context,
                "exten": ch.extension,
                "priority": ch.priority,
                "app_name": ch.app_name,
                "app_data": ch.app_data,
            },
            "creationtime": ch.creationtime,
            "language": ch.language,
        }
        names: Iterable[str] | None = self.channelvars
        if names is None:
            names = ch.listed_vars or None
        if names is not None:
            snap["channelvars"] = {n: ch.variables.get(n, "") for n in names}
        return snap

    def _event(self, kind: str, app: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "type": kind,
            "timestamp": _now_iso(),
            **fields,
            "asterisk_id": self.asterisk_id,
            "application": app,
        }

    def _apps_for(self, ch: FakeChannel) -> list[str]:
        apps = [ch.app] if ch.app is not None else []
        apps.extend(sorted(a for a in ch.subscribers if a not in apps))
        return apps

    def _emit_channel(
        self,
        ch: FakeChannel,
        kind: str,
        fields: Mapping[str, Any],
        *,
        channel_last: bool = False,
        apps: Sequence[str] | None = None,
    ) -> None:
        for app in apps if apps is not None else self._apps_for(ch):
            if channel_last:
                body = {
                    "type": kind,
                    "timestamp": _now_iso(),
                    **fields,
                    "channel": self.snapshot(ch),
                    "asterisk_id": self.asterisk_id,
                    "application": app,
                }
            else:
                body = self._event(kind, app, {**fields, "channel": self.snapshot(ch)})
            self._deliver(app, body)

    def _emit_playback(self, ch: FakeChannel, kind: str, pb: _Playback) -> None:
        for app in self._apps_for(ch):
            self._deliver(app, self._event(kind, app, {"playback": pb.json()}))

    def _deliver(self, app: str, body: dict[str, Any]) -> None:
        owner = self._owners.get(app)
        if owner is not None:
            self._send(owner, app, body)
        else:
            self.events.append(SentEvent(app, MappingProxyType(body), False, time.monotonic()))
            self._notify()

    def _send(self, conn: _WsConn, app: str, body: dict[str, Any]) -> None:
        self.events.append(SentEvent(app, MappingProxyType(body), True, time.monotonic()))
        conn.out.put_nowait((json.dumps(body, separators=(",", ":")), WSMsgType.TEXT))
        self._notify()

    async def _control_loop(self, ch: FakeChannel) -> None:
        while ch.app is not None:
            cmd = await ch.queue.get()
            try:
                await cmd.run()
            except asyncio.CancelledError:
                if cmd.done is not None and not cmd.done.done():
                    cmd.done.cancel()
                raise
            if cmd.done is not None and not cmd.done.done():
                cmd.done.set_result(None)

    def _kill_worker(self, ch: FakeChannel) -> None:
        if ch.worker is not None:
            ch.worker.cancel()
            ch.worker = None
        while not ch.queue.empty():
            cmd = ch.queue.get_nowait()
            if cmd.done is not None and not cmd.done.done():
                cmd.done.cancel()

    async def _queue_sync(
        self, ch: FakeChannel, kind: str, run: Callable[[], Awaitable[None]]
    ) -> bool:
        """Queue a command and wait for it; False if the channel went away first."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        ch.queue.put_nowait(_Command(kind, run, done))
        self._notify()
        try:
            await done
        except asyncio.CancelledError:
            if ch.hung_up or ch.app is None:
                return False
            raise
        return True

    def _queue_async(self, ch: FakeChannel, kind: str, run: Callable[[], Awaitable[None]]) -> None:
        ch.queue.put_nowait(_Command(kind, run))
        self._notify()

    def _hangup(
        self, ch: FakeChannel, request_fields: Mapping[str, Any], *, destroy_cause: int
    ) -> None:
        """Hang ``ch`` up with Asterisk's event order (all synchronous, so nothing interleaves)."""
        if ch.hung_up:
            return
        was_app = ch.app
        apps = self._apps_for(ch)
        ch.hung_up = True
        ch.hangup_cause = destroy_cause
        self._emit_channel(ch, "ChannelHangupRequest", request_fields, apps=apps)
        pb = ch.playback
        if pb is not None and pb.state == "playing":
            pb.state = "failed"
            self._emit_playback(ch, "PlaybackFinished", pb)
            self._playbacks.pop(pb.id, None)
            ch.playback = None
        for queued in list(self._playbacks.values()):
            if queued.channel_id == ch.id:
                self._playbacks.pop(queued.id, None)
        self._kill_worker(ch)
        if was_app is not None:
            ch.app = None
            ch.variables["STASISSTATUS"] = "SUCCESS"
            self._emit_channel(ch, "StasisEnd", {}, apps=[was_app])
        subscribed = sorted(ch.subscribers)
        if subscribed:
            self._emit_channel(
                ch,
                "ChannelDestroyed",
                {"cause": destroy_cause, "cause_txt": _cause_txt(destroy_cause)},
                apps=subscribed,
            )
        self.channels.pop(ch.id, None)
        self._gone[ch.id] = ch
        self._notify()

    async def _play(self, ch: FakeChannel, pb: _Playback) -> None:
        if pb.id not in self._playbacks:  # stopped while queued
            return
        ch.playback = pb
        pb.state = "playing"
        for index, media in enumerate(pb.media):
            pb.index = index
            self._emit_playback(ch, "PlaybackStarted" if index == 0 else "PlaybackContinuing", pb)
            seconds = self._media_seconds(media, pb.language)
            if seconds is None:
                pb.state = "failed"
                break
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds * self.time_scale):
                    await pb.stop.wait()
            if pb.stop.is_set():
                break
        if pb.state == "playing":
            pb.state = "done"
        ch.playback = None
        self._playbacks.pop(pb.id, None)
        self._emit_playback(ch, "PlaybackFinished", pb)

    def _media_seconds(self, media: str, language: str) -> float | None:
        scheme, _, rest = media.partition(":")
        if scheme == "sound":
            return self.sounds.get(rest)
        if scheme == "digits" and rest and all(c in "0123456789*#" for c in rest):
            return _DIGIT_SECONDS * len(rest)
        if scheme == "number" and rest.lstrip("-").isdigit():
            return _DIGIT_SECONDS * len(rest)
        if scheme == "recording":
            return self.sounds.get(media)
        return None

    # --- WebSocket ----------------------------------------------------------------------

    async def _ws_handler(self, request: web.Request) -> web.StreamResponse:
        self.ws_requests.append(
            RecordedRequest(
                method=request.method,
                path=request.rel_url.raw_path,
                query=MappingProxyType(dict(request.query)),
                body="",
                headers=MappingProxyType(dict(request.headers)),
                at=time.monotonic(),
                status=101,
            )
        )
        self._notify()
        if not self._authorised(request):
            return _error(401, "Authentication required")
        if self._refuse_ws is not None:
            self.ws_refused += 1
            self._notify()
            return _error(self._refuse_ws, _REASONS.get(self._refuse_ws, "Refused"))
        apps = tuple(a for a in request.query.get("app", "").split(",") if a)
        if not apps:
            return _error(400, "Missing param 'app'")
        ws = web.WebSocketResponse(
            protocols=("ari",), autoping=self._autoping, max_msg_size=1 << 20
        )
        await ws.prepare(request)
        conn = _WsConn(self, ws, request, apps)
        self._conns.append(conn)
        self.ws_connections += 1
        for app in apps:
            old = self._owners.get(app)
            if old is not None and old is not conn:
                self._send(old, app, self._event("ApplicationReplaced", app, {}))
            self._owners[app] = conn
        self._notify()
        try:
            async for _msg in ws:
                pass  # REST over the socket is not modelled; incoming frames are ignored
        finally:
            for app in apps:
                if self._owners.get(app) is conn:
                    del self._owners[app]
            if conn in self._conns:
                self._conns.remove(conn)
            conn.sender.cancel()
            self._notify()
        return ws

    async def _drop_all(self, *, abort: bool) -> None:
        for conn in list(self._conns):
            if abort:
                transport = conn.request.transport
                if transport is not None:
                    transport.abort()
            else:
                with contextlib.suppress(Exception):
                    await conn.ws.close(code=1001, message=b"shutdown")
        for _ in range(100):
            if not self._conns:
                break
            await asyncio.sleep(0.005)

    # --- REST ---------------------------------------------------------------------------

    def _authorised(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if header == self._expected_auth:
            return True
        if header.startswith("Basic "):
            with contextlib.suppress(binascii.Error, UnicodeDecodeError):
                user, _, pw = base64.b64decode(header[6:], validate=True).decode().partition(":")
                return user == self.username and pw == self.password
        key = request.query.get("api_key")
        return key == f"{self.username}:{self.password}"

    async def _rest_handler(self, request: web.Request) -> web.StreamResponse:
        arrived = time.monotonic()
        self.in_flight += 1
        self._notify()
        try:
            body_text = await request.text() if request.can_read_body else ""
            await self._unstalled.wait()
            hold = self._late_delay(request.method, request.rel_url.raw_path)
            response = await self._rest(request, body_text)
            if hold:
                await asyncio.sleep(hold)
        finally:
            self.in_flight -= 1
        self.requests.append(
            RecordedRequest(
                method=request.method,
                path=request.rel_url.raw_path,
                query=MappingProxyType(dict(request.query)),
                body=body_text,
                headers=MappingProxyType(dict(request.headers)),
                at=arrived,
                status=response.status,
            )
        )
        self._notify()
        return response

    def _late_delay(self, method: str, path: str) -> float:
        for fault in list(self._late):
            if fault.matches(method, path):
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        self._late.remove(fault)
                return fault.delay
        return 0.0

    async def _rest(self, request: web.Request, body_text: str) -> web.Response:
        if not self._authorised(request):
            resp = _error(401, "Authentication required")
            resp.headers["WWW-Authenticate"] = 'Basic realm="Asterisk REST Interface"'
            return resp
        method, path = request.method, request.rel_url.raw_path
        for fault in list(self._faults):
            if fault.matches(method, path):
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                if fault.delay:
                    await asyncio.sleep(fault.delay)
                if fault.raw_body is not None and fault.status is not None:
                    return web.Response(
                        status=fault.status, text=fault.raw_body, content_type="application/json"
                    )
                if fault.status is not None:
                    return _error(fault.status, fault.message)
        params = dict(request.query)
        params.pop("api_key", None)
        body: Any = None
        if body_text:
            try:
                body = json.loads(body_text)
            except ValueError:
                return _error(400, "Failed to parse request body as JSON")
            if isinstance(body, dict):
                for key, value in body.items():
                    if key != "variables" and key not in params and value is not None:
                        params[key] = value if isinstance(value, str) else json.dumps(value)
        for verb, regex, handler in self._routes():
            match = regex.fullmatch(path)
            if match is None:
                continue
            if verb != method:
                continue
            return await handler(params, body, *(unquote(g) for g in match.groups()))
        if any(regex.fullmatch(path) for _, regex, _ in self._routes()):
            return _error(405, "Method Not Allowed")
        return _error(404, "Resource not found")

    def _routes(self) -> list[tuple[str, re.Pattern[str], Callable[..., Awaitable[web.Response]]]]:
        return [
            ("GET", _R_INFO, self._h_info),
            ("GET", _R_PING, self._h_ping),
            ("GET", _R_CHANNELS, self._h_list_channels),
            ("POST", _R_CHANNELS, self._h_originate),
            ("GET", _R_CHANNEL, self._h_get_channel),
            ("DELETE", _R_CHANNEL, self._h_hangup),
            ("POST", _R_ANSWER, self._h_answer),
            ("POST", _R_RING, self._h_ring),
            ("POST", _R_PLAY, self._h_play),
            ("POST", _R_DTMF, self._h_dtmf),
            ("GET", _R_VARIABLE, self._h_get_var),
            ("POST", _R_VARIABLE, self._h_set_var),
            ("POST", _R_CONTINUE, self._h_continue),
            ("GET", _R_PLAYBACK, self._h_get_playback),
            ("DELETE", _R_PLAYBACK, self._h_stop_playback),
            ("GET", _R_APPS, self._h_list_apps),
            ("GET", _R_APP, self._h_get_app),
            ("POST", _R_SUBSCRIPTION, self._h_subscribe),
            ("DELETE", _R_SUBSCRIPTION, self._h_unsubscribe),
        ]

    def _stasis_channel(self, channel_id: str) -> FakeChannel | web.Response:
        ch = self.channels.get(channel_id)
        if ch is None:
            return _error(404, "Channel not found")
        if ch.app is None:
            return _error(409, "Channel not in Stasis application")
        return ch

    async def _h_info(self, params: Mapping[str, str], body: Any) -> web.Response:
        info = {
            "build": {
                "os": "Linux",
                "kernel": "fake",
                "machine": "x86_64",
                "options": "OPTIONAL_API",
                "date": self._started[:10],
                "user": "fake",
            },
            "system": {"version": self.version, "entity_id": self.asterisk_id},
            "config": {"name": "", "default_language": "en", "setid": {"user": "", "group": ""}},
            "status": {"startup_time": self._started, "last_reload_time": self._started},
        }
        only = params.get("only")
        if only:
            info = {k: v for k, v in info.items() if k in only.split(",")}
        return web.json_response(info)

    async def _h_ping(self, params: Mapping[str, str], body: Any) -> web.Response:
        return web.json_response(
            {"asterisk_id": self.asterisk_id, "ping": "pong", "timestamp": _now_iso()}
        )

    async def _h_list_channels(self, params: Mapping[str, str], body: Any) -> web.Response:
        return web.json_response([self.snapshot(ch) for ch in self.channels.values()])

    async def _h_originate(self, params: Mapping[str, str], body: Any) -> web.Response:
        endpoint = params.get("endpoint")
        if not endpoint:
            return _error(400, "Endpoint must be specified")
        app = params.get("app")
        if not app and not params.get("extension"):
            return _error(400, "Application or extension must be specified")
        variables: dict[str, str] = {}
        if isinstance(body, dict) and isinstance(body.get("variables"), dict):
            variables = {str(k): str(v) for k, v in body["variables"].items()}
        name, number = _parse_caller_id(params.get("callerId", ""))
        try:
            ch = self._new_channel(
                channel_id=params.get("channelId"),
                name=f"{endpoint}-{self._counter + 1:08x}",
                caller_name=name,
                caller_number=number,
                context=params.get("context", "default"),
                extension=params.get("extension", "s"),
                priority=1,
                language="en",
                variables=variables,
            )
        except ValueError:
            return _error(409, "Channel with given unique ID already exists")
        ch.state = "Down"
        ch.app_name, ch.app_data = "AppDial2", "(Outgoing Line)"
        snap = self.snapshot(ch)
        if app:
            args = tuple(a for a in params.get("appArgs", "").split(",") if a)

            async def answer_into_app() -> None:
                await asyncio.sleep(0)
                if ch.hung_up or app not in self._owners:
                    return
                ch.state = "Up"
                self._enter_stasis(ch, app, args)

            task = asyncio.create_task(answer_into_app())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return web.json_response(snap)

    async def _h_get_channel(self, params: Mapping[str, str], body: Any, cid: str) -> web.Response:
        ch = self.channels.get(cid)
        if ch is None:
            return _error(404, "Channel not found")
        return web.json_response(self.snapshot(ch))

    async def _h_hangup(self, params: Mapping[str, str], body: Any, cid: str) -> web.Response:
        ch = self.channels.get(cid)
        if ch is None:
            return _error(404, "Channel not found")
        reason = params.get("reason") or params.get("reason_code")
        cause = 16
        if reason is not None:
            if reason.isdigit():
                cause = int(reason)
            elif reason in _HANGUP_CAUSES:
                cause = _HANGUP_CAUSES[reason]
            else:
                return _error(400, "Invalid reason for hangup provided")
        self._hangup(ch, {"cause": _SOFTHANGUP_EXPLICIT, "soft": True}, destroy_cause=cause)
        return web.Response(status=204)

    async def _h_answer(self, params: Mapping[str, str], body: Any, cid: str) -> web.Response:
        ch = self._stasis_channel(cid)
        if isinstance(ch, web.Response):
            return ch
        channel = ch

        async def run() -> None:
            if channel.state != "Up":
                channel.state = "Up"
                self._emit_channel(channel, "ChannelStateChange", {})

        if not await self._queue_sync(channel, "answer", run):
            return _error(500, "Failed to answer channel")
        return web.Response(status=204)

    async def _h_ring(self, params: Mapping[str, str], body: Any, cid: str) -> web.Response:
        ch = self._stasis_channel(cid)
        if isinstance(ch, web.Response):
            return ch

        async def run() -> None:
            return None

        self._queue_async(ch, "ring", run)
        return web.Response(status=204)

    async def _h_play(self, params: Mapping[str, str], body: Any, cid: str) -> web.Response:
        ch = self._stasis_channel(cid)
        if isinstance(ch, web.Response):
            return ch
        media = [m for m in params.get("media", "").split(",") if m]
        if not media:
            return _error(400, "media: required parameter is missing")
        pb = _Playback(
            id=params.get("playbackId") or str(uuid.uuid4()),
            media=media,
            channel_id=ch.id,
            language=params.get("lang") or ch.language,
        )
        if pb.id in self._playbacks:
            return _error(409, "A playback with the same ID already exists")
        self._playbacks[pb.id] = pb
        channel = ch
        self._queue_async(ch, "play", lambda: self._play(channel, pb))
        return web.json_response(pb.json(), status=201)

    async def _h_dtmf(self, params: Mapping[str, str], body: Any, cid: str) -> web.Response:
        ch = self._stasis_channel(cid)
        if isinstance(ch, web.Response):
            return ch
        dtmf = params.get("dtmf", "")
        if not dtmf:
            return _error(400, "DTMF is required")
        channel = ch

        async def run() -> None:
            channel.dtmf_sent.append(dtmf)

        self._queue_async(ch, "dtmf", run)
        return web.Response(status=204)

    async def _h_get_var(self, params: Mapping[str, str], body: Any, cid: str) -> web.Response:
        name = params.get("variable")
        if not name:
            return _error(400, "Variable name is required")
        ch = self._stasis_channel(cid)
        if isinstance(ch, web.Response):
            return ch
        value = self._read_var(ch, name)
        if value is None:
            return _error(404, "Provided variable was not found")
        return web.json_response({"value": value})

    def _read_var(self, ch: FakeChannel, name: str) -> str | None:
        functions = {
            "CALLERID(num)": ch.caller_number,
            "CALLERID(name)": ch.caller_name,
            "CHANNEL(language)": ch.language,
            "UNIQUEID": ch.id,
            "EXTEN": ch.extension,
            "CONTEXT": ch.context,
            "CHANNEL": ch.name,
        }
        if name in functions:
            return functions[name]
        return ch.variables.get(name)

    async def _h_set_var(self, params: Mapping[str, str], body: Any, cid: str) -> web.Response:
        name = params.get("variable")
        if not name:
            return _error(400, "Variable name is required")
        ch = self._stasis_channel(cid)
        if isinstance(ch, web.Response):
            return ch
        value = params.get("value", "")
        channel = ch

        async def run() -> None:
            channel.variables[name] = value
            self._emit_channel(
                channel, "ChannelVarset", {"variable": name, "value": value}, channel_last=False
            )

        if not await self._queue_sync(channel, "variable", run):
            return _error(500, "Failed to execute function")
        return web.Response(status=204)

    async def _h_continue(self, params: Mapping[str, str], body: Any, cid: str) -> web.Response:
        ch = self._stasis_channel(cid)
        if isinstance(ch, web.Response):
            return ch
        priority: int | None = None
        raw_priority = params.get("priority")
        if raw_priority is not None:
            try:
                priority = int(raw_priority)
            except ValueError:
                return _error(400, "priority: expected an integer")
        label = params.get("label", "")
        channel = ch

        async def run() -> None:
            app = channel.app
            if app is None:
                return
            context = params.get("context") or channel.context
            extension = params.get("extension") or channel.extension
            target = priority if priority is not None else (None if label else channel.priority + 1)
            record = ContinueRecord(
                channel_id=channel.id,
                context=context,
                extension=extension,
                priority=target,
                label=label,
                variables=MappingProxyType(dict(channel.variables)),
                at=time.monotonic(),
            )
            channel.app = None
            channel.variables["STASISSTATUS"] = "SUCCESS"
            channel.continued = record
            self.continues.append(record)
            self._emit_channel(channel, "StasisEnd", {}, apps=[app])
            channel.context, channel.extension = context, extension
            channel.priority = target if target is not None else 1
            channel.app_name = channel.app_data = ""
            self._notify()

        self._queue_async(ch, "continue", run)
        return web.Response(status=204)

    async def _h_get_playback(self, params: Mapping[str, str], body: Any, pid: str) -> web.Response:
        pb = self._playbacks.get(pid)
        if pb is None:
            return _error(404, "Playback not found")
        return web.json_response(pb.json())

    async def _h_stop_playback(
        self, params: Mapping[str, str], body: Any, pid: str
    ) -> web.Response:
        pb = self._playbacks.get(pid)
        if pb is None:
            return _error(404, "Playback not found")
        if pb.state == "queued":
            self._playbacks.pop(pid, None)  # cancelled before it started: no events
        else:
            pb.stop.set()
        return web.Response(status=204)

    def _app_json(self, app: str) -> dict[str, Any]:
        ids = [ch.id for ch in self.channels.values() if ch.app == app or app in ch.subscribers]
        return {
            "name": app,
            "channel_ids": ids,
            "bridge_ids": [],
            "endpoint_ids": [],
            "device_names": [],
            "events_allowed": [],
            "events_disallowed": [],
        }

    async def _h_list_apps(self, params: Mapping[str, str], body: Any) -> web.Response:
        return web.json_response([self._app_json(app) for app in sorted(self._owners)])

    async def _h_get_app(self, params: Mapping[str, str], body: Any, app: str) -> web.Response:
        if app not in self._owners:
            return _error(404, "Application not found")
        return web.json_response(self._app_json(app))

    async def _h_subscribe(self, params: Mapping[str, str], body: Any, app: str) -> web.Response:
        return self._subscription(params, app, add=True)

    async def _h_unsubscribe(self, params: Mapping[str, str], body: Any, app: str) -> web.Response:
        return self._subscription(params, app, add=False)

    def _subscription(self, params: Mapping[str, str], app: str, *, add: bool) -> web.Response:
        sources = [s for s in params.get("eventSource", "").split(",") if s]
        if not sources:
            return _error(400, "Missing parameter eventSource")
        if app not in self._owners:
            return _error(404, "Application not found")
        targets: list[FakeChannel] = []
        for source in sources:
            scheme, _, ident = source.partition(":")
            if scheme != "channel":
                return _error(400, "Invalid event source URI scheme")
            ch = self.channels.get(ident)
            if ch is None:
                return _error(422, "Unable to find event source")
            targets.append(ch)
        for ch in targets:
            if add:
                ch.subscribers.add(app)
            elif app in ch.subscribers:
                ch.subscribers.discard(app)
            else:
                return _error(409, "Application not subscribed to event source")
        return web.json_response(self._app_json(app))


@dataclass(eq=False)
class _Fault:
    method: str
    pattern: str
    status: int | None = None
    message: str = ""
    delay: float = 0.0
    times: int | None = None
    raw_body: str | None = None

    def matches(self, method: str, path: str) -> bool:
        return (self.method in ("*", method)) and fnmatch.fnmatchcase(path, self.pattern)


_REASONS = {
    400: "Bad Request",
    401: "Authentication required",
    404: "Not Found",
    409: "Conflict",
    412: "Precondition Failed",
    422: "Unprocessable Entity",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}

_SEG = r"([^/]+)"
_R_INFO = re.compile(r"/ari/asterisk/info")
_R_PING = re.compile(r"/ari/asterisk/ping")
_R_CHANNELS = re.compile(r"/ari/channels")
_R_CHANNEL = re.compile(rf"/ari/channels/{_SEG}")
_R_ANSWER = re.compile(rf"/ari/channels/{_SEG}/answer")
_R_RING = re.compile(rf"/ari/channels/{_SEG}/ring")
_R_PLAY = re.compile(rf"/ari/channels/{_SEG}/play")
_R_DTMF = re.compile(rf"/ari/channels/{_SEG}/dtmf")
_R_VARIABLE = re.compile(rf"/ari/channels/{_SEG}/variable")
_R_CONTINUE = re.compile(rf"/ari/channels/{_SEG}/continue")
_R_PLAYBACK = re.compile(rf"/ari/playbacks/{_SEG}")
_R_APPS = re.compile(r"/ari/applications")
_R_APP = re.compile(rf"/ari/applications/{_SEG}")
_R_SUBSCRIPTION = re.compile(rf"/ari/applications/{_SEG}/subscription")


def _norm(path: str) -> str:
    return path if path.startswith("/ari/") or path == "/ari" else "/ari" + path


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"message": message}, status=status)


def _cause_txt(cause: int) -> str:
    return {
        16: "Normal Clearing",
        17: "User busy",
        19: "No user responding",
        21: "Call Rejected",
        34: "Circuit/channel congestion",
    }.get(cause, "Unknown")


def _parse_caller_id(value: str) -> tuple[str, str]:
    match = re.fullmatch(r'\s*"?([^"<]*?)"?\s*<([^>]*)>\s*', value)
    if match:
        return match.group(1), match.group(2)
    return "", value


def _event_channel_id(event: Mapping[str, Any]) -> str | None:
    ch = event.get("channel")
    if isinstance(ch, Mapping):
        cid = ch.get("id")
        return cid if isinstance(cid, str) else None
    pb = event.get("playback")
    if isinstance(pb, Mapping):
        target = pb.get("target_uri")
        if isinstance(target, str) and target.startswith("channel:"):
            return target[len("channel:") :]
    return None
