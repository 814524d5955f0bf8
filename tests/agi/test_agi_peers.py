"""The FastAGI peer allowlist: foreign hosts are closed before their environment is read.

The "foreign host" is 127.0.0.2: on Linux the whole 127.0.0.0/8 is routed to loopback, so a
client socket bound to it reaches a server on 127.0.0.1 from an address outside the default
allowlist (127.0.0.1/32, ::1/128).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from unittest import mock

import pytest
from agi_helpers import AgiRig, consent_env
from structlog.testing import capture_logs

from asterisk_recorder.agi.channel import AgiChannel
from asterisk_recorder.agi.peers import LOOPBACK_ONLY, PeerAllowlist, RefusalLog
from asterisk_recorder.agi.protocol import AgiEnvironment
from asterisk_recorder.agi.server import FastAgiServer
from asterisk_recorder.errors import ConfigError
from asterisk_recorder.flow.decision import Outcome
from asterisk_recorder.settings import AgiSettings
from asterisk_recorder.testing.agi_peer import Press, ScriptedAsterisk

OPT_OUT = consent_env("consent?policy=opt_out")
FOREIGN = "127.0.0.2"


async def connect_from(
    source: str, port: int, host: str = "127.0.0.1"
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open a TCP connection to ``host:port`` from the local address ``source``."""
    return await asyncio.open_connection(host, port, local_addr=(source, 0))


async def read_until_closed(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sent before it closed (a reset counts as closed)."""
    received = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := await asyncio.wait_for(reader.read(4096), timeout=5):
            received += chunk
    return received


async def close_quietly(writer: asyncio.StreamWriter) -> None:
    """Close a client connection."""
    writer.close()
    with contextlib.suppress(ConnectionError, OSError):
        await writer.wait_closed()


async def play_from(source: str, port: int, peer: ScriptedAsterisk) -> None:
    """Play ``peer`` (a fake Asterisk) against the server from the local address ``source``."""
    reader, writer = await connect_from(source, port)
    try:
        await peer.run(reader, writer)
    finally:
        await close_quietly(writer)


async def test_a_foreign_peer_is_closed_without_a_command_and_reaches_no_session(
    rig: AgiRig,
) -> None:
    """A host outside the default allowlist sends an env block: closed, no command, no decision."""
    with capture_logs() as logs:
        reader, writer = await connect_from(FOREIGN, rig.server.port)
        writer.write(("\n".join(OPT_OUT) + "\n\n").encode())
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        received = await read_until_closed(reader)
    await close_quietly(writer)

    assert b"" == received
    assert [] == rig.results
    assert [] == rig.sink.decisions
    assert (1, 0) == (rig.server.stats.refused, rig.server.stats.accepted)
    refused = [e for e in logs if e["event"] == "agi.peer.refused"]
    assert [(FOREIGN, "warning")] == [(e["peer"], e["log_level"]) for e in refused]


async def test_an_allowed_loopback_peer_still_completes_its_call(rig: AgiRig) -> None:
    """127.0.0.1 is in the default allowlist: its consent call decides as before."""
    result = await rig.call(ScriptedAsterisk(OPT_OUT, prompts=[Press("1")]))

    assert result.decision is not None
    assert Outcome.NOT_RECORDED_OPTED_OUT == result.decision.outcome
    assert 0 == rig.server.stats.refused


async def test_a_listed_network_lets_its_hosts_in_and_still_refuses_the_rest() -> None:
    """With 127.0.0.2/32 allowed, 127.0.0.2 runs a session while 127.0.0.3 is refused."""
    handled: list[str] = []
    refused: list[str] = []

    async def handler(channel: AgiChannel, env: AgiEnvironment) -> None:
        handled.append(env.uniqueid)
        await channel.answer()

    server = FastAgiServer(
        AgiSettings(host="127.0.0.1", port=0),
        handler,
        allowed_peers=[ipaddress.IPv4Network("127.0.0.2/32")],
        on_refused=refused.append,
    )
    await server.start()
    try:
        allowed = ScriptedAsterisk(OPT_OUT)
        await play_from(FOREIGN, server.port, allowed)
        reader, writer = await connect_from("127.0.0.3", server.port)
        received = await read_until_closed(reader)
        await close_quietly(writer)
        other = ScriptedAsterisk(OPT_OUT)
        await play_from("127.0.0.1", server.port, other)
    finally:
        await server.close()

    assert [["ANSWER"]] == allowed.commands
    assert b"" == received
    assert [] == other.commands
    assert 1 == len(handled)
    assert ["127.0.0.3", "127.0.0.1"] == refused
    assert (2, 1) == (server.stats.refused, server.stats.completed)


async def test_an_ipv6_loopback_peer_is_allowed_by_default() -> None:
    """A server on ::1 serves a peer connecting from ::1 (in the default allowlist)."""

    async def handler(channel: AgiChannel, env: AgiEnvironment) -> None:
        await channel.answer()

    server = FastAgiServer(AgiSettings(host="::1", port=0), handler)
    try:
        await server.start()
    except ConfigError:
        pytest.skip("no IPv6 loopback here")
    try:
        peer = ScriptedAsterisk(OPT_OUT)
        await peer.connect("::1", server.port)
    finally:
        await server.close()

    assert [["ANSWER"]] == peer.commands
    assert 0 == server.stats.refused


async def test_a_port_scan_is_counted_in_full_but_logged_only_ten_times(rig: AgiRig) -> None:
    """Thirty refused connections in a burst: stats.refused is 30, ten warnings are logged."""
    with capture_logs() as logs:
        for _ in range(30):
            reader, writer = await connect_from(FOREIGN, rig.server.port)
            await read_until_closed(reader)
            await close_quietly(writer)

    assert 30 == rig.server.stats.refused
    refused = [e for e in logs if e["event"] == "agi.peer.refused"]
    assert 10 == len(refused)
    assert "further_refusals" in refused[-1]
    assert [] == rig.results


def test_suppressed_refusals_are_counted_in_one_line_when_the_window_ends() -> None:
    """After the window, the next refusal first logs how many were left out."""
    clock = mock.Mock(return_value=0.0)
    log = RefusalLog(PeerAllowlist(LOOPBACK_ONLY), limit=2, window=60.0, clock=clock)
    with capture_logs() as logs:
        for total in range(1, 6):
            log.refused(FOREIGN, 40000 + total, total)
        clock.return_value = 61.0
        log.refused(FOREIGN, 40006, 6)

    events = [(e["event"], e.get("count")) for e in logs]
    assert [
        ("agi.peer.refused", None),
        ("agi.peer.refused", None),
        ("agi.peer.refusals_suppressed", 3),
        ("agi.peer.refused", None),
    ] == events


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", False),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("::ffff:127.0.0.2", False),
        ("::2", False),
        ("10.0.0.1", False),
        ("", False),
        ("not-an-address", False),
    ],
)
def test_the_default_allowlist_admits_loopback_only(host: str, allowed: bool) -> None:
    """127.0.0.1 and ::1 (also as IPv4-mapped ::ffff:127.0.0.1) pass; nothing else does."""
    assert allowed is PeerAllowlist(LOOPBACK_ONLY).allows(host)


def test_networks_match_across_address_families() -> None:
    """An IPv4 network admits its mapped IPv6 form, and a mapped IPv6 network its IPv4 form."""
    v4 = PeerAllowlist.of([ipaddress.ip_network("192.0.2.0/24")])
    mapped = PeerAllowlist.of([ipaddress.ip_network("::ffff:198.51.100.0/120")])
    link = PeerAllowlist.of([ipaddress.ip_network("fe80::/10")])

    assert (True, True, False) == (
        v4.allows("192.0.2.9"),
        v4.allows("::ffff:192.0.2.9"),
        v4.allows("192.0.3.1"),
    )
    assert (True, True, False) == (
        mapped.allows("198.51.100.7"),
        mapped.allows("::ffff:198.51.100.7"),
        mapped.allows("198.51.101.7"),
    )
    assert link.allows("fe80::1%eth0")


def test_an_empty_allowlist_is_refused_with_a_clear_error() -> None:
    """No networks at all would refuse every host: a ConfigError says so."""
    with pytest.raises(ConfigError, match=r"agi\.allowed_peers is empty"):
        FastAgiServer(AgiSettings(), _never, allowed_peers=[])


def test_an_allowlist_entry_that_is_not_a_network_is_refused() -> None:
    """A plain string instead of an ip_network is a ConfigError naming it."""
    with pytest.raises(ConfigError, match=r"'10\.0\.0\.1' is not an IP network"):
        FastAgiServer(AgiSettings(), _never, allowed_peers=["10.0.0.1"])  # type: ignore[list-item]


async def _never(channel: AgiChannel, env: AgiEnvironment) -> None:
    raise AssertionError("no session should run")
