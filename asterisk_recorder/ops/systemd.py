"""systemd readiness and watchdog notifications (``sd_notify``) without a library.

This module owns ``SystemdNotifier``: when systemd started the process with ``Type=notify`` it
sets ``NOTIFY_SOCKET``; the service then says ``READY=1`` once it takes calls, ``WATCHDOG=1``
every half ``WATCHDOG_USEC`` while its event loop runs (a hung loop stops the pings and systemd
restarts the service), and ``STOPPING=1`` when it drains. Outside systemd every call does
nothing. It must not block the event loop and never raises: a notification that cannot be
sent is logged once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Mapping

from asterisk_recorder.logs import get_logger

__all__ = ["SystemdNotifier"]

_log = get_logger("asterisk_recorder.ops.systemd")


class SystemdNotifier:
    """Sends ``sd_notify`` datagrams to ``NOTIFY_SOCKET`` (nothing when it is unset).

    Args:
        environ: where ``NOTIFY_SOCKET`` and ``WATCHDOG_USEC`` are read (``os.environ``).
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        if address.startswith("@"):
            address = "\0" + address[1:]  # an abstract socket
        self._address = address
        try:
            usec = int(env.get("WATCHDOG_USEC", "0"))
        except ValueError:
            usec = 0
        pid = env.get("WATCHDOG_PID", "")
        if pid and pid != str(os.getpid()):
            usec = 0  # the watchdog is meant for another process
        self.watchdog_interval = usec / 2_000_000 if usec > 0 else 0.0
        """Seconds between two ``WATCHDOG=1`` (0: no watchdog asked for)."""
        self._warned = False
        self._task: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        """True when systemd listens."""
        return bool(self._address)

    def notify(self, state: str) -> bool:
        """Send one notification, e.g. ``READY=1``; False when nothing was sent."""
        if not self._address:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.setblocking(False)
                sock.sendto(state.encode(), self._address)
        except OSError as exc:
            if not self._warned:
                self._warned = True
                _log.warning("systemd.notify_failed", state=state, error=str(exc))
            return False
        return True

    def ready(self) -> None:
        """The service takes calls: ``READY=1``, and the watchdog pings start."""
        self.notify("READY=1")
        if self.watchdog_interval > 0 and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._pings())

    async def stopping(self) -> None:
        """The service drains: ``STOPPING=1``; the pings stop."""
        self.notify("STOPPING=1")
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _pings(self) -> None:
        while True:
            self.notify("WATCHDOG=1")
            await asyncio.sleep(self.watchdog_interval)
