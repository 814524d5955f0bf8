"""An AGI channel over asyncio streams: typed AGI commands with read timeouts.

This module owns the I/O half of AGI: it writes what ``protocol.AgiConnection`` formats and
feeds it what it reads, bounded by timeouts, and gives the session one method per command it
uses. It must not decide anything about consent, and it only sends fixed command words:
arguments are always passed to ``format_command`` separately, which quotes them and refuses
NUL/CR/LF, so no value can become a second command.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection

from asterisk_recorder.agi.protocol import (
    AgiConnection,
    AgiEnvironment,
    AgiReply,
    ConnectionState,
    digit_from_result,
)
from asterisk_recorder.errors import AgiCommandError, AgiHangup, AgiProtocolError, AgiTimeout

__all__ = ["MAX_PROMPT_SECONDS", "AgiChannel", "CommandObserver"]

MAX_PROMPT_SECONDS = 300.0
"""Longest a ``STREAM FILE`` may take before the read timeout starts counting."""

_READ_CHUNK = 65536

CommandObserver = Callable[[str, float], None]
"""Called after every command with its command words and the seconds its reply took."""


class AgiChannel:
    """One AGI conversation with Asterisk over a stream pair (TCP for FastAGI, pipes for AGI).

    Args:
        reader / writer: the streams; the channel never closes them (the owner does).
        read_timeout: seconds Asterisk has to send the environment or answer a command
            (commands that wait on the caller get their own wait added).
        observer: optional ``CommandObserver`` for metrics and benchmarks.
        on_reaction: optional callback given the seconds from each reply received to the next
            command sent (the driver's reaction time, ``asterisk_recorder_reaction_seconds``).
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        read_timeout: float,
        observer: CommandObserver | None = None,
        on_reaction: Callable[[float], None] | None = None,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._read_timeout = read_timeout
        self._observer = observer
        self._on_reaction = on_reaction
        self._replied_at: float | None = None
        self._connection = AgiConnection()
        self.bytes_received = 0
        """How many bytes the peer sent so far (0: it connected and closed, or sent nothing)."""

    @property
    def hung_up(self) -> bool:
        """True once Asterisk said ``HANGUP`` or a command reported the channel gone."""
        return self._connection.hung_up

    @property
    def reply_pending(self) -> bool:
        """True while a command was sent and its reply not read (e.g. after a cancellation)."""
        return self._connection.state in (ConnectionState.AWAITING_REPLY, ConnectionState.USAGE)

    async def settle(self, timeout: float, *, uniqueid: str) -> bool:  # noqa: ASYNC109
        """Make the connection usable after a command whose wait was cancelled.

        Sends ``GET FULL VARIABLE ${UNIQUEID}`` at once: Asterisk stops a ``STREAM FILE`` or
        ``WAIT FOR DIGIT`` still running when a new command arrives (any other command just
        finishes first). Replies are read and dropped until the one carrying ``uniqueid``
        (the channel's ``agi_uniqueid``): no other reply can hold exactly that value.

        Returns True when the connection is idle again, False when that reply did not come
        within ``timeout`` (a bound, not a wait) or the connection broke.
        """
        if not self.reply_pending:
            return self._connection.state is ConnectionState.IDLE
        try:
            data = self._connection.send_interrupt("GET FULL VARIABLE", "${UNIQUEID}")
            async with asyncio.timeout(timeout):
                self._writer.write(data)
                await self._writer.drain()
                while True:
                    try:
                        reply = self._connection.next_reply()
                    except (AgiHangup, AgiCommandError):
                        self._connection.expect_another_reply()
                        continue
                    if reply is None:
                        await self._fill()
                    elif reply.result == 1 and reply.data == uniqueid:
                        break
                    else:
                        self._connection.expect_another_reply()
        except (TimeoutError, AgiProtocolError, ConnectionError, OSError):
            return False
        self._replied_at = time.perf_counter()
        return self._connection.state is ConnectionState.IDLE

    @property
    def environment(self) -> AgiEnvironment | None:
        """The environment block, once ``read_environment`` returned."""
        return self._connection.environment

    async def _fill(self) -> None:
        """Read one chunk into the protocol state machine (``b""`` at end of file)."""
        try:
            data = await self._reader.read(_READ_CHUNK)
        except (ConnectionError, OSError) as exc:
            raise AgiProtocolError(f"connection lost: {exc}") from exc
        self.bytes_received += len(data)
        self._connection.receive_data(data)

    async def read_environment(self) -> AgiEnvironment:
        """Read the ``agi_*`` block.

        Raises:
            AgiTimeout: nothing complete within ``read_timeout``.
            AgiProtocolError: malformed, or the peer closed first.
        """
        try:
            async with asyncio.timeout(self._read_timeout):
                while (env := self._connection.next_environment()) is None:
                    await self._fill()
        except TimeoutError as exc:
            raise AgiTimeout(f"no AGI environment within {self._read_timeout:g} s") from exc
        self._replied_at = time.perf_counter()  # the first command is a reaction to it
        return env

    async def command(
        self,
        command: str,
        *arguments: str,
        force_quote: Collection[int] = (),
        wait: float = 0.0,
    ) -> AgiReply:
        """Send one command and return its ``200`` reply.

        Args:
            command: fixed upper-case command words, e.g. ``"GET VARIABLE"``.
            arguments: arguments, quoted by the protocol layer.
            force_quote: indexes of arguments to quote even when not needed.
            wait: extra seconds the command may legitimately take (prompt, digit wait).

        Raises:
            AgiArgumentError: an unsafe argument; nothing was sent.
            AgiHangup: Asterisk sent ``HANGUP`` and refused the command (511). A command that
                still ran on the dead channel (``SET VARIABLE``) returns its reply; ``hung_up``
                tells.
            AgiCommandError: 510 / 511 / 520 / 503.
            AgiTimeout: no reply within ``read_timeout + wait``.
            AgiProtocolError: a malformed reply or a closed connection.
        """
        data = self._connection.send_command(command, *arguments, force_quote=force_quote)
        started = time.perf_counter()
        if self._replied_at is not None:
            reaction, self._replied_at = started - self._replied_at, None
            if self._on_reaction is not None:
                self._on_reaction(reaction)
        timeout = self._read_timeout + wait
        hangup = False
        try:
            async with asyncio.timeout(timeout):
                self._writer.write(data)
                await self._writer.drain()
                while True:
                    try:
                        reply = self._connection.next_reply()
                    except AgiHangup:
                        hangup = True  # the command's own reply still follows: read it too
                        continue
                    except AgiCommandError as exc:
                        if hangup and exc.code == 511:
                            raise AgiHangup(f"{command}: the channel hung up") from exc
                        raise
                    if reply is not None:
                        break
                    await self._fill()
        except TimeoutError as exc:
            raise AgiTimeout(f"no reply to {command} within {timeout:g} s") from exc
        except AgiCommandError:
            self._replied_at = time.perf_counter()  # an error reply is a reply: react to it
            raise
        except (AgiProtocolError, ConnectionError, OSError) as exc:
            if self._connection.hung_up:
                # Asterisk said HANGUP, then closed (AGIEXITONHANGUP=yes): a hang-up.
                raise AgiHangup(f"{command}: the channel hung up and Asterisk closed") from exc
            if isinstance(exc, AgiProtocolError):
                raise
            raise AgiProtocolError(f"connection lost during {command}: {exc}") from exc
        self._replied_at = time.perf_counter()
        if self._observer is not None:
            self._observer(command, self._replied_at - started)
        return reply

    async def answer(self) -> None:
        """``ANSWER`` (Asterisk answers only when the channel is not up yet).

        Raises:
            AgiHangup: ``result=-1`` (the channel failed or hung up).
        """
        reply = await self.command("ANSWER")
        if reply.result is None or reply.result < 0:
            raise AgiHangup(f"ANSWER failed: {reply.line}")

    async def stream_file(
        self, sound: str, escape_digits: str, *, wait: float = MAX_PROMPT_SECONDS
    ) -> AgiReply:
        """``STREAM FILE <sound> "<escape digits>"``; the caller interprets the reply.

        ``result=0``: played to the end (``endpos`` samples); ``result>0``: the ASCII code of
        the escape key pressed; ``result=-1``: the channel hung up *or* the sound is missing.
        ``wait`` is how long the prompt may play (the read timeout is added).
        """
        return await self.command("STREAM FILE", sound, escape_digits, force_quote=(1,), wait=wait)

    async def wait_for_digit(self, timeout_ms: int) -> str | None:
        """``WAIT FOR DIGIT <ms>``: the key pressed, or ``None`` on timeout.

        Raises:
            AgiHangup: ``result=-1``.
            AgiProtocolError: a result that is not a DTMF key.
        """
        reply = await self.command("WAIT FOR DIGIT", str(timeout_ms), wait=timeout_ms / 1000)
        if reply.result is None:
            raise AgiProtocolError(f"WAIT FOR DIGIT without a result: {reply.line!r}")
        if reply.result < 0:
            raise AgiHangup(f"WAIT FOR DIGIT: {reply.line}")
        if reply.result == 0:
            return None
        return digit_from_result(reply.result)

    async def get_variable(self, name: str) -> str | None:
        """``GET VARIABLE <name>``: the value, or ``None`` when it is not set."""
        reply = await self.command("GET VARIABLE", name)
        return reply.data if reply.result == 1 else None

    async def get_full_variable(self, expression: str) -> str | None:
        """``GET FULL VARIABLE <expression>`` (e.g. ``${CHANNEL(linkedid)}``)."""
        reply = await self.command("GET FULL VARIABLE", expression)
        return reply.data if reply.result == 1 else None

    async def set_variable(self, name: str, value: str) -> None:
        """``SET VARIABLE <name> <value>`` (the value is quoted, never evaluated)."""
        await self.command("SET VARIABLE", name, value)

    async def channel_status(self) -> int:
        """``CHANNEL STATUS``: Asterisk's channel state (6 = up).

        Raises:
            AgiCommandError: 511 when the channel is already dead.
        """
        reply = await self.command("CHANNEL STATUS")
        if reply.result is None or reply.result < 0:
            raise AgiHangup(f"CHANNEL STATUS: {reply.line}")
        return reply.result
