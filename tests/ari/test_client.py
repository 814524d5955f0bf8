"""AriClient against the fake Asterisk: every REST method, auth, and the error mapping."""

from __future__ import annotations

import asyncio
import base64
import socket

import aiohttp
import pytest

from asterisk_recorder.ari import AriClient, EventStream, StasisStart
from asterisk_recorder.errors import (
    AriBadRequest,
    AriConflict,
    AriConnectionError,
    AriError,
    AriHttpError,
    AriNotFound,
    AriPreconditionFailed,
    AriProtocolError,
    AriServerError,
    AriTimeout,
    ConfigError,
)
from asterisk_recorder.settings import AriServerSettings, Secret
from asterisk_recorder.testing import FakeAsterisk

HOSTILE = [
    "a,b)c${EVIL}|\"'",
    "line1\nline2\r\n",
    "nul\x00byte",
    "../../etc/passwd",
    "x" * 10_000,
    "ünïcödé ☎",
    "%2F%00?#&=+",
]


async def _call(fake: FakeAsterisk, events: EventStream, **kw: object) -> str:
    call = await fake.originate(**kw)  # type: ignore[arg-type]
    start = await asyncio.wait_for(events.get(), 2)
    assert isinstance(start, StasisStart)
    return call.id


async def test_asterisk_info_and_ping_are_typed(ari: AriClient, fake: FakeAsterisk) -> None:
    """``asterisk_info`` and ``ping`` return the version and the entity id."""
    info = await ari.asterisk_info()
    ping = await ari.ping()

    assert ("22.10.1", fake.asterisk_id, "en") == (
        info.version,
        info.entity_id,
        info.default_language,
    )
    assert ("pong", fake.asterisk_id) == (ping.ping, ping.asterisk_id)


async def test_requests_authenticate_by_header_and_never_by_url(
    ari: AriClient, fake: FakeAsterisk
) -> None:
    """Credentials travel only in ``Authorization: Basic``, never as api_key or in the URL."""
    await ari.ping()
    req = fake.requests[-1]
    expected = "Basic " + base64.b64encode(b"asterisk-recorder:fake-secret").decode()

    assert expected == req.headers["Authorization"]
    assert "api_key" not in req.query
    assert "fake-secret" not in req.path
    assert "fake-secret" not in str(ari.base_url)


async def test_wrong_password_is_an_http_error_with_status_401(fake: FakeAsterisk) -> None:
    """A bad password gives ``AriHttpError`` 401 (not a retry, not a crash)."""
    async with AriClient(fake.settings(password=Secret("wrong"))) as client:
        with pytest.raises(AriHttpError) as info:
            await client.ping()

    assert 401 == info.value.status


def test_url_with_credentials_is_refused() -> None:
    """Credentials in ``url`` are a configuration error: they would leak into logs."""
    with pytest.raises(ConfigError, match="credentials"):
        AriClient(AriServerSettings(url="http://user:pw@127.0.0.1:8088"))


def test_url_without_host_is_refused() -> None:
    """A URL that is not http(s)://host is a configuration error."""
    with pytest.raises(ConfigError, match="expected http"):
        AriClient(AriServerSettings(url="ftp:/nowhere"))


async def test_channel_lifecycle_methods_reach_asterisk(
    ari: AriClient, fake: FakeAsterisk, events: EventStream
) -> None:
    """get/list/answer/ring/dtmf/play/variables/continue each send the documented request."""
    cid = await _call(fake, events, caller_name="Bob", caller_number="+4930123", extension="200")
    chan = await ari.get_channel(cid)
    listed = await ari.list_channels()
    await ari.answer(cid)
    await ari.ring(cid)
    await ari.send_dtmf(cid, "12#", duration=120)
    fake.sounds["test/endless"] = 1000.0  # still playing when fetched and stopped below
    playback = await ari.play(
        cid, ["sound:test/endless", "sound:hello-world"], lang="en", playback_id="p1"
    )
    fetched = await ari.get_playback("p1")
    await ari.stop_playback("p1")
    await ari.set_variable(cid, "CONSENT", "granted")
    value = await ari.get_variable(cid, "CONSENT")
    await ari.continue_in_dialplan(cid, context="consent-record", extension="s", priority=1)
    record = await fake.wait_for_continue(cid)

    assert ("+4930123", "200") == (chan.caller.number, chan.dialplan.exten)
    assert [cid] == [c.id for c in listed]
    assert ("p1", "sound:test/endless", "sound:hello-world") == (
        playback.id,
        playback.media_uri,
        playback.next_media_uri,
    )
    assert "p1" == fetched.id
    assert "granted" == value
    assert ["12#"] == fake.channel(cid).dtmf_sent
    assert ("consent-record", "s", 1) == (record.context, record.extension, record.priority)


async def test_hangup_with_reason_removes_the_channel(
    ari: AriClient, fake: FakeAsterisk, events: EventStream
) -> None:
    """``hangup(reason=)`` ends the call; a second hangup is ``AriNotFound``."""
    cid = await _call(fake, events)
    await ari.hangup(cid, reason="busy")

    assert 17 == fake.channel(cid).hangup_cause
    with pytest.raises(AriNotFound):
        await ari.hangup(cid)


async def test_applications_get_list_subscribe_unsubscribe(
    ari: AriClient, fake: FakeAsterisk, events: EventStream
) -> None:
    """Application calls return typed ``Application`` objects with ``channel_ids``."""
    cid = await _call(fake, events)
    app = await ari.get_application("consent-recorder")
    apps = await ari.list_applications()
    subscribed = await ari.subscribe("consent-recorder", f"channel:{cid}")
    unsubscribed = await ari.unsubscribe("consent-recorder", f"channel:{cid}")

    assert (cid,) == app.channel_ids
    assert ["consent-recorder"] == [a.name for a in apps]
    assert (cid,) == subscribed.channel_ids
    assert "consent-recorder" == unsubscribed.name


async def test_originate_into_an_app_delivers_stasis_start(
    ari: AriClient, fake: FakeAsterisk, events: EventStream
) -> None:
    """``originate`` returns the new channel and it then enters the app with its args."""
    chan = await ari.originate(
        "PJSIP/100", app="consent-recorder", app_args="a,b", caller_id='"Al" <555>'
    )
    start = await asyncio.wait_for(events.get(), 2)

    assert isinstance(start, StasisStart)
    assert (chan.id, ("a", "b")) == (start.channel.id, start.args)
    assert ("Al", "555") == (chan.caller.name, chan.caller.number)


async def test_gone_channel_is_not_found_raised_from_the_aiohttp_error(ari: AriClient) -> None:
    """404 on a channel path is ``AriNotFound`` with Asterisk's message, chained to aiohttp."""
    with pytest.raises(AriNotFound) as info:
        await ari.answer("1234.5")

    assert "Channel not found" == info.value.message
    assert ("POST", "/channels/1234.5/answer") == (info.value.method, info.value.path)
    assert isinstance(info.value.__cause__, aiohttp.ClientResponseError)


async def test_channel_outside_stasis_is_a_conflict(
    ari: AriClient, fake: FakeAsterisk, events: EventStream
) -> None:
    """409 (channel not in Stasis, e.g. after continue) is ``AriConflict``."""
    cid = await _call(fake, events)
    await ari.continue_in_dialplan(cid)
    await fake.wait_for_continue(cid)

    with pytest.raises(AriConflict, match="not in Stasis"):
        await ari.answer(cid)


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, AriBadRequest),
        (404, AriNotFound),
        (409, AriConflict),
        (412, AriPreconditionFailed),
        (500, AriServerError),
        (503, AriServerError),
        (418, AriHttpError),
    ],
)
async def test_each_error_status_maps_to_its_exception(
    ari: AriClient, fake: FakeAsterisk, status: int, error: type[AriHttpError]
) -> None:
    """Every ARI error status raises the most specific class, carrying Asterisk's message."""
    fake.fail("GET", "/asterisk/ping", status, f"injected {status}")

    with pytest.raises(error) as info:
        await ari.ping()

    assert (status, f"injected {status}") == (info.value.status, info.value.message)
    assert type(info.value) is error


async def test_error_without_json_body_uses_the_reason_phrase(
    ari: AriClient, fake: FakeAsterisk
) -> None:
    """An error body that is not Asterisk's JSON still gives a typed error with a message."""
    fake.fail("GET", "/asterisk/ping", 500, raw_body="<html>oops</html>")

    with pytest.raises(AriServerError) as info:
        await ari.ping()

    assert "Internal Server Error" == info.value.message


async def test_success_body_that_is_not_json_is_a_protocol_error(
    ari: AriClient, fake: FakeAsterisk
) -> None:
    """A 200 whose body is not JSON raises ``AriProtocolError``."""
    fake.fail("GET", "/asterisk/ping", 200, raw_body="{not json")

    with pytest.raises(AriProtocolError, match="not JSON"):
        await ari.ping()


async def test_success_body_of_the_wrong_shape_is_a_protocol_error(
    ari: AriClient, fake: FakeAsterisk
) -> None:
    """A channel list that holds a non-object raises ``AriProtocolError`` naming the item."""
    fake.fail("GET", "/channels", 200, raw_body='[{"id": 1}]')

    with pytest.raises(AriProtocolError, match=r"channels\[0\]"):
        await ari.list_channels()


async def test_slow_answer_times_out_raised_from_the_timeout(fake: FakeAsterisk) -> None:
    """No answer within ``request_timeout`` is ``AriTimeout`` (also a ``TimeoutError``)."""
    fake.delay("GET", "/asterisk/ping", 2.0)
    async with AriClient(fake.settings(request_timeout=0.1)) as client:
        with pytest.raises(AriTimeout) as info:
            await client.ping()

    assert isinstance(info.value, TimeoutError)
    assert isinstance(info.value.__cause__, TimeoutError)


async def test_stalled_asterisk_times_out_and_later_calls_work(
    ari: AriClient, fake: FakeAsterisk
) -> None:
    """A stalled server times the call out; once it answers again, so does the client."""
    fake.stall()
    with pytest.raises(AriTimeout):
        await ari.request("GET", "/asterisk/ping", request_timeout=0.1)
    fake.unstall()

    assert "pong" == (await ari.ping()).ping


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_connection_refused_is_an_ari_connection_error() -> None:
    """Nothing listening gives ``AriConnectionError`` (also a ``ConnectionError``)."""
    settings = AriServerSettings(url=f"http://127.0.0.1:{_closed_port()}", request_timeout=2)
    async with AriClient(settings) as client:
        with pytest.raises(AriConnectionError) as info:
            await client.ping()

    assert isinstance(info.value, ConnectionError)
    assert isinstance(info.value.__cause__, aiohttp.ClientConnectorError)


async def test_closed_client_refuses_new_calls(fake: FakeAsterisk) -> None:
    """After ``close()`` the client raises ``AriError`` instead of opening a new session."""
    client = AriClient(fake.settings())
    await client.ping()
    await client.close()

    with pytest.raises(AriError, match="closed"):
        await client.ping()


@pytest.mark.parametrize("hostile", HOSTILE)
async def test_hostile_variable_values_round_trip_unchanged(
    ari: AriClient, fake: FakeAsterisk, events: EventStream, hostile: str
) -> None:
    """Caller-controlled text sent as a variable value arrives byte for byte, query-encoded."""
    cid = await _call(fake, events)
    await ari.set_variable(cid, "CALLER_TEXT", hostile)

    assert hostile == fake.channel(cid).variables["CALLER_TEXT"]
    assert hostile == await ari.get_variable(cid, "CALLER_TEXT")


@pytest.mark.parametrize("hostile", ["../asterisk/info", "a/b", "x?y=1", "%2e%2e", "1#frag"])
async def test_hostile_ids_stay_inside_their_path_segment(
    ari: AriClient, fake: FakeAsterisk, hostile: str
) -> None:
    """An id with ``/``, ``..``, ``?`` or ``#`` is one quoted segment: it reaches no other path."""
    with pytest.raises(AriNotFound) as info:
        await ari.get_channel(hostile)

    assert "Channel not found" == info.value.message
    assert fake.requests[-1].path.startswith("/ari/channels/")
    assert 3 == fake.requests[-1].path.count("/")


async def test_two_servers_are_two_independent_clients() -> None:
    """One client per Asterisk: two fakes, two clients, each sees only its own server."""
    async with (
        FakeAsterisk(asterisk_id="aa:aa") as one,
        FakeAsterisk(asterisk_id="bb:bb") as two,
        AriClient(one.settings()) as c1,
        AriClient(two.settings()) as c2,
    ):
        ids = ((await c1.ping()).asterisk_id, (await c2.ping()).asterisk_id)

    assert ("aa:aa", "bb:bb") == ids


async def test_shared_session_is_not_closed_by_the_client(fake: FakeAsterisk) -> None:
    """A session passed in stays open after the client closes (its owner closes it)."""
    async with aiohttp.ClientSession() as session:
        async with AriClient(fake.settings(), session=session) as client:
            await client.ping()

        assert not session.closed


async def test_client_events_share_the_session_and_see_calls(
    ari: AriClient, fake: FakeAsterisk
) -> None:
    """``client.events()`` opens a stream on the same server, reusing the client's session."""
    async with ari.events(reconnect_initial=0.01) as stream:
        first = await asyncio.wait_for(stream.get(), 2)
        await fake.wait_for_app("consent-recorder")
        call = await fake.originate()
        start = await asyncio.wait_for(stream.get(), 2)

    assert "Connected" == first.type
    assert isinstance(start, StasisStart)
    assert call.id == start.channel.id
    assert not ari.session().closed
