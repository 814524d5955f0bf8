"""Property tests of the AGI protocol: only typed AGI errors escape, quoting round-trips.

Together these run 10,000 examples (about twelve seconds on two cores).
"""

from __future__ import annotations

import contextlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asterisk_recorder.agi.protocol import (
    AgiConnection,
    ConnectionState,
    format_command,
    split_command,
)
from asterisk_recorder.errors import (
    AgiCommandError,
    AgiError,
    AgiHangup,
    AgiProtocolError,
)

FRAGMENTS = [
    b"agi_request: agi://h/consent?policy=opt_in\n",
    b"agi_channel: PJSIP/a-1\n",
    b"agi_arg_1: x\n",
    b"agi_arg_2: y\n",
    b"agi_arg_3: z\n",
    b"agi_",
    b": ",
    b"\n",
    b"\r\n",
    b"200 result=",
    b"0",
    b"49",
    b"-1",
    b"99999999999999999999",
    b" (",
    b")",
    b" endpos=",
    b"12",
    b"HANGUP\n",
    b"100 result=0 Trying...\n",
    b"510 Invalid or unknown command\n",
    b"511 Command Not Permitted\n",
    b"520-Invalid command syntax.\n",
    b" Usage: X\n",
    b"520 End of proper usage.\n",
    b"503 result=-2 Memory\n",
    b"\x00",
    b"\xff\xfe",
    b"\xe9",
    b" ",
    b"\t",
    b"(",
    b"result=",
    b"999 x\n",
    b"200-",
    b"Gosub complete",
]

chunks = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.binary(max_size=12)), max_size=24).map(
    b"".join
)
"""Byte streams that are mostly near-valid AGI, with arbitrary bytes mixed in."""

splits = st.lists(st.integers(min_value=1, max_value=64), min_size=1, max_size=8)


def drive(stream: bytes, sizes: list[int], *, eof: bool) -> None:
    """Feed ``stream`` in chunks of ``sizes`` (cycled) and read everything it yields."""
    conn = AgiConnection(max_line=256)
    position = 0
    index = 0
    commands = 0
    while True:
        if position < len(stream):
            size = sizes[index % len(sizes)]
            conn.receive_data(stream[position : position + size])
            position += size
            index += 1
        elif eof:
            conn.receive_data(b"")
        else:
            return
        while True:
            if conn.state is ConnectionState.ENVIRONMENT:
                if conn.next_environment() is None:
                    break
            elif conn.state is ConnectionState.IDLE:
                if commands > 200:
                    return
                conn.send_command("GET VARIABLE", "X")
                commands += 1
            else:
                try:
                    if conn.next_reply() is None:
                        break
                except (AgiHangup, AgiCommandError):
                    continue
        if position >= len(stream) and eof:
            # EOF was fed and nothing more is readable: the next read must raise.
            return


@settings(max_examples=4000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream=chunks, sizes=splits, eof=st.booleans())
def test_near_valid_streams_raise_only_typed_agi_errors(
    stream: bytes, sizes: list[int], eof: bool
) -> None:
    """Whatever bytes arrive, in whatever pieces, only AgiError subclasses escape."""
    try:
        drive(b"agi_request: x\n\n" + stream, sizes, eof=eof)
    except AgiProtocolError:
        pass
    except AgiError as exc:  # pragma: no cover - the assertion below reports it
        raise AssertionError(f"unexpected {type(exc).__name__} escaped: {exc}") from exc


@settings(max_examples=3000, deadline=None)
@given(stream=st.binary(max_size=300), sizes=splits, eof=st.booleans())
def test_arbitrary_bytes_raise_only_protocol_errors(
    stream: bytes, sizes: list[int], eof: bool
) -> None:
    """Random bytes from the first byte on fail only with AgiProtocolError."""
    with contextlib.suppress(AgiProtocolError):
        drive(stream, sizes, eof=eof)


printable_args = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00\r\n"),
    max_size=40,
)


@settings(max_examples=3000, deadline=None)
@given(args=st.lists(printable_args, max_size=6))
def test_formatted_commands_split_back_into_the_same_arguments(args: list[str]) -> None:
    """Asterisk's parser (ported) reads every formatted argument back unchanged."""
    line = format_command("SET VARIABLE", *args).decode("utf-8").removesuffix("\n")

    assert ["SET", "VARIABLE", *args] == split_command(line)
