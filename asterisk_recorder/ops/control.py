"""The call-control API on the ops HTTP server: pause and resume a call's recording.

This module owns the routes ``POST /calls/{id}/pause``, ``POST /calls/{id}/resume`` and
``GET /calls/{id}/recording``, their bearer-token check and their input rules. ``{id}`` is the
call's decision id (a UUID, as in the ledger and the logs). It defines the ``PauseControl``
port the composition root plugs the pause driver into; it must not decide anything about a
pause (the pause book does) and never echoes, logs or compares the token in a way that leaks it.

* No token configured: the routes do not exist (404), deny by default.
* ``Authorization: Bearer <token>`` missing or wrong: 401 (``WWW-Authenticate: Bearer``), the
  same answer for both, compared in constant time.
* Body (optional JSON object, at most 4 KiB): ``reason`` (text, at most 200 characters,
  control characters refused) and ``actor`` (``[A-Za-z0-9@._:-]``, at most 64; also taken
  from the ``X-Recorder-Actor`` header). The ledger's actor is ``api:<actor>`` (or ``api``).
* Answers: JSON ``{"status", "message", "recording"}`` with 200, 400 (bad input), 404 (no
  running recording), 409 (not allowed now: e.g. a resume inside the payment context), 503
  (Asterisk could not be reached).
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Awaitable, Mapping
from typing import Protocol

from aiohttp import web

from asterisk_recorder.logs import get_logger

__all__ = ["MAX_BODY", "ControlApi", "PauseControl"]

log = get_logger("asterisk_recorder.ops.control")

MAX_BODY = 4096
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_ACTOR = re.compile(r"[A-Za-z0-9@._:-]{1,64}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")
MAX_REASON = 200


class PauseControl(Protocol):
    """What the API asks of the pause driver: ``(status, message, state)`` answers."""

    def pause(self, decision_id: str, actor: str,
              reason: str) -> Awaitable[tuple[int, str, Mapping[str, object] | None]]: ...

    def resume(self, decision_id: str, actor: str,
               reason: str) -> Awaitable[tuple[int, str, Mapping[str, object] | None]]: ...

    def state(self, decision_id: str) -> Mapping[str, object] | None: ...


class _BadRequest(Exception):
    pass


class ControlApi:
    """The routes (see the module docstring); ``mount(app)`` adds them when a token is set."""

    def __init__(self, control: PauseControl, token: str) -> None:
        self._control = control
        self._token = token.encode("utf-8")

    def mount(self, app: web.Application) -> None:
        """Add the routes to ``app`` (nothing when no token is configured)."""
        if not self._token:
            return
        app.router.add_post("/calls/{id}/pause", self._pause)
        app.router.add_post("/calls/{id}/resume", self._resume)
        app.router.add_get("/calls/{id}/recording", self._state)

    def _authorised(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(given.strip().encode("utf-8", "replace"), self._token)

    async def _pause(self, request: web.Request) -> web.Response:
        return await self._act(request, pause=True)

    async def _resume(self, request: web.Request) -> web.Response:
        return await self._act(request, pause=False)

    async def _state(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return _unauthorised()
        decision_id = request.match_info["id"]
        if not _UUID.fullmatch(decision_id):
            return _answer(400, "the call id must be a decision id (a lowercase UUID)", None)
        state = self._control.state(decision_id)
        if state is None:
            return _answer(404, f"no running recording for call {decision_id}", None)
        return _answer(200, str(state.get("state", "")), state)

    async def _act(self, request: web.Request, *, pause: bool) -> web.Response:
        if not self._authorised(request):
            log.warning("control.unauthorised", path=request.path[:80],
                        peer=request.remote or "")
            return _unauthorised()
        decision_id = request.match_info["id"]
        if not _UUID.fullmatch(decision_id):
            return _answer(400, "the call id must be a decision id (a lowercase UUID)", None)
        try:
            actor, reason = await _read(request, pause=pause)
        except _BadRequest as exc:
            return _answer(400, str(exc), None)
        act = self._control.pause if pause else self._control.resume
        status, message, state = await act(decision_id, actor, reason)
        return _answer(status, message, state)


async def _read(request: web.Request, *, pause: bool) -> tuple[str, str]:
    """``(actor, reason)`` from the header and the optional JSON body."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise _BadRequest(f"the body is larger than {MAX_BODY} bytes")
    raw = await request.content.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise _BadRequest(f"the body is larger than {MAX_BODY} bytes")
    body: object = {}
    if raw.strip():
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise _BadRequest("the body is not JSON") from exc
    if not isinstance(body, dict):
        raise _BadRequest("the body must be a JSON object")
    actor = request.headers.get("X-Recorder-Actor") or body.get("actor") or ""
    if actor and (not isinstance(actor, str) or not _ACTOR.fullmatch(actor)):
        raise _BadRequest("actor must be 1-64 of A-Z a-z 0-9 @ . _ : -")
    reason = body.get("reason")
    if reason is None:
        reason = "card payment" if pause else "payment finished"
    if not isinstance(reason, str) or not reason.strip() or len(reason) > MAX_REASON:
        raise _BadRequest(f"reason must be text of 1-{MAX_REASON} characters")
    if _CONTROL.search(reason):
        raise _BadRequest("reason must not contain control characters")
    return (f"api:{actor}" if actor else "api"), reason.strip()


def _answer(status: int, message: str, state: Mapping[str, object] | None) -> web.Response:
    return web.json_response(
        {"status": status, "message": message, "recording": dict(state) if state else None},
        status=status,
    )


def _unauthorised() -> web.Response:
    return web.json_response({"status": 401, "message": "unauthorised"}, status=401,
                             headers={"WWW-Authenticate": "Bearer"})
