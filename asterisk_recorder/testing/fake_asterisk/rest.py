"""The fake's REST front door: authentication, injected faults, routing, the request log.

This module owns ``FakeRest``: every ``/ari/...`` request passes here; it is checked for Basic
auth (or ``api_key``), held while the fake is stalled, answered by an injected ``Fault`` if one
matches, its JSON body merged into the parameters like Asterisk does, routed to a
``resources`` handler (``404``/``405`` otherwise), optionally held on the wire
(``delay_response``), and recorded in ``requests``. It must not model channels.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable
from types import MappingProxyType
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from asterisk_recorder.testing.fake_asterisk.core import error_response
from asterisk_recorder.testing.fake_asterisk.records import RecordedRequest
from asterisk_recorder.testing.fake_asterisk.resources import FakeResources

__all__ = ["FakeRest"]


_SEG = r"([^/]+)"
_R_INFO = re.compile(r"/ari/asterisk/info")
_R_PING = re.compile(r"/ari/asterisk/ping")
_R_CHANNELS = re.compile(r"/ari/channels")
_R_CHANNEL = re.compile(rf"/ari/channels/{_SEG}")
_R_ANSWER = re.compile(rf"/ari/channels/{_SEG}/answer")
_R_RING = re.compile(rf"/ari/channels/{_SEG}/ring")
_R_PLAY = re.compile(rf"/ari/channels/{_SEG}/play")
_R_DTMF = re.compile(rf"/ari/channels/{_SEG}/dtmf")
_R_VARIABLE = re.compile(rf"/ari/channels/{_SEG}/variable")
_R_CONTINUE = re.compile(rf"/ari/channels/{_SEG}/continue")
_R_PLAYBACK = re.compile(rf"/ari/playbacks/{_SEG}")
_R_APPS = re.compile(r"/ari/applications")
_R_APP = re.compile(rf"/ari/applications/{_SEG}")
_R_SUBSCRIPTION = re.compile(rf"/ari/applications/{_SEG}/subscription")


class FakeRest(FakeResources):
    """Request handling in front of the resource handlers."""

    async def _rest_handler(self, request: web.Request) -> web.StreamResponse:
        arrived = time.monotonic()
        self.in_flight += 1
        self._notify()
        try:
            body_text = await request.text() if request.can_read_body else ""
            await self._unstalled.wait()
            hold = self._late_delay(request.method, request.rel_url.raw_path)
            response = await self._rest(request, body_text)
            if hold:
                await asyncio.sleep(hold)
        finally:
            self.in_flight -= 1
        self.requests.append(
            RecordedRequest(
                method=request.method,
                path=request.rel_url.raw_path,
                query=MappingProxyType(dict(request.query)),
                body=body_text,
                headers=MappingProxyType(dict(request.headers)),
                at=arrived,
                status=response.status,
            )
        )
        self._notify()
        return response

    def _late_delay(self, method: str, path: str) -> float:
        for fault in list(self._late):
            if fault.matches(method, path):
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        self._late.remove(fault)
                return fault.delay
        return 0.0

    async def _rest(self, request: web.Request, body_text: str) -> web.Response:
        if not self._authorised(request):
            resp = error_response(401, "Authentication required")
            resp.headers["WWW-Authenticate"] = 'Basic realm="Asterisk REST Interface"'
            return resp
        method, path = request.method, request.rel_url.raw_path
        for fault in list(self._faults):
            if fault.matches(method, path):
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                if fault.delay:
                    await asyncio.sleep(fault.delay)
                if fault.raw_body is not None and fault.status is not None:
                    return web.Response(
                        status=fault.status, text=fault.raw_body, content_type="application/json"
                    )
                if fault.status is not None:
                    return error_response(fault.status, fault.message)
        params = dict(request.query)
        params.pop("api_key", None)
        body: Any = None
        if body_text:
            try:
                body = json.loads(body_text)
            except ValueError:
                return error_response(400, "Failed to parse request body as JSON")
            if isinstance(body, dict):
                for key, value in body.items():
                    if key != "variables" and key not in params and value is not None:
                        params[key] = value if isinstance(value, str) else json.dumps(value)
        for verb, regex, handler in self._routes():
            match = regex.fullmatch(path)
            if match is None:
                continue
            if verb != method:
                continue
            return await handler(params, body, *(unquote(g) for g in match.groups()))
        if any(regex.fullmatch(path) for _, regex, _ in self._routes()):
            return error_response(405, "Method Not Allowed")
        return error_response(404, "Resource not found")

    def _routes(self) -> list[tuple[str, re.Pattern[str], Callable[..., Awaitable[web.Response]]]]:
        return [
            ("GET", _R_INFO, self._h_info),
            ("GET", _R_PING, self._h_ping),
            ("GET", _R_CHANNELS, self._h_list_channels),
            ("POST", _R_CHANNELS, self._h_originate),
            ("GET", _R_CHANNEL, self._h_get_channel),
            ("DELETE", _R_CHANNEL, self._h_hangup),
            ("POST", _R_ANSWER, self._h_answer),
            ("POST", _R_RING, self._h_ring),
            ("POST", _R_PLAY, self._h_play),
            ("POST", _R_DTMF, self._h_dtmf),
            ("GET", _R_VARIABLE, self._h_get_var),
            ("POST", _R_VARIABLE, self._h_set_var),
            ("POST", _R_CONTINUE, self._h_continue),
            ("GET", _R_PLAYBACK, self._h_get_playback),
            ("DELETE", _R_PLAYBACK, self._h_stop_playback),
            ("GET", _R_APPS, self._h_list_apps),
            ("GET", _R_APP, self._h_get_app),
            ("POST", _R_SUBSCRIPTION, self._h_subscribe),
            ("DELETE", _R_SUBSCRIPTION, self._h_unsubscribe),
        ]
