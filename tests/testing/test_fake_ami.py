"""The fake Asterisk's AMI: login, events and MixMonitorMute over a real socket, and a
recorded call whose muted span is exact digital zero at its place in the timeline."""

from __future__ import annotations

import array
import asyncio
import wave
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from asterisk_recorder.ami.client import AmiClient
from asterisk_recorder.ami.pauses import AmiMuteControl, pause_event
from asterisk_recorder.ami.protocol import AmiMessage, AmiParser, encode_action
from asterisk_recorder.ari.client import AriClient
from asterisk_recorder.ari.stream import EventStream
from asterisk_recorder.drivers.pause import PauseDriver
from asterisk_recorder.errors import AmiActionFailed, AmiProtocolError, AmiUnavailable, ChannelGone
from asterisk_recorder.flow.facts import LedgerFact
from asterisk_recorder.flow.pause import PauseRules, RecordingStarted
from asterisk_recorder.flow.ports import StoreReceipt
from asterisk_recorder.settings import Secret
from asterisk_recorder.testing import FakeAsterisk
from asterisk_recorder.testing.fake_asterisk.ami import BANNER, AmiChannel, FakeAmi
from asterisk_recorder.testing.fake_asterisk.mixmonitor import MUTE_LAG, RATE, FakeRecording

DECISION = "7e0c1d2a-1b2c-4d3e-8f90-0a1b2c3d4e5f"


@pytest.fixture
async def fake() -> AsyncIterator[FakeAsterisk]:
    """A fake Asterisk with AMI and recordings that follow the wall clock."""
    async with FakeAsterisk(time_scale=0.05, ami=True, mixmonitor_wall_clock=True) as server:
        yield server


@pytest.fixture
async def ari(fake: FakeAsterisk) -> AsyncIterator[AriClient]:
    """An ARI client pointed at the fake."""
    async with AriClient(fake.settings()) as client:
        yield client


@pytest.fixture
async def events(fake: FakeAsterisk) -> AsyncIterator[EventStream]:
    """The app's event socket, so calls can enter Stasis."""
    async with EventStream(fake.settings(), reconnect_initial=0.01) as stream:
        await stream.get()
        await fake.wait_for_app("consent-recorder")
        yield stream


async def wait_for(condition: Callable[[], object], seconds: float = 3.0) -> None:
    async with asyncio.timeout(seconds):
        while not condition():
            await asyncio.sleep(0.01)


async def recorded_call(fake: FakeAsterisk, ari: AriClient, path: Path) -> str:
    """A call handed back with ``record`` (dialplan's MixMonitor starts); its channel name."""
    call = await fake.originate()
    await ari.set_variable(call.id, "RECORDER_DECISION", "record")
    await ari.set_variable(call.id, "RECORDER_DECISION_ID", DECISION)
    await ari.set_variable(call.id, "RECORDER_FILE", str(path))
    await ari.continue_in_dialplan(call.id)
    await fake.wait_for_continue(call.id)
    return call.id


def zero_runs(path: Path) -> tuple[int, list[tuple[int, int]]]:
    """Frames of the WAV and its runs of exact zero longer than 20 ms, as [first, last)."""
    with wave.open(str(path), "rb") as audio:
        frames = audio.getnframes()
        samples = array.array("h", audio.readframes(frames))
    runs: list[tuple[int, int]] = []
    start: int | None = None
    for i, value in enumerate([*samples, 1]):
        if value == 0 and start is None:
            start = i
        elif value != 0 and start is not None:
            if i - start > RATE // 50:
                runs.append((start, i))
            start = None
    return frames, runs


async def raw_session(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, AmiParser]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    return reader, writer, AmiParser()


async def read_message(reader: asyncio.StreamReader, parser: AmiParser,
                       pending: list[AmiMessage]) -> AmiMessage:
    while not pending:
        data = await asyncio.wait_for(reader.read(65536), 3.0)
        assert data, "the fake closed the connection"
        pending.extend(parser.feed(data))
    return pending.pop(0)


async def test_login_sends_the_banner_accepts_and_says_fully_booted() -> None:
    """The banner of Asterisk 22, ``Authentication accepted`` and then ``FullyBooted``."""
    async with FakeAmi(username="admin", secret="s3cret") as ami:
        reader, writer, parser = await raw_session(ami.port)
        writer.write(encode_action("Login", {"Username": "admin", "Secret": "s3cret",
                                             "Events": "on"}, "l-1"))
        pending: list[AmiMessage] = []
        reply = await read_message(reader, parser, pending)
        booted = await read_message(reader, parser, pending)
        writer.close()
    assert parser.banner == BANNER
    assert (reply.name, reply.action_id, reply.get("Message")) == (
        "Success", "l-1", "Authentication accepted")
    assert (booted.name, booted.get("Status")) == ("FullyBooted", "Fully Booted")
    assert all(m.get("Secret") in (None, "****") for m in ami.actions)


async def test_wrong_secret_is_refused_and_the_client_stays_unavailable() -> None:
    """``Authentication failed``: our client never connects and an action is unavailable."""
    async with FakeAmi(secret="right-secret") as ami:
        client = AmiClient(ami.settings(secret=Secret("wrong")))
        await client.start()
        try:
            assert not client.connected
            with pytest.raises(AmiUnavailable):
                await client.action("Ping")
        finally:
            await client.close()
        reader, writer, parser = await raw_session(ami.port)
        writer.write(encode_action("Login", {"Username": "recorder", "Secret": "nope"}, "x"))
        reply = await read_message(reader, parser, [])
        assert await asyncio.wait_for(reader.read(), 3.0) == b""  # then it hangs up
        writer.close()
    assert (reply.name, reply.get("Message")) == ("Error", "Authentication failed")
    assert ami.logins == 0


async def test_actions_ping_events_unknown_and_permission() -> None:
    """Ping answers Pong; an unknown action is ``Invalid/unknown command``; before login
    everything but Login/Logoff is ``Permission denied``; Logoff says goodbye."""
    async with FakeAmi() as ami:
        reader, writer, parser = await raw_session(ami.port)
        pending: list[AmiMessage] = []
        writer.write(encode_action("Ping", {}, "p0"))
        denied = await read_message(reader, parser, pending)
        writer.write(encode_action("Login", {"Username": "recorder",
                                             "Secret": ami.secret, "Events": "off"}, "l"))
        await read_message(reader, parser, pending)
        writer.write(encode_action("Ping", {}, "p1"))
        pong = await read_message(reader, parser, pending)
        writer.write(encode_action("Frobnicate", {}, "u"))
        unknown = await read_message(reader, parser, pending)
        writer.write(encode_action("Events", {"EventMask": "on"}, "e"))
        events = await read_message(reader, parser, pending)
        writer.write(encode_action("Logoff", {}, "o"))
        bye = await read_message(reader, parser, pending)
        writer.close()
    assert denied.get("Message") == "Permission denied"
    assert (pong.name, pong.get("Ping"), pong.action_id) == ("Success", "Pong", "p1")
    assert (unknown.name, unknown.get("Message")) == ("Error", "Invalid/unknown command")
    assert events.get("Events") == "On"
    assert bye.name == "Goodbye"


async def test_mute_on_an_unknown_channel_is_no_such_channel() -> None:
    """``MixMonitorMute`` on a channel Asterisk does not have: ``Error No such channel``,
    which ``AmiMuteControl`` turns into ``ChannelGone``."""
    async with FakeAmi() as ami:
        client = AmiClient(ami.settings())
        await client.start()
        try:
            with pytest.raises(AmiActionFailed, match="No such channel"):
                await client.action("MixMonitorMute", {"Channel": "PJSIP/nobody-1",
                                                       "Direction": "both", "State": "1"})
            ami.add_channel(AmiChannel("PJSIP/idle-1", "1.1"))
            with pytest.raises(AmiActionFailed, match="Cannot set mute flag"):
                await AmiMuteControl(client).mute("PJSIP/idle-1", "", True)
            with pytest.raises(ChannelGone):
                await AmiMuteControl(client).mute("PJSIP/nobody-1", "0x1", True)
        finally:
            await client.close()


async def test_user_event_action_is_broadcast_and_line_breaks_are_refused() -> None:
    """A ``UserEvent`` action reaches every logged-in session; a test-raised value with a
    line break is refused before anything is sent."""
    async with FakeAmi() as ami:
        got: list[AmiMessage] = []
        client = AmiClient(ami.settings(), on_event=got.append)
        await client.start()
        try:
            reply = await client.action("UserEvent", {"UserEvent": "Hello", "Who": "me"})
            await wait_for(lambda: any(m.get("UserEvent") == "Hello" for m in got))
            with pytest.raises(AmiProtocolError):
                ami.raise_event("UserEvent", {"UserEvent": "x\r\nAction: Originate"})
        finally:
            await client.close()
    assert reply.get("Message") == "Event Sent"
    (hello,) = [m for m in got if m.get("UserEvent") == "Hello"]
    assert hello.get("Who") == "me"


def test_a_mute_is_exact_zero_shifted_by_the_measured_lag(tmp_path: Path) -> None:
    """Mute at 1 s, unmute at 2 s, close at 3 s: 3 s of audio, zeros exactly 1.22-2.22 s."""
    now = [0.0]
    recording = FakeRecording(tmp_path / "r.wav", None, clock=lambda: now[0])
    now[0] = 1.0
    recording.mute("both", True)
    now[0] = 2.0
    recording.mute("both", False)
    now[0] = 3.0
    recording.close()
    frames, runs = zero_runs(tmp_path / "r.wav")
    assert frames == 3 * RATE
    assert runs == [(round((1 + MUTE_LAG) * RATE), round((2 + MUTE_LAG) * RATE))]


async def test_a_recorded_call_mutes_through_our_client_and_keeps_its_length(
        fake: FakeAsterisk, ari: AriClient, events: EventStream, tmp_path: Path) -> None:
    """RecordingStarted carries the decision and MixMonitorID; our mute control silences
    about a second, which shows as exact zeros 0.22 s late, and the file follows wall time."""
    got: list[AmiMessage] = []
    client = AmiClient(fake.ami_settings(), on_event=got.append)
    await client.start()
    path = tmp_path / "rec" / "call.wav"
    try:
        channel_id = await recorded_call(fake, ari, path)
        await wait_for(lambda: any(m.get("UserEvent") == "RecordingStarted" for m in got))
        started = [m for m in got if m.get("UserEvent") == "RecordingStarted"]
        event = pause_event(started[0], 0.0)
        mute = AmiMuteControl(client)
        name = fake.channel(channel_id).name
        mmid = started[0].get("MixMonitorID") or ""
        await asyncio.sleep(0.3)
        await mute.mute(name, mmid, True)
        await asyncio.sleep(1.0)
        await mute.mute(name, mmid, False)
        await asyncio.sleep(0.5)
        recording = fake.recordings[channel_id]
        await fake.hangup(channel_id)
        await wait_for(lambda: any(m.name == "Hangup" for m in got))
    finally:
        await client.close()
    assert isinstance(event, RecordingStarted)
    assert (event.decision_id, event.channel, event.file) == (DECISION, name, str(path))
    names = [m.get("UserEvent") or m.name for m in got if m.name != "FullyBooted"]
    assert names[-2:] == ["RecordingClosed", "Hangup"]
    assert [m.get("State") for m in got if m.name == "MixMonitorMute"] == ["1", "0"]
    frames, runs = zero_runs(path)
    assert recording.closed_at is not None
    assert frames == int(RATE * (recording.closed_at - recording.started))
    assert frames >= 1.8 * RATE  # 0.3 + 1.0 + 0.5 s slept at least
    ((first, last),) = runs
    ((span_start, span_end),) = recording.silent_spans()
    assert (first, last) == (round(span_start * RATE), round(span_end * RATE))
    assert last - first >= RATE  # the mute lasted at least the second slept
    assert first >= (0.3 + MUTE_LAG) * RATE


async def test_test_raised_dialplan_and_queue_events_reach_the_pause_book(
        fake: FakeAsterisk, ari: AriClient, events: EventStream, tmp_path: Path) -> None:
    """``newexten`` and ``queue_caller_join`` carry the channel's Uniqueid and become the pause
    book's ContextEntered / QueueJoined events; the AMI port survives a restart."""
    got: list[AmiMessage] = []
    client = AmiClient(fake.ami_settings(), on_event=got.append)
    await client.start()
    try:
        channel_id = await recorded_call(fake, ari, tmp_path / "q.wav")
        name = fake.channel(channel_id).name
        assert fake.ami is not None
        fake.ami.newexten(name, "payment-ivr")
        fake.ami.queue_caller_join(name, "cards")
        await wait_for(lambda: any(m.name == "QueueCallerJoin" for m in got))
        port = fake.ami_port
        await fake.restart()
    finally:
        await client.close()
    kinds = [pause_event(m, 1.0) for m in got if m.name in ("Newexten", "QueueCallerJoin")]
    assert [type(k).__name__ for k in kinds] == ["ContextEntered", "QueueJoined"]
    assert [getattr(k, "uniqueid", "") for k in kinds] == [channel_id, channel_id]
    assert fake.ami_port == port


class Facts:
    """A FactSink that keeps the facts in memory."""

    def __init__(self) -> None:
        self.facts: list[LedgerFact] = []

    async def record_fact(self, fact: LedgerFact) -> StoreReceipt:
        self.facts.append(fact)
        return StoreReceipt(decision_id=fact.decision_id or "", fact_id=fact.fact_id)


async def test_the_pause_driver_pauses_and_resumes_a_call_of_the_fake(
        fake: FakeAsterisk, ari: AriClient, events: EventStream, tmp_path: Path) -> None:
    """The product's PauseDriver learns the recording from the fake's AMI, pauses and
    resumes it with MixMonitorMute, and writes both facts; the file holds the silence."""
    facts = Facts()
    holder: list[PauseDriver] = []

    def on_event(message: AmiMessage) -> None:
        event = pause_event(message, holder[0].now())
        if event is not None:
            holder[0].notify(event)

    client = AmiClient(fake.ami_settings(), on_event=on_event)
    driver = PauseDriver(PauseRules(), AmiMuteControl(client), facts)
    holder.append(driver)
    await driver.start()
    await client.start()
    path = tmp_path / "rec" / "paused.wav"
    try:
        channel_id = await recorded_call(fake, ari, path)
        await wait_for(lambda: driver.book.view(DECISION) is not None)
        paused = await driver.pause(source="api", actor="api:agent-7", reason="card",
                                    decision_id=DECISION)
        await asyncio.sleep(0.5)
        resumed = await driver.resume(source="api", actor="api:agent-7", reason="done",
                                      decision_id=DECISION)
        await fake.hangup(channel_id)
    finally:
        await client.close()
        await driver.close()
    assert (paused.status, resumed.status) == (200, 200)
    assert [f.kind for f in facts.facts] == ["recording.paused", "recording.resumed"]
    assert all(f.decision_id == DECISION for f in facts.facts)
    _, runs = zero_runs(path)
    assert len(runs) == 1
    mutes = [m for m in fake.ami.actions if m.get("Action") == "MixMonitorMute"] if fake.ami else []
    assert [(m.get("Direction"), m.get("State")) for m in mutes] == [("both", "1"), ("both", "0")]
