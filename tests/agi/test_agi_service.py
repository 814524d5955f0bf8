"""FastAGI as the composition root wires it: metrics, one decided line, the same core as ARI."""

from __future__ import annotations

import asyncio
import dataclasses

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
