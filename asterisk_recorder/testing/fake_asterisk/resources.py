"""The ARI resources the fake serves: channels, playbacks, applications, asterisk info.

This module owns ``FakeResources``: one handler per REST route (originate, get, hang up,
answer, ring, play, send DTMF, get/set a variable, continue, playbacks, applications and
subscriptions, ``/asterisk/info`` and ``/ping``), each checking its parameters and the
channel's Stasis state and answering with Asterisk 22's status codes and bodies. Handlers get
parsed parameters; they must not do routing, authentication or fault injection (``rest``).
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from aiohttp import web

from asterisk_recorder.testing.fake_asterisk.channel import (
    HANGUP_CAUSES,
    SOFTHANGUP_EXPLICIT,
    FakeChannel,
    Playback,
)
from asterisk_recorder.testing.fake_asterisk.control import FakeControl
from asterisk_recorder.testing.fake_asterisk.core import error_response
from asterisk_recorder.testing.fake_asterisk.records import ContinueRecord, now_iso

__all__ = ["FakeResources", "parse_caller_id", "variable_assignments"]


class FakeResources(FakeControl):
    """The REST resource handlers (``_h_*``), answering like Asterisk 22."""

    def _stasis_channel(self, channel_id: str) -> FakeChannel | web.Response:
        ch = self.channels.get(channel_id)
        if ch is None:
            return error_response(404, "Channel not found")
        if ch.app is None:
            return error_response(409, "Channel not in Stasis application")
        return ch

    async def _h_info(self, params: Mapping[str, str], body: Any) -> web.Response:
        info = {
            "build": {
                "os": "Linux",
                "kernel": "fake",
                "machine": "x86_64",
                "options": "OPTIONAL_API",
                "date": self._started[:10],
                "user": "fake",
            },
            "system": {"version": self.version, "entity_id": self.asterisk_id},
            "config": {"name": "", "default_language": "en", "setid": {"user": "", "group": ""}},
            "status": {"startup_time": self._started, "last_reload_time": self._started},
        }
        only = params.get("only")
        if only:
            info = {k: v for k, v in info.items() if k in only.split(",")}
        return web.json_response(info)

    async def _h_ping(self, params: Mapping[str, str], body: Any) -> web.Response:
        return web.json_response(
            {"asterisk_id": self.asterisk_id, "ping": "pong", "timestamp": now_iso()}
        )

    async def _h_list_channels(self, params: Mapping[str, str], body: Any) -> web.Response:
        return web.json_response([self.snapshot(ch) for ch in self.channels.values()])

    async def _h_originate(self, params: Mapping[str, str], body: Any) -> web.Response:
        endpoint = params.get("endpoint")
        if not endpoint:
            return error_response(400, "Endpoint must be specified")
        app = params.get("app")
        if not app and not params.get("extension"):
            return error_response(400, "Application or extension must be specified")
        variables: dict[str, str] = {}
        if isinstance(body, dict) and isinstance(body.get("variables"), dict):
            variables = {str(k): str(v) for k, v in body["variables"].items()}
        name, number = parse_caller_id(params.get("callerId", ""))
        try:
            ch = self._new_channel(
                channel_id=params.get("channelId"),
                name=f"{endpoint}-{self._counter + 1:08x}",
                caller_name=name,
                caller_number=number,
                context=params.get("context", "default"),
                extension=params.get("extension", "s"),
                priority=1,
                language="en",
                variables=variables,
            )
        except ValueError:
            return error_response(409, "Channel with given unique ID already exists")
        ch.state = "Down"
        ch.app_name, ch.app_data = "AppDial2", "(Outgoing Line)"
        snap = self.snapshot(ch)
        if app:
            args = tuple(a for a in params.get("appArgs", "").split(",") if a)

            async def answer_into_app() -> None:
                await asyncio.sleep(0)
                if ch.hung_up or app not in self._owners:
                    return
                ch.state = "Up"
                self._enter_stasis(ch, app, args)

            task = asyncio.create_task(answer_into_app())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return web.json_response(snap)

    async def _h_get_channel(self, params: Mapping[str, str], body: Any, cid: str) -> web.Response:
        ch = self.channels.get(cid)
        if ch is None:
            return error_response(404, "Channel not found")
        return web.json_response(self.snapshot(ch))

    async def _h_hangup(self, params: Mapping[str, str], body: Any, cid: str) -> web.Response:
        ch = self.channels.get(cid)
        if ch is None:
            return error_response(404, "Channel not found")
        reason = params.get("reason") or params.get("reason_code")
        cause = 16
        if reason is not None:
            if reason.isdigit():
                cause = int(reason)
            elif reason in HANGUP_CAUSES:
                cause = HANGUP_CAUSES[reason]
            else:
                return error_response(400, "Invalid reason for hangup provided")
        self._hangup(ch, {"cause": SOFTHANGUP_EXPLICIT, "soft": True}, destroy_cause=cause)
        return web.Response(status=204)

    async def _h_answer(self, params: Mapping[str, str], body: Any, cid: str) -> web.Response:
        ch = self._stasis_channel(cid)
        if isinstance(ch, web.Response):
            return ch
        channel = ch

        async def run() -> None:
            if channel.state != "Up":
                channel.state = "Up"
                self._emit_channel(channel, "ChannelStateChange", {})

        if not await self._queue_sync(channel, "answer", run):
            return error_response(500, "Failed to answer channel")
        return web.Response(status=204)

    async def _h_ring(self, params: Mapping[str, str], body: Any, cid: str) -> web.Response:
        ch = self._stasis_channel(cid)
        if isinstance(ch, web.Response):
            return ch

        async def run() -> None:
            return None

        self._queue_async(ch, "ring", run)
        return web.Response(status=204)

    async def _h_play(self, params: Mapping[str, str], body: Any, cid: str) -> web.Response:
        ch = self._stasis_channel(cid)
        if isinstance(ch, web.Response):
            return ch
        media = [m for m in params.get("media", "").split(",") if m]
        if not media:
            return error_response(400, "media: required parameter is missing")
        pb = Playback(
            id=params.get("playbackId") or str(uuid.uuid4()),
            media=media,
            channel_id=ch.id,
            language=params.get("lang") or ch.language,
        )
        if pb.id in self._playbacks:
            return error_response(409, "A playback with the same ID already exists")
        self._playbacks[pb.id] = pb
        channel = ch
        self._queue_async(ch, "play", lambda: self._play(channel, pb))
        return web.json_response(pb.json(), status=201)

    async def _h_dtmf(self, params: Mapping[str, str], body: Any, cid: str) -> web.Response:
        ch = self._stasis_channel(cid)
        if isinstance(ch, web.Response):
            return ch
        dtmf = params.get("dtmf", "")
        if not dtmf:
            return error_response(400, "DTMF is required")
        channel = ch

        async def run() -> None:
            channel.dtmf_sent.append(dtmf)

        self._queue_async(ch, "dtmf", run)
        return web.Response(status=204)

    async def _h_get_var(self, params: Mapping[str, str], body: Any, cid: str) -> web.Response:
        name = params.get("variable")
        if not name:
            return error_response(400, "Variable name is required")
        ch = self._stasis_channel(cid)
        if isinstance(ch, web.Response):
            return ch
        value = self._read_var(ch, name)
        if value is None:
            return error_response(404, "Provided variable was not found")
        return web.json_response({"value": value})

    def _read_var(self, ch: FakeChannel, name: str) -> str | None:
        functions = {
            "CALLERID(num)": ch.caller_number,
            "CALLERID(name)": ch.caller_name,
            "CHANNEL(language)": ch.language,
            "UNIQUEID": ch.id,
            "EXTEN": ch.extension,
            "CONTEXT": ch.context,
            "CHANNEL": ch.name,
        }
        if name in functions:
            return functions[name]
        return ch.variables.get(name)

    async def _h_set_var(self, params: Mapping[str, str], body: Any, cid: str) -> web.Response:
        name = params.get("variable")
        if not name:
            return error_response(400, "Variable name is required")
        ch = self._stasis_channel(cid)
        if isinstance(ch, web.Response):
            return ch
        value = params.get("value", "")
        channel = ch

        async def run() -> None:
            for one, text in variable_assignments(name, value):
                channel.variables[one] = text
                self._emit_channel(
                    channel, "ChannelVarset", {"variable": one, "value": text}, channel_last=False
                )

        if not await self._queue_sync(channel, "variable", run):
            return error_response(500, "Failed to execute function")
        return web.Response(status=204)

    async def _h_continue(self, params: Mapping[str, str], body: Any, cid: str) -> web.Response:
        ch = self._stasis_channel(cid)
        if isinstance(ch, web.Response):
            return ch
        priority: int | None = None
        raw_priority = params.get("priority")
        if raw_priority is not None:
            try:
                priority = int(raw_priority)
            except ValueError:
                return error_response(400, "priority: expected an integer")
        label = params.get("label", "")
        channel = ch

        async def run() -> None:
            app = channel.app
            if app is None:
                return
            context = params.get("context") or channel.context
            extension = params.get("extension") or channel.extension
            target = priority if priority is not None else (None if label else channel.priority + 1)
            record = ContinueRecord(
                channel_id=channel.id,
                context=context,
                extension=extension,
                priority=target,
                label=label,
                variables=MappingProxyType(dict(channel.variables)),
                at=time.monotonic(),
            )
            channel.app = None
            channel.variables["STASISSTATUS"] = "SUCCESS"
            channel.continued = record
            self.continues.append(record)
            self._emit_channel(channel, "StasisEnd", {}, apps=[app])
            channel.context, channel.extension = context, extension
            channel.priority = target if target is not None else 1
            channel.app_name = channel.app_data = ""
            self._start_mixmonitor(channel)
            self._notify(channel.id)

        self._queue_async(ch, "continue", run)
        return web.Response(status=204)

    async def _h_get_playback(self, params: Mapping[str, str], body: Any, pid: str) -> web.Response:
        pb = self._playbacks.get(pid)
        if pb is None:
            return error_response(404, "Playback not found")
        return web.json_response(pb.json())

    async def _h_stop_playback(
        self, params: Mapping[str, str], body: Any, pid: str
    ) -> web.Response:
        pb = self._playbacks.get(pid)
        if pb is None:
            return error_response(404, "Playback not found")
        if pb.state == "queued":
            self._playbacks.pop(pid, None)  # cancelled before it started: no events
        else:
            pb.stop.set()
        return web.Response(status=204)

    def _app_json(self, app: str) -> dict[str, Any]:
        ids = [ch.id for ch in self.channels.values() if ch.app == app or app in ch.subscribers]
        return {
            "name": app,
            "channel_ids": ids,
            "bridge_ids": [],
            "endpoint_ids": [],
            "device_names": [],
            "events_allowed": [],
            "events_disallowed": [],
        }

    async def _h_list_apps(self, params: Mapping[str, str], body: Any) -> web.Response:
        return web.json_response([self._app_json(app) for app in sorted(self._owners)])

    async def _h_get_app(self, params: Mapping[str, str], body: Any, app: str) -> web.Response:
        if app not in self._owners:
            return error_response(404, "Application not found")
        return web.json_response(self._app_json(app))

    async def _h_subscribe(self, params: Mapping[str, str], body: Any, app: str) -> web.Response:
        return self._subscription(params, app, add=True)

    async def _h_unsubscribe(self, params: Mapping[str, str], body: Any, app: str) -> web.Response:
        return self._subscription(params, app, add=False)

    def _subscription(self, params: Mapping[str, str], app: str, *, add: bool) -> web.Response:
        sources = [s for s in params.get("eventSource", "").split(",") if s]
        if not sources:
            return error_response(400, "Missing parameter eventSource")
        if app not in self._owners:
            return error_response(404, "Application not found")
        targets: list[FakeChannel] = []
        for source in sources:
            scheme, _, ident = source.partition(":")
            if scheme != "channel":
                return error_response(400, "Invalid event source URI scheme")
            ch = self.channels.get(ident)
            if ch is None:
                return error_response(422, "Unable to find event source")
            targets.append(ch)
        for ch in targets:
            if add:
                ch.subscribers.add(app)
            elif app in ch.subscribers:
                ch.subscribers.discard(app)
            else:
                return error_response(409, "Application not subscribed to event source")
        return web.json_response(self._app_json(app))


def parse_caller_id(value: str) -> tuple[str, str]:
    match = re.fullmatch(r'\s*"?([^"<]*?)"?\s*<([^>]*)>\s*', value)
    if match:
        return match.group(1), match.group(2)
    return "", value


def variable_assignments(name: str, value: str) -> list[tuple[str, str]]:
    """What one ``POST /variable`` (or AGI ``SET VARIABLE``) sets: ``ARRAY(A,B,...)`` sets
    each, like func_strings does.

    ``ARRAY(A,B)`` with ``x,y`` sets ``A=x`` and ``B=y``; missing values are empty (Asterisk
    22's ``Set(ARRAY(...)=...)``). Any other name is one variable.
    """
    if name.startswith("ARRAY(") and name.endswith(")"):
        names = [n.strip() for n in name[len("ARRAY("):-1].split(",")]
        values = value.split(",")
        return [(n, values[i] if i < len(values) else "") for i, n in enumerate(names) if n]
    return [(name, value)]

