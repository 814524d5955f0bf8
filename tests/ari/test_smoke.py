"""End-to-end smoke test: one consent-shaped call through the client, the stream and the fake."""

from __future__ import annotations

import asyncio

from asterisk_recorder.ari import (
    AriClient,
    ChannelDtmfReceived,
    ChannelStateChange,
    ChannelVarset,
    EventStream,
    PlaybackFinished,
    PlaybackStarted,
    StasisEnd,
    StasisStart,
)
from asterisk_recorder.testing import FakeAsterisk


async def test_consent_shaped_call_runs_end_to_end(
    fake: FakeAsterisk, ari: AriClient, events: EventStream
) -> None:
    """Answer, play, DTMF, set a variable and continue produce Asterisk's event sequence."""
    call = await fake.originate(caller_name="Alice", caller_number="5551234", extension="100")
    start = await events.get()
    assert isinstance(start, StasisStart)
    assert "Ring" == start.channel.state
    fake.sounds["test/long-disclosure"] = 1000.0  # ends only when stopped: no timing races
    await ari.answer(call.id)
    playback = await ari.play(call.id, "sound:test/long-disclosure", lang="en")
    await fake.send_dtmf(call.id, "1")
    pending = asyncio.create_task(ari.set_variable(call.id, "CONSENT", "granted"))
    await fake.wait_until(lambda: not fake.channel(call.id).queue.empty())
    await ari.stop_playback(playback.id)
    await pending
    await ari.continue_in_dialplan(call.id, context="consent-record", extension="s", priority=1)
    record = await fake.wait_for_continue(call.id)
    kinds = [type(await asyncio.wait_for(events.get(), 2)) for _ in range(6)]

    assert [
        ChannelStateChange,
        PlaybackStarted,
        ChannelDtmfReceived,
        PlaybackFinished,
        ChannelVarset,
        StasisEnd,
    ] == kinds
    assert ("consent-record", "s", 1) == (record.context, record.extension, record.priority)
    assert "granted" == record.variables["CONSENT"]
