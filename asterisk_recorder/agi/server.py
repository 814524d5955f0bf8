"""The FastAGI TCP server: accepts Asterisk's connections and runs one session per call.

This module owns connection hygiene: the peer allowlist (a host outside ``allowed_peers`` is
closed before a byte of its environment is read, logged rate-limited and counted; see
``agi.peers``), the cap on concurrent sessions (excess connections are
closed at once with a log line; Asterisk's dialplan then finds no decision and fails closed),
the read timeout on the environment, quiet handling of peers that connect and close (TCP health
checks, port scans), and isolation (a session that fails, sends garbage or times out is closed
with one log line and never touches the others). It must not know about consent: it hands each
connection's ``AgiChannel`` and environment to a ``SessionHandler``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from asterisk_recorder.agi.channel import AgiChannel, CommandObserver
from asterisk_recorder.agi.peers import LOOPBACK_ONLY, IpNetwork, PeerAllowlist, RefusalLog
from asterisk_recorder.agi.protocol import AgiEnvironment
from asterisk_recorder.errors import (
    AgiCommandError,
    AgiError,
    AgiHangup,
    AgiProtocolError,
    AgiTimeout,
    ConfigError,
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
    """Connections closed at once because ``max_sessions`` were running or the server was
    shutting down."""
    empty: int = 0
    """Connections that closed (or stayed silent) without sending a byte."""
    failed: int = 0
    """Sessions ended by a protocol error, a timeout or an unexpected exception."""
    completed: int = 0
    """Sessions whose handler returned normally (or saw the caller hang up)."""
    aborted: int = 0
    """Sessions still running when ``close``'s grace ran out (cancelled: failed closed)."""
    refused: int = 0
    """Connections from a host outside ``allowed_peers``, closed before reading anything."""


class FastAgiServer:
    """An asyncio FastAGI server (``agi://host:port/...``).

    Args:
        settings: host, port (0 picks a free one; see ``port``), ``max_sessions`` and
            ``read_timeout``.
        handler: the ``SessionHandler`` run for each call.
        observer: optional ``CommandObserver`` given to every channel.
        on_reaction: optional callback given every channel's reaction time (seconds from an
            AGI reply received to the next command sent), e.g. a metrics histogram.
        abort_timeout: after ``close``'s grace, how long a cancelled session may take to fail
            closed (store its decision, set ``RECORDER_DECISION=skip``) before it is cut.
        allowed_peers: the networks whose hosts may connect (default: loopback only,
            ``127.0.0.1/32`` and ``::1/128``). Anyone else is closed before its environment is
            read, so nothing of it reaches a session or the ledger; refusals are counted in
            ``stats.refused`` and logged as ``agi.peer.refused`` (at most ten a minute, then one
            line counting the rest). IPv4-mapped IPv6 peers match their IPv4 address.
        on_refused: optional callback given each refused peer's address (e.g. a metrics
            counter; do not label a metric by the address, a scan would explode it).

    Raises:
        ConfigError: ``allowed_peers`` is empty or holds something that is not an IP network.

    Use ``await start()`` / ``await close(grace=...)`` or ``async with``.
    """

    def __init__(
        self,
        settings: AgiSettings,
        handler: SessionHandler,
        *,
        observer: CommandObserver | None = None,
        on_reaction: Callable[[float], None] | None = None,
        abort_timeout: float = 10.0,
        allowed_peers: Sequence[IpNetwork] = LOOPBACK_ONLY,
        on_refused: Callable[[str], None] | None = None,
    ) -> None:
        self._allowlist = PeerAllowlist.of(allowed_peers)
        self._refusals = RefusalLog(self._allowlist)
        self._on_refused = on_refused
        self._settings = settings
        self._handler = handler
        self._observer = observer
        self._on_reaction = on_reaction
        self._abort_timeout = abort_timeout
        self._closing = False
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
    def allowed_peers(self) -> tuple[IpNetwork, ...]:
        """The networks whose hosts may connect."""
        return self._allowlist.networks

    @property
    def active_sessions(self) -> int:
        """Sessions running now."""
        return len(self._sessions)

    async def start(self) -> None:
        """Bind and start accepting connections.

        Raises:
            ConfigError: the address cannot be listened on (port in use, address not local,
                no permission).
        """
        if self._server is not None:
            raise RuntimeError("FastAgiServer already started")
        host, port = self._settings.host, self._settings.port
        try:
            self._server = await asyncio.start_server(
                self._on_connection, host, port, reuse_address=True
            )
        except OSError as exc:
            raise ConfigError(
                f"agi: cannot listen on {host}:{port}: {exc.strerror or exc}"
            ) from exc
        _log.info(
            "agi.server.listening",
            host=self._settings.host,
            port=self.port,
            max_sessions=self._settings.max_sessions,
            allowed_peers=self._allowlist.describe(),
        )

    async def close(self, grace: float = 5.0) -> None:
        """Shut down: stop accepting at once, let sessions finish, fail the rest closed.

        The listening socket is closed first, so a connection arriving while draining gets no
        session (it is refused, or closed without a command: Asterisk's dialplan finds no
        decision and fails closed). Running sessions get ``grace`` seconds (``serve`` passes
        ``controller.shutdown_grace``); the ones still running are then cancelled, which a
        consent session answers by failing closed (decision ``failed`` stored, ``skip`` set
        when the channel still answers) within ``abort_timeout``; whatever still runs after
        that is cancelled again and cut. Calling ``close`` again does nothing.
        """
        if self._server is None:
            return
        server, self._server = self._server, None
        self._closing = True
        server.close()
        _log.info("agi.server.draining", sessions=len(self._sessions), grace_seconds=grace)
        pending = set(self._sessions)
        if pending:
            _, still = await asyncio.wait(pending, timeout=max(grace, 0.0))
            if still:
                _log.warning("agi.server.sessions_aborted", count=len(still))
                for task in still:
                    task.cancel()
                _, cut = await asyncio.wait(still, timeout=self._abort_timeout)
                for task in cut:
                    task.cancel()
                if cut:
                    await asyncio.wait(cut)
                    _log.error("agi.server.sessions_cut", count=len(cut))
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
        host, port = _peer_address(writer)
        if not self._allowlist.allows(host):
            # Before anything is read: a foreign host learns nothing and drives nothing.
            self.stats.refused += 1
            self._refusals.refused(host, port, self.stats.refused)
            if self._on_refused is not None:
                self._on_refused(host)
            await _close(writer)
            return
        peer = f"{host}:{port}" if port is not None else host
        if self._closing:
            self.stats.rejected += 1
            _log.warning("agi.session.rejected", peer=peer, reason="shutting down")
            await _close(writer)
            return
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
        except asyncio.CancelledError:
            # Cancelled by close(): the session already failed closed. This task is ours (the
            # connection's top level), so it ends normally: asyncio's stream callback would
            # otherwise log the cancellation as an error.
            pass
        finally:
            self._sessions.discard(task)
            await _close(writer)

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str
    ) -> None:
        channel = AgiChannel(
            reader,
            writer,
            read_timeout=self._settings.read_timeout,
            observer=self._observer,
            on_reaction=self._on_reaction,
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
        except asyncio.CancelledError:
            self.stats.aborted += 1
            raise
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


def _peer_address(writer: asyncio.StreamWriter) -> tuple[str, int | None]:
    """The peer's host and port as the socket reports them (IPv6: no flow info or scope)."""
    info = writer.get_extra_info("peername")
    if isinstance(info, tuple) and len(info) >= 2:
        return str(info[0]), int(info[1])
    return str(info or ""), None


async def _close(writer: asyncio.StreamWriter) -> None:
    """Close a connection, ignoring a peer that is already gone."""
    writer.close()
    with contextlib.suppress(ConnectionError, OSError):
        await writer.wait_closed()
