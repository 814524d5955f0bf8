"""FastAGI shutdown: stop accepting at once, let sessions finish, fail the rest closed."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable

import pytest
from agi_helpers import AgiRig, AgiRigStarter, consent_env
from structlog.testing import capture_logs

from asterisk_recorder.agi.channel import AgiChannel
from asterisk_recorder.agi.protocol import AgiEnvironment
from asterisk_recorder.agi.server import FastAgiServer
from asterisk_recorder.agi.session import SessionResult, consent_handler
from asterisk_recorder.errors import ConfigError
from asterisk_recorder.flow import ConsentFlow
from asterisk_recorder.flow.decision import ConsentDecision, Outcome
from asterisk_recorder.ledger.sink import MemorySink, StoreReceipt
from asterisk_recorder.policy import PolicyEngine
from asterisk_recorder.settings import AgiSettings, Settings
from asterisk_recorder.testing.agi_peer import Hold, Press, ScriptedAsterisk

OPT_OUT = consent_env("consent?policy=opt_out")


async def wait_for(condition: Callable[[], bool], what: str) -> None:
    """Yield until ``condition`` holds (bounded, so a bug fails instead of hanging)."""
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"never happened: {what}")


def playing(peer: ScriptedAsterisk) -> bool:
    """True once the session sent its STREAM FILE."""
    return any(c[:2] == ["STREAM", "FILE"] for c in peer.commands)


def decided_lines(logs: list[dict[str, object]]) -> list[dict[str, object]]:
    """The ``consent.decided`` entries."""
    return [e for e in logs if e["event"] == "consent.decided"]


async def test_session_finishing_within_the_grace_is_not_aborted(rig: AgiRig) -> None:
    """A disclosure that ends inside ``close(grace)`` completes: the caller's key counts."""
    peer = ScriptedAsterisk(OPT_OUT, prompts=[Hold(0.3)], waits=[Press("1")])
    call = asyncio.create_task(peer.connect("127.0.0.1", rig.server.port))
    await wait_for(lambda: playing(peer), "the disclosure started")

    await rig.server.close(grace=5.0)
    await call

    assert 1 == len(rig.results)
    result = rig.results[0]
    assert result.decision is not None
    assert Outcome.NOT_RECORDED_OPTED_OUT == result.decision.outcome
    assert not result.aborted
    assert "skip" == peer.variables["RECORDER_DECISION"]
    assert 0 == rig.server.stats.aborted


async def test_session_outliving_the_grace_fails_closed_stores_and_reports_once(
    rig: AgiRig,
) -> None:
    """After the grace the flow gets the Abort: ``failed`` stored, skip set, one decided line."""
    peer = ScriptedAsterisk(OPT_OUT, prompts=[Hold(30.0)])  # a disclosure far longer than that
    call = asyncio.create_task(peer.connect("127.0.0.1", rig.server.port))
    await wait_for(lambda: playing(peer), "the disclosure started")

    with capture_logs() as logs:
        await rig.server.close(grace=0.05)
    await call

    assert 1 == len(rig.results)
    result = rig.results[0]
    assert result.aborted
    assert result.fail_closed
    assert result.decision is not None
    assert Outcome.FAILED == result.decision.outcome
    assert "controller shutting down" in result.decision.reason
    assert [result.decision] == rig.sink.decisions
    assert "skip" == peer.variables["RECORDER_DECISION"]
    assert "failed" == peer.variables["RECORDER_OUTCOME"]
    assert result.decision.decision_id == peer.variables["RECORDER_DECISION_ID"]
    assert result.handed_back
    assert 1 == len(decided_lines(logs))
    assert "failed" == decided_lines(logs)[0]["outcome"]
    assert decided_lines(logs)[0]["fail_closed"] is True
    assert decided_lines(logs)[0]["aborted"] is True
    assert 1 == rig.server.stats.aborted
    assert 1 == len([c for c in peer.commands if c[:2] == ["STREAM", "FILE"]])
    assert [] == [c for c in peer.commands if c[:3] == ["WAIT", "FOR", "DIGIT"]]
    # The prompt was stopped by a command Asterisk answers with the channel's own uniqueid.
    assert ["GET", "FULL", "VARIABLE", "${UNIQUEID}"] == peer.commands[3]


async def test_session_aborted_while_waiting_for_a_key_still_sets_skip(rig: AgiRig) -> None:
    """Aborted during WAIT FOR DIGIT (Asterisk answers it result=1): skip is set all the same."""
    peer = ScriptedAsterisk(OPT_OUT, waits=[Hold(30.0)])
    call = asyncio.create_task(peer.connect("127.0.0.1", rig.server.port))
    await wait_for(
        lambda: any(c[:3] == ["WAIT", "FOR", "DIGIT"] for c in peer.commands), "the key wait"
    )

    await rig.server.close(grace=0.05)
    await call

    result = rig.results[0]
    assert result.decision is not None
    assert Outcome.FAILED == result.decision.outcome
    assert "skip" == peer.variables["RECORDER_DECISION"]
    assert result.decision.decision_id == peer.variables["RECORDER_DECISION_ID"]
    assert result.error is None


async def test_aborted_session_whose_channel_no_longer_answers_still_stores_failed(
    rig_factory: Callable[[Settings], AgiRigStarter], settings: Settings
) -> None:
    """Asterisk never answers the prompt: ``failed`` is stored, no variable can be set."""
    rig = await rig_factory(settings).start()
    peer = ScriptedAsterisk(OPT_OUT, stall_at=2)  # GET FULL VARIABLE, ANSWER, STREAM FILE
    call = asyncio.create_task(peer.connect("127.0.0.1", rig.server.port))
    await wait_for(lambda: playing(peer), "the disclosure started")

    await rig.server.close(grace=0.05)
    call.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await call

    assert 1 == len(rig.results)
    result = rig.results[0]
    assert result.decision is not None
    assert Outcome.FAILED == result.decision.outcome
    assert [result.decision] == rig.sink.decisions
    assert result.error is not None
    assert not result.handed_back
    assert "RECORDER_DECISION" not in peer.variables
    assert 0 == rig.server.active_sessions


class GatedSink(MemorySink):
    """A memory ledger whose writes wait for ``gate`` (a slow PostgreSQL)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.waiting = asyncio.Event()

    async def store(self, decision: ConsentDecision) -> StoreReceipt:
        """Store once the gate opens."""
        self.waiting.set()
        await self.gate.wait()
        return await super().store(decision)


async def test_cancellation_during_the_store_keeps_the_decision_already_made(
    settings: Settings, engine: PolicyEngine
) -> None:
    """The caller opted out and the ledger is slow: shutdown keeps ``opted_out``, not ``failed``."""
    sink = GatedSink()
    results: list[SessionResult] = []
    server = FastAgiServer(
        settings.agi,
        consent_handler(lambda: ConsentFlow(settings.flow, engine), sink, on_result=results.append),
    )
    await server.start()
    peer = ScriptedAsterisk(OPT_OUT, prompts=[Press("1")])
    call = asyncio.create_task(peer.connect("127.0.0.1", server.port))
    await asyncio.wait_for(sink.waiting.wait(), 5)

    closing = asyncio.create_task(server.close(grace=0.05))
    await asyncio.sleep(0.2)  # past the grace: the session is cancelled while storing
    sink.gate.set()
    await closing
    await call

    assert 1 == len(results)
    assert results[0].decision is not None
    assert Outcome.NOT_RECORDED_OPTED_OUT == results[0].decision.outcome
    assert [results[0].decision] == sink.decisions
    assert "not_recorded_opted_out" == peer.variables["RECORDER_OUTCOME"]
    assert results[0].aborted


async def test_connection_arriving_while_draining_gets_no_session(rig: AgiRig) -> None:
    """While a session drains, a new call is refused or closed before any command."""
    peer = ScriptedAsterisk(OPT_OUT, prompts=[Hold(0.5)])
    call = asyncio.create_task(peer.connect("127.0.0.1", rig.server.port))
    await wait_for(lambda: playing(peer), "the disclosure started")
    port = rig.server.port

    closing = asyncio.create_task(rig.server.close(grace=5.0))
    await asyncio.sleep(0.05)
    late = ScriptedAsterisk(OPT_OUT)
    with contextlib.suppress(ConnectionRefusedError, ConnectionResetError):
        await late.connect("127.0.0.1", port)
    await closing
    await call

    assert [] == late.commands
    assert 1 == len(rig.results)
    assert 1 == rig.server.stats.accepted


async def test_shutdown_abort_logs_no_asyncio_error(
    rig: AgiRig, caplog: pytest.LogCaptureFixture
) -> None:
    """Cancelling a session on close leaves no "Exception in callback" from asyncio."""
    peer = ScriptedAsterisk(OPT_OUT, prompts=[Hold(0.2)])
    call = asyncio.create_task(peer.connect("127.0.0.1", rig.server.port))
    await wait_for(lambda: playing(peer), "the disclosure started")

    await rig.server.close(grace=0.05)
    await call
    await asyncio.sleep(0.01)

    assert [] == [r.getMessage() for r in caplog.records if r.name == "asyncio"]


async def nothing(channel: AgiChannel, env: AgiEnvironment) -> None:
    """A session handler that does nothing."""


async def test_port_in_use_is_a_config_error_naming_the_address() -> None:
    """``start()`` on a bound port raises ConfigError (exit 2), not a raw OSError."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = FastAgiServer(AgiSettings(host="127.0.0.1", port=port), nothing)
        with pytest.raises(ConfigError, match=f"agi: cannot listen on 127.0.0.1:{port}: ") as err:
            await server.start()

    assert isinstance(err.value.__cause__, OSError)
