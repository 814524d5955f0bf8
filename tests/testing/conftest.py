"""Fixtures for the fake Asterisk tests: the fake, a client and an event stream on it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from asterisk_recorder.ari import AriClient, EventStream
from asterisk_recorder.testing import FakeAsterisk


@pytest.fixture
async def fake() -> AsyncIterator[FakeAsterisk]:
    """A running fake Asterisk with time scaled down 20x."""
    async with FakeAsterisk(time_scale=0.05) as server:
        yield server


@pytest.fixture
async def ari(fake: FakeAsterisk) -> AsyncIterator[AriClient]:
    """An ARI client pointed at the fake."""
    async with AriClient(fake.settings()) as client:
        yield client


@pytest.fixture
async def events(fake: FakeAsterisk) -> AsyncIterator[EventStream]:
    """A connected event stream for ``consent-recorder`` (its first ``Connected`` consumed)."""
    async with EventStream(fake.settings(), reconnect_initial=0.01) as stream:
        first = await stream.get()
        assert "Connected" == first.type
        await fake.wait_for_app("consent-recorder")
        yield stream
