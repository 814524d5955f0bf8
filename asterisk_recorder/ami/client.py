"""A thin asyncio client of the Asterisk Manager Interface.

This module owns ``AmiClient``: one TCP connection to ``[ami]``, logged in with the
manager.conf user, kept up by a background task that reconnects with a capped backoff (a down
Asterisk never raises out of ``start``), actions matched to their responses by ``ActionID``,
and every event handed to ``on_event``. It must not interpret events (``ami/pauses.py`` does)
and never logs or shows the secret. A thin client of our own rather than ``panoramisk``: we need
only login, actions and events, typed, under ``-W error`` and with the reconnect semantics above
(docs/operations.md, "Pausing recordings").
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable, Mapping

from asterisk_recorder.ami.protocol import AmiMessage, AmiParser, encode_action
from asterisk_recorder.errors import (
    AmiActionFailed,
    AmiError,
    AmiTimeout,
    AmiUnavailable,
)
from asterisk_recorder.logs import get_logger
from asterisk_recorder.settings import AmiSettings

__all__ = ["AmiClient"]

log = get_logger("asterisk_recorder.ami")


class AmiClient:
    """See the module docstring. ``await start()``, then ``action(...)``; ``await close()``."""

    def __init__(self, settings: AmiSettings, *,
                 on_event: Callable[[AmiMessage], None] | None = None) -> None:
        self._settings = settings
        self._on_event = on_event
        self._writer: asyncio.StreamWriter | None = None
        self._pending: dict[str, asyncio.Future[AmiMessage]] = {}
        self._ids = itertools.count(1)
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self.reconnects = 0

    @property
    def connected(self) -> bool:
        """Logged in and reading."""
        return self._ready.is_set()

    async def start(self) -> None:
        """Start the connection task; waits up to ``connect_timeout`` for the first login."""
        self._task = asyncio.create_task(self._run(), name="ami")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), self._settings.connect_timeout)

    async def close(self) -> None:
        """Log off and stop reconnecting."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self._drop("the AMI client was closed")

    async def action(self, name: str, fields: Mapping[str, str] | None = None, *,
                     wait: float | None = None) -> AmiMessage:
        """Send ``name`` with ``fields``; the ``Success`` response.

        Raises:
            AmiUnavailable: not logged in, or the connection was lost before the answer.
            AmiTimeout: no answer in ``wait`` (default ``action_timeout``) seconds.
            AmiActionFailed: ``Response: Error`` (its ``Message``).
            AmiProtocolError: a field that would break the protocol (a line break).
        """
        if not self._ready.is_set() or self._writer is None:
            raise AmiUnavailable("not connected to AMI")
        return await self._send(self._writer, name, fields or {}, wait)

    async def _send(self, writer: asyncio.StreamWriter, name: str, fields: Mapping[str, str],
                    wait: float | None) -> AmiMessage:
        action_id = f"ar-{next(self._ids)}"
        data = encode_action(name, fields, action_id)
        future: asyncio.Future[AmiMessage] = asyncio.get_running_loop().create_future()
        self._pending[action_id] = future
        try:
            writer.write(data)
            await writer.drain()
            answer = await asyncio.wait_for(future, wait or self._settings.action_timeout)
        except TimeoutError as exc:
            raise AmiTimeout(f"AMI {name}: no answer in time") from exc
        except (OSError, ConnectionError) as exc:
            raise AmiUnavailable(f"AMI {name}: connection lost: {exc}") from exc
        finally:
            self._pending.pop(action_id, None)
        if (answer.get("Response") or "").lower() == "error":
            raise AmiActionFailed(f"AMI {name}: {answer.get('Message') or 'error'}")
        return answer

    async def _run(self) -> None:
        delay = 0.5
        while True:
            try:
                await self._session()
                delay = 0.5
            except (OSError, ConnectionError, TimeoutError, AmiError) as exc:
                log.warning("ami.disconnected", host=self._settings.host,
                            port=self._settings.port, error=str(exc)[:200])
            self._drop("the AMI connection was lost")
            self.reconnects += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._settings.reconnect_max)

    async def _session(self) -> None:
        s = self._settings
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(s.host, s.port), s.connect_timeout)
        self._writer = writer
        parser = AmiParser()
        reading = asyncio.create_task(self._read(reader, parser))
        try:
            login = asyncio.create_task(self._send(writer, "Login", {
                "Username": s.username, "Secret": s.secret.value, "Events": "on"},
                s.connect_timeout))
            done, _ = await asyncio.wait({login, reading}, return_when=asyncio.FIRST_COMPLETED)
            if login not in done:
                login.cancel()
                await reading  # raises why the connection ended
                raise AmiUnavailable("AMI closed the connection during login")
            try:
                login.result()
            except AmiActionFailed as exc:
                raise AmiUnavailable(f"AMI login refused for user {s.username}") from exc
            self._ready.set()
            log.info("ami.connected", host=s.host, port=s.port, banner=parser.banner)
            await reading
        finally:
            self._ready.clear()
            reading.cancel()
            await asyncio.gather(reading, return_exceptions=True)
            writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await writer.wait_closed()

    async def _read(self, reader: asyncio.StreamReader, parser: AmiParser) -> None:
        while True:
            data = await reader.read(65536)
            if not data:
                raise AmiUnavailable("AMI closed the connection")
            for message in parser.feed(data):
                self._dispatch(message)

    def _dispatch(self, message: AmiMessage) -> None:
        if message.is_response:
            future = self._pending.get(message.action_id or "")
            if future is not None and not future.done():
                future.set_result(message)
            return
        if message.is_event and self._on_event is not None:
            try:
                self._on_event(message)
            except Exception as exc:  # one bad event never stops the connection
                log.error("ami.event_failed", ami_event=message.name[:60], error=repr(exc)[:200])

    def _drop(self, why: str) -> None:
        self._ready.clear()
        self._writer = None
        for future in self._pending.values():
            if not future.done():
                future.set_exception(AmiUnavailable(why))
        self._pending.clear()
