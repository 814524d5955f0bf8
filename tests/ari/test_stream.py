"""EventStream against the fake Asterisk: bad frames, reconnection, heartbeat, app ownership."""

from __future__ import annotations

import asyncio
import gc
import json
import warnings
from collections.abc import AsyncIterator
from typing import Any

import pytest
from structlog.testing import capture_logs

from asterisk_recorder.ari import (
    ApplicationReplaced,
    AriClient,
    ChannelVarset,
    Connected,
    Disconnected,
    EventStream,
    StasisStart,
    StreamEvent,
    UnknownEvent,
)
from asterisk_recorder.ari.stream import backoff_delays
from asterisk_recorder.errors import AriError
from asterisk_recorder.settings import AriServerSettings, Secret
from asterisk_recorder.testing import FakeAsterisk

CHANNEL: dict[str, Any] = {
    "id": "1.1",
    "name": "PJSIP/a-1",
    "state": "Up",
    "protocol_id": "",
    "caller": {"name": "A", "number": "1"},
    "connected": {"name": "", "number": ""},
    "accountcode": "",
    "dialplan": {"context": "c", "exten": "s", "priority": 1, "app_name": "", "app_data": ""},
    "creationtime": "2026-11-23T16:05:26.905+0000",
    "language": "en",
}
GOOD = {
    "type": "ChannelVarset",
    "timestamp": "2026-11-23T16:05:26.905+0000",
    "variable": "MARK",
    "value": "after-the-bad-frame",
    "channel": CHANNEL,
}


def _event(**fields: Any) -> str:
    return json.dumps(
        {"timestamp": "2026-11-23T16:05:26.905+0000", "application": "consent-recorder", **fields}
    )


@pytest.fixture
async def logged_events(fake: FakeAsterisk) -> AsyncIterator[tuple[EventStream, list[Any]]]:
    """A connected stream whose log lines are captured (capture starts before it connects)."""
    with capture_logs() as logs:
        async with EventStream(fake.settings(), reconnect_initial=0.01) as stream:
            first = await asyncio.wait_for(stream.get(), 2)
            assert isinstance(first, Connected)
            await fake.wait_for_app("consent-recorder")
            yield stream, logs


async def _next(stream: EventStream, within: float = 2.0) -> StreamEvent:
    return await asyncio.wait_for(stream.get(), within)


BAD_FRAMES = [
    ("not-json", "{this is not json", "not JSON"),
    ("json-array", "[1, 2, 3]", "expected a JSON object, got list"),
    ("json-null", "null", "expected a JSON object, got NoneType"),
    ("json-string", '"StasisStart"', "expected a JSON object, got str"),
    ("no-type", '{"application": "consent-recorder"}', "frame.type: missing"),
    ("type-not-string", '{"type": 7}', "frame.type: missing or not a string"),
    ("missing-channel", _event(type="StasisStart", args=[]), "StasisStart.channel: missing"),
    (
        "missing-application",
        json.dumps({"type": "StasisEnd", "timestamp": "t", "channel": CHANNEL}),
        "StasisEnd.application: missing",
    ),
    (
        "duration-as-string",
        _event(type="ChannelDtmfReceived", digit="1", duration_ms="100", channel=CHANNEL),
        "ChannelDtmfReceived.duration_ms: expected integer, got str",
    ),
    (
        "duration-as-bool",
        _event(type="ChannelDtmfReceived", digit="1", duration_ms=True, channel=CHANNEL),
        "ChannelDtmfReceived.duration_ms: expected integer, got bool",
    ),
    (
        "nested-wrong-type",
        _event(
            type="StasisStart",
            args=[],
            channel={**CHANNEL, "caller": {"name": "A", "number": 5551234}},
        ),
        "StasisStart.channel.caller.number: expected string, got int",
    ),
    (
        "args-not-strings",
        _event(type="StasisStart", args=[1], channel=CHANNEL),
        "StasisStart.args: expected a list of strings",
    ),
    (
        "soft-not-bool",
        _event(type="ChannelHangupRequest", soft="yes", channel=CHANNEL),
        "ChannelHangupRequest.soft: expected boolean",
    ),
    (
        "playback-not-object",
        _event(type="PlaybackFinished", playback="done"),
        "PlaybackFinished.playback: expected object, got str",
    ),
    ("deeply-nested", "[" * 100_000 + "]" * 100_000, "JSON nested too deeply"),
    (
        "one-megabyte",
        _event(type="ChannelVarset", variable="BIG", value="x" * (1 << 20), channel=CHANNEL),
        "frame too large",
    ),
]


@pytest.mark.parametrize(
    ("frame", "reason"), [(f, r) for _, f, r in BAD_FRAMES], ids=[i for i, _, _ in BAD_FRAMES]
)
async def test_bad_frame_is_logged_with_a_reason_and_skipped(
    fake: FakeAsterisk,
    ari: AriClient,
    logged_events: tuple[EventStream, list[Any]],
    frame: str,
    reason: str,
) -> None:
    """A malformed frame is logged with why, skipped, and the next event and REST still work."""
    stream, logs = logged_events
    await fake.send_raw(frame)
    await fake.send_event("consent-recorder", GOOD)
    after = await _next(stream)
    pong = await ari.ping()

    assert isinstance(after, ChannelVarset)
    assert "after-the-bad-frame" == after.value
    assert 1 == stream.frames_skipped
    bad = [e for e in logs if e["event"] == "ari.events.bad_frame"]
    assert 1 == len(bad)
    assert reason in bad[0]["reason"]
    assert "warning" == bad[0]["log_level"]
    assert 1 == stream.connections
    assert "pong" == pong.ping


async def test_binary_frame_is_logged_and_skipped(
    fake: FakeAsterisk, logged_events: tuple[EventStream, list[Any]]
) -> None:
    """ARI sends text; a binary frame is logged as such and the stream carries on."""
    stream, logs = logged_events
    await fake.send_raw(b"\x00\x01binary", binary=True)
    await fake.send_event("consent-recorder", GOOD)
    after = await _next(stream)

    assert isinstance(after, ChannelVarset)
    assert ["binary frame (ARI sends text)"] == [
        e["reason"] for e in logs if e["event"] == "ari.events.bad_frame"
    ]


async def test_invalid_utf8_text_frame_is_logged_and_the_stream_reconnects(
    fake: FakeAsterisk, logged_events: tuple[EventStream, list[Any]]
) -> None:
    """Invalid UTF-8 fails the connection (RFC 6455 8.1): logged, reconnected, events resume."""
    stream, logs = logged_events
    await fake.send_raw(b'{"type": "\xff\xfe"}')
    gone = await _next(stream)
    back = await _next(stream)
    await fake.wait_for_app("consent-recorder")
    await fake.send_event("consent-recorder", GOOD)
    after = await _next(stream)

    assert isinstance(gone, Disconnected)
    assert "protocol error" in gone.reason
    assert isinstance(back, Connected)
    assert (2, True) == (back.connection, back.reconnected)
    assert isinstance(after, ChannelVarset)
    assert any(e["event"] == "ari.events.bad_frame" and "UTF-8" in e["reason"] for e in logs), logs


async def test_unknown_event_type_surfaces_as_unknown_event(
    fake: FakeAsterisk, logged_events: tuple[EventStream, list[Any]]
) -> None:
    """A type the package does not model is yielded as ``UnknownEvent`` with its raw frame."""
    stream, logs = logged_events
    await fake.send_raw(_event(type="ChannelTalkingStarted", channel=CHANNEL))
    event = await _next(stream)

    assert isinstance(event, UnknownEvent)
    assert ("ChannelTalkingStarted", "consent-recorder") == (event.type, event.application)
    assert "1.1" == event.raw["channel"]["id"]
    assert ["ChannelTalkingStarted"] == [
        e["type"] for e in logs if e["event"] == "ari.events.unknown_type"
    ]


async def test_unknown_event_type_can_be_logged_and_skipped(fake: FakeAsterisk) -> None:
    """With ``yield_unknown=False`` an unknown type is logged and skipped."""
    with capture_logs() as logs:
        async with EventStream(fake.settings(), yield_unknown=False) as stream:
            await _next(stream)
            await fake.wait_for_app("consent-recorder")
            await fake.send_raw(_event(type="BrandNewEvent"))
            await fake.send_event("consent-recorder", GOOD)
            after = await _next(stream)

    assert isinstance(after, ChannelVarset)
    assert [False] == [e["yielded"] for e in logs if e["event"] == "ari.events.unknown_type"]


@pytest.mark.parametrize("abort", [False, True], ids=["close-frame", "tcp-reset"])
async def test_server_drop_reconnects_and_announces_connected_again(
    fake: FakeAsterisk, events: EventStream, abort: bool
) -> None:
    """After a drop the stream reconnects by itself and yields ``Disconnected``, ``Connected``."""
    await fake.drop_websockets(abort=abort)
    gone = await _next(events)
    back = await _next(events)
    await fake.wait_for_app("consent-recorder")
    call = await fake.originate()
    start = await _next(events)

    assert isinstance(gone, Disconnected)
    assert isinstance(back, Connected)
    assert 2 == back.connection
    assert isinstance(start, StasisStart)
    assert call.id == start.channel.id


async def test_refused_upgrades_are_retried_until_accepted(fake: FakeAsterisk) -> None:
    """While Asterisk refuses the upgrade (HTTP 503) the stream keeps trying, then connects."""
    fake.refuse_websockets(503)
    with capture_logs() as logs:
        async with EventStream(fake.settings(), reconnect_initial=0.01) as stream:
            await fake.wait_until(lambda: fake.ws_refused >= 3)
            fake.accept_websockets()
            first = await _next(stream)

    assert isinstance(first, Connected)
    assert 1 == first.connection
    reasons = [e["reason"] for e in logs if e["event"] == "ari.events.reconnecting"]
    assert all(r.startswith("handshake refused: HTTP 503") for r in reasons), reasons


async def test_restart_with_downtime_reconnects_after_connection_refused(
    fake: FakeAsterisk, events: EventStream, ari: AriClient
) -> None:
    """A restart (port closed for a while, all channels gone) is survived by stream and client."""
    call = await fake.originate()
    await _next(events)
    await fake.restart(downtime=0.3)
    gone = await _next(events)
    back = await _next(events, within=5)
    apps = await ari.get_application("consent-recorder")

    assert isinstance(gone, Disconnected)
    assert isinstance(back, Connected)
    assert () == apps.channel_ids
    assert fake.channel(call.id).hung_up


async def test_silent_peer_is_detected_by_heartbeat(fake: FakeAsterisk) -> None:
    """A socket whose peer stops answering pings is closed by the heartbeat and re-opened."""
    fake.answer_pings(False)
    settings = fake.settings(heartbeat=0.1)
    async with EventStream(settings, reconnect_initial=0.01) as stream:
        first = await _next(stream)
        fake.answer_pings(True)
        gone = await _next(stream)
        back = await _next(stream)

    assert isinstance(first, Connected)
    assert isinstance(gone, Disconnected)
    assert isinstance(back, Connected)


async def test_application_replaced_is_delivered_not_acted_upon(
    fake: FakeAsterisk, events: EventStream
) -> None:
    """``ApplicationReplaced`` reaches the consumer; the stream stays connected."""
    await fake.replace_application("consent-recorder")
    event = await _next(events)

    assert isinstance(event, ApplicationReplaced)
    assert "consent-recorder" == event.application
    assert events.connected


async def test_second_connection_for_the_app_replaces_the_first(fake: FakeAsterisk) -> None:
    """Two streams for one app: the older gets ``ApplicationReplaced``, the newer the calls."""
    async with EventStream(fake.settings()) as old:
        await _next(old)
        await fake.wait_for_app("consent-recorder")
        async with EventStream(fake.settings()) as new:
            await _next(new)
            replaced = await _next(old)
            call = await fake.originate()
            start = await _next(new)

    assert isinstance(replaced, ApplicationReplaced)
    assert isinstance(start, StasisStart)
    assert call.id == start.channel.id


async def test_one_socket_carries_several_apps(fake: FakeAsterisk) -> None:
    """``apps=`` subscribes several Stasis apps on one socket."""
    async with EventStream(fake.settings(), apps=("app-a", "app-b")) as stream:
        await _next(stream)
        await fake.wait_for_app("app-b")
        await fake.originate("app-a")
        await fake.originate("app-b")
        seen = [await _next(stream), await _next(stream)]

    assert ["app-a", "app-b"] == [e.application for e in seen if isinstance(e, StasisStart)]


async def test_close_ends_iteration(fake: FakeAsterisk) -> None:
    """``close()`` ends an ``async for`` loop and refuses further ``get()``."""
    stream = EventStream(fake.settings())
    stream.start()
    seen: list[str] = []

    async def consume() -> None:
        async for event in stream:
            seen.append(event.type)

    consumer = asyncio.create_task(consume())
    await stream.wait_connected()
    await stream.close()
    await asyncio.wait_for(consumer, 2)

    assert ["Connected"] == seen
    with pytest.raises(AriError, match="closed"):
        await stream.get()


def test_app_names_with_commas_are_refused(fake: FakeAsterisk) -> None:
    """An app name cannot smuggle a second app into the ``app=`` list."""
    with pytest.raises(ValueError, match="commas"):
        EventStream(fake.settings(), apps=("a,b",))


def test_backoff_grows_exponentially_with_jitter_up_to_the_cap() -> None:
    """Delays start at ~0.2 s, double, stay within [50 %, 100 %] of the ceiling, cap at max."""
    high = backoff_delays(0.2, 10.0, rng=lambda: 1.0)
    low = backoff_delays(0.2, 10.0, rng=lambda: 0.0)

    assert [0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 10.0, 10.0] == [round(d, 6) for d in high[:8]]
    assert [0.1, 0.2, 0.4] == [round(d, 6) for d in low[:3]]
    assert 5.0 == low[-1]


async def test_peer_that_never_answers_the_upgrade_is_given_up_and_retried() -> None:
    """A TCP peer that accepts but never answers the handshake costs one request_timeout."""
    accepted: list[asyncio.StreamWriter] = []
    retried = asyncio.Event()

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)
        if len(accepted) >= 2:
            retried.set()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    settings = AriServerSettings(url=f"http://127.0.0.1:{port}", request_timeout=0.1)
    try:
        with capture_logs() as logs:
            async with EventStream(settings, reconnect_initial=0.01):
                await asyncio.wait_for(retried.wait(), 5)
    finally:
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()

    reasons = [e["reason"] for e in logs if e["event"] == "ari.events.reconnecting"]
    assert reasons
    assert "connect failed: no handshake within 0.1 s" == reasons[0]


async def test_upgrade_authenticates_by_header_and_names_the_apps(
    fake: FakeAsterisk, events: EventStream
) -> None:
    """The WebSocket upgrade carries Basic auth in a header, apps and subscribeAll=false."""
    upgrade = fake.ws_requests[-1]

    assert upgrade.headers["Authorization"].startswith("Basic ")
    assert {"app": "consent-recorder", "subscribeAll": "false"} == dict(upgrade.query)
    assert "fake-secret" not in upgrade.path


async def test_wrong_password_on_the_socket_is_retried_and_logged(fake: FakeAsterisk) -> None:
    """A 401 on the upgrade is logged as a refused handshake and retried (not a crash)."""
    with capture_logs() as logs:
        async with EventStream(fake.settings(password=Secret("bad")), reconnect_initial=0.01):
            await fake.wait_until(lambda: len(fake.ws_requests) >= 2)

    reasons = [e["reason"] for e in logs if e["event"] == "ari.events.reconnecting"]
    assert reasons[0].startswith("handshake refused: HTTP 401")


async def test_closing_client_and_stream_leaves_nothing_unclosed(fake: FakeAsterisk) -> None:
    """After close() no aiohttp session or connector is left to warn "Unclosed ..."."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        client = AriClient(fake.settings())
        stream = EventStream(fake.settings())
        stream.start()
        await stream.wait_connected()
        await client.ping()
        await stream.close()
        await client.close()
        del client, stream
        gc.collect()
        await asyncio.sleep(0)

    assert [] == [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
