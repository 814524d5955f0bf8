"""What a test makes happen: calls, caller actions, faults, and waiting for the results.

This module owns ``FakeScenarios``, the test-facing verbs of ``FakeAsterisk``: place a call into
an app (``originate``), press keys and hang up as the caller, inject faults (fail, delay or
hold REST calls; refuse, drop or silence event sockets; stall; replace an app; raw frames and
hand-made events), and the ``wait_*`` helpers that sleep on the fake's change notification
instead of polling. It must not answer REST requests itself; restart lives with the server's
lifecycle.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from aiohttp import WSMsgType

from asterisk_recorder.testing.fake_asterisk.channel import FakeChannel
from asterisk_recorder.testing.fake_asterisk.control import FakeControl
from asterisk_recorder.testing.fake_asterisk.core import REASONS, Fault, norm_path
from asterisk_recorder.testing.fake_asterisk.events import event_channel_id
from asterisk_recorder.testing.fake_asterisk.records import ContinueRecord, RecordedRequest

__all__ = ["FakeScenarios"]


class FakeScenarios(FakeControl):
    """The caller's side, fault injection and waiting helpers."""

    # --- calls (the caller's side) ------------------------------------------------------

    async def originate(
        self,
        app: str = "consent-recorder",
        *,
        caller_name: str = "",
        caller_number: str = "",
        extension: str = "s",
        context: str = "default",
        priority: int = 1,
        language: str = "en",
        variables: Mapping[str, str] | None = None,
        args: Sequence[str] = (),
        channel_id: str | None = None,
        name: str | None = None,
        wait_for_app: float = 5.0,
    ) -> FakeChannel:
        """Place a call that runs ``Stasis(app[,args])`` in dialplan.

        The call waits up to ``wait_for_app`` seconds for the app to be registered (a WebSocket
        connected for it). If it is not, the call goes on in dialplan with
        ``STASISSTATUS=FAILED`` like Asterisk does, and no event is sent.
        """
        ch = self._new_channel(
            channel_id=channel_id,
            name=name,
            caller_name=caller_name,
            caller_number=caller_number,
            context=context,
            extension=extension,
            priority=priority,
            language=language,
            variables=variables or {},
        )
        with contextlib.suppress(TimeoutError):
            await self._wait(lambda: app in self._owners, wait_for_app)
        if app not in self._owners:
            ch.variables["STASISSTATUS"] = "FAILED"
            ch.priority += 1
            self._notify()
            return ch
        self._enter_stasis(ch, app, tuple(args))
        return ch

    async def send_dtmf(
        self, channel_id: str, digits: str, *, duration_ms: int = 100, gap_ms: int = 0
    ) -> None:
        """The caller presses ``digits``; each ``ChannelDtmfReceived`` comes at the digit's end."""
        for i, digit in enumerate(digits):
            if i and gap_ms:
                await asyncio.sleep(gap_ms / 1000 * self.time_scale)
            await asyncio.sleep(duration_ms / 1000 * self.time_scale)
            ch = self.channels.get(channel_id)
            if ch is None or ch.app is None:
                return
            self._emit_channel(
                ch, "ChannelDtmfReceived", {"digit": digit, "duration_ms": duration_ms}
            )

    async def hangup(self, channel_id: str, *, cause: int = 16) -> None:
        """The caller hangs up (``ChannelHangupRequest`` with ``cause``, no ``soft``)."""
        ch = self.channels.get(channel_id)
        if ch is None:
            raise KeyError(f"no channel {channel_id!r}")
        self._hangup(ch, {"cause": cause}, destroy_cause=cause)

    # --- faults -------------------------------------------------------------------------

    def fail(
        self,
        method: str,
        path: str,
        status: int = 500,
        message: str | None = None,
        *,
        times: int | None = 1,
        raw_body: str | None = None,
    ) -> None:
        """Answer matching REST calls with ``status`` (``path`` is an fnmatch pattern).

        The body is Asterisk's ``{"message": message}``, or ``raw_body`` verbatim (which may be a
        2xx status with a body that is not JSON, to test the client's protocol checks).
        """
        self._faults.append(
            Fault(
                method.upper(),
                norm_path(path),
                status=status,
                message=message or REASONS.get(status, "Error"),
                times=times,
                raw_body=raw_body,
            )
        )

    def delay(self, method: str, path: str, seconds: float, *, times: int | None = None) -> None:
        """Hold matching REST calls ``seconds`` (real time) before handling them."""
        self._faults.append(Fault(method.upper(), norm_path(path), delay=seconds, times=times))

    def delay_response(
        self, method: str, path: str, seconds: float, *, times: int | None = None
    ) -> None:
        """Answer matching REST calls at once, but hold the answer ``seconds`` on the wire.

        The state the answer shows is the state when the request arrived: a stale snapshot,
        as a slow network or a busy Asterisk gives (``delay`` holds the request instead).
        """
        self._late.append(Fault(method.upper(), norm_path(path), delay=seconds, times=times))

    def clear_faults(self) -> None:
        """Remove every injected REST fault."""
        self._faults.clear()
        self._late.clear()

    def refuse_websockets(self, status: int = 503) -> None:
        """Answer WebSocket upgrades with HTTP ``status`` until ``accept_websockets()``."""
        self._refuse_ws = status

    def answer_pings(self, answer: bool = True) -> None:
        """Whether sockets accepted from now on answer WebSocket pings (False: a silent peer)."""
        self._autoping = answer

    def accept_websockets(self) -> None:
        """Accept WebSocket upgrades again."""
        self._refuse_ws = None

    async def drop_websockets(self, *, abort: bool = False) -> None:
        """Close every event socket (``abort``: reset TCP instead of a close frame)."""
        await self._drop_all(abort=abort)

    def stall(self) -> None:
        """Stop answering: REST calls hang and no event is sent, until ``unstall()``."""
        self._unstalled.clear()

    def unstall(self) -> None:
        """Answer again (held requests and events go out in order)."""
        self._unstalled.set()

    async def replace_application(self, app: str) -> None:
        """Another client took ``app`` over: the owner gets ``ApplicationReplaced``.

        Its socket stays open (as Asterisk leaves it) but gets no more events for ``app``.
        """
        owner = self._owners.get(app)
        if owner is not None:
            self._send(owner, app, self._event("ApplicationReplaced", app, {}))
        self._owners[app] = None
        self._notify()

    async def send_raw(self, data: str | bytes, *, binary: bool = False) -> None:
        """Send one raw frame on every open event socket (for bad-input tests).

        ``bytes`` with ``binary=False`` go out as a *text* frame as they are (e.g. invalid UTF-8).
        """
        kind = WSMsgType.BINARY if binary else WSMsgType.TEXT
        for conn in self._conns:
            conn.out.put_nowait((data, kind))

    async def send_event(self, app: str, event: Mapping[str, Any]) -> None:
        """Send a hand-made event dict to ``app``'s socket (``application`` is filled in)."""
        body = {"asterisk_id": self.asterisk_id, "application": app, **event}
        self._deliver(app, body)

    # --- waiting helpers ----------------------------------------------------------------

    async def wait_for_app(self, app: str, within: float = 5.0) -> None:
        """Wait until a socket owns ``app``."""
        await self._wait(lambda: self._owners.get(app) is not None, within)

    async def wait_for_continue(self, channel_id: str, within: float = 5.0) -> ContinueRecord:
        """Wait until ``channel_id`` was continued to dialplan; return where it went."""
        await self._wait(
            lambda: self.channel(channel_id).continued is not None, within, key=channel_id
        )
        record = self.channel(channel_id).continued
        assert record is not None
        return record

    async def wait_for_hangup(self, channel_id: str, within: float = 5.0) -> None:
        """Wait until ``channel_id`` is hung up."""
        await self._wait(lambda: self.channel(channel_id).hung_up, within)

    async def wait_for_event(
        self,
        event_type: str,
        *,
        channel_id: str | None = None,
        since: int = 0,
        within: float = 5.0,
    ) -> Mapping[str, Any]:
        """Wait for an emitted event of ``event_type`` (optionally about ``channel_id``)."""

        def find() -> Mapping[str, Any] | None:
            if channel_id is not None:
                for index in self._events_about(channel_id):
                    if index >= since and self.events[index].event.get("type") == event_type:
                        return self.events[index].event
                return None
            for sent in self.events[since:]:
                ev = sent.event
                if ev.get("type") == event_type:
                    return ev
            return None

        await self._wait(lambda: find() is not None, within, key=channel_id)
        found = find()
        assert found is not None
        return found

    def _events_about(self, channel_id: str) -> list[int]:
        """Indexes into ``events`` of the events about ``channel_id`` (kept up to date lazily)."""
        index = self._event_index
        done = self._event_indexed
        if done > len(self.events):  # the list was cut by a test: index it again
            index.clear()
            done = 0
        for position in range(done, len(self.events)):
            about = event_channel_id(self.events[position].event)
            if about is not None:
                index.setdefault(about, []).append(position)
        self._event_indexed = len(self.events)
        return index.get(channel_id, [])

    async def wait_for_request(
        self, method: str, path: str, *, since: int = 0, within: float = 5.0
    ) -> RecordedRequest:
        """Wait until a request matching ``method`` and the fnmatch ``path`` was answered."""
        pattern = norm_path(path)

        def find() -> RecordedRequest | None:
            for req in self.requests[since:]:
                if req.method == method.upper() and fnmatch.fnmatchcase(req.path, pattern):
                    return req
            return None

        await self._wait(lambda: find() is not None, within)
        found = find()
        assert found is not None
        return found

    async def wait_until(self, predicate: Callable[[], bool], within: float = 5.0) -> None:
        """Wait until ``predicate()`` is true; it is re-checked whenever the fake changes."""
        await self._wait(predicate, within)
