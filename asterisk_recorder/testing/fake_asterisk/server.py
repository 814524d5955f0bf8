"""``FakeAsterisk`` itself: the layers put together, and the server's lifecycle.

This module owns the class tests use: it combines the caller's side and fault injection
(``scenarios``) with the REST front door (``rest``), and owns listening on 127.0.0.1 (an
ephemeral port first, the same port after a restart), stopping, restarting Asterisk (all
channels gone), the ``url`` and ready-made ``settings()`` for a client. It must not add
behaviour of its own beyond the lifecycle.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from typing import Any

from aiohttp import web

from asterisk_recorder.settings import AmiSettings, AriServerSettings, Secret
from asterisk_recorder.testing.fake_asterisk.records import now_iso
from asterisk_recorder.testing.fake_asterisk.rest import FakeRest
from asterisk_recorder.testing.fake_asterisk.scenarios import FakeScenarios

__all__ = ["FakeAsterisk"]


class FakeAsterisk(FakeScenarios, FakeRest):
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
        mixmonitor_seconds: when set, a channel continued with ``RECORDER_DECISION=record``
            gets a real WAV of that many seconds of tone at its ``RECORDER_FILE``, closed (header
            completed) when the channel hangs up, as dialplan's MixMonitor would leave it.
        mixmonitor_wall_clock: such a WAV's length follows the wall clock from the hand-back to
            the hang-up instead (``mixmonitor_seconds`` is then not needed), so an AMI mute
            shows as exact zeros at its place in the timeline.
        ami / ami_username / ami_secret / ami_port: also listen for AMI (``fake.ami``, a
            ``FakeAmi``; ``fake.ami_settings()`` for ``AmiClient``). Channels are known to it by
            name; a recording raises ``UserEvent RecordingStarted`` (``RECORDER_DECISION_ID``,
            ``File``, ``MixMonitorID``), a hang-up ``RecordingClosed`` then ``Hangup``, and
            ``MixMonitorMute`` silences the recording.
    """

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
        if self.ami is not None:
            await self.ami.start()

    async def stop(self) -> None:
        """Close every socket and stop listening."""
        self._unstalled.set()
        for task in list(self._tasks):
            task.cancel()
        for ch in list(self.channels.values()):
            self._kill_worker(ch)
        for recording in self.recordings.values():
            recording.close()  # never leave a file handle open behind the fake
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
        if self.ami is not None:
            await self.ami.stop()

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

    def ami_settings(self, **overrides: Any) -> AmiSettings:
        """``AmiSettings`` pointing at this fake's AMI (``ami=True``).

        Raises:
            RuntimeError: the fake was made without ``ami=True``.
        """
        if self.ami is None:
            raise RuntimeError("FakeAsterisk(ami=True) is needed for AMI settings")
        return self.ami.settings(**overrides)

    @property
    def ami_host(self) -> str:
        """Where the AMI listens (``ami=True``; 127.0.0.1)."""
        return self.ami.host if self.ami is not None else ""

    @property
    def ami_port(self) -> int:
        """The AMI's port (0 without ``ami=True``)."""
        return self.ami.port if self.ami is not None else 0

    async def restart(self, *, downtime: float = 0.0) -> None:
        """Restart Asterisk: sockets dropped, all channels and playbacks gone, apps unregistered.

        With ``downtime`` the port refuses connections for that many seconds.
        """
        for ch in list(self.channels.values()):
            self._kill_worker(ch)
            recording = self.recordings.get(ch.id)
            if recording is not None:  # Asterisk's shutdown closes MixMonitor's files
                recording.close()
            ch.hung_up = True
            self._gone[ch.id] = ch
        self.channels.clear()
        self._playbacks.clear()
        if self.ami is not None:  # manager sessions go with Asterisk
            self.ami.channels.clear()
            await self.ami.stop()
        self._owners.clear()
        if self._runner is not None:
            await self._drop_all(abort=True)
            await self._runner.cleanup()
            self._runner = None
        await asyncio.sleep(downtime)
        self._started = now_iso()
        await self.start()
        self._notify()
