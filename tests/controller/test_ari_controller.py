"""The ARI controller runs the consent flow for each call and hands it back to dialplan."""

from __future__ import annotations

import asyncio

from asterisk_recorder.flow.decision import Outcome
from tests.controller.conftest import Rig


async def wait_decisions(rig: Rig, count: int, within: float = 5.0) -> None:
    """Wait until the sink holds ``count`` decisions."""
    async with asyncio.timeout(within):
        while len(rig.sink.decisions) < count:
            await asyncio.sleep(0.01)


async def test_opt_out_key_during_disclosure_skips_recording(rig: Rig) -> None:
    """A California caller pressing 1 during the disclosure is not recorded."""
    ch = await rig.fake.originate(caller_number="+14155550100", extension="2125550100")
    await rig.fake.wait_for_event("PlaybackStarted", channel_id=ch.id)
    await rig.fake.send_dtmf(ch.id, "1")
    record = await rig.fake.wait_for_continue(ch.id)
    await wait_decisions(rig, 1)

    decision = rig.sink.decisions[0]
    assert Outcome.NOT_RECORDED_OPTED_OUT == decision.outcome
    assert "skip" == record.variables["RECORDER_DECISION"]
    assert "not_recorded_opted_out" == record.variables["RECORDER_OUTCOME"]
    assert decision.decision_id == record.variables["RECORDER_DECISION_ID"]
    assert "" == record.variables["RECORDER_FILE"]
