"""The state every part of the fake shares, and the small HTTP pieces they all use.

This module owns ``FakeCore``: the constructor (every option of ``FakeAsterisk`` and every
piece of state: channels, playbacks, app owners, sockets, faults, logs), the change
notification that the ``wait_*`` helpers sleep on, Basic-auth checking, the injected ``Fault``
record, and Asterisk's JSON error response. ``FakeAsterisk`` is assembled from ``FakeCore``
and the layers built on it (``events``, ``control``, ``resources``, ``rest``, ``scenarios``,
``server``); this module must not know any of them.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import fnmatch
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from aiohttp import web

from asterisk_recorder.testing.fake_asterisk.ami import FakeAmi
from asterisk_recorder.testing.fake_asterisk.channel import DEFAULT_SOUNDS, FakeChannel, Playback
from asterisk_recorder.testing.fake_asterisk.mixmonitor import FakeRecording
from asterisk_recorder.testing.fake_asterisk.records import (
    ContinueRecord,
    RecordedRequest,
    SentEvent,
    now_iso,
)
from asterisk_recorder.testing.fake_asterisk.sockets import WsConn

__all__ = ["REASONS", "FakeCore", "Fault", "error_response", "norm_path"]


class FakeCore:
    """State and shared helpers of the fake (see ``FakeAsterisk`` for the options)."""

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
        mixmonitor_seconds: float | None = None,
        mixmonitor_wall_clock: bool = False,
        ami: bool = False,
        ami_username: str = "recorder",
        ami_secret: str = "fake-manager-secret",  # noqa: S107 - a fake's throwaway
        ami_port: int = 0,
    ) -> None:
        self.username = username
        self.password = password
        self.time_scale = time_scale
        self.sounds: dict[str, float] = dict(DEFAULT_SOUNDS if sounds is None else sounds)
        self.channelvars = tuple(channelvars) if channelvars is not None else None
        self.asterisk_id = asterisk_id
        self.version = version
        self.mixmonitor_seconds = mixmonitor_seconds
        self.mixmonitor_wall_clock = mixmonitor_wall_clock
        self.ami: FakeAmi | None = (
            FakeAmi(username=ami_username, secret=ami_secret, port=ami_port) if ami else None)
        """The AMI listener (``ami=True``): started and stopped with the fake."""
        self.recordings: dict[str, FakeRecording] = {}
        """Files written at RECORDER_FILE per channel id (``mixmonitor_seconds`` set)."""
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
        self._playbacks: dict[str, Playback] = {}
        self._owners: dict[str, WsConn | None] = {}
        """Registered apps -> the socket that gets their events (None: replaced elsewhere)."""
        self._conns: list[WsConn] = []
        self._faults: list[Fault] = []
        self._late: list[Fault] = []
        self._refuse_ws: int | None = None
        self._autoping = True
        self._unstalled = asyncio.Event()
        self._unstalled.set()
        self._changed = asyncio.Event()
        self._keyed: dict[str, asyncio.Event] = {}
        self._event_index: dict[str, list[int]] = {}
        self._event_indexed = 0
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._counter = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._started = now_iso()
        self._expected_auth = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode(
            "ascii"
        )

    def channel(self, channel_id: str) -> FakeChannel:
        """A channel, alive or hung up (``KeyError`` if it never existed)."""
        ch = self.channels.get(channel_id) or self._gone.get(channel_id)
        if ch is None:
            raise KeyError(channel_id)
        return ch

    async def _wait(
        self, predicate: Callable[[], bool], within: float, *, key: str | None = None
    ) -> None:
        """Wait until ``predicate()``; re-checked on every change, or only on ``key``'s.

        A keyed wait (a channel id) wakes only when that channel changes, so ten thousand
        calls waiting each for its own channel cost one wake-up per change, not ten thousand.
        """
        async with asyncio.timeout(within):
            while not predicate():
                if key is None:
                    changed = self._changed
                else:
                    changed = self._keyed.get(key) or self._keyed.setdefault(key, asyncio.Event())
                await changed.wait()

    def _notify(self, key: str | None = None) -> None:
        """Something changed (about channel ``key``, when given): wake who waits for it."""
        self._changed.set()
        self._changed = asyncio.Event()
        if key is not None:
            keyed = self._keyed.pop(key, None)
            if keyed is not None:
                keyed.set()

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


@dataclass(eq=False)
class Fault:
    """One injected REST fault: answer ``status``, or hold ``delay`` seconds, ``times`` times.

    Mutable on purpose: ``times`` counts down as matching requests use it up (None: forever).
    """

    method: str
    pattern: str
    status: int | None = None
    message: str = ""
    delay: float = 0.0
    times: int | None = None
    raw_body: str | None = None

    def matches(self, method: str, path: str) -> bool:
        """Whether a request ``method path`` is one this fault applies to."""
        return (self.method in ("*", method)) and fnmatch.fnmatchcase(path, self.pattern)


REASONS = {
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
"""Asterisk's default message per error status, for faults injected without one."""


def norm_path(path: str) -> str:
    """``path`` with the ``/ari`` prefix (tests may write ``/channels/*`` for short)."""
    return path if path.startswith("/ari/") or path == "/ari" else "/ari" + path


def error_response(status: int, message: str) -> web.Response:
    """An error as Asterisk answers it: ``{"message": ...}`` with ``status``."""
    return web.json_response({"message": message}, status=status)
