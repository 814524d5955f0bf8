"""A hand-back that fails for good: retried, then swept without a reconnect; the fate is kept."""

from __future__ import annotations

import asyncio
import contextlib

from structlog.testing import capture_logs

from asterisk_recorder.controller.app import AriController, ControllerHooks
from asterisk_recorder.drivers.ports import CallFate, CoreHooks, Fate
from asterisk_recorder.flow import ConsentFlow
from asterisk_recorder.ledger.sink import MemorySink
from asterisk_recorder.policy import PolicyEngine
from asterisk_recorder.settings import PolicySettings
from asterisk_recorder.testing import FakeAsterisk
from tests.controller.conftest import FAST_FLOW


async def test_caller_left_parked_by_a_lost_hand_back_is_swept_out_unrecorded() -> None:
    """Asterisk refuses every continue: the core gives up, the sweep hands back skip, 2 fates."""
    fates: list[CallFate] = []

    async def keep(fate: CallFate) -> None:
        fates.append(fate)

    engine = PolicyEngine.from_settings(PolicySettings(site_jurisdiction="US-NY"))
    sink = MemorySink()
    async with FakeAsterisk(time_scale=0.05) as fake:
        controller = AriController(
            fake.settings(),
            flow_factory=lambda: ConsentFlow(FAST_FLOW, engine),
            sink=sink,
            instance_id="sweep-test",
            hooks=ControllerHooks(core=CoreHooks(hand_back_retry_for=0.3, record_fate=keep)),
            sweep_interval=0.5,
        )
        task = asyncio.create_task(controller.run())
        try:
            await fake.wait_for_app("consent-recorder")
            fake.fail("POST", "/ari/channels/*/continue", 503, "Service Unavailable", times=None)
            with capture_logs() as logs:
                ch = await fake.originate(caller_number="+12125550100", extension="2125550199")
                for _ in range(300):
                    if fates:
                        break
                    await asyncio.sleep(0.01)
                assert fake.channel(ch.id).in_stasis  # still parked: nothing got through
                fake.clear_faults()
                record = await fake.wait_for_continue(ch.id, within=5.0)
                for _ in range(300):
                    if len(fates) == 2:
                        break
                    await asyncio.sleep(0.01)
        finally:
            controller.stop()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, 10)

    decision = sink.decisions[0]
    assert decision.record  # the ledger decision said "record" ...
    assert "skip" == record.variables["RECORDER_DECISION"]  # ... but it was never recorded
    assert [Fate.STUCK, Fate.UNRECORDED] == [f.fate for f in fates]
    assert {decision.decision_id} == {f.decision_id for f in fates}
    assert "sweep" in fates[1].reason
    decided = [e for e in logs if e["event"] == "consent.decided"]
    assert "error" == decided[0]["log_level"]
    assert Fate.STUCK == decided[0]["fate"]
    assert [] != [e for e in logs if e["event"] == "call.hand_back_failed"]
    assert [] != [e for e in logs if e["event"] == "ari.swept_channel"]
