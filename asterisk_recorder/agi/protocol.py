"""The AGI / FastAGI wire protocol, sans I/O.

This module owns the bytes of AGI: parsing the environment block Asterisk sends first
(``agi_*: value`` lines up to a blank line, ``agi_arg_N``, the FastAGI script path and query),
formatting commands with the quoting Asterisk's ``parse_args()`` (``res/res_agi.c``) expects,
and parsing replies (``200 result=N [(data)] [endpos=N]``, ``100 Trying``, ``510``, ``511``,
``520`` single- and multi-line usage, ``503``, ``HANGUP``). It must not do any I/O, read a
clock, or import asyncio: drivers feed it bytes and write the bytes it returns.

Errors (all from ``asterisk_recorder.errors``):

- ``AgiProtocolError``: the peer sent something that is not AGI. It is the only error malformed
  input can raise; the connection cannot be trusted afterwards.
- ``AgiHangup``: Asterisk sent a ``HANGUP`` line (the channel is gone; the reply to the
  outstanding command, if any, still follows).
- ``AgiCommandError``: Asterisk rejected a command (510 unknown, 511 dead channel, 520 usage,
  503 out of memory). The connection stays usable.
- ``AgiArgumentError``: *we* tried to send an argument that cannot be sent safely (NUL, CR or
  LF, which would end the line and inject a second command; or a line too long for Asterisk's
  command buffer, whose remainder Asterisk would read as a second command).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from urllib.parse import parse_qsl

from asterisk_recorder.errors import (
    AgiArgumentError,
    AgiCommandError,
    AgiHangup,
    AgiProtocolError,
)

__all__ = [
    "DTMF_DIGITS",
    "MAX_COMMAND_BYTES",
    "MAX_LINE_BYTES",
    "AgiConnection",
    "AgiEnvironment",
    "AgiReply",
    "ConnectionState",
    "digit_from_result",
    "format_command",
    "parse_environment",
    "parse_reply_line",
    "quote_argument",
    "split_command",
]

MAX_COMMAND_BYTES = 2046
"""Longest command line we send, newline excluded.

Asterisk reads a command into a fixed buffer (2048 bytes before 22.9/23.0, 8192 since) and
treats whatever does not fit as the *next* command; 2046 fits every supported version.
"""

MAX_LINE_BYTES = 64 * 1024
"""Longest line accepted from the peer (a ``GET FULL VARIABLE`` value is the only long one)."""

MAX_ENV_LINES = 512
"""Most environment lines accepted (Asterisk sends ~22 plus at most 127 ``agi_arg_N``)."""

MAX_USAGE_LINES = 1000
"""Most lines accepted inside one ``520-`` multi-line usage reply."""

MAX_ARGUMENTS = 126
"""Most words in one command line (Asterisk's ``MAX_ARGS`` is 128 including the terminator)."""

DTMF_DIGITS = "0123456789*#ABCD"
"""The DTMF keys a ``result=N`` (ASCII code) may stand for."""

_COMMAND_RE = re.compile(r"[A-Z]+(?: [A-Z]+)*")
_ENV_RE = re.compile(r"agi_([a-z0-9_]+): ?(.*)")
_ARG_RE = re.compile(r"arg_([1-9][0-9]{0,3})")
_REPLY_RE = re.compile(r"([0-9]{3})([ -])(.*)")
_RESULT_RE = re.compile(
    r"result=(?P<result>-?[0-9]{1,19})?"
    r"(?: \((?P<data>.*)\))?"
    r"(?: endpos=(?P<endpos>-?[0-9]{1,19}))?"
    r"(?: (?P<extra>[^(].*))?"
)
_NEEDS_QUOTES = frozenset(' \t"\\')
_FORBIDDEN_IN_ARGUMENT = ("\x00", "\n", "\r")
_QUERY_MAX_FIELDS = 32


def _decode(raw: bytes) -> str:
    """Decode one line from the peer; invalid UTF-8 becomes U+FFFD, never an exception."""
    return raw.decode("utf-8", errors="replace")


# --------------------------------------------------------------------------------------------
# Environment


@dataclass(frozen=True, slots=True)
class AgiEnvironment:
    """The environment block Asterisk sends at the start of every AGI session.

    Values are kept exactly as sent (decoded as UTF-8, invalid bytes replaced by U+FFFD):
    caller-controlled ones (``callerid``, ``calleridname``, ``dnid``, ``rdnis``) are evidence
    only and must never be put into a command.

    Attributes:
        variables: every ``agi_<name>`` line as ``{name: value}`` (prefix removed).
        args: ``agi_arg_1`` ... ``agi_arg_N`` in order (the ``AGI(url,arg1,arg2)`` arguments).
    """

    variables: Mapping[str, str]
    args: tuple[str, ...] = ()

    def get(self, name: str, default: str = "") -> str:
        """Return ``agi_<name>`` or ``default`` when Asterisk did not send it."""
        return self.variables.get(name, default)

    @property
    def request(self) -> str:
        """``agi_request``: the script or ``agi://`` URL given to ``AGI()``."""
        return self.get("request")

    @property
    def channel(self) -> str:
        """``agi_channel``: the channel name, e.g. ``PJSIP/alice-00000001``."""
        return self.get("channel")

    @property
    def uniqueid(self) -> str:
        """``agi_uniqueid``: the channel's ``UNIQUEID``."""
        return self.get("uniqueid")

    @property
    def language(self) -> str:
        """``agi_language``: the channel language, e.g. ``en``."""
        return self.get("language")

    @property
    def network(self) -> bool:
        """True for a FastAGI (``agi_network: yes``) session."""
        return self.get("network") == "yes"

    @property
    def network_script(self) -> str:
        """``agi_network_script``: what followed ``host:port/`` in the URL, query included."""
        return self.get("network_script")

    @property
    def script_path(self) -> str:
        """The FastAGI script path without query string or leading slash, e.g. ``consent``."""
        path = self.network_script.partition("?")[0]
        return path.lstrip("/")

    @property
    def query(self) -> Mapping[str, str]:
        """The FastAGI URL query, e.g. ``{"policy": "opt_in", "lang": "fr"}``.

        Percent-escapes are decoded (invalid UTF-8 becomes U+FFFD); the first of repeated keys
        wins; at most 32 fields are read.
        """
        _, _, raw_query = self.network_script.partition("?")
        result: dict[str, str] = {}
        pairs = parse_qsl(raw_query, keep_blank_values=True, errors="replace")
        for key, value in pairs[:_QUERY_MAX_FIELDS]:
            result.setdefault(key, value)
        return MappingProxyType(result)


def parse_environment(lines: list[str]) -> AgiEnvironment:
    """Build an ``AgiEnvironment`` from the env lines (blank terminator excluded).

    Raises:
        AgiProtocolError: a line is not ``agi_<name>: value``, a name repeats (an injected
            line), ``agi_arg_N`` are not numbered 1..N or are followed by another variable
            (Asterisk sends them last), or ``agi_request`` is missing.
    """
    variables: dict[str, str] = {}
    numbered: dict[int, str] = {}
    for line in lines:
        match = _ENV_RE.fullmatch(line)
        if match is None:
            raise AgiProtocolError(f"not an AGI environment line: {line[:80]!r}")
        name, value = match.group(1), match.group(2)
        if name in variables:
            raise AgiProtocolError(f"environment variable agi_{name} sent twice")
        variables[name] = value
        arg = _ARG_RE.fullmatch(name)
        if arg is not None:
            numbered[int(arg.group(1))] = value
        elif numbered:
            # Asterisk prints agi_arg_N last; one earlier was injected through a value
            # (e.g. a caller name holding a newline).
            raise AgiProtocolError(f"agi_{name} after agi_arg_N: injected environment line")
    if "request" not in variables:
        raise AgiProtocolError("environment block without agi_request")
    if numbered and sorted(numbered) != list(range(1, len(numbered) + 1)):
        raise AgiProtocolError(f"agi_arg_N not numbered 1..N: {sorted(numbered)[:10]}")
    args = tuple(numbered[i] for i in range(1, len(numbered) + 1))
    return AgiEnvironment(MappingProxyType(variables), args)


# --------------------------------------------------------------------------------------------
# Commands


def quote_argument(argument: str, *, force: bool = False) -> str:
    """Quote one argument the way Asterisk's ``parse_args()`` reads it back unchanged.

    An argument that is empty or contains a space, tab, double quote or backslash is wrapped
    in double quotes, with ``"`` and ``\\`` escaped by a backslash; others are sent as they
    are unless ``force`` is set.

    Raises:
        AgiArgumentError: the argument contains NUL, CR or LF (a newline would end the line
            and let the rest be read as a second command), or is not valid Unicode text.
    """
    for bad in _FORBIDDEN_IN_ARGUMENT:
        if bad in argument:
            raise AgiArgumentError(f"AGI argument contains {bad!r}: {argument[:40]!r}")
    try:
        argument.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise AgiArgumentError(f"AGI argument is not valid text: {argument[:40]!r}") from exc
    if not force and argument and not _NEEDS_QUOTES.intersection(argument):
        return argument
    escaped = argument.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def format_command(command: str, *arguments: str, force_quote: Collection[int] = ()) -> bytes:
    """Return one command line, newline included, ready to write.

    Args:
        command: the fixed command words, upper case, e.g. ``"STREAM FILE"``; never data.
        arguments: the arguments, each quoted as needed by ``quote_argument``.
        force_quote: indexes of arguments to quote even when not needed (the escape digits of
            ``STREAM FILE hello-world "12"``, as Asterisk's documentation writes them).

    Raises:
        AgiArgumentError: ``command`` is not upper-case words, an argument is unsafe, there are
            too many arguments, or the line would not fit Asterisk's command buffer.
    """
    if not _COMMAND_RE.fullmatch(command):
        raise AgiArgumentError(f"not an AGI command name: {command[:40]!r}")
    if len(command.split(" ")) + len(arguments) > MAX_ARGUMENTS:
        raise AgiArgumentError(f"too many AGI arguments ({len(arguments)})")
    parts = [command]
    parts.extend(quote_argument(a, force=i in force_quote) for i, a in enumerate(arguments))
    line = " ".join(parts).encode("utf-8")
    if len(line) > MAX_COMMAND_BYTES:
        raise AgiArgumentError(
            f"AGI command of {len(line)} bytes exceeds {MAX_COMMAND_BYTES}"
            " (Asterisk would read the rest as a second command)"
        )
    return line + b"\n"


def split_command(line: str) -> list[str]:
    """Split a command line into words exactly as Asterisk's ``parse_args()`` does.

    A literal port of ``res/res_agi.c`` ``parse_args`` (which rewrites the line in place and
    ends words with NUL): used by the fake Asterisk peer and by tests to prove that
    ``format_command`` round-trips. The trailing newline must already be removed.
    """
    out: list[str] = []
    starts: list[int] = []
    quoted = escaped = False
    whitespace = True
    for char in line:
        normal = False
        if char == '"':
            if escaped:
                normal = True
            else:
                quoted = not quoted
                if quoted and whitespace:
                    starts.append(len(out))
                    whitespace = False
                escaped = False
        elif char in " \t":
            if not quoted and not escaped:
                whitespace = True
                out.append("\x00")
            else:
                normal = True
        elif char == "\\":
            if escaped:
                normal = True
            else:
                escaped = True
        else:
            normal = True
        if normal:
            if whitespace:
                if len(starts) >= MAX_ARGUMENTS + 1:
                    continue  # Asterisk: "Too many arguments, truncating"
                starts.append(len(out))
                whitespace = False
            out.append(char)
            escaped = False
    out.append("\x00")
    buffer = "".join(out)
    return [buffer[start : buffer.index("\x00", start)] for start in starts]


# --------------------------------------------------------------------------------------------
# Replies


@dataclass(frozen=True, slots=True)
class AgiReply:
    """One final ``200`` reply.

    Attributes:
        result: the ``result=`` number; ``None`` when Asterisk sent ``result=`` with no number
            (``GET DATA`` timeout).
        data: the text in parentheses, e.g. a ``GET VARIABLE`` value, or ``None``.
        endpos: the ``endpos=`` sample offset (``STREAM FILE``, ``GET OPTION``), or ``None``.
        extra: any trailing text, e.g. ``Gosub complete``.
        line: the raw line, for logs.
    """

    result: int | None
    data: str | None = None
    endpos: int | None = None
    extra: str = ""
    line: str = field(default="", compare=False)


def parse_reply_line(line: str) -> AgiReply:
    """Parse a ``200 result=...`` line (without newline).

    Raises:
        AgiProtocolError: the line is not a well-formed ``200`` reply.
    """
    match = _REPLY_RE.fullmatch(line)
    if match is None or match.group(1) != "200" or match.group(2) != " ":
        raise AgiProtocolError(f"not an AGI 200 reply: {line[:80]!r}")
    fields = _RESULT_RE.fullmatch(match.group(3))
    if fields is None:
        raise AgiProtocolError(f"malformed AGI 200 reply: {line[:80]!r}")
    result = fields.group("result")
    endpos = fields.group("endpos")
    return AgiReply(
        result=int(result) if result is not None else None,
        data=fields.group("data"),
        endpos=int(endpos) if endpos is not None else None,
        extra=fields.group("extra") or "",
        line=line,
    )


def digit_from_result(result: int) -> str:
    """Return the DTMF key a positive ``result=`` stands for (``49`` -> ``"1"``).

    Raises:
        AgiProtocolError: ``result`` is not the ASCII code of a DTMF key.
    """
    if 0 < result < 128 and chr(result) in DTMF_DIGITS:
        return chr(result)
    raise AgiProtocolError(f"result={result} is not a DTMF key")


# --------------------------------------------------------------------------------------------
# The connection state machine


class ConnectionState(enum.Enum):
    """Where an ``AgiConnection`` is in the conversation."""

    ENVIRONMENT = "environment"
    """Reading the ``agi_*`` block; no command may be sent yet."""
    IDLE = "idle"
    """Environment read, no command outstanding: the driver may send one."""
    AWAITING_REPLY = "awaiting_reply"
    """A command was sent; its reply has not been read yet."""
    USAGE = "usage"
    """Inside a ``520-`` multi-line usage reply."""
    CLOSED = "closed"
    """The peer closed the connection, or sent something that is not AGI."""


class AgiConnection:
    """One AGI conversation as a state machine: bytes in, environment and replies out.

    Usage: ``receive_data(chunk)`` for every chunk read (``b""`` at end of file), then
    ``next_environment()`` once and ``send_command(...)`` / ``next_reply()`` in turn. Both
    ``next_*`` methods return ``None`` when more bytes are needed.

    Invariant: after an ``AgiProtocolError`` the connection is ``CLOSED`` and every later call
    raises ``AgiProtocolError`` again.
    """

    def __init__(self, *, max_line: int = MAX_LINE_BYTES) -> None:
        self._buffer = bytearray()
        self._scan_from = 0
        self._eof = False
        self._max_line = max_line
        self._state = ConnectionState.ENVIRONMENT
        self._env_lines: list[str] = []
        self._usage_lines: list[str] = []
        self.hung_up = False
        """True once Asterisk sent ``HANGUP`` (the channel is gone)."""
        self.environment: AgiEnvironment | None = None
        """The environment, once read."""

    @property
    def state(self) -> ConnectionState:
        """The current ``ConnectionState``."""
        return self._state

    def receive_data(self, data: bytes) -> None:
        """Add bytes read from the peer; ``b""`` means the peer closed its side."""
        if not data:
            self._eof = True
            return
        self._buffer += data

    def _fail(self, message: str) -> AgiProtocolError:
        self._state = ConnectionState.CLOSED
        return AgiProtocolError(message)

    def _next_line(self) -> str | None:
        """Pop one complete line (without ``\\n``/``\\r\\n``), or ``None`` if none is buffered."""
        index = self._buffer.find(b"\n", self._scan_from)
        if index < 0:
            self._scan_from = len(self._buffer)
            if len(self._buffer) > self._max_line:
                raise self._fail(f"line longer than {self._max_line} bytes")
            if self._eof:
                if self._buffer:
                    raise self._fail("connection closed in the middle of a line")
                raise self._fail("connection closed by the peer")
            return None
        if index > self._max_line:
            raise self._fail(f"line longer than {self._max_line} bytes")
        raw = bytes(self._buffer[:index])
        del self._buffer[: index + 1]
        self._scan_from = 0
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        if b"\x00" in raw:
            raise self._fail("NUL byte in AGI input")
        return _decode(raw)

    def next_environment(self) -> AgiEnvironment | None:
        """Return the environment once its blank line arrived, else ``None``.

        Raises:
            AgiProtocolError: a malformed block, or the peer closed before the blank line.
        """
        if self._state is ConnectionState.CLOSED:
            raise AgiProtocolError("connection is closed")
        if self._state is not ConnectionState.ENVIRONMENT:
            raise AgiProtocolError("environment already read")
        while True:
            line = self._next_line()
            if line is None:
                return None
            if line == "":
                if not self._env_lines:
                    raise self._fail("empty AGI environment block")
                try:
                    self.environment = parse_environment(self._env_lines)
                except AgiProtocolError:
                    self._state = ConnectionState.CLOSED
                    raise
                self._state = ConnectionState.IDLE
                return self.environment
            if len(self._env_lines) >= MAX_ENV_LINES:
                raise self._fail(f"more than {MAX_ENV_LINES} environment lines")
            self._env_lines.append(line)

    def send_command(
        self, command: str, *arguments: str, force_quote: Collection[int] = ()
    ) -> bytes:
        """Return the bytes of a command to write, and expect its reply.

        Raises:
            AgiArgumentError: an unsafe argument (see ``format_command``); nothing is sent.
            AgiProtocolError: the connection is not idle (environment unread, reply pending,
                closed), or the peer already sent something other than ``HANGUP`` that no
                command asked for (e.g. lines injected into the environment block).
        """
        data = format_command(command, *arguments, force_quote=force_quote)
        if self._state is not ConnectionState.IDLE:
            raise AgiProtocolError(f"cannot send a command while {self._state.value}")
        self._check_unsolicited()
        self._state = ConnectionState.AWAITING_REPLY
        return data

    def send_interrupt(self, command: str, *arguments: str) -> bytes:
        """Return the bytes of a command sent while the previous reply is still outstanding.

        Asterisk watches the AGI socket during ``STREAM FILE`` and ``WAIT FOR DIGIT``: a new
        command stops them (``STREAM FILE`` then sends no reply at all, ``WAIT FOR DIGIT``
        answers ``result=1``), and after any other command it simply runs next. The driver
        must then read replies with ``next_reply`` / ``expect_another_reply`` until it sees the
        one of this command (make its reply recognisable, e.g. a variable with a known value).

        Raises:
            AgiArgumentError: an unsafe argument (see ``format_command``).
            AgiProtocolError: no reply is outstanding (use ``send_command``) or closed.
        """
        data = format_command(command, *arguments)
        if self._state not in (ConnectionState.AWAITING_REPLY, ConnectionState.USAGE):
            raise AgiProtocolError(f"nothing to interrupt while {self._state.value}")
        return data

    def expect_another_reply(self) -> None:
        """After a reply that was not the interrupting command's: wait for one more.

        Raises:
            AgiProtocolError: the connection is closed.
        """
        if self._state is ConnectionState.CLOSED:
            raise AgiProtocolError("connection is closed")
        if self._state is ConnectionState.IDLE:
            self._state = ConnectionState.AWAITING_REPLY

    def _check_unsolicited(self) -> None:
        """Reject complete lines that arrived while no command was outstanding."""
        while True:
            index = self._buffer.find(b"\n")
            if index < 0:
                return
            line = bytes(self._buffer[:index]).rstrip(b"\r")
            if line != b"HANGUP":
                raise self._fail(f"unsolicited AGI input: {_decode(line[:80])!r}")
            del self._buffer[: index + 1]
            self._scan_from = 0
            self.hung_up = True

    def next_reply(self) -> AgiReply | None:
        """Return the reply to the outstanding command once complete, else ``None``.

        ``100 Trying`` lines are skipped (the final reply follows).

        Raises:
            AgiHangup: a ``HANGUP`` line arrived; the command's reply is still pending, so
                calling again reads it.
            AgiCommandError: 510 / 511 / 520 / 503; the connection is idle again.
            AgiProtocolError: anything malformed, or end of file.
        """
        if self._state is ConnectionState.CLOSED:
            raise AgiProtocolError("connection is closed")
        if self._state not in (ConnectionState.AWAITING_REPLY, ConnectionState.USAGE):
            raise AgiProtocolError(f"no command outstanding ({self._state.value})")
        while True:
            line = self._next_line()
            if line is None:
                return None
            if self._state is ConnectionState.USAGE:
                if line.startswith("520 "):
                    self._state = ConnectionState.IDLE
                    text = "\n".join([*self._usage_lines, line[4:]])
                    self._usage_lines = []
                    raise AgiCommandError(520, text)
                if len(self._usage_lines) >= MAX_USAGE_LINES:
                    raise self._fail(f"520 usage longer than {MAX_USAGE_LINES} lines")
                self._usage_lines.append(line)
                continue
            if line == "HANGUP":
                self.hung_up = True
                raise AgiHangup("Asterisk sent HANGUP: the channel hung up")
            match = _REPLY_RE.fullmatch(line)
            if match is None:
                raise self._fail(f"not an AGI reply: {line[:80]!r}")
            code, separator, text = int(match.group(1)), match.group(2), match.group(3)
            if separator == "-":
                if code != 520:
                    raise self._fail(f"unexpected multi-line reply: {line[:80]!r}")
                self._state = ConnectionState.USAGE
                self._usage_lines = [text]
                continue
            if code == 100:
                continue
            if code == 200:
                try:
                    reply = parse_reply_line(line)
                except AgiProtocolError:
                    self._state = ConnectionState.CLOSED
                    raise
                self._state = ConnectionState.IDLE
                return reply
            if code in (503, 510, 511, 520):
                self._state = ConnectionState.IDLE
                raise AgiCommandError(code, text)
            raise self._fail(f"unknown AGI reply code: {line[:80]!r}")
