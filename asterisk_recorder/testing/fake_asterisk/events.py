"""The ``/ari/events`` WebSocket side of the fake: sockets, app ownership, event delivery.

This module owns ``FakeEvents``: accepting (or refusing) event sockets for a set of apps, which
socket owns which app (a second one takes it over with ``ApplicationReplaced``), building
events the way Asterisk 22 orders their fields, delivering them in order through a per-socket
sender (held while the fake is stalled), recording every event in ``events``, and dropping
sockets. It must not change channel state: ``control`` decides what happens, this module
tells the app.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from aiohttp import WSMsgType, web

from asterisk_recorder.testing.fake_asterisk.channel import FakeChannel, Playback, channel_snapshot
from asterisk_recorder.testing.fake_asterisk.core import REASONS, FakeCore, error_response
from asterisk_recorder.testing.fake_asterisk.records import RecordedRequest, SentEvent, now_iso
from asterisk_recorder.testing.fake_asterisk.sockets import WsConn

__all__ = ["FakeEvents", "event_channel_id"]


class FakeEvents(FakeCore):
    """Event sockets and event delivery."""

    def snapshot(self, ch: FakeChannel) -> dict[str, Any]:
        """The ARI ``Channel`` JSON of ``ch`` as Asterisk 22 renders it."""
        return channel_snapshot(ch, self.channelvars)

    def _event(self, kind: str, app: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "type": kind,
            "timestamp": now_iso(),
            **fields,
            "asterisk_id": self.asterisk_id,
            "application": app,
        }

    def _apps_for(self, ch: FakeChannel) -> list[str]:
        apps = [ch.app] if ch.app is not None else []
        apps.extend(sorted(a for a in ch.subscribers if a not in apps))
        return apps

    def _emit_channel(
        self,
        ch: FakeChannel,
        kind: str,
        fields: Mapping[str, Any],
        *,
        channel_last: bool = False,
        apps: Sequence[str] | None = None,
    ) -> None:
        for app in apps if apps is not None else self._apps_for(ch):
            if channel_last:
                body = {
                    "type": kind,
                    "timestamp": now_iso(),
                    **fields,
                    "channel": self.snapshot(ch),
                    "asterisk_id": self.asterisk_id,
                    "application": app,
                }
            else:
                body = self._event(kind, app, {**fields, "channel": self.snapshot(ch)})
            self._deliver(app, body)

    def _emit_playback(self, ch: FakeChannel, kind: str, pb: Playback) -> None:
        for app in self._apps_for(ch):
            self._deliver(app, self._event(kind, app, {"playback": pb.json()}))

    def _deliver(self, app: str, body: dict[str, Any]) -> None:
        owner = self._owners.get(app)
        if owner is not None:
            self._send(owner, app, body)
        else:
            self.events.append(SentEvent(app, MappingProxyType(body), False, time.monotonic()))
            self._notify(event_channel_id(body))

    def _send(self, conn: WsConn, app: str, body: dict[str, Any]) -> None:
        self.events.append(SentEvent(app, MappingProxyType(body), True, time.monotonic()))
        conn.out.put_nowait((json.dumps(body, separators=(",", ":")), WSMsgType.TEXT))
        self._notify(event_channel_id(body))

    # --- WebSocket ----------------------------------------------------------------------

    async def _ws_handler(self, request: web.Request) -> web.StreamResponse:
        self.ws_requests.append(
            RecordedRequest(
                method=request.method,
                path=request.rel_url.raw_path,
                query=MappingProxyType(dict(request.query)),
                body="",
                headers=MappingProxyType(dict(request.headers)),
                at=time.monotonic(),
                status=101,
            )
        )
        self._notify()
        if not self._authorised(request):
            return error_response(401, "Authentication required")
        if self._refuse_ws is not None:
            self.ws_refused += 1
            self._notify()
            return error_response(self._refuse_ws, REASONS.get(self._refuse_ws, "Refused"))
        apps = tuple(a for a in request.query.get("app", "").split(",") if a)
        if not apps:
            return error_response(400, "Missing param 'app'")
        ws = web.WebSocketResponse(
            protocols=("ari",), autoping=self._autoping, max_msg_size=1 << 20
        )
        await ws.prepare(request)
        conn = WsConn(self._unstalled, ws, request, apps)
        self._conns.append(conn)
        self.ws_connections += 1
        for app in apps:
            old = self._owners.get(app)
            if old is not None and old is not conn:
                self._send(old, app, self._event("ApplicationReplaced", app, {}))
            self._owners[app] = conn
        self._notify()
        try:
            async for _msg in ws:
                pass  # REST over the socket is not modelled; incoming frames are ignored
        finally:
            for app in apps:
                if self._owners.get(app) is conn:
                    del self._owners[app]
            if conn in self._conns:
                self._conns.remove(conn)
            conn.sender.cancel()
            self._notify()
        return ws

    async def _drop_all(self, *, abort: bool) -> None:
        for conn in list(self._conns):
            if abort:
                transport = conn.request.transport
                if transport is not None:
                    transport.abort()
            else:
                with contextlib.suppress(Exception):
                    await conn.ws.close(code=1001, message=b"shutdown")
        for _ in range(100):
            if not self._conns:
                break
            await asyncio.sleep(0.005)


def event_channel_id(event: Mapping[str, Any]) -> str | None:
    """The id of the channel an event is about (its ``channel``, or a playback's target)."""
    ch = event.get("channel")
    if isinstance(ch, Mapping):
        cid = ch.get("id")
        return cid if isinstance(cid, str) else None
    pb = event.get("playback")
    if isinstance(pb, Mapping):
        target = pb.get("target_uri")
        if isinstance(target, str) and target.startswith("channel:"):
            return target[len("channel:") :]
    return None
