"""Fixtures for the ARI controller: a fake Asterisk on loopback and a running controller."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

import pytest

from asterisk_recorder.controller.app import AriController
from asterisk_recorder.flow import ConsentFlow
from asterisk_recorder.flow.settings import FlowSettings
from asterisk_recorder.ledger.sink import MemorySink
from asterisk_recorder.policy import PolicyEngine
from asterisk_recorder.settings import PolicySettings
from asterisk_recorder.testing import FakeAsterisk

FAST_FLOW = FlowSettings(input_timeout=0.3, max_retries=1)
"""Flow settings with short timers so tests run fast (the fake's sounds are scaled too)."""


@dataclass
class Rig:
    """A fake Asterisk, a controller connected to it and the decisions it stored."""

    fake: FakeAsterisk
    controller: AriController
    sink: MemorySink
    task: asyncio.Task[None]


async def start_rig(
    *,
    flow: FlowSettings = FAST_FLOW,
    site: str = "US-NY",
    sink: MemorySink | None = None,
    time_scale: float = 0.05,
    resync_action: str = "handback",
    fake: FakeAsterisk | None = None,
) -> Rig:
    """Start a fake Asterisk and a controller on it; wait until the app is registered."""
    if fake is None:
        fake = FakeAsterisk(time_scale=time_scale)
        await fake.start()
    engine = PolicyEngine.from_settings(PolicySettings(site_jurisdiction=site))
    store = sink if sink is not None else MemorySink()
    controller = AriController(
        fake.settings(),
        flow_factory=lambda: ConsentFlow(flow, engine),
        sink=store,
        instance_id="test-instance",
        resync_action=resync_action,
    )
    task = asyncio.create_task(controller.run())
    await fake.wait_for_app("consent-recorder")
    return Rig(fake=fake, controller=controller, sink=store, task=task)


async def stop_rig(rig: Rig) -> None:
    """Stop the controller and the fake."""
    rig.controller.stop()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(rig.task, 10)
    await rig.fake.stop()


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    """A controller serving a fake Asterisk, site New York (announce)."""
    r = await start_rig()
    try:
        yield r
    finally:
        await stop_rig(r)


__all__ = ["FAST_FLOW", "Rig", "replace", "start_rig", "stop_rig"]
