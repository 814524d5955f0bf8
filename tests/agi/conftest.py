"""Fixtures of the AGI tests: a real FastAGI server on loopback and fake Asterisk peers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from agi_helpers import AgiRig, AgiRigStarter

from asterisk_recorder.agi.server import FastAgiServer
from asterisk_recorder.policy import PolicyEngine
from asterisk_recorder.settings import AgiSettings, PolicySettings, Settings


@pytest.fixture
def settings() -> Settings:
    """Default settings with the FastAGI server on a free loopback port."""
    return Settings(
        instance_id="test-agi", agi=AgiSettings(host="127.0.0.1", port=0, read_timeout=2.0)
    )


@pytest.fixture(scope="session")
def engine() -> PolicyEngine:
    """The shipped policy table."""
    return PolicyEngine.from_settings(PolicySettings())


@pytest.fixture
async def rig_factory(
    engine: PolicyEngine,
) -> AsyncIterator[Callable[[Settings], AgiRigStarter]]:
    """Start consent servers with given settings; all are closed at the end."""
    servers: list[FastAgiServer] = []

    def factory(settings: Settings) -> AgiRigStarter:
        return AgiRigStarter(settings, engine, servers)

    yield factory
    for server in servers:
        await server.close(grace=1.0)


@pytest.fixture
async def rig(settings: Settings, rig_factory: Callable[[Settings], AgiRigStarter]) -> AgiRig:
    """A running consent server with default settings."""
    return await rig_factory(settings).start()
