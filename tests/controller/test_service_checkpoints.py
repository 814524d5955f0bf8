"""``serve`` signs checkpoints off the call path and pushes them to its witnesses.

A real service (fake Asterisk over sockets, real PostgreSQL) takes calls while its checkpointer
signs; a directory witness receives them; a witness that is down never slows a call, and shows
on /readyz once it is behind by more than ``witness_max_lag``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from asterisk_recorder.ledger.note import open_checkpoint
from asterisk_recorder.ledger.signing import load_signing_key
from asterisk_recorder.ledger.witness import DirectoryWitness
from asterisk_recorder.service import Service
from asterisk_recorder.settings import Settings
from asterisk_recorder.testing import FakeAsterisk
from tests.controller.test_service import service_settings


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _with_witnesses(settings: Settings, *witnesses: str) -> Settings:
    ledger = dataclasses.replace(
        settings.ledger,
        checkpoint_every=2,
        checkpoint_interval=0.5,
        checkpoint_origin="recorder.test/serve",
        witnesses=witnesses,
        witness_max_lag=1.0,
    )
    return dataclasses.replace(settings, ledger=ledger)


@pytest.fixture
async def serving(
    pg_dsn: str, tmp_path: Path
) -> AsyncIterator[tuple[Service, FakeAsterisk, Path]]:
    """serve with a directory witness and an HTTP witness nobody listens on."""
    fake = FakeAsterisk(time_scale=0.05)
    await fake.start()
    witness = tmp_path / "witness"
    settings = _with_witnesses(
        service_settings(fake, pg_dsn, tmp_path / "spool"),
        str(witness),
        f"http://127.0.0.1:{_closed_port()}/checkpoints",
    )
    service = Service(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        await asyncio.wait_for(service.started.wait(), 20)
        await fake.wait_for_app("consent-recorder")
        yield service, fake, witness
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)
        await fake.stop()


async def test_calls_end_up_in_a_witnessed_checkpoint_and_a_dead_witness_shows_on_readyz(
    serving: tuple[Service, FakeAsterisk, Path],
) -> None:
    """Three calls are covered by a signed checkpoint at the directory witness; /readyz names
    the unreachable HTTP witness (and only it) once it is behind, while calls still decide."""
    service, fake, witness = serving
    for n in range(3):
        ch = await fake.originate(caller_number=f"+1212555010{n}", extension="2125550199")
        await fake.wait_for_continue(ch.id)
    assert service.checkpointer is not None
    assert service.ops is not None
    key = load_signing_key(service.settings.ledger, create=False)
    async with asyncio.timeout(15):
        while True:
            held = await DirectoryWitness(witness).fetch() if witness.exists() else []
            sizes = [open_checkpoint(c.note, [key.verifier()], "recorder.test/serve").size
                     for c in held]
            if sizes and max(sizes) >= 3:
                break
            await asyncio.sleep(0.1)
    async with aiohttp.ClientSession() as http, asyncio.timeout(15):
        while True:
            async with http.get(service.ops.url + "/readyz") as resp:
                body = await resp.json()
            check = next(c for c in body["checks"] if c["name"] == "witnesses")
            if not check["ok"]:
                break
            await asyncio.sleep(0.1)
        async with http.get(service.ops.url + "/metrics") as resp:
            metrics = await resp.text()
    late = await fake.originate(caller_number="+12125550109", extension="2125550199")
    decided = await fake.wait_for_continue(late.id)

    assert body["failing"] == ["witnesses"]
    assert "http:http://127.0.0.1" in check["detail"]
    assert "dir:" not in check["detail"]
    assert "asterisk_recorder_checkpoint_size" in metrics
    assert f'asterisk_recorder_checkpoint_witness_delivered_size{{witness="dir:{witness}"}}' in (
        metrics
    )
    assert decided.variables["RECORDER_DECISION"] in {"record", "skip"}
