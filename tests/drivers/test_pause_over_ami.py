"""Pausing a recording end to end over real sockets: an AMI server, the client, the pause
driver, the HTTP API, and the facts it writes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest

from asterisk_recorder.ami.client import AmiClient
from asterisk_recorder.ami.pauses import AmiMuteControl, pause_event
from asterisk_recorder.ami.protocol import AmiMessage, AmiParser, encode_action
from asterisk_recorder.drivers.pause import PauseDriver
from asterisk_recorder.errors import AmiProtocolError, AmiUnavailable
from asterisk_recorder.flow.facts import LedgerFact
from asterisk_recorder.flow.pause import PauseRules, RecordingStarted
from asterisk_recorder.flow.ports import StoreReceipt
from asterisk_recorder.ops.control import ControlApi
from asterisk_recorder.ops.http import OpsServer, ReadinessReport
from asterisk_recorder.ops.metrics import RecorderMetrics
from asterisk_recorder.settings import AmiSettings, HttpSettings, Secret

DECISION = "7e0c1d2a-1b2c-4d3e-8f90-0a1b2c3d4e5f"
TOKEN = "0123456789abcdef0123456789abcdef"


@dataclass
class Asterisk:
    """A minimal AMI server: login, MixMonitorMute on known channels, scripted events."""

    secret: str = "s3cret-manager"
    channels: set[str] = field(default_factory=lambda: {"PJSIP/alice-00000001"})
    actions: list[dict[str, str]] = field(default_factory=list)
    writers: list[asyncio.StreamWriter] = field(default_factory=list)
    conns: list[asyncio.StreamWriter] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.conns.append(writer)
        writer.write(b"Asterisk Call Manager/11.0.0\r\n")
        parser = AmiParser()
        parser.banner = "client"
        try:
            while data := await reader.read(4096):
                for message in parser.feed(data):
                    fields = dict(message.fields)
                    self.actions.append(fields)
                    writer.write(self.answer(fields, writer))
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    def answer(self, fields: dict[str, str], writer: asyncio.StreamWriter) -> bytes:
        action, ident = fields.get("Action"), fields.get("ActionID", "")
        if action == "Login":
            if fields.get("Secret") != self.secret:
                return _msg(("Response", "Error"), ("ActionID", ident),
                            ("Message", "Authentication failed"))
            self.writers.append(writer)
            return _msg(("Response", "Success"), ("ActionID", ident),
                        ("Message", "Authentication accepted"))
        if action == "MixMonitorMute":
            if fields.get("Channel") not in self.channels:
                return _msg(("Response", "Error"), ("ActionID", ident),
                            ("Message", "No such channel"))
            return _msg(("Response", "Success"), ("ActionID", ident))
        return _msg(("Response", "Error"), ("ActionID", ident),
                    ("Message", "Invalid/unknown command"))

    def event(self, *fields: tuple[str, str]) -> None:
        for writer in self.writers:
            writer.write(_msg(*fields))


def _msg(*fields: tuple[str, str]) -> bytes:
    return "".join(f"{k}: {v}\r\n" for k, v in fields).encode() + b"\r\n"


class Facts:
    def __init__(self) -> None:
        self.facts: list[LedgerFact] = []

    async def record_fact(self, fact: LedgerFact) -> StoreReceipt:
        self.facts.append(fact)
        return StoreReceipt(decision_id=fact.decision_id or "", fact_id=fact.fact_id)


@pytest.fixture
async def asterisk() -> AsyncIterator[tuple[Asterisk, int]]:
    fake = Asterisk()
    server = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield fake, port
    server.close()
    for writer in fake.conns:
        writer.close()
    await server.wait_closed()


def settings(port: int, secret: str = Asterisk.secret) -> AmiSettings:
    return AmiSettings(enabled=True, port=port, username="recorder", secret=Secret(secret),
                       connect_timeout=2.0, action_timeout=2.0, reconnect_max=1.0)


async def wait_for(condition: object, seconds: float = 3.0) -> None:
    async with asyncio.timeout(seconds):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.01)


async def test_api_pause_mutes_through_ami_and_writes_the_fact(
        asterisk: tuple[Asterisk, int]) -> None:
    """POST /calls/{id}/pause: MixMonitorMute both State=1 reaches Asterisk, then the fact."""
    fake, port = asterisk
    facts = Facts()
    holder: list[PauseDriver] = []
    client = AmiClient(settings(port), on_event=lambda m: holder[0].notify(
        pause_event(m, holder[0].now())) if pause_event(m, 0.0) else None)
    driver = PauseDriver(PauseRules(), AmiMuteControl(client), facts)
    holder.append(driver)
    await driver.start()
    await client.start()
    assert client.connected
    fake.event(("Event", "UserEvent"), ("Channel", "PJSIP/alice-00000001"),
               ("Uniqueid", "1700.1"), ("Linkedid", "1700.1"), ("UserEvent", "RecordingStarted"),
               ("DecisionId", DECISION), ("File", "/rec/a.wav"), ("MixMonitorID", "0x7f01"))
    await wait_for(lambda: driver.book.view(DECISION) is not None)
    api = ControlApi(_Adapter(driver), TOKEN)
    ops = OpsServer(HttpSettings(port=0), RecorderMetrics(),
                    lambda: ReadinessReport(()), mounts=[api.mount])
    await ops.start()
    try:
        async with aiohttp.ClientSession() as http:
            url = f"{ops.url}/calls/{DECISION}/pause"
            async with http.post(url, json={"reason": "card"}) as r:
                assert r.status == 401
            async with http.post(url, json={"reason": "card", "actor": "agent-7"},
                                 headers={"Authorization": f"Bearer {TOKEN}"}) as r:
                body = await r.json()
                assert r.status == 200
                assert body["recording"]["state"] == "paused"
            async with http.post(url.replace("/pause", "/resume"), data=b"{",
                                 headers={"Authorization": f"Bearer {TOKEN}"}) as r:
                assert r.status == 400
    finally:
        await ops.close()
        await client.close()
        await driver.close()
    mute = [a for a in fake.actions if a.get("Action") == "MixMonitorMute"]
    assert [(a["Channel"], a["Direction"], a["State"], a["MixMonitorID"]) for a in mute] == [
        ("PJSIP/alice-00000001", "both", "1", "0x7f01")]
    (fact,) = facts.facts
    assert fact.kind == "recording.paused"
    assert (fact.actor, fact.payload["reason"], fact.payload["source"]) == (
        "api:agent-7", "card", "api")


async def test_feature_code_event_pauses_and_unknown_channel_is_gone(
        asterisk: tuple[Asterisk, int]) -> None:
    """A RecorderPause user event from the agent's leg pauses by linkedid; a channel Asterisk
    no longer has ends the recording instead of retrying."""
    fake, port = asterisk
    facts = Facts()
    client = AmiClient(settings(port))
    driver = PauseDriver(PauseRules(), AmiMuteControl(client), facts)
    await client.start()
    try:
        await driver.feed(RecordingStarted(1.0, DECISION, "PJSIP/alice-00000001", "1700.1",
                                           "1700.1", "0x7f01"))
        event = pause_event(AmiMessage((("Event", "UserEvent"), ("UserEvent", "RecorderPause"),
                                        ("Channel", "PJSIP/bob-00000002"),
                                        ("Uniqueid", "1700.2"), ("Linkedid", "1700.1"))), 2.0)
        assert event is not None
        await driver.feed(event)
        assert facts.facts[0].actor == "agent:PJSIP/bob-00000002"
        fake.channels.clear()
        outcome = await driver.resume(source="api", actor="api", reason="done",
                                      decision_id=DECISION)
    finally:
        await client.close()
    assert outcome.status == 200
    assert [f.kind for f in facts.facts] == ["recording.paused", "recording.resumed"]
    assert facts.facts[1].payload["source"] == "close"


async def test_wrong_secret_never_connects_and_actions_are_unavailable(
        asterisk: tuple[Asterisk, int]) -> None:
    """A refused login: not connected, an action raises AmiUnavailable, no secret in it."""
    _fake, port = asterisk
    client = AmiClient(settings(port, secret="wrong-secret-value"))
    await client.start()
    try:
        assert not client.connected
        with pytest.raises(AmiUnavailable) as info:
            await client.action("Ping")
        assert "wrong-secret-value" not in str(info.value)
    finally:
        await client.close()


def test_encoder_refuses_a_line_break_in_a_value() -> None:
    """Caller text with CR/LF can never become an extra AMI header."""
    with pytest.raises(AmiProtocolError, match="line break"):
        encode_action("MixMonitorMute", {"Channel": "PJSIP/x\r\nAction: Originate"}, "1")


def test_hostile_event_values_are_dropped() -> None:
    """A decision id that is no UUID, or a channel with control characters, starts nothing."""
    bad = AmiMessage((("Event", "UserEvent"), ("UserEvent", "RecordingStarted"),
                      ("DecisionId", "../../etc/passwd"), ("Channel", "PJSIP/a"),
                      ("MixMonitorID", "0x1"), ("Uniqueid", "1.1")))
    assert pause_event(bad, 1.0) is None


class _Adapter:
    def __init__(self, driver: PauseDriver) -> None:
        self.driver = driver

    async def pause(self, decision_id: str, actor: str,
                    reason: str) -> tuple[int, str, dict[str, object] | None]:
        out = await self.driver.pause(source="api", actor=actor, reason=reason,
                                      decision_id=decision_id)
        view = out.view
        return out.status, out.message, None if view is None else {"state": view.state.value}

    async def resume(self, decision_id: str, actor: str,
                     reason: str) -> tuple[int, str, dict[str, object] | None]:
        out = await self.driver.resume(source="api", actor=actor, reason=reason,
                                       decision_id=decision_id)
        return out.status, out.message, None

    def state(self, decision_id: str) -> dict[str, object] | None:
        return None
