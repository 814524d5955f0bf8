"""The ARI event WebSocket: connect, keep alive, reconnect forever, yield typed events.

This module owns the ``/ari/events`` connection of one Asterisk server for a set of apps: the
heartbeat, reconnection with jittered exponential backoff, a synthetic ``Connected`` event on
every (re)connect (Asterisk does not queue events for an absent inbound socket, so the consumer
must resynchronise), a ``Disconnected`` event when the socket goes away, and the defence against
bad frames (each is logged with a reason and skipped). It must not act on events, keep call
state or decide anything about ``ApplicationReplaced``: it only delivers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import AsyncIterator, Callable, Sequence
from types import TracebackType
from typing import Any

import aiohttp
import structlog

from asterisk_recorder.ari.endpoint import ari_base_url, basic_auth_header
from asterisk_recorder.ari.events import (
    Connected,
    Disconnected,
    StreamEvent,
    UnknownEvent,
    parse_event,
)
from asterisk_recorder.errors import AriError, AriProtocolError
from asterisk_recorder.settings import AriServerSettings

__all__ = ["DEFAULT_MAX_EVENT_BYTES", "EventStream", "backoff_delays"]

_log = structlog.get_logger("asterisk_recorder.ari.stream")

DEFAULT_MAX_EVENT_BYTES = 256 * 1024
"""Frames larger than this are logged and skipped (ARI events are a few kB)."""

_TRANSPORT_MAX_BYTES = 16 * 1024 * 1024
"""aiohttp's own frame limit; above it the connection is dropped and re-established."""


def _backoff(attempt: int, initial: float, maximum: float, rng: Callable[[], float]) -> float:
    """Delay before reconnect ``attempt`` (0-based): ``min(max, initial*2**n)`` x U(0.5, 1)."""
    ceiling = min(maximum, initial * (2.0 ** min(attempt, 30)))
    return ceiling * (0.5 + 0.5 * rng())


def backoff_delays(
    initial: float, maximum: float, rng: Callable[[], float] = random.random
) -> list[float]:
    """The first 12 reconnect delays the stream would use (for docs, tests and the bench)."""
    return [_backoff(n, initial, maximum, rng) for n in range(12)]


class EventStream:
    """Events of one or more Stasis apps on one Asterisk server, across reconnects.

    Use as::

        async with EventStream(settings, apps=("consent-recorder",)) as events:
            async for event in events:
                match event:
                    case Connected(): ...      # resync with GET /applications/{app}
                    case StasisStart(): ...

    The socket is read by a background task into a queue, so a slow consumer never stalls the
    heartbeat. Iteration ends only after ``close()``.

    Args:
        settings: the server; ``heartbeat`` and ``reconnect_max`` come from here.
        apps: app names (default: ``settings.app``); Asterisk registers each on connect.
        session: an aiohttp session to share (e.g. ``AriClient.session()``); else one is owned.
        subscribe_all: ARI ``subscribeAll`` (False: only the apps' own channels).
        reconnect_initial: first backoff delay in seconds.
        max_event_bytes: larger frames are logged and skipped.
        yield_unknown: yield ``UnknownEvent`` for unmodelled types (else log and skip them).
        rng: random source for the jitter (tests pass a fixed one).
    """

    def __init__(
        self,
        settings: AriServerSettings,
        *,
        apps: Sequence[str] | None = None,
        session: aiohttp.ClientSession | None = None,
        subscribe_all: bool = False,
        reconnect_initial: float = 0.2,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        yield_unknown: bool = True,
        rng: Callable[[], float] = random.random,
    ) -> None:
        names = tuple(apps) if apps is not None else (settings.app,)
        if not names or any(not n or "," in n for n in names):
            raise ValueError("apps: give one or more non-empty app names without commas")
        self._settings = settings
        self._apps = names
        self._url = ari_base_url(settings) / "events"
        self._params = {
            "app": ",".join(names),
            "subscribeAll": "true" if subscribe_all else "false",
        }
        self._headers = {"Authorization": basic_auth_header(settings)}
        self._session = session
        self._owns_session = session is None
        self._initial = reconnect_initial
        self._max_bytes = max_event_bytes
        self._yield_unknown = yield_unknown
        self._rng = rng
        self._queue: asyncio.Queue[StreamEvent | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._closing = False
        self._connections = 0
        self._connected = asyncio.Event()
        self.frames_received = 0
        """Text frames received so far (all connections)."""
        self.frames_skipped = 0
        """Frames logged and skipped as bad so far."""

    # --- lifecycle ----------------------------------------------------------------------

    @property
    def apps(self) -> tuple[str, ...]:
        """The app names this stream subscribes."""
        return self._apps

    @property
    def connected(self) -> bool:
        """True while a socket is open."""
        return self._connected.is_set()

    @property
    def connections(self) -> int:
        """How many times a socket has been established."""
        return self._connections

    def start(self) -> None:
        """Start the background connection task (``async with`` does this)."""
        if self._closing:
            raise AriError("EventStream is closed")
        if self._task is None:
            if self._session is None:
                self._session = aiohttp.ClientSession()
            self._task = asyncio.create_task(self._run(), name=f"ari-events-{self._settings.name}")

    async def wait_connected(self) -> None:
        """Wait until a socket is open (wrap in ``asyncio.timeout`` to bound it)."""
        await self._connected.wait()

    async def __aenter__(self) -> EventStream:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop reconnecting, close the socket (and the owned session); end the iteration."""
        if self._closing:
            return
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        ws = self._ws
        if ws is not None and not ws.closed:
            await ws.close()
        if self._owns_session and self._session is not None and not self._session.closed:
            await self._session.close()
        self._queue.put_nowait(None)

    # --- consumption --------------------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[StreamEvent]:
        return self

    async def __anext__(self) -> StreamEvent:
        if self._closing and self._queue.empty():
            raise StopAsyncIteration
        item = await self._queue.get()
        if item is None:
            self._queue.put_nowait(None)  # wake any other consumer too
            raise StopAsyncIteration
        return item

    async def get(self) -> StreamEvent:
        """The next event (wrap in ``asyncio.timeout`` to bound it); ``AriError`` once closed."""
        try:
            return await self.__anext__()
        except StopAsyncIteration:
            raise AriError("EventStream is closed") from None

    # --- connection loop ----------------------------------------------------------------

    async def _run(self) -> None:
        assert self._session is not None
        failures = 0
        log = _log.bind(server=self._settings.name, apps=",".join(self._apps))
        while not self._closing:
            reason = "closed by server"
            try:
                # A peer that accepts TCP but never answers the upgrade must not hold us
                # forever (Asterisk's own outbound client hangs there): bound the handshake.
                async with asyncio.timeout(self._settings.request_timeout):
                    ws = await self._session.ws_connect(
                        self._url,
                        params=self._params,
                        headers=self._headers,
                        heartbeat=self._settings.heartbeat,
                        timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=2.0),
                        max_msg_size=_TRANSPORT_MAX_BYTES,
                        autoping=True,
                    )
            except aiohttp.WSServerHandshakeError as exc:
                reason = f"handshake refused: HTTP {exc.status} {exc.message}"
            except TimeoutError:
                reason = f"connect failed: no handshake within {self._settings.request_timeout:g} s"
            except (aiohttp.ClientError, OSError) as exc:
                reason = f"connect failed: {type(exc).__name__}: {exc}"
            else:
                self._ws = ws
                failures = 0
                self._connections += 1
                self._connected.set()
                log.info("ari.events.connected", connection=self._connections)
                self._queue.put_nowait(
                    Connected(
                        apps=self._apps,
                        server=self._settings.name,
                        connection=self._connections,
                        at=time.time(),
                    )
                )
                try:
                    reason = await self._read(ws, log)
                except (aiohttp.ClientError, OSError) as exc:
                    reason = f"connection failed: {type(exc).__name__}: {exc}"
                finally:
                    self._connected.clear()
                    self._ws = None
                    if not ws.closed:
                        await ws.close()
                if not self._closing:
                    self._queue.put_nowait(
                        Disconnected(
                            apps=self._apps,
                            server=self._settings.name,
                            reason=reason,
                            at=time.time(),
                        )
                    )
            delay = _backoff(failures, self._initial, self._settings.reconnect_max, self._rng)
            failures += 1
            log.warning(
                "ari.events.reconnecting", reason=reason, delay=round(delay, 3), attempt=failures
            )
            await asyncio.sleep(delay)

    async def _read(self, ws: aiohttp.ClientWebSocketResponse, log: Any) -> str:
        """Read frames until the socket ends; return why it ended."""
        async for msg in ws:
            if msg.type is aiohttp.WSMsgType.TEXT:
                self.frames_received += 1
                self.handle_frame(msg.data, log)
            elif msg.type is aiohttp.WSMsgType.BINARY:
                self.frames_skipped += 1
                log.warning(
                    "ari.events.bad_frame",
                    reason="binary frame (ARI sends text)",
                    size=len(msg.data),
                )
            elif msg.type is aiohttp.WSMsgType.ERROR:
                # aiohttp fails the connection for protocol errors such as invalid UTF-8 in a
                # text frame (RFC 6455 section 8.1 requires it); we log and reconnect.
                self.frames_skipped += 1
                exc = msg.data if isinstance(msg.data, BaseException) else ws.exception()
                log.warning("ari.events.bad_frame", reason=f"connection failed: {exc!r}")
                return f"protocol error: {exc}"
        code = ws.close_code
        return f"closed by server (code {code})" if code is not None else "connection lost"

    def handle_frame(self, data: str, log: Any = None) -> None:
        """Process one text frame as if it had arrived on the socket.

        Bad frames are logged and skipped; good ones are queued for the consumer. The stream
        calls this for every text frame; the bench and tests call it directly.
        """
        if log is None:
            log = _log
        if len(data) > self._max_bytes:
            self.frames_skipped += 1
            log.warning(
                "ari.events.bad_frame",
                reason="frame too large",
                size=len(data),
                limit=self._max_bytes,
            )
            return
        try:
            raw = json.loads(data)
        except ValueError as exc:
            self.frames_skipped += 1
            log.warning("ari.events.bad_frame", reason=f"not JSON: {exc}", head=data[:80])
            return
        except RecursionError:
            self.frames_skipped += 1
            log.warning("ari.events.bad_frame", reason="JSON nested too deeply", head=data[:80])
            return
        try:
            event = parse_event(raw)
        except AriProtocolError as exc:
            self.frames_skipped += 1
            log.warning("ari.events.bad_frame", reason=str(exc), head=data[:80])
            return
        except Exception as exc:  # a parser bug must cost one frame, never the stream
            self.frames_skipped += 1
            log.error("ari.events.bad_frame", reason=f"parser failed: {exc!r}", head=data[:80])
            return
        if isinstance(event, UnknownEvent):
            log.info("ari.events.unknown_type", type=event.type, yielded=self._yield_unknown)
            if not self._yield_unknown:
                return
        self._queue.put_nowait(event)
