"""Helpers of the AGI tests: a consent FastAGI rig and real Asterisk environment blocks."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

from asterisk_recorder.agi.server import FastAgiServer
from asterisk_recorder.agi.session import SessionResult, consent_handler
from asterisk_recorder.flow import ConsentFlow
from asterisk_recorder.ledger.sink import MemorySink
from asterisk_recorder.policy import PolicyEngine
from asterisk_recorder.settings import Settings
from asterisk_recorder.testing.agi_peer import (
    ScriptedAsterisk,
    environment_lines,
    load_transcript,
)

TRACES = Path(__file__).resolve().parents[1] / "data" / "asterisk-traces"
"""The recorded Asterisk traces (test data in the repository)."""


@dataclasses.dataclass
class AgiRig:
    """A running FastAGI consent server with a memory sink, and a way to call it."""

    server: FastAgiServer
    sink: MemorySink
    results: list[SessionResult]

    async def call(self, peer: ScriptedAsterisk) -> SessionResult:
        """Play ``peer`` against the server; return the session's result."""
        before = len(self.results)
        await peer.connect("127.0.0.1", self.server.port)
        # A peer that closes first (AGIEXITONHANGUP) may return before the session ends.
        for _ in range(1000):
            if len(self.results) > before:
                break
            await asyncio.sleep(0.005)
        assert before + 1 == len(self.results), "the session produced no result"
        return self.results[-1]


def real_environment(
    overrides: dict[str, str] | None = None, args: tuple[str, ...] = ()
) -> tuple[str, ...]:
    """The env block Asterisk 22.10.1 sent in agi-optout-ari-originate, with changes."""
    base = load_transcript(TRACES / "agi-optout-ari-originate.agi.txt").environment
    return environment_lines(base, overrides, args)


def consent_env(script: str = "consent", **overrides: str) -> tuple[str, ...]:
    """A real env block for ``agi://127.0.0.1:4573/<script>`` with agi_* overrides."""
    values = {
        "network_script": script,
        "request": f"agi://127.0.0.1:4573/{script}",
        "callerid": "+14155551234",
        "extension": "+12125550000",
    }
    values.update(overrides)
    return real_environment(values)


@dataclasses.dataclass
class AgiRigStarter:
    """Awaitable helper returned by ``rig_factory``."""

    settings: Settings
    engine: PolicyEngine
    servers: list[FastAgiServer]

    async def start(self) -> AgiRig:
        """Start the server and return the rig."""
        sink = MemorySink()
        results: list[SessionResult] = []
        server = FastAgiServer(
            self.settings.agi,
            consent_handler(
                lambda: ConsentFlow(self.settings.flow, self.engine),
                sink,
                instance_id=self.settings.instance_id,
                on_result=results.append,
                settle_timeout=0.3,
            ),
        )
        await server.start()
        self.servers.append(server)
        return AgiRig(server, sink, results)
