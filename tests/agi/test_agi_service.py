"""FastAGI as the composition root wires it: metrics, one decided line, the same core as ARI."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress

from agi_helpers import consent_env
from structlog.testing import capture_logs

from asterisk_recorder.flow.decision import Outcome
from asterisk_recorder.ledger.sink import MemorySink
from asterisk_recorder.service import build
from asterisk_recorder.settings import AriServerSettings, HttpSettings, Settings
from asterisk_recorder.testing.agi_peer import Press, ScriptedAsterisk


def _agi_only(settings: Settings) -> Settings:
    return dataclasses.replace(
        settings,
        ari=(AriServerSettings(enabled=False),),
        http=HttpSettings(host="127.0.0.1", port=0),
    )


async def test_fastagi_call_is_counted_and_logged_once_by_the_service(settings: Settings) -> None:
    """One FastAGI call: one ``consent.decided`` line (driver agi), one decision counted."""
    sink = MemorySink()
    service = build(_agi_only(settings), sink=sink)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    await asyncio.wait_for(service.started.wait(), 10)
    assert service.agi is not None
    try:
        with capture_logs() as logs:
            peer = ScriptedAsterisk(consent_env("consent?policy=opt_out"), prompts=[Press("1")])
            await peer.connect("127.0.0.1", service.agi.port)
        decided = [e for e in logs if e["event"] == "consent.decided"]
    finally:
        stop.set()
        await task

    assert 1 == len(decided)
    assert "agi" == decided[0]["driver"]
    assert decided[0]["handed_back"] is True
    assert decided[0]["fail_closed"] is False
    assert "proceeded_unrecorded" == decided[0]["fate"]
    assert 1 == len(sink.decisions)
    assert Outcome.NOT_RECORDED_OPTED_OUT == sink.decisions[0].outcome
    exposition = service.metrics.exposition()
    assert 'outcome="not_recorded_opted_out"' in exposition
    assert 'fate="proceeded_unrecorded",driver="agi"' in exposition
    assert len(peer.commands) == service.metrics.reaction_seconds.count()


async def test_the_service_refuses_a_foreign_fastagi_peer_and_counts_it(settings: Settings) -> None:
    """Default allowlist (loopback only): a peer at 127.0.0.2 gets nothing and is counted."""
    sink = MemorySink()
    service = build(_agi_only(settings), sink=sink)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    await asyncio.wait_for(service.started.wait(), 10)
    assert service.agi is not None
    try:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", service.agi.port, local_addr=("127.0.0.2", 0)
        )
        received = b""
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            writer.write("".join(f"{line}\n" for line in consent_env()).encode() + b"\n")
            await writer.drain()
            received = await asyncio.wait_for(reader.read(), 5)
        writer.close()
    finally:
        stop.set()
        await task

    assert b"" == received  # not one AGI command was sent to it
    assert [] == sink.decisions
    assert "asterisk_recorder_agi_peers_refused_total 1" in service.metrics.exposition()


async def test_a_listed_fastagi_peer_is_served(settings: Settings) -> None:
    """``agi.allowed_peers`` naming 127.0.0.2/32: that host's call is decided like any other."""
    allowed = dataclasses.replace(
        settings.agi, allowed_peers=(ipaddress.ip_network("127.0.0.2/32"),)
    )
    sink = MemorySink()
    service = build(dataclasses.replace(_agi_only(settings), agi=allowed), sink=sink)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    await asyncio.wait_for(service.started.wait(), 10)
    assert service.agi is not None
    try:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", service.agi.port, local_addr=("127.0.0.2", 0)
        )
        peer = ScriptedAsterisk(consent_env("consent?policy=opt_out"), prompts=[Press("1")])
        await peer.run(reader, writer)
        writer.close()
        for _ in range(200):
            if sink.decisions:
                break
            await asyncio.sleep(0.01)
    finally:
        stop.set()
        await task

    assert [Outcome.NOT_RECORDED_OPTED_OUT] == [d.outcome for d in sink.decisions]
