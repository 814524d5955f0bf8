"""FakeAsterisk behaves like Asterisk 22.10.1 in the traces, and its fault injection works."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from asterisk_recorder.ari import (
    AriClient,
    ChannelDestroyed,
    ChannelDtmfReceived,
    ChannelHangupRequest,
    ChannelStateChange,
    ChannelVarset,
    EventStream,
    PlaybackFinished,
    PlaybackStarted,
    StasisEnd,
    StasisStart,
    StreamEvent,
)
from asterisk_recorder.errors import AriConflict, AriHttpError, AriNotFound, AriServerError
from asterisk_recorder.testing import FakeAsterisk

ENDLESS = "sound:test/endless"
"""A prompt that outlasts any test (1000 s scaled), so ordering never depends on timing."""


@pytest.fixture(autouse=True)
def _endless_prompt(fake: FakeAsterisk) -> None:
    fake.sounds["test/endless"] = 1000.0


async def _next(stream: EventStream, within: float = 2.0) -> StreamEvent:
    return await asyncio.wait_for(stream.get(), within)


async def _types(stream: EventStream, count: int) -> list[str]:
    return [(await _next(stream)).type for _ in range(count)]


async def _answered_call(
    fake: FakeAsterisk, ari: AriClient, events: EventStream, **kw: object
) -> str:
    call = await fake.originate(**kw)  # type: ignore[arg-type]
    assert isinstance(await _next(events), StasisStart)
    await ari.answer(call.id)
    assert isinstance(await _next(events), ChannelStateChange)
    return call.id


async def test_call_enters_the_app_ringing_with_caller_id_extension_language_and_vars(
    fake: FakeAsterisk, events: EventStream
) -> None:
    """``originate`` gives a StasisStart in state Ring carrying everything the call was given."""
    call = await fake.originate(
        caller_name="Zoë",
        caller_number="+33123",
        extension="+4930999",
        language="fr",
        variables={"POLICY": "opt_in"},
        args=("inbound", "x"),
        context="consent-in",
        priority=2,
    )
    start = await _next(events)

    assert isinstance(start, StasisStart)
    assert ("inbound", "x") == start.args
    chan = start.channel
    assert (call.id, "Ring", "fr") == (chan.id, chan.state, chan.language)
    assert ("Zoë", "+33123") == (chan.caller.name, chan.caller.number)
    assert ("consent-in", "+4930999", 2, "Stasis", "consent-recorder,inbound,x") == (
        chan.dialplan.context,
        chan.dialplan.exten,
        chan.dialplan.priority,
        chan.dialplan.app_name,
        chan.dialplan.app_data,
    )
    assert {"POLICY": "opt_in"} == dict(chan.channelvars)


async def test_configured_channelvars_are_listed_even_when_unset() -> None:
    """With ``channelvars=`` (ari.conf) every listed name appears, unset ones as ""."""
    async with FakeAsterisk(channelvars=("A", "B")) as fake:
        events = EventStream(fake.settings())
        async with events:
            await _next(events)
            await fake.wait_for_app("consent-recorder")
            await fake.originate(variables={"A": "1", "C": "hidden"})
            start = await _next(events)

    assert isinstance(start, StasisStart)
    assert {"A": "1", "B": ""} == dict(start.channel.channelvars)


async def test_hostile_caller_id_reaches_the_app_byte_for_byte(
    fake: FakeAsterisk, events: EventStream
) -> None:
    """Caller-controlled text is carried as JSON data, unchanged."""
    hostile = 'Evil", ${SHELL} | `rm` \n\x00 ../x ' + "é" * 5000
    await fake.originate(caller_name=hostile, caller_number="1;2,3)")
    start = await _next(events)

    assert isinstance(start, StasisStart)
    assert (hostile, "1;2,3)") == (start.channel.caller.name, start.channel.caller.number)


async def test_call_to_an_unregistered_app_fails_back_to_dialplan(fake: FakeAsterisk) -> None:
    """No socket for the app: ``STASISSTATUS=FAILED`` and no event, like Asterisk."""
    call = await fake.originate("nobody-home", wait_for_app=0.05)

    assert "FAILED" == call.variables["STASISSTATUS"]
    assert not call.in_stasis
    assert [] == fake.events


async def test_playback_plays_for_its_scaled_duration_then_finishes_done(
    fake: FakeAsterisk, ari: AriClient, events: EventStream
) -> None:
    """``hello-world`` (1.4 s) plays 70 ms at time_scale 0.05, then PlaybackFinished done."""
    cid = await _answered_call(fake, ari, events)
    since = len(fake.events)
    queued = await ari.play(cid, "sound:hello-world")
    started = await _next(events)
    finished = await _next(events)
    stamps = [e.at for e in fake.events[since:]]

    assert "queued" == queued.state
    assert isinstance(started, PlaybackStarted)
    assert "playing" == started.playback.state
    assert isinstance(finished, PlaybackFinished)
    assert ("done", f"channel:{cid}") == (finished.playback.state, finished.playback.target_uri)
    assert stamps[1] - stamps[0] >= 1.4 * fake.time_scale - 0.005  # server-side stamps


async def test_unknown_sound_starts_then_fails(
    fake: FakeAsterisk, ari: AriClient, events: EventStream
) -> None:
    """A sound Asterisk does not have: PlaybackStarted then PlaybackFinished ``failed``."""
    cid = await _answered_call(fake, ari, events)
    await ari.play(cid, "sound:no-such-prompt")
    seen = [await _next(events), await _next(events)]

    assert isinstance(seen[0], PlaybackStarted)
    assert isinstance(seen[1], PlaybackFinished)
    assert "failed" == seen[1].playback.state


async def test_stopped_playback_still_reports_finished_done(
    fake: FakeAsterisk, ari: AriClient, events: EventStream
) -> None:
    """``DELETE /playbacks/{id}`` ends it at once with PlaybackFinished ``done``; then 404."""
    cid = await _answered_call(fake, ari, events)
    pb = await ari.play(cid, ENDLESS)
    await _next(events)
    await ari.stop_playback(pb.id)
    finished = await _next(events)

    assert isinstance(finished, PlaybackFinished)
    assert "done" == finished.playback.state
    with pytest.raises(AriNotFound):
        await ari.get_playback(pb.id)


async def test_variable_waits_behind_a_running_playback(
    fake: FakeAsterisk, ari: AriClient, events: EventStream
) -> None:
    """``POST /variable`` during a playback answers only after PlaybackFinished (trace: 1.2 s)."""
    cid = await _answered_call(fake, ari, events)
    pb = await ari.play(cid, ENDLESS)
    assert isinstance(await _next(events), PlaybackStarted)
    pending = asyncio.create_task(ari.set_variable(cid, "CONSENT", "granted"))
    await fake.wait_until(lambda: not fake.channel(cid).queue.empty())
    waited = not pending.done() and "CONSENT" not in fake.channel(cid).variables
    await ari.stop_playback(pb.id)
    await pending
    after = [await _next(events), await _next(events)]

    assert waited

    assert isinstance(after[0], PlaybackFinished)
    assert isinstance(after[1], ChannelVarset)
    assert "granted" == fake.channel(cid).variables["CONSENT"]


async def test_answer_also_waits_behind_a_running_playback(
    fake: FakeAsterisk, ari: AriClient, events: EventStream
) -> None:
    """``/answer`` goes through the control queue: early-media playback first, then answer."""
    call = await fake.originate()
    await _next(events)
    pb = await ari.play(call.id, ENDLESS)
    await _next(events)
    pending = asyncio.create_task(ari.answer(call.id))
    await fake.wait_until(lambda: not fake.channel(call.id).queue.empty())
    still_ringing = fake.channel(call.id).state
    await ari.stop_playback(pb.id)
    await pending
    seen = await _types(events, 2)

    assert "Ring" == still_ringing
    assert ["PlaybackFinished", "ChannelStateChange"] == seen


async def test_continue_answers_at_once_but_leaves_after_the_playback(
    fake: FakeAsterisk, ari: AriClient, events: EventStream
) -> None:
    """``/continue`` is queued: 204 now, StasisEnd only after the playback finished."""
    cid = await _answered_call(fake, ari, events)
    pb = await ari.play(cid, ENDLESS)
    await _next(events)
    await ari.continue_in_dialplan(cid, context="consent-norecord", extension="s", priority=1)
    continued_now = fake.channel(cid).continued
    await ari.stop_playback(pb.id)
    seen = await _types(events, 2)

    assert continued_now is None
    assert ["PlaybackFinished", "StasisEnd"] == seen


async def test_stop_first_makes_the_decision_act_now(
    fake: FakeAsterisk, ari: AriClient, events: EventStream
) -> None:
    """Stopping the playback first lets ``/variable`` through immediately (optout trace)."""
    cid = await _answered_call(fake, ari, events)
    pb = await ari.play(cid, ENDLESS)
    await _next(events)
    await ari.stop_playback(pb.id)
    await asyncio.wait_for(ari.set_variable(cid, "CONSENT", "optout"), 2)
    seen = await _types(events, 2)

    assert ["PlaybackFinished", "ChannelVarset"] == seen


async def test_continue_records_the_target_and_the_variables_at_that_moment(
    fake: FakeAsterisk, ari: AriClient, events: EventStream
) -> None:
    """``wait_for_continue`` tells where dialplan goes on and which variables it will see."""
    cid = await _answered_call(fake, ari, events, context="consent-in", priority=2)
    await ari.set_variable(cid, "RECORDER_DECISION", "record")
    await ari.continue_in_dialplan(cid, context="consent-record", extension="s", priority=1)
    record = await fake.wait_for_continue(cid)

    assert ("consent-record", "s", 1, "") == (
        record.context,
        record.extension,
        record.priority,
        record.label,
    )
    assert "record" == record.variables["RECORDER_DECISION"]
    assert "SUCCESS" == fake.channel(cid).variables["STASISSTATUS"]


async def test_continue_without_target_goes_to_the_next_priority(
    fake: FakeAsterisk, ari: AriClient, events: EventStream
) -> None:
    """A bare ``/continue`` resumes after ``Stasis()``, like Asterisk."""
    cid = await _answered_call(fake, ari, events, context="consent-in", extension="s", priority=2)
    await ari.continue_in_dialplan(cid)
    record = await fake.wait_for_continue(cid)

    assert ("consent-in", "s", 3) == (record.context, record.extension, record.priority)


async def test_caller_dtmf_arrives_with_its_duration_while_the_prompt_plays(
    fake: FakeAsterisk, ari: AriClient, events: EventStream
) -> None:
    """Caller DTMF gives ChannelDtmfReceived (digit, duration_ms); it does not stop the prompt."""
    cid = await _answered_call(fake, ari, events)
    pb = await ari.play(cid, ENDLESS)
    await _next(events)
    await fake.send_dtmf(cid, "1", duration_ms=160)
    dtmf = await _next(events)
    still_playing = (await ari.get_playback(pb.id)).state
    await ari.stop_playback(pb.id)
    rest = await _next(events)

    assert "playing" == still_playing

    assert isinstance(dtmf, ChannelDtmfReceived)
    assert ("1", 160) == (dtmf.digit, dtmf.duration_ms)
    assert isinstance(rest, PlaybackFinished)
    assert "done" == rest.playback.state


async def test_caller_hangup_during_prompt_has_asterisks_event_order(
    fake: FakeAsterisk, ari: AriClient, events: EventStream
) -> None:
    """Caller hang-up mid-prompt: HangupRequest (cause 16), PlaybackFinished failed, StasisEnd."""
    cid = await _answered_call(fake, ari, events)
    await ari.play(cid, ENDLESS)
    await _next(events)
    await fake.hangup(cid)
    request, finished, end = await _next(events), await _next(events), await _next(events)

    assert isinstance(request, ChannelHangupRequest)
    assert (16, False) == (request.cause, request.soft)
    assert isinstance(finished, PlaybackFinished)
    assert "failed" == finished.playback.state
    assert isinstance(end, StasisEnd)
    with pytest.raises(AriNotFound, match="Channel not found"):
        await ari.answer(cid)


async def test_app_hangup_is_a_soft_hangup_with_the_explicit_flag(
    fake: FakeAsterisk, ari: AriClient, events: EventStream
) -> None:
    """``DELETE /channels/{id}``: HangupRequest {cause: 32, soft: true}, then StasisEnd."""
    cid = await _answered_call(fake, ari, events)
    await ari.hangup(cid)
    request, end = await _next(events), await _next(events)

    assert isinstance(request, ChannelHangupRequest)
    assert (32, True) == (request.cause, request.soft)
    assert isinstance(end, StasisEnd)


async def test_hangup_while_variable_waits_answers_500(
    fake: FakeAsterisk, ari: AriClient, events: EventStream
) -> None:
    """A queued ``/variable`` whose channel hangs up is answered with an error, not left open."""
    cid = await _answered_call(fake, ari, events)
    await ari.play(cid, ENDLESS)
    await _next(events)
    pending = asyncio.create_task(ari.set_variable(cid, "X", "1"))
    await fake.wait_until(lambda: not fake.channel(cid).queue.empty())
    await fake.hangup(cid)

    with pytest.raises(AriServerError):
        await pending


async def test_subscribed_app_sees_the_channel_destroyed_after_continue(
    fake: FakeAsterisk, ari: AriClient, events: EventStream
) -> None:
    """Subscribing before ``continue`` keeps HangupRequest and ChannelDestroyed coming."""
    cid = await _answered_call(fake, ari, events)
    await ari.subscribe("consent-recorder", f"channel:{cid}")
    await ari.continue_in_dialplan(cid, context="consent-record", extension="s", priority=1)
    assert isinstance(await _next(events), StasisEnd)
    await fake.hangup(cid)
    request, destroyed = await _next(events), await _next(events)

    assert isinstance(request, ChannelHangupRequest)
    assert isinstance(destroyed, ChannelDestroyed)
    assert (16, "Normal Clearing") == (destroyed.cause, destroyed.cause_txt)


async def test_application_lists_the_channels_in_stasis(
    fake: FakeAsterisk, ari: AriClient, events: EventStream
) -> None:
    """``GET /applications/{app}`` lists the channels to resynchronise after a reconnect."""
    one = await fake.originate()
    two = await fake.originate()
    await ari.continue_in_dialplan(two.id)
    await fake.wait_for_continue(two.id)
    app = await ari.get_application("consent-recorder")

    assert (one.id,) == app.channel_ids
    with pytest.raises(AriNotFound, match="Application not found"):
        await ari.get_application("other-app")


async def test_unset_variable_is_not_found_and_functions_are_readable(
    fake: FakeAsterisk, ari: AriClient, events: EventStream
) -> None:
    """GET of an unset variable is 404 (as Asterisk); CALLERID(num) and friends are readable."""
    cid = await _answered_call(fake, ari, events, caller_number="555", extension="42")

    with pytest.raises(AriNotFound, match="variable was not found"):
        await ari.get_variable(cid, "NOPE")
    assert ("555", "42", cid) == (
        await ari.get_variable(cid, "CALLERID(num)"),
        await ari.get_variable(cid, "EXTEN"),
        await ari.get_variable(cid, "UNIQUEID"),
    )


async def test_requests_on_a_continued_channel_are_409(
    fake: FakeAsterisk, ari: AriClient, events: EventStream
) -> None:
    """Once in dialplan, Stasis-only requests answer 409 but the channel is still there."""
    cid = await _answered_call(fake, ari, events)
    await ari.continue_in_dialplan(cid)
    await fake.wait_for_continue(cid)

    for attempt in (ari.answer(cid), ari.play(cid, "sound:beep"), ari.set_variable(cid, "A", "1")):
        with pytest.raises(AriConflict):
            await attempt
    assert cid == (await ari.get_channel(cid)).id


async def test_injected_failure_applies_the_given_number_of_times(
    fake: FakeAsterisk, ari: AriClient, events: EventStream
) -> None:
    """``fail(..., times=1)`` fails one matching call; the next succeeds."""
    cid = await _answered_call(fake, ari, events)
    fake.fail("POST", "/channels/*/variable", 409, "Channel not in Stasis application")

    with pytest.raises(AriConflict):
        await ari.set_variable(cid, "A", "1")
    await ari.set_variable(cid, "A", "2")
    assert "2" == fake.channel(cid).variables["A"]


async def test_injected_delay_holds_only_matching_calls(fake: FakeAsterisk, ari: AriClient) -> None:
    """``delay`` slows the matching path; other calls are unaffected."""
    fake.delay("GET", "/asterisk/info", 60.0)
    slow = asyncio.create_task(ari.request("GET", "/asterisk/info", request_timeout=60))
    await fake.wait_until(lambda: fake.in_flight == 1)
    pong = await asyncio.wait_for(ari.ping(), 2)
    held = not slow.done()
    slow.cancel()

    assert "pong" == pong.ping
    assert held


async def test_request_log_records_method_path_query_body_and_status(
    fake: FakeAsterisk, ari: AriClient, events: EventStream
) -> None:
    """Each answered request is logged with what a test needs to assert on."""
    cid = await _answered_call(fake, ari, events)
    await ari.play(cid, "sound:beep", lang="de")
    await ari.set_variable(cid, "K", "v")
    play, var = fake.requests[-2], fake.requests[-1]

    assert ("POST", f"/ari/channels/{cid}/play", 201) == (play.method, play.path, play.status)
    assert {"media": "sound:beep", "lang": "de"} == dict(play.query)
    assert {"variable": "K", "value": "v"} == json.loads(var.body)
    assert play.at <= var.at


async def test_api_key_query_is_accepted_like_asterisk(fake: FakeAsterisk) -> None:
    """Asterisk also takes ``api_key=user:pass``; the fake checks it (our client never uses it)."""
    async with aiohttp.ClientSession() as session:
        good = await session.get(
            f"{fake.url}/ari/asterisk/ping", params={"api_key": "asterisk-recorder:fake-secret"}
        )
        bad = await session.get(f"{fake.url}/ari/asterisk/ping", params={"api_key": "x:y"})
        good.release()
        bad.release()

    assert (200, 401) == (good.status, bad.status)


async def test_unknown_resource_is_404_and_wrong_method_405(ari: AriClient) -> None:
    """Paths outside the modelled subset answer 404; a known path with a wrong verb 405."""
    with pytest.raises(AriNotFound):
        await ari.request("GET", "/bridges")
    with pytest.raises(AriHttpError) as info:
        await ari.request("PUT", "/asterisk/ping")

    assert 405 == info.value.status


async def test_restart_forgets_every_channel(
    fake: FakeAsterisk, ari: AriClient, events: EventStream
) -> None:
    """After ``restart`` there are no channels, no playbacks and the app must re-register."""
    call = await fake.originate()
    await _next(events)
    await fake.restart()

    assert () == await ari.list_channels()
    assert fake.channel(call.id).hung_up
    with pytest.raises(AriNotFound):
        await ari.get_channel(call.id)


async def test_wait_for_event_finds_past_and_future_events(
    fake: FakeAsterisk, events: EventStream
) -> None:
    """``wait_for_event`` returns an emitted event of that type, optionally per channel."""
    call = await fake.originate()
    start = await fake.wait_for_event("StasisStart", channel_id=call.id)

    assert call.id == start["channel"]["id"]
    with pytest.raises(TimeoutError):
        await fake.wait_for_event("StasisEnd", within=0.05)


async def test_events_caused_by_a_request_go_out_before_its_response(
    fake: FakeAsterisk, ari: AriClient, events: EventStream
) -> None:
    """As in Asterisk, ChannelStateChange precedes the 204 of /answer, ChannelVarset /variable's."""
    call = await fake.originate()
    await _next(events)
    await ari.answer(call.id)
    after_answer = fake.events[-1].event["type"]
    await ari.set_variable(call.id, "K", "v")
    after_variable = fake.events[-1].event["type"]

    assert ("ChannelStateChange", "ChannelVarset") == (after_answer, after_variable)
