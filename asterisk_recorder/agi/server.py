"""The FastAGI TCP server: accepts Asterisk's connections and runs one session per call.

This module owns connection hygiene: the cap on concurrent sessions (excess connections are
closed at once with a log line; Asterisk's dialplan then finds no decision and fails closed),
the read timeout on the environment, quiet handling of peers that connect and close (TCP health
checks, port scans), and isolation (a session that fails, sends garbage or times out is closed
with one log line and never touches the others). It must not know about consent: it hands each
connection's ``AgiChannel`` and environment to a ``SessionHandler``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from asterisk_recorder.agi.channel import AgiChannel, CommandObserver
from asterisk_recorder.agi.protocol import AgiEnvironment
from asterisk_recorder.errors import (
    AgiCommandError,
    AgiError,
    AgiHangup,
    AgiProtocolError,
    AgiTimeout,
)
from asterisk_recorder.logs import get_logger
from asterisk_recorder.settings import AgiSettings

__all__ = ["FastAgiServer", "ServerStats", "SessionHandler"]

SessionHandler = Callable[[AgiChannel, AgiEnvironment], Awaitable[None]]
"""Runs one AGI session on an open channel whose environment was read."""

_log = get_logger("asterisk_recorder.agi.server")


@dataclass(slots=True)
class ServerStats:
    """Counters of what the server saw since it started."""

    accepted: int = 0
    """Connections that got a session slot."""
    rejected: int = 0
    """Connections closed at once because ``max_sessions`` were running."""
    empty: int = 0
    """Connections that closed (or stayed silent) without sending a byte."""
    failed: int = 0
    """Sessions ended by a protocol error, a timeout or an unexpected exception."""
    completed: int = 0
    """Sessions whose handler returned normally (or saw the caller hang up)."""


class FastAgiServer:
    """An asyncio FastAGI server (``agi://host:port/...``).

    Args:
        settings: host, port (0 picks a free one; see ``port``), ``max_sessions`` and
            ``read_timeout``.
        handler: the ``SessionHandler`` run for each call.
        observer: optional ``CommandObserver`` given to every channel.

    Use ``await start()`` / ``await close()`` or ``async with``.
    """

    def __init__(
        self,
        settings: AgiSettings,
        handler: SessionHandler,
        *,
        observer: CommandObserver | None = None,
    ) -> None:
        self._settings = settings
        self._handler = handler
        self._observer = observer
        self._server: asyncio.Server | None = None
        self._sessions: set[asyncio.Task[None]] = set()
        self.stats = ServerStats()
        """What the server saw so far."""

    @property
    def port(self) -> int:
        """The TCP port listened on (useful after binding port 0).

        Raises:
            RuntimeError: the server is not started.
        """
        if self._server is None or not self._server.sockets:
            raise RuntimeError("FastAgiServer is not started")
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def active_sessions(self) -> int:
        """Sessions running now."""
        return len(self._sessions)

    async def start(self) -> None:
        """Bind and start accepting connections."""
        if self._server is not None:
            raise RuntimeError("FastAgiServer already started")
        self._server = await asyncio.start_server(
            self._on_connection, self._settings.host, self._settings.port, reuse_address=True
        )
        _log.info(
            "agi.server.listening",
            host=self._settings.host,
            port=self.port,
            max_sessions=self._settings.max_sessions,
        )

    async def close(self, grace: float = 5.0) -> None:
        """Stop accepting, give running sessions ``grace`` seconds, then cancel the rest."""
        if self._server is None:
            return
        server, self._server = self._server, None
        server.close()
        pending = set(self._sessions)
        if pending:
            _, still = await asyncio.wait(pending, timeout=grace)
            for task in still:
                task.cancel()
            if still:
                await asyncio.wait(still)
                _log.warning("agi.server.sessions_cancelled", count=len(still))
        await server.wait_closed()
        _log.info("agi.server.closed")

    async def __aenter__(self) -> FastAgiServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        peer = _peer_name(writer)
        if len(self._sessions) >= self._settings.max_sessions:
            self.stats.rejected += 1
            _log.warning(
                "agi.session.rejected",
                peer=peer,
                reason="max_sessions reached",
                max_sessions=self._settings.max_sessions,
            )
            await _close(writer)
            return
        task = asyncio.current_task()
        assert task is not None
        self._sessions.add(task)
        self.stats.accepted += 1
        try:
            await self._serve(reader, writer, peer)
        finally:
            self._sessions.discard(task)
            await _close(writer)

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str
    ) -> None:
        channel = AgiChannel(
            reader, writer, read_timeout=self._settings.read_timeout, observer=self._observer
        )
        try:
            env = await channel.read_environment()
        except (AgiProtocolError, AgiTimeout) as exc:
            if channel.bytes_received == 0:
                # Health checks and port scans: connect, maybe wait, close. Nothing to see.
                self.stats.empty += 1
                _log.debug("agi.connection.empty", peer=peer)
            else:
                self.stats.failed += 1
                _log.warning("agi.session.bad_environment", peer=peer, error=str(exc))
            return
        try:
            await self._handler(channel, env)
        except AgiHangup:
            self.stats.completed += 1
        except (AgiProtocolError, AgiTimeout, AgiCommandError) as exc:
            self.stats.failed += 1
            _log.warning(
                "agi.session.failed",
                peer=peer,
                channel=env.channel,
                error_type=type(exc).__name__,
                error=str(exc),
            )
        except AgiError as exc:
            self.stats.failed += 1
            _log.warning("agi.session.failed", peer=peer, channel=env.channel, error=str(exc))
        except Exception:
            self.stats.failed += 1
            _log.exception("agi.session.crashed", peer=peer, channel=env.channel)
        else:
            self.stats.completed += 1


def _peer_name(writer: asyncio.StreamWriter) -> str:
    info = writer.get_extra_info("peername")
    if isinstance(info, tuple) and len(info) >= 2:
        return f"{info[0]}:{info[1]}"
    return str(info)


async def _close(writer: asyncio.StreamWriter) -> None:
    """Close a connection, ignoring a peer that is already gone."""
    writer.close()
    with contextlib.suppress(ConnectionError, OSError):
        await writer.wait_closed()
