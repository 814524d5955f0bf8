"""FastAgiServer connection hygiene, and the AGI channel against real Asterisk transcripts."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from agi_helpers import AgiRig, consent_env
from structlog.testing import capture_logs

from asterisk_recorder.agi.channel import AgiChannel
from asterisk_recorder.agi.protocol import AgiEnvironment, AgiReply
from asterisk_recorder.agi.server import FastAgiServer
from asterisk_recorder.flow.decision import Outcome
from asterisk_recorder.settings import AgiSettings
from asterisk_recorder.testing.agi_peer import (
    PeerMismatch,
    Press,
    ScriptedAsterisk,
    TranscriptPeer,
    load_transcript,
)

OPT_OUT = consent_env("consent?policy=opt_out")


async def eventually(condition: Callable[[], bool], what: str) -> None:
    """Yield to the loop until ``condition`` holds (bounded, so a bug fails instead of hanging)."""
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"never happened: {what}")


async def hold_session(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open a consent session and stop answering after its first command."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(("\n".join(OPT_OUT) + "\n\n").encode())
    await writer.drain()
    first = await reader.readline()
    assert first.startswith(b"GET FULL VARIABLE")
    return reader, writer


async def close_quietly(writer: asyncio.StreamWriter) -> None:
    """Close a client connection."""
    writer.close()
    with contextlib.suppress(ConnectionError, OSError):
        await writer.wait_closed()


def problems(logs: list[dict[str, object]]) -> list[dict[str, object]]:
    """Log entries at warning level or above."""
    return [e for e in logs if e["log_level"] in ("warning", "error", "critical")]


async def test_empty_connections_cost_nothing_and_a_session_still_completes(rig: AgiRig) -> None:
    """200 connect-and-close peers log nothing alarming; the next real call is served."""
    port = rig.server.port

    async def knock() -> None:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        await close_quietly(writer)

    with capture_logs() as logs:
        for _ in range(4):
            await asyncio.gather(*(knock() for _ in range(50)))
        await eventually(lambda: rig.server.stats.empty == 200, "200 empty connections seen")
        result = await rig.call(ScriptedAsterisk(OPT_OUT, prompts=[Press("1")]))

    assert result.decision is not None
    assert Outcome.NOT_RECORDED_OPTED_OUT == result.decision.outcome
    assert 200 == rig.server.stats.empty
    assert 0 == rig.server.stats.failed
    assert [] == problems(logs)
    assert 0 == rig.server.active_sessions


async def test_truncated_environment_is_logged_and_closed(rig: AgiRig) -> None:
    """A peer that sends half an env block and closes gets one warning, nothing else."""
    _, writer = await asyncio.open_connection("127.0.0.1", rig.server.port)
    with capture_logs() as logs:
        writer.write(b"agi_network: yes\nagi_request: agi://x/consent\n")
        await writer.drain()
        await close_quietly(writer)
        await eventually(lambda: rig.server.stats.failed == 1, "the session failed")

    assert ["agi.session.bad_environment"] == [e["event"] for e in problems(logs)]


async def test_silent_peer_is_dropped_after_the_read_timeout(
    rig_factory: Callable[..., object], settings: object
) -> None:
    """A peer that connects and says nothing is closed after ``read_timeout``, quietly."""
    from agi_helpers import AgiRigStarter

    from asterisk_recorder.settings import Settings

    assert isinstance(settings, Settings)
    fast = Settings(instance_id="t", agi=AgiSettings(host="127.0.0.1", port=0, read_timeout=0.1))
    starter = rig_factory(fast)
    assert isinstance(starter, AgiRigStarter)
    rig = await starter.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", rig.server.port)
    with capture_logs() as logs:
        data = await asyncio.wait_for(reader.read(), timeout=5)
    await close_quietly(writer)

    assert b"" == data
    assert 1 == rig.server.stats.empty
    assert [] == problems(logs)


async def test_connections_beyond_max_sessions_are_closed_with_a_log_line(
    rig_factory: Callable[..., object],
) -> None:
    """With max_sessions=2, a third concurrent call is closed at once; later calls work."""
    from agi_helpers import AgiRigStarter

    from asterisk_recorder.settings import Settings

    capped = Settings(instance_id="t", agi=AgiSettings(host="127.0.0.1", port=0, max_sessions=2))
    starter = rig_factory(capped)
    assert isinstance(starter, AgiRigStarter)
    rig = await starter.start()
    port = rig.server.port
    held = [await hold_session(port), await hold_session(port)]

    with capture_logs() as logs:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(("\n".join(OPT_OUT) + "\n\n").encode())
        try:
            extra = await asyncio.wait_for(reader.read(), timeout=5)
        except ConnectionResetError:  # closed with our env unread: the kernel resets
            extra = b""
        await close_quietly(writer)

    assert b"" == extra
    assert 1 == rig.server.stats.rejected
    assert ["agi.session.rejected"] == [e["event"] for e in problems(logs)]
    for _, held_writer in held:
        await close_quietly(held_writer)
    await eventually(lambda: rig.server.active_sessions == 0, "held sessions ended")
    result = await rig.call(ScriptedAsterisk(OPT_OUT, prompts=[Press("1")]))
    assert result.decision is not None
    assert Outcome.NOT_RECORDED_OPTED_OUT == result.decision.outcome


async def test_garbage_sessions_never_affect_concurrent_good_ones(rig: AgiRig) -> None:
    """Ten garbage peers and ten good calls at once: every good call decides correctly."""
    port = rig.server.port

    async def garbage(kind: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        if kind % 2:
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        else:
            writer.write(("\n".join(OPT_OUT) + "\n\n").encode())
            await reader.readline()
            writer.write(b"\x00\xff not agi at all\n")
        await writer.drain()
        await asyncio.wait_for(reader.read(), timeout=5)
        await close_quietly(writer)

    good = [ScriptedAsterisk(OPT_OUT, prompts=[Press("1")]) for _ in range(10)]
    await asyncio.gather(
        *(garbage(i) for i in range(10)),
        *(peer.connect("127.0.0.1", port) for peer in good),
    )

    outcomes = sorted(
        d.outcome.value for d in rig.sink.decisions if d.outcome is not Outcome.FAILED
    )
    assert ["not_recorded_opted_out"] * 10 == outcomes
    assert all(p.variables["RECORDER_DECISION"] == "skip" for p in good)
    assert 0 == rig.server.active_sessions


async def test_a_crashing_handler_is_logged_and_the_server_keeps_serving() -> None:
    """An exception in one session is logged as agi.session.crashed; the next call runs."""
    calls: list[str] = []

    async def handler(channel: AgiChannel, env: AgiEnvironment) -> None:
        calls.append(env.uniqueid)
        if len(calls) == 1:
            raise RuntimeError("boom")
        await channel.answer()

    server = FastAgiServer(AgiSettings(host="127.0.0.1", port=0), handler)
    await server.start()
    try:
        with capture_logs() as logs:
            await ScriptedAsterisk(OPT_OUT).connect("127.0.0.1", server.port)
            second = ScriptedAsterisk(OPT_OUT)
            await second.connect("127.0.0.1", server.port)
    finally:
        await server.close()

    assert [["ANSWER"]] == second.commands
    assert ["agi.session.crashed"] == [e["event"] for e in problems(logs)]
    assert (1, 1) == (server.stats.failed, server.stats.completed)


async def test_close_cancels_sessions_that_outlive_the_grace_period(rig: AgiRig) -> None:
    """``close(grace)`` stops listening and cancels a session stuck waiting for Asterisk."""
    port = rig.server.port
    _, writer = await hold_session(port)

    await rig.server.close(grace=0.05)

    assert 0 == rig.server.active_sessions
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", port)
    await close_quietly(writer)


# -- the channel against what a real Asterisk 22.10.1 sent ---------------------------------------

ProbeHandler = Callable[[AgiChannel, AgiEnvironment], Awaitable[None]]


async def replay(
    transcript_path: Path, handler: ProbeHandler
) -> tuple[TranscriptPeer, FastAgiServer]:
    """Run ``handler`` in a FastAGI server against the recorded Asterisk side."""
    peer = TranscriptPeer(load_transcript(transcript_path))
    server = FastAgiServer(AgiSettings(host="127.0.0.1", port=0), handler)
    await server.start()
    try:
        await peer.connect("127.0.0.1", server.port)
    finally:
        await server.close()
    return peer, server


async def test_real_granted_conversation_replays_and_parses(traces_dir: Path) -> None:
    """The probe's commands against Asterisk's recorded replies parse as Asterisk meant."""
    replies: list[object] = []

    async def probe(channel: AgiChannel, env: AgiEnvironment) -> None:
        await channel.answer()
        replies.append(await channel.stream_file("hello-world", "12"))
        replies.append(
            await channel.command(
                "EXEC", "MixMonitor", "/var/spool/asterisk/monitor/agi-1795449972.115.wav,b"
            )
        )
        await channel.set_variable("CONSENT", "granted")
        replies.append(await channel.get_variable("CONSENT"))

    peer, server = await replay(
        traces_dir / "agi-granted-ami-originate.agi.txt", probe
    )

    assert peer.mismatch is None
    assert [AgiReply(0, endpos=11234), AgiReply(0), "granted"] == replies
    assert 1 == server.stats.completed


async def test_real_opt_out_conversation_replays_with_key_1(traces_dir: Path) -> None:
    """``200 result=49 endpos=4160`` from Asterisk is key 1 during STREAM FILE."""
    replies: list[object] = []

    async def probe(channel: AgiChannel, env: AgiEnvironment) -> None:
        await channel.answer()
        replies.append(await channel.stream_file("hello-world", "12"))
        await channel.set_variable("CONSENT", "optout")
        replies.append(await channel.get_variable("CONSENT"))

    peer, _ = await replay(
        traces_dir / "agi-optout-ari-originate.agi.txt", probe
    )

    assert peer.mismatch is None
    assert [AgiReply(49, endpos=4160), "optout"] == replies


async def test_transcript_peer_reports_a_command_that_differs(traces_dir: Path) -> None:
    """A program that sends another command than the recording fails the replay."""

    async def wrong(channel: AgiChannel, env: AgiEnvironment) -> None:
        await channel.command("HANGUP")

    with pytest.raises(PeerMismatch, match="expected 'ANSWER', got 'HANGUP'"):
        await replay(traces_dir / "agi-optout-ari-originate.agi.txt", wrong)


async def test_reaction_is_the_time_from_a_reply_to_the_next_command() -> None:
    """``on_reaction`` gets one sample per command, measured from the previous reply."""
    reactions: list[float] = []

    async def handler(channel: AgiChannel, env: AgiEnvironment) -> None:
        await channel.answer()
        await asyncio.sleep(0.05)  # the driver thinks between the reply and the next command
        await channel.answer()

    server = FastAgiServer(
        AgiSettings(host="127.0.0.1", port=0), handler, on_reaction=reactions.append
    )
    await server.start()
    try:
        await ScriptedAsterisk(OPT_OUT).connect("127.0.0.1", server.port)
    finally:
        await server.close()

    assert 2 == len(reactions)
    assert reactions[1] >= 0.05
