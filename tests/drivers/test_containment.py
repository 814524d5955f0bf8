"""Containment: an error in one call ends that call fail-closed; the service and others go on."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import aiohttp
from structlog.testing import capture_logs

from asterisk_recorder.flow import ConsentFlow
from asterisk_recorder.flow.actions import Action
from asterisk_recorder.flow.decision import ConsentDecision, Outcome
from asterisk_recorder.flow.events import CallOffered, Event, PromptStarted
from asterisk_recorder.flow.machine import State
from asterisk_recorder.flow.settings import FlowSettings
from asterisk_recorder.ledger.sink import MemorySink
from asterisk_recorder.policy.modes import Mode
from asterisk_recorder.service import Service
from asterisk_recorder.settings import (
    AgiSettings,
    HttpSettings,
    PolicySettings,
    Settings,
)
from asterisk_recorder.testing import FakeAsterisk

POISON = "+12125550666"
"""The caller whose call hits the injected bug."""


class PoisonedFlow:
    """A real ``ConsentFlow`` that raises once, at the prompt's start, for the poisoned caller."""

    def __init__(self, inner: ConsentFlow) -> None:
        self.inner = inner
        self.poisoned = False

    @property
    def done(self) -> bool:
        return self.inner.done

    @property
    def decision(self) -> ConsentDecision | None:
        return self.inner.decision

    @property
    def state(self) -> State:
        return self.inner.state

    @property
    def mode(self) -> Mode | None:
        return self.inner.mode

    def handle(self, event: Event) -> list[Action]:
        if isinstance(event, CallOffered) and event.call.caller_number == POISON:
            self.poisoned = True
        if self.poisoned and isinstance(event, PromptStarted):
            self.poisoned = False
            raise RuntimeError("injected bug in one call")
        return self.inner.handle(event)


class PoisonedService(Service):
    """The real service whose flows are poisoned for one caller."""

    def new_flow(self) -> ConsentFlow:
        return PoisonedFlow(super().new_flow())  # type: ignore[return-value]


async def test_a_bug_in_one_call_fails_only_that_call_closed(tmp_path: Path) -> None:
    """One call of 12 raises: it is handed back skip/failed, counted and logged; the rest decide."""
    fake = FakeAsterisk(time_scale=0.05)
    await fake.start()
    sink = MemorySink()
    settings = dataclasses.replace(
        Settings(),
        instance_id="containment",
        ari=(fake.settings("consent-recorder"),),
        agi=AgiSettings(enabled=False),
        http=HttpSettings(enabled=True, host="127.0.0.1", port=0),
        policy=PolicySettings(site_jurisdiction="US-NY"),
        flow=FlowSettings(input_timeout=0.3, max_retries=0),
    )
    service = PoisonedService(settings, sink=sink)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        await asyncio.wait_for(service.started.wait(), 20)
        await fake.wait_for_app("consent-recorder")
        callers = [f"+1212555{n:04d}" for n in range(11)] + [POISON]
        with capture_logs() as logs:
            channels = await asyncio.gather(*(
                fake.originate(caller_number=c, extension="2125550199") for c in callers
            ))
            records = await asyncio.gather(*(fake.wait_for_continue(ch.id) for ch in channels))
            for _ in range(200):
                if len(sink.decisions) == len(callers):
                    break
                await asyncio.sleep(0.01)
        assert service.ops is not None
        async with aiohttp.ClientSession() as http:
            base = f"http://127.0.0.1:{service.ops.port}"
            async with http.get(f"{base}/readyz") as ready:
                ready_status = ready.status
            async with http.get(f"{base}/metrics") as response:
                metrics = await response.text()
        alive = not task.done()
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)
        await fake.stop()

    by_caller = {d.caller_number: d for d in sink.decisions}
    assert len(callers) == len(by_caller)
    poisoned = by_caller.pop(POISON)
    assert Outcome.FAILED == poisoned.outcome
    assert "injected bug" in poisoned.reason
    assert {Outcome.RECORDED_NOTIFIED} == {d.outcome for d in by_caller.values()}
    variables = {r.channel_id: r.variables for r in records}
    poisoned_channel = next(ch.id for ch in channels if ch.caller_number == POISON)
    assert "skip" == variables.pop(poisoned_channel)["RECORDER_DECISION"]
    assert {"record"} == {v["RECORDER_DECISION"] for v in variables.values()}
    crashed = [e for e in logs if e["event"] == "call.crashed"]
    assert 1 == len(crashed)
    assert crashed[0]["exc_info"] is True
    assert 'asterisk_recorder_calls_crashed_total{error="RuntimeError"} 1' in metrics
    assert 200 == ready_status
    assert alive
