"""The hand-back's variables travel while the ledger commits; the channel moves only after it."""

from __future__ import annotations

import asyncio

from asterisk_recorder.errors import LedgerError
from asterisk_recorder.flow.decision import ConsentDecision
from asterisk_recorder.ledger.sink import MemorySink, StoreReceipt
from tests.controller.conftest import start_rig, stop_rig


class HeldSink(MemorySink):
    """A sink whose store waits until the test releases it (or fails it)."""

    def __init__(self, *, fail: bool = False) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.started = asyncio.Event()
        self.fail = fail

    async def store(self, decision: ConsentDecision) -> StoreReceipt:
        self.started.set()
        await self.release.wait()
        if self.fail:
            raise LedgerError("PostgreSQL and the spool both refused")
        return await super().store(decision)


async def test_variables_are_set_during_the_store_and_continue_waits_for_it() -> None:
    """While the store hangs the channel has its variables but stays in Stasis; then continues."""
    sink = HeldSink()
    rig = await start_rig(sink=sink)
    try:
        ch = await rig.fake.originate(caller_number="+12125550100", extension="2125550199")
        await asyncio.wait_for(sink.started.wait(), 5)
        await rig.fake.wait_until(
            lambda: rig.fake.channel(ch.id).variables.get("RECORDER_DECISION") == "record"
        )
        await asyncio.sleep(0.05)
        parked = rig.fake.channel(ch.id).in_stasis
        sink.release.set()
        record = await rig.fake.wait_for_continue(ch.id)
    finally:
        await stop_rig(rig)

    assert parked  # variables set, decision not stored yet: not continued
    assert "record" == record.variables["RECORDER_DECISION"]
    assert 1 == len(sink.decisions)


async def test_a_failed_store_replaces_the_early_variables_with_fail_closed_ones() -> None:
    """The early 'record' never reaches dialplan when the ledger refuses the decision."""
    sink = HeldSink(fail=True)
    rig = await start_rig(sink=sink)
    try:
        ch = await rig.fake.originate(caller_number="+12125550100", extension="2125550199")
        await asyncio.wait_for(sink.started.wait(), 5)
        await rig.fake.wait_until(
            lambda: rig.fake.channel(ch.id).variables.get("RECORDER_DECISION") == "record"
        )
        sink.release.set()
        record = await rig.fake.wait_for_continue(ch.id)
    finally:
        await stop_rig(rig)

    assert "skip" == record.variables["RECORDER_DECISION"]
    assert "failed" == record.variables["RECORDER_OUTCOME"]
    assert "" == record.variables["RECORDER_FILE"]
