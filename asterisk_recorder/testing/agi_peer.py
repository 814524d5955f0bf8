"""A scripted fake Asterisk that plays the Asterisk side of (Fast)AGI, for tests and benchmarks.

This module owns two fakes, both over real streams (a TCP connection to a FastAGI server, or
the stdin/stdout pipes of an ``asterisk-recorder agi`` process):

- ``TranscriptPeer`` replays a conversation recorded from a real Asterisk
  (``shared/asterisk-traces/*.agi.txt``, parsed by ``load_transcript``) byte for byte and fails
  on the first command that differs from the recording.
- ``ScriptedAsterisk`` behaves like ``res_agi.c`` for the commands the consent session uses
  (``ANSWER``, ``STREAM FILE``, ``WAIT FOR DIGIT``, ``GET [FULL] VARIABLE``, ``SET VARIABLE``,
  ``CHANNEL STATUS``), with outcomes scripted per call: a key during the prompt, silence, a
  hang-up, a missing sound, a dead channel (``HANGUP`` then ``511``), ``520`` usage for bad
  arity, ``510`` for anything else, or garbage instead of a reply. It splits every command with
  the same parser as Asterisk (``protocol.split_command``) and records it for assertions.

It must not import the session or server it is used to test, and it never interprets a
command as anything but data.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from asterisk_recorder.agi.protocol import split_command
from asterisk_recorder.testing.fake_asterisk.resources import variable_assignments

__all__ = [
    "DEAD_CAPABLE",
    "Behaviour",
    "Exchange",
    "Finish",
    "Garbage",
    "HangUp",
    "Hold",
    "Missing",
    "PeerMismatch",
    "Press",
    "ScriptedAsterisk",
    "Silence",
    "Transcript",
    "TranscriptPeer",
    "environment_lines",
    "load_transcript",
    "parse_transcript",
]

_LINE_RE = re.compile(r"\+\s+[0-9]+\.[0-9]+ (<<|>>|--) ?(.*)")

DEAD_CAPABLE = frozenset(
    {
        "ASYNCAGI BREAK",
        "DATABASE DEL",
        "DATABASE DELTREE",
        "DATABASE GET",
        "DATABASE PUT",
        "EXEC",
        "GET FULL VARIABLE",
        "GET VARIABLE",
        "NOOP",
        "SET VARIABLE",
        "SPEECH DESTROY",
        "SPEECH UNLOAD GRAMMAR",
        "VERBOSE",
    }
)
"""Commands ``res_agi.c`` still runs on a dead channel; all others get ``511``."""

_KNOWN = (
    "ANSWER",
    "CHANNEL STATUS",
    "GET FULL VARIABLE",
    "GET VARIABLE",
    "SET VARIABLE",
    "STREAM FILE",
    "WAIT FOR DIGIT",
    "NOOP",
    "EXEC",
    "HANGUP",
)

_USAGE = {
    "STREAM FILE": " Usage: STREAM FILE <FILENAME> <ESCAPE_DIGITS> [SAMPLE OFFSET]",
    "WAIT FOR DIGIT": " Usage: WAIT FOR DIGIT <TIMEOUT>",
    "GET VARIABLE": " Usage: GET VARIABLE <VARIABLENAME>",
    "GET FULL VARIABLE": " Usage: GET FULL VARIABLE <VARIABLENAME> [CHANNEL NAME]",
    "SET VARIABLE": " Usage: SET VARIABLE <VARIABLENAME> <VALUE>",
}


class PeerMismatch(AssertionError):
    """The program under test sent something the fake Asterisk did not expect."""


# --------------------------------------------------------------------------------------------
# Transcripts


@dataclass(frozen=True, slots=True)
class Exchange:
    """One command the server sent and the lines Asterisk answered."""

    command: str
    replies: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Transcript:
    """A recorded FastAGI conversation: the environment, then command/reply exchanges."""

    name: str
    environment: tuple[str, ...]
    exchanges: tuple[Exchange, ...]

    def environment_bytes(self) -> bytes:
        """The environment block as Asterisk wrote it, blank line included."""
        return "".join(f"{line}\n" for line in self.environment).encode() + b"\n"


def parse_transcript(text: str, name: str = "transcript") -> Transcript:
    """Parse the ``+  0.000 << line`` / ``>> command`` / ``-- note`` format of the traces.

    Raises:
        ValueError: a line of another format, or replies before any command.
    """
    environment: list[str] = []
    exchanges: list[tuple[str, list[str]]] = []
    in_env = True
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        match = _LINE_RE.fullmatch(raw)
        if match is None:
            raise ValueError(f"{name}:{number}: not a transcript line: {raw!r}")
        direction, content = match.groups()
        if direction == "--":
            continue
        if direction == "<<" and in_env:
            if content.strip() == "":
                in_env = False
            else:
                environment.append(content)
        elif direction == "<<":
            if not exchanges:
                raise ValueError(f"{name}:{number}: reply before any command")
            exchanges[-1][1].append(content)
        else:
            in_env = False
            exchanges.append((content, []))
    return Transcript(name, tuple(environment), tuple(Exchange(c, tuple(r)) for c, r in exchanges))


def load_transcript(path: str | Path) -> Transcript:
    """Read and parse one ``*.agi.txt`` transcript file."""
    file = Path(path)
    return parse_transcript(file.read_text(encoding="utf-8"), file.name)


def environment_lines(
    base: Sequence[str], overrides: Mapping[str, str] | None = None, args: Sequence[str] = ()
) -> tuple[str, ...]:
    """Return ``base`` env lines with ``agi_<name>`` values replaced and ``agi_arg_N`` added.

    Values are inserted verbatim, newlines included, exactly as ``res_agi.c`` would print a
    hostile caller id (``agi_calleridname: %s\\n``).
    """
    overrides = dict(overrides or {})
    lines: list[str] = []
    for line in base:
        key, _, _ = line.partition(": ")
        name = key.removeprefix("agi_")
        if name in overrides:
            lines.append(f"{key}: {overrides.pop(name)}")
        else:
            lines.append(line)
    lines.extend(f"agi_{name}: {value}" for name, value in overrides.items())
    lines.extend(f"agi_arg_{i}: {value}" for i, value in enumerate(args, 1))
    return tuple(lines)


async def _read_command(reader: asyncio.StreamReader) -> str | None:
    """One command line without its newline, or ``None`` when the other side closed."""
    try:
        line = await reader.readline()
    except (ConnectionError, asyncio.LimitOverrunError, ValueError):
        return None
    if not line.endswith(b"\n"):
        return None
    return line[:-1].decode("utf-8", errors="replace")


async def _write(writer: asyncio.StreamWriter, lines: Sequence[str]) -> bool:
    """Write reply lines; False when the other side is gone."""
    try:
        writer.write("".join(f"{line}\n" for line in lines).encode())
        await writer.drain()
    except (ConnectionError, OSError):
        return False
    return True


class TranscriptPeer:
    """Replays a real transcript and asserts that every command matches it exactly.

    After ``run``, ``received`` holds the commands read and ``mismatch`` the first difference
    (also raised as ``PeerMismatch``).
    """

    def __init__(self, transcript: Transcript) -> None:
        self.transcript = transcript
        self.received: list[str] = []
        self.mismatch: str | None = None

    async def run(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Play the transcript over the streams.

        Raises:
            PeerMismatch: a command differs, is missing, or comes after the last exchange.
        """
        writer.write(self.transcript.environment_bytes())
        await writer.drain()
        for exchange in self.transcript.exchanges:
            command = await _read_command(reader)
            if command is None:
                self.mismatch = f"connection closed; expected {exchange.command!r}"
                raise PeerMismatch(self.mismatch)
            self.received.append(command)
            if command != exchange.command:
                self.mismatch = f"expected {exchange.command!r}, got {command!r}"
                raise PeerMismatch(self.mismatch)
            await _write(writer, exchange.replies)
        extra = await _read_command(reader)
        if extra is not None:
            self.mismatch = f"command after the end of the transcript: {extra!r}"
            raise PeerMismatch(self.mismatch)

    async def connect(self, host: str, port: int) -> None:
        """Connect to a FastAGI server like Asterisk's ``AGI(agi://host:port/...)`` and play."""
        reader, writer = await asyncio.open_connection(host, port)
        try:
            await self.run(reader, writer)
        finally:
            writer.close()
            await _closed(writer)


async def _closed(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        await writer.wait_closed()


# --------------------------------------------------------------------------------------------
# The scripted Asterisk


@dataclass(frozen=True, slots=True)
class Finish:
    """``STREAM FILE`` plays to its end (``result=0 endpos=N``)."""

    endpos: int = 8000


@dataclass(frozen=True, slots=True)
class Press:
    """The caller presses ``digit`` (during ``STREAM FILE`` only if it is an escape digit)."""

    digit: str
    endpos: int = 4160


@dataclass(frozen=True, slots=True)
class Silence:
    """``WAIT FOR DIGIT`` times out (``result=0``)."""


@dataclass(frozen=True, slots=True)
class HangUp:
    """The caller hangs up during the command (``result=-1``, then ``HANGUP``, then 511s)."""

    endpos: int = 1200


@dataclass(frozen=True, slots=True)
class Missing:
    """The sound does not exist: ``STREAM FILE`` answers ``result=-1 endpos=0``, channel alive."""


@dataclass(frozen=True, slots=True)
class Garbage:
    """Answer with these raw bytes instead of a reply (then stop answering)."""

    data: bytes = b"\x16\x03\x01 garbage that is not AGI\n"


@dataclass(frozen=True, slots=True)
class Hold:
    """A long prompt or wait: the reply (``result=0``) comes only after ``seconds``."""

    seconds: float
    endpos: int = 8000


Behaviour = Finish | Press | Silence | HangUp | Missing | Garbage | Hold
"""What happens when the session plays a prompt or waits for a key."""


@dataclass
class ScriptedAsterisk:
    """A fake Asterisk channel in AGI: scripted caller behaviour, real ``res_agi`` replies.

    Args:
        environment: the env lines to send (see ``environment_lines``).
        variables: channel variables for ``GET [FULL] VARIABLE``; ``SET VARIABLE`` writes here.
        prompts: what each successive ``STREAM FILE`` does (default: ``Finish()``).
        waits: what each successive ``WAIT FOR DIGIT`` does (default: ``Silence()``).
        up: the channel is already answered.
        dead: the channel is already hung up when AGI starts.
        garbage_at: answer the N-th command (0-based) with ``Garbage`` bytes.
        stall_at: answer nothing from the N-th command (0-based) on: a hung Asterisk.
        hangup_line: send ``HANGUP`` when the channel dies (Asterisk's ``AGISIGHUP``, default).
        exit_on_hangup: close the connection right after ``HANGUP`` (``AGIEXITONHANGUP=yes``).
        refuse: command name -> 510 or 520: answer that command with the error instead.
        environment lines may be ``bytes`` (e.g. a caller name that is not UTF-8).
    """

    environment: Sequence[str | bytes]
    variables: dict[str, str] = field(default_factory=dict)
    prompts: list[Behaviour] = field(default_factory=list)
    waits: list[Behaviour] = field(default_factory=list)
    up: bool = False
    dead: bool = False
    garbage_at: int | None = None
    stall_at: int | None = None
    hangup_line: bool = True
    exit_on_hangup: bool = False
    refuse: dict[str, int] = field(default_factory=dict)
    commands: list[list[str]] = field(default_factory=list)
    """Every command received, split as Asterisk splits it."""
    lines: list[str] = field(default_factory=list)
    """Every command line received, verbatim."""
    closed_by_program: bool = False
    """True when the program closed the connection (end of session) rather than us."""
    _hangup_pending: bool = False
    _delay: float = 0.0
    _stalled: bool = False

    async def run(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Send the environment, then answer commands until the program closes its side."""
        env = b"".join(
            (line if isinstance(line, bytes) else line.encode()) + b"\n"
            for line in self.environment
        )
        if self.dead:
            self._hangup_pending = self.hangup_line
        try:
            writer.write(env + b"\n")
            await writer.drain()
        except (ConnectionError, OSError):
            return
        line: str | None = None
        while True:
            if line is None:
                line = await _read_command(reader)
            if line is None:
                self.closed_by_program = True
                return
            self.lines.append(line)
            argv = split_command(line)
            self.commands.append(argv)
            line = None
            if self.stall_at is not None and len(self.commands) - 1 == self.stall_at:
                self._stalled = True
            if self._stalled:
                continue
            if self.garbage_at is not None and len(self.commands) - 1 == self.garbage_at:
                garbage = Garbage()
                try:
                    writer.write(garbage.data)
                    await writer.drain()
                except (ConnectionError, OSError):
                    return
                continue
            replies: list[str] = []
            if self._hangup_pending:
                replies.append("HANGUP")
                self._hangup_pending = False
            replies.extend(self._answer(argv))
            if self._delay:
                # The prompt plays (or the wait runs) meanwhile. As in res_agi.c, a command
                # arriving first stops it: STREAM FILE then sends no reply at all, WAIT FOR
                # DIGIT answers result=1; the new command is answered next.
                delay, self._delay = self._delay, 0.0
                next_line = asyncio.ensure_future(_read_command(reader))
                done, _ = await asyncio.wait({next_line}, timeout=delay)
                if next_line in done:
                    line = next_line.result()
                    if line is None:
                        self.closed_by_program = True
                        return
                    interrupted = argv[:2] == ["STREAM", "FILE"]
                    replies = [r for r in replies if r == "HANGUP"]
                    if not interrupted:
                        replies.append("200 result=1")
                else:
                    next_line.cancel()  # nothing read: the line stays in the reader's buffer
                    with contextlib.suppress(asyncio.CancelledError):
                        await next_line
            if self._hangup_pending and self.exit_on_hangup:
                # AGIEXITONHANGUP=yes: Asterisk says HANGUP and closes the connection.
                await _write(writer, [*replies, "HANGUP"])
                self.closed_by_program = False
                return
            if not await _write(writer, replies):
                return

    async def connect(self, host: str, port: int) -> None:
        """Connect to a FastAGI server as Asterisk does, and run until it closes."""
        reader, writer = await asyncio.open_connection(host, port)
        try:
            await self.run(reader, writer)
        finally:
            writer.close()
            await _closed(writer)

    def _die(self) -> None:
        self.dead = True
        self._hangup_pending = self.hangup_line

    def _answer(self, argv: list[str]) -> list[str]:
        """The reply lines ``res_agi.c`` writes for one command."""
        upper = [word.upper() for word in argv]
        name = next(
            (
                k
                for k in sorted(_KNOWN, key=len, reverse=True)
                if upper[: len(k.split())] == k.split()
            ),
            None,
        )
        if name is None:
            return ["510 Invalid or unknown command"]
        if name in self.refuse:
            if self.refuse[name] == 520:
                return self._usage(name)
            return [f"{self.refuse[name]} Invalid or unknown command"]
        if self.dead and name not in DEAD_CAPABLE:
            return ["511 Command Not Permitted on a dead channel or intercept routine"]
        argc = len(argv)
        if name == "ANSWER":
            self.up = True
            return ["200 result=0"]
        if name == "CHANNEL STATUS":
            return [f"200 result={6 if self.up else 4}"]
        if name == "STREAM FILE":
            if not 4 <= argc <= 5:
                return self._usage(name)
            return [self._stream(argv[3])]
        if name == "WAIT FOR DIGIT":
            if argc != 4 or not re.fullmatch(r"-?[0-9]+", argv[3]):
                return self._usage(name)
            return [self._wait()]
        if name == "GET VARIABLE":
            if argc != 3:
                return self._usage(name)
            value = self.variables.get(argv[2])
            return ["200 result=0"] if value is None else [f"200 result=1 ({value})"]
        if name == "GET FULL VARIABLE":
            if argc not in (4, 5):
                return self._usage(name)
            expanded = re.sub(r"\$\{([^}]*)\}", lambda m: self._lookup(m.group(1)), argv[3])
            return [f"200 result=1 ({expanded})"]
        if name == "SET VARIABLE":
            if argc != 4:
                return self._usage(name)
            for one, text in variable_assignments(argv[2], argv[3]):
                self.variables[one] = text  # ARRAY(A,B) "a,b" sets both, as Asterisk does
            return ["200 result=1"]
        if name == "HANGUP":
            self._die()
            return ["200 result=1"]
        return ["200 result=0"]  # NOOP, EXEC: accepted (tests assert they were never sent)

    def _lookup(self, name: str) -> str:
        """A channel variable, or Asterisk's built-in ``UNIQUEID`` (the env's ``agi_uniqueid``)."""
        if name == "UNIQUEID" and name not in self.variables:
            for line in self.environment:
                text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
                if text.startswith("agi_uniqueid: "):
                    return text.removeprefix("agi_uniqueid: ")
        return self.variables.get(name, "")

    @staticmethod
    def _usage(name: str) -> list[str]:
        return [
            "520-Invalid command syntax.  Proper usage follows:",
            _USAGE.get(name, " Usage: " + name),
            "520 End of proper usage.",
        ]

    def _stream(self, escape_digits: str) -> str:
        behaviour = self.prompts.pop(0) if self.prompts else Finish()
        match behaviour:
            case Press(digit, endpos) if digit in escape_digits:
                return f"200 result={ord(digit)} endpos={endpos}"
            case Press():
                return "200 result=0 endpos=8000"
            case Finish(endpos):
                return f"200 result=0 endpos={endpos}"
            case HangUp(endpos):
                self._die()
                return f"200 result=-1 endpos={endpos}"
            case Missing():
                return "200 result=-1 endpos=0"
            case Silence():
                return "200 result=0 endpos=8000"
            case Hold(seconds, endpos):
                self._delay = seconds
                return f"200 result=0 endpos={endpos}"
            case Garbage(data):
                return data.decode("latin-1").rstrip("\n")

    def _wait(self) -> str:
        behaviour = self.waits.pop(0) if self.waits else Silence()
        match behaviour:
            case Press(digit):
                return f"200 result={ord(digit)}"
            case HangUp():
                self._die()
                return "200 result=-1"
            case Silence() | Finish() | Missing():
                return "200 result=0"
            case Hold(seconds):
                self._delay = seconds
                return "200 result=0"
            case Garbage(data):
                return data.decode("latin-1").rstrip("\n")
