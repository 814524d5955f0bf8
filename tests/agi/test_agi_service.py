"""``start_fastagi``: the FastAGI server as ``serve`` wires it."""

from __future__ import annotations

from agi_helpers import consent_env
from structlog.testing import capture_logs

from asterisk_recorder.agi.service import start_fastagi
from asterisk_recorder.flow import ConsentFlow
from asterisk_recorder.flow.decision import ConsentDecision, Outcome
from asterisk_recorder.ledger.sink import MemorySink
from asterisk_recorder.ops.metrics import RecorderMetrics
from asterisk_recorder.policy import PolicyEngine
from asterisk_recorder.settings import Settings
from asterisk_recorder.testing.agi_peer import Press, ScriptedAsterisk


async def test_service_hook_gets_each_call_and_sessions_do_not_log_twice(
    settings: Settings, engine: PolicyEngine
) -> None:
    """``on_decided`` is called once per call with driver ``agi``; no second decided line."""
    seen: list[tuple[ConsentDecision | None, dict[str, object]]] = []

    def on_decided(decision: ConsentDecision | None, **fields: object) -> None:
        seen.append((decision, fields))

    metrics = RecorderMetrics()
    sink = MemorySink()
    server = await start_fastagi(
        settings,
        flow_factory=lambda: ConsentFlow(settings.flow, engine),
        sink=sink,
        instance_id="svc-1",
        metrics=metrics,
        on_decided=on_decided,
    )
    try:
        with capture_logs() as logs:
            peer = ScriptedAsterisk(consent_env("consent?policy=opt_out"), prompts=[Press("1")])
            await peer.connect("127.0.0.1", server.port)
        assert 0.0 == metrics.agi_sessions_active.value()
    finally:
        await server.close()

    assert 1 == len(seen)
    decision, fields = seen[0]
    assert decision is not None
    assert Outcome.NOT_RECORDED_OPTED_OUT == decision.outcome
    assert "svc-1" == decision.instance_id
    assert "agi" == fields["driver"]
    assert "1795449978.119" == fields["channel_id"]
    assert fields["handed_back"] is True
    assert fields["fail_closed"] is False
    assert [] == [e for e in logs if e["event"] == "consent.decided"]
    assert [decision] == sink.decisions


async def test_each_agi_command_is_observed_as_a_reaction(
    settings: Settings, engine: PolicyEngine
) -> None:
    """``reaction_seconds`` gets one sample per command (reply or environment -> command)."""
    metrics = RecorderMetrics()
    server = await start_fastagi(
        settings,
        flow_factory=lambda: ConsentFlow(settings.flow, engine),
        sink=MemorySink(),
        instance_id="svc-1",
        metrics=metrics,
    )
    try:
        peer = ScriptedAsterisk(consent_env("consent?policy=opt_out"), prompts=[Press("1")])
        await peer.connect("127.0.0.1", server.port)
    finally:
        await server.close()

    assert len(peer.commands) == metrics.reaction_seconds.count()
    assert len(peer.commands) > 5
