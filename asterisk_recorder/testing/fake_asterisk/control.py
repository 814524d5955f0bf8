"""What happens to a channel inside Stasis: its control queue, playbacks and hang-up.

This module owns ``FakeControl``: creating channels and putting them into an app
(``StasisStart`` in state ``Ring``), the per-channel control queue that runs commands in order
(``answer`` and ``variable`` wait behind a playback; the others are queued and answered at
once, as ``stasis_app_send_command_async`` does), playing media with scaled durations, and
hanging up in Asterisk's event order. It must not parse HTTP: ``resources`` turns requests
into these operations and ``scenarios`` the caller's actions.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from asterisk_recorder.testing.fake_asterisk.ami import AmiChannel
from asterisk_recorder.testing.fake_asterisk.channel import (
    Command,
    FakeChannel,
    Playback,
    cause_txt,
    media_seconds,
)
from asterisk_recorder.testing.fake_asterisk.events import FakeEvents
from asterisk_recorder.testing.fake_asterisk.mixmonitor import FakeRecording

__all__ = ["FakeControl"]


class FakeControl(FakeEvents):
    """Channel machinery: the Stasis control queue, playbacks and hang-up."""

    def _new_channel(
        self,
        *,
        channel_id: str | None,
        name: str | None,
        caller_name: str,
        caller_number: str,
        context: str,
        extension: str,
        priority: int,
        language: str,
        variables: Mapping[str, str],
    ) -> FakeChannel:
        self._counter += 1
        cid = channel_id or f"{int(time.time())}.{self._counter}"
        if cid in self.channels:
            raise ValueError(f"channel id {cid!r} already exists")
        ch = FakeChannel(
            channel_id=cid,
            name=name or f"PJSIP/caller-{self._counter:08x}",
            caller_name=caller_name,
            caller_number=caller_number,
            context=context,
            extension=extension,
            priority=priority,
            language=language,
            variables=variables,
            protocol_id="",
        )
        self.channels[cid] = ch
        if self.ami is not None:
            self.ami.add_channel(AmiChannel(
                ch.name, cid, cid, context=context, exten=extension, priority=priority, state=4,
                caller_number=caller_number, caller_name=caller_name, language=language))
        return ch

    def _enter_stasis(self, ch: FakeChannel, app: str, args: tuple[str, ...]) -> None:
        ch.app = app
        ch.args = args
        ch.app_name = "Stasis"
        ch.app_data = ",".join((app, *args))
        ch.variables["STASISSTATUS"] = ""
        ch.worker = asyncio.create_task(self._control_loop(ch), name=f"fake-control-{ch.id}")
        self._emit_channel(ch, "StasisStart", {"args": list(args)}, channel_last=True)

    async def _control_loop(self, ch: FakeChannel) -> None:
        while ch.app is not None:
            cmd = await ch.queue.get()
            try:
                await cmd.run()
            except asyncio.CancelledError:
                if cmd.done is not None and not cmd.done.done():
                    cmd.done.cancel()
                raise
            if cmd.done is not None and not cmd.done.done():
                cmd.done.set_result(None)

    def _kill_worker(self, ch: FakeChannel) -> None:
        if ch.worker is not None:
            ch.worker.cancel()
            ch.worker = None
        while not ch.queue.empty():
            cmd = ch.queue.get_nowait()
            if cmd.done is not None and not cmd.done.done():
                cmd.done.cancel()

    async def _queue_sync(
        self, ch: FakeChannel, kind: str, run: Callable[[], Awaitable[None]]
    ) -> bool:
        """Queue a command and wait for it; False if the channel went away first."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        ch.queue.put_nowait(Command(kind, run, done))
        self._notify()
        try:
            await done
        except asyncio.CancelledError:
            if ch.hung_up or ch.app is None:
                return False
            raise
        return True

    def _start_mixmonitor(self, ch: FakeChannel) -> None:
        """Write a real WAV at ``RECORDER_FILE`` when dialplan was told to record."""
        seconds = None if self.mixmonitor_wall_clock else self.mixmonitor_seconds
        path = ch.variables.get("RECORDER_FILE", "")
        if seconds is None and not self.mixmonitor_wall_clock:
            return
        if ch.variables.get("RECORDER_DECISION") != "record":
            return
        if not path.startswith("/") or ch.id in self.recordings:
            return
        recording = FakeRecording(Path(path), seconds)
        self.recordings[ch.id] = recording
        chan = self.ami.channels.get(ch.name) if self.ami is not None else None
        if self.ami is not None and chan is not None:
            chan.context, chan.exten, chan.priority, chan.state = (
                ch.context, ch.extension, ch.priority, 6)
            self.ami.start_recording(ch.name, recording,
                                     ch.variables.get("RECORDER_DECISION_ID", ""))

    def _queue_async(self, ch: FakeChannel, kind: str, run: Callable[[], Awaitable[None]]) -> None:
        ch.queue.put_nowait(Command(kind, run))
        self._notify()

    def _hangup(
        self, ch: FakeChannel, request_fields: Mapping[str, Any], *, destroy_cause: int
    ) -> None:
        """Hang ``ch`` up with Asterisk's event order (all synchronous, so nothing interleaves)."""
        if ch.hung_up:
            return
        was_app = ch.app
        apps = self._apps_for(ch)
        ch.hung_up = True
        ch.hangup_cause = destroy_cause
        self._emit_channel(ch, "ChannelHangupRequest", request_fields, apps=apps)
        pb = ch.playback
        if pb is not None and pb.state == "playing":
            pb.state = "failed"
            self._emit_playback(ch, "PlaybackFinished", pb)
            self._playbacks.pop(pb.id, None)
            ch.playback = None
        for queued in list(self._playbacks.values()):
            if queued.channel_id == ch.id:
                self._playbacks.pop(queued.id, None)
        self._kill_worker(ch)
        recording = self.recordings.get(ch.id)
        if recording is not None:  # the hangup handler's StopMixMonitor closes the file
            recording.close()
        if self.ami is not None:  # RecordingClosed (if recording), then Hangup
            self.ami.hangup(ch.name, destroy_cause, cause_txt(destroy_cause),
                            ch.variables.get("RECORDER_DECISION_ID", ""))
        if was_app is not None:
            ch.app = None
            ch.variables["STASISSTATUS"] = "SUCCESS"
            self._emit_channel(ch, "StasisEnd", {}, apps=[was_app])
        subscribed = sorted(ch.subscribers)
        if subscribed:
            self._emit_channel(
                ch,
                "ChannelDestroyed",
                {"cause": destroy_cause, "cause_txt": cause_txt(destroy_cause)},
                apps=subscribed,
            )
        self.channels.pop(ch.id, None)
        self._gone[ch.id] = ch
        self._notify()

    async def _play(self, ch: FakeChannel, pb: Playback) -> None:
        if pb.id not in self._playbacks:  # stopped while queued
            return
        ch.playback = pb
        pb.state = "playing"
        for index, media in enumerate(pb.media):
            pb.index = index
            self._emit_playback(ch, "PlaybackStarted" if index == 0 else "PlaybackContinuing", pb)
            seconds = self._media_seconds(media, pb.language)
            if seconds is None:
                pb.state = "failed"
                break
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds * self.time_scale):
                    await pb.stop.wait()
            if pb.stop.is_set():
                break
        if pb.state == "playing":
            pb.state = "done"
        ch.playback = None
        self._playbacks.pop(pb.id, None)
        self._emit_playback(ch, "PlaybackFinished", pb)

    def _media_seconds(self, media: str, language: str) -> float | None:
        return media_seconds(media, self.sounds)
