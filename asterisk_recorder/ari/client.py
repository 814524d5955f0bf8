"""REST client for one Asterisk server's ARI, on aiohttp.

This module owns every HTTP request the product sends to ARI: building the URL (path segments
quoted, credentials only in the ``Authorization`` header, never in the URL), a timeout on every
call, decoding the JSON body into the typed models of ``ari.models``, and translating every
failure into the ``AriError`` tree (raised ``from`` the aiohttp error). It must not interpret
events, keep call state, or retry: deciding what a 404 or a timeout means for a call is the
controller's job. One ``AriClient`` per Asterisk server; any number of apps may share it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any
from urllib.parse import quote

import aiohttp
import structlog
from yarl import URL

from asterisk_recorder.ari.endpoint import ari_base_url, basic_auth_header
from asterisk_recorder.ari.models import (
    Application,
    AsteriskInfo,
    AsteriskPing,
    Channel,
    Playback,
    parse_application,
    parse_asterisk_info,
    parse_asterisk_ping,
    parse_channel,
    parse_playback,
)
from asterisk_recorder.ari.stream import EventStream
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
)
from asterisk_recorder.settings import AriServerSettings

__all__ = ["AriClient", "ari_base_url", "basic_auth_header", "error_for_status"]

_log = structlog.get_logger("asterisk_recorder.ari.client")

QueryValue = str | int | bool
"""What a query parameter may be; bools are sent as ``true``/``false`` like ARI expects."""


def _seg(value: str) -> str:
    """Quote one path segment completely (``/``, ``?``, ``#``, ``%`` and all)."""
    return quote(value, safe="")


def error_for_status(status: int, method: str, path: str, message: str) -> AriHttpError:
    """Map an ARI error status to the most specific ``AriHttpError`` subclass."""
    if status == 400:
        return AriBadRequest(status, method, path, message)
    if status == 404:
        return AriNotFound(status, method, path, message)
    if status == 409:
        return AriConflict(status, method, path, message)
    if status == 412:
        return AriPreconditionFailed(status, method, path, message)
    if status >= 500:
        return AriServerError(status, method, path, message)
    return AriHttpError(status, method, path, message)


def _query(params: Mapping[str, QueryValue | None] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in (params or {}).items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        else:
            out[key] = str(value)
    return out


class AriClient:
    """Typed REST client for one Asterisk server.

    Use as ``async with AriClient(settings) as ari:`` (or call ``close()``). Every method raises
    ``AriNotFound`` (404: for a channel, it is gone), ``AriConflict`` (409: not in Stasis),
    ``AriPreconditionFailed`` (412), ``AriBadRequest`` (400, with Asterisk's message),
    ``AriServerError`` (5xx), ``AriTimeout`` (no answer within ``request_timeout``),
    ``AriConnectionError`` (refused, reset) or ``AriProtocolError`` (a body that is not what ARI
    declares).

    Args:
        settings: the server (URL, user, password, timeout).
        session: an aiohttp session to share; by default the client owns one.
    """

    def __init__(
        self, settings: AriServerSettings, *, session: aiohttp.ClientSession | None = None
    ) -> None:
        self._settings = settings
        self._base = ari_base_url(settings)
        self._base_str = str(self._base)
        self._headers = {"Authorization": basic_auth_header(settings)}
        self._session = session
        self._owns_session = session is None
        self._closed = False

    # --- lifecycle ----------------------------------------------------------------------

    @property
    def settings(self) -> AriServerSettings:
        """The server settings this client was built with."""
        return self._settings

    @property
    def base_url(self) -> URL:
        """``http(s)://host:port/ari`` (no credentials)."""
        return self._base

    @property
    def auth_headers(self) -> Mapping[str, str]:
        """The headers that authenticate a request (for the event WebSocket)."""
        return dict(self._headers)

    def session(self) -> aiohttp.ClientSession:
        """The aiohttp session (created on first use, inside the running loop)."""
        if self._closed:
            raise AriError("AriClient is closed")
        if self._session is None:
            # Each connection is one of Asterisk's http.conf sessions (sessionlimit).
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._settings.max_connections)
            )
        return self._session

    async def __aenter__(self) -> AriClient:
        self.session()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def events(self, apps: Sequence[str] | None = None, **options: Any) -> EventStream:
        """An ``EventStream`` for ``apps`` on this server, sharing this client's session.

        ``options`` are passed to ``EventStream`` (e.g. ``reconnect_initial``). Close the stream
        before the client.
        """
        return EventStream(self._settings, apps=apps, session=self.session(), **options)

    async def close(self) -> None:
        """Close the owned session (idempotent)."""
        self._closed = True
        if self._owns_session and self._session is not None and not self._session.closed:
            await self._session.close()

    # --- core request -------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, QueryValue | None] | None = None,
        body: Mapping[str, Any] | None = None,
        request_timeout: float | None = None,
    ) -> Any:
        """Send one request to ``/ari{path}`` and return the decoded JSON body (None if empty).

        ``path`` must already have its variable segments quoted (the typed methods do that).
        """
        url = URL(self._base_str + path, encoded=True)
        limit = self._settings.request_timeout if request_timeout is None else request_timeout
        started = time.monotonic()
        try:
            async with self.session().request(
                method,
                url,
                params=_query(params),
                json=body,
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=limit),
                allow_redirects=False,
            ) as resp:
                raw = await resp.read()
                status = resp.status
                if status >= 400:
                    message = _error_message(raw, resp.reason or "")
                    cause = aiohttp.ClientResponseError(
                        resp.request_info, resp.history, status=status, message=message
                    )
                    err = error_for_status(status, method, path, message)
                    _log.debug(
                        "ari.request.failed",
                        method=method,
                        path=path,
                        status=status,
                        message=message,
                    )
                    raise err from cause
        except TimeoutError as exc:
            raise AriTimeout(
                f"{method} {path}: no answer within {limit:g} s "
                f"(after {time.monotonic() - started:.3f} s)"
            ) from exc
        except aiohttp.ClientConnectionError as exc:
            raise AriConnectionError(f"{method} {path}: {exc}") from exc
        except aiohttp.ClientError as exc:
            raise AriProtocolError(f"{method} {path}: {exc}") from exc
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except (UnicodeDecodeError, ValueError) as exc:
            raise AriProtocolError(f"{method} {path}: body is not JSON ({exc})") from exc

    async def _object(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        data = await self.request(method, path, **kw)
        if type(data) is not dict:
            raise AriProtocolError(f"{method} {path}: expected a JSON object")
        return data

    async def _list(self, method: str, path: str, **kw: Any) -> list[Any]:
        data = await self.request(method, path, **kw)
        if type(data) is not list:
            raise AriProtocolError(f"{method} {path}: expected a JSON array")
        return data

    # --- asterisk -----------------------------------------------------------------------

    async def asterisk_info(self) -> AsteriskInfo:
        """``GET /asterisk/info``: version, entity id, default language, start time."""
        return parse_asterisk_info(await self._object("GET", "/asterisk/info"))

    async def ping(self) -> AsteriskPing:
        """``GET /asterisk/ping``: cheap liveness check."""
        return parse_asterisk_ping(await self._object("GET", "/asterisk/ping"))

    # --- channels -----------------------------------------------------------------------

    async def list_channels(self) -> tuple[Channel, ...]:
        """``GET /channels``: every channel Asterisk has."""
        items = await self._list("GET", "/channels")
        return tuple(parse_channel(item, f"channels[{i}]") for i, item in enumerate(items))

    async def get_channel(self, channel_id: str) -> Channel:
        """``GET /channels/{id}``; ``AriNotFound`` when the channel is gone."""
        return parse_channel(await self._object("GET", f"/channels/{_seg(channel_id)}"))

    async def originate(
        self,
        endpoint: str,
        *,
        app: str | None = None,
        app_args: str | None = None,
        context: str | None = None,
        extension: str | None = None,
        priority: int | None = None,
        caller_id: str | None = None,
        dial_timeout: int | None = None,
        channel_id: str | None = None,
        variables: Mapping[str, str] | None = None,
    ) -> Channel:
        """``POST /channels``: originate a call to ``endpoint`` into an app or dialplan."""
        params: dict[str, QueryValue | None] = {
            "endpoint": endpoint,
            "app": app,
            "appArgs": app_args,
            "context": context,
            "extension": extension,
            "priority": priority,
            "callerId": caller_id,
            "timeout": dial_timeout,
            "channelId": channel_id,
        }
        body = {"variables": dict(variables)} if variables else None
        return parse_channel(await self._object("POST", "/channels", params=params, body=body))

    async def answer(self, channel_id: str) -> None:
        """``POST /channels/{id}/answer`` (waits behind a running playback on that channel)."""
        await self.request("POST", f"/channels/{_seg(channel_id)}/answer")

    async def ring(self, channel_id: str) -> None:
        """``POST /channels/{id}/ring``: indicate ringing to the caller."""
        await self.request("POST", f"/channels/{_seg(channel_id)}/ring")

    async def hangup(self, channel_id: str, *, reason: str | None = None) -> None:
        """``DELETE /channels/{id}``; ``reason`` is ARI's (``normal``, ``busy``, ...)."""
        await self.request("DELETE", f"/channels/{_seg(channel_id)}", params={"reason": reason})

    async def play(
        self,
        channel_id: str,
        media: str | Sequence[str],
        *,
        lang: str | None = None,
        playback_id: str | None = None,
    ) -> Playback:
        """``POST /channels/{id}/play``: queue ``media`` (``sound:x``; a list is comma-joined)."""
        joined = media if isinstance(media, str) else ",".join(media)
        params: dict[str, QueryValue | None] = {
            "media": joined,
            "lang": lang,
            "playbackId": playback_id,
        }
        data = await self._object("POST", f"/channels/{_seg(channel_id)}/play", params=params)
        return parse_playback(data)

    async def send_dtmf(
        self,
        channel_id: str,
        dtmf: str,
        *,
        duration: int | None = None,
        between: int | None = None,
        before: int | None = None,
        after: int | None = None,
    ) -> None:
        """``POST /channels/{id}/dtmf``: send DTMF digits to the channel."""
        params: dict[str, QueryValue | None] = {
            "dtmf": dtmf,
            "duration": duration,
            "between": between,
            "before": before,
            "after": after,
        }
        await self.request("POST", f"/channels/{_seg(channel_id)}/dtmf", params=params)

    async def get_variable(self, channel_id: str, variable: str) -> str:
        """``GET /channels/{id}/variable``; ``AriNotFound`` also when the variable is unset."""
        data = await self._object(
            "GET", f"/channels/{_seg(channel_id)}/variable", params={"variable": variable}
        )
        value = data.get("value")
        if type(value) is not str:
            raise AriProtocolError("GET variable: expected {'value': string}")
        return value

    async def set_variable(self, channel_id: str, variable: str, value: str) -> None:
        """``POST /channels/{id}/variable`` (waits behind a running playback on that channel).

        Name and value travel in a JSON body (ARI reads query parameters from it), so a long
        or hostile value is never limited by, or written into, a URL.
        """
        await self.request(
            "POST",
            f"/channels/{_seg(channel_id)}/variable",
            body={"variable": variable, "value": value},
        )

    async def continue_in_dialplan(
        self,
        channel_id: str,
        *,
        context: str | None = None,
        extension: str | None = None,
        priority: int | None = None,
        label: str | None = None,
    ) -> None:
        """``POST /channels/{id}/continue``: leave Stasis and go on in dialplan."""
        params: dict[str, QueryValue | None] = {
            "context": context,
            "extension": extension,
            "priority": priority,
            "label": label,
        }
        await self.request("POST", f"/channels/{_seg(channel_id)}/continue", params=params)

    # --- playbacks ----------------------------------------------------------------------

    async def get_playback(self, playback_id: str) -> Playback:
        """``GET /playbacks/{id}``; ``AriNotFound`` once it has finished."""
        return parse_playback(await self._object("GET", f"/playbacks/{_seg(playback_id)}"))

    async def stop_playback(self, playback_id: str) -> None:
        """``DELETE /playbacks/{id}``: stop now; Asterisk still sends ``PlaybackFinished``."""
        await self.request("DELETE", f"/playbacks/{_seg(playback_id)}")

    # --- applications -------------------------------------------------------------------

    async def list_applications(self) -> tuple[Application, ...]:
        """``GET /applications``."""
        items = await self._list("GET", "/applications")
        return tuple(parse_application(item, f"applications[{i}]") for i, item in enumerate(items))

    async def get_application(self, app: str) -> Application:
        """``GET /applications/{app}``: ``channel_ids`` are the channels to resynchronise."""
        return parse_application(await self._object("GET", f"/applications/{_seg(app)}"))

    async def subscribe(self, app: str, event_source: str) -> Application:
        """``POST /applications/{app}/subscription?eventSource=channel:<id>`` and the like."""
        data = await self._object(
            "POST", f"/applications/{_seg(app)}/subscription", params={"eventSource": event_source}
        )
        return parse_application(data)

    async def unsubscribe(self, app: str, event_source: str) -> Application:
        """``DELETE /applications/{app}/subscription?eventSource=...``."""
        data = await self._object(
            "DELETE",
            f"/applications/{_seg(app)}/subscription",
            params={"eventSource": event_source},
        )
        return parse_application(data)


def _error_message(raw: bytes, reason: str) -> str:
    """Asterisk's ``{"message": ...}`` when present, else the HTTP reason phrase."""
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        return reason
    if type(data) is dict and type(data.get("message")) is str:
        return str(data["message"])
    return reason
