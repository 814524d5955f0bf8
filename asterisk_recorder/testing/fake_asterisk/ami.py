"""A fake Asterisk Manager Interface on a real loopback socket, answering like Asterisk 22.

This module owns ``FakeAmi`` and ``AmiChannel``: an asyncio TCP server on 127.0.0.1 that sends
the banner (``Asterisk Call Manager/11.0.0``), answers ``Login`` (``Authentication accepted``
then ``FullyBooted``; a wrong user or secret gets ``Authentication failed`` and the connection
closed), ``Events``, ``Ping``, ``Logoff``, ``UserEvent`` and ``MixMonitorMute`` (the checks and
messages of ``app_mixmonitor.c``: ``No such channel``, ``Cannot set mute flag``, then the
``MixMonitorMute`` event), ``Permission denied`` before login and ``Invalid/unknown command``
for anything else, as in ``shared/asterisk-traces/*.ami.txt``; and it broadcasts events to the
sessions logged in with events on. Channels are registered by ``FakeAsterisk`` (or by a test
directly); a channel's ``recording`` is the ``FakeRecording`` that a mute silences.

Everything written goes through ``protocol.encode_message``, which refuses CR, LF and NUL, so
no value can become an extra header. It must not know the ARI side of the fake (``server``
wires the two) and it never logs the secret (the ``actions`` log masks it).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from asterisk_recorder.ami.protocol import AmiMessage, AmiParser, encode_message
from asterisk_recorder.errors import AmiProtocolError
from asterisk_recorder.settings import AmiSettings, Secret
from asterisk_recorder.testing.fake_asterisk.mixmonitor import FakeRecording

__all__ = ["BANNER", "AmiChannel", "FakeAmi"]

BANNER = "Asterisk Call Manager/11.0.0"
"""The first line Asterisk 22.10.1 sends (``summary.json`` of the traces)."""
_STATE_DESC = {0: "Down", 4: "Ring", 5: "Ringing", 6: "Up"}
_FALSE = frozenset({"no", "false", "n", "f", "0", "off"})
"""What Asterisk's ``ast_false`` accepts (``State`` of ``MixMonitorMute``)."""
_Fields = list[tuple[str, str]]


@dataclass(eq=False)
class AmiChannel:
    """A channel the fake AMI knows (mutable: its place and recording change as it runs)."""

    name: str
    uniqueid: str
    linkedid: str = ""
    context: str = "default"
    exten: str = "s"
    priority: int = 1
    state: int = 6
    caller_number: str = ""
    caller_name: str = ""
    language: str = "en"
    recording: FakeRecording | None = None
    mixmonitor_id: str = ""

    def headers(self) -> _Fields:
        """The channel snapshot headers every channel event starts with (as in the traces)."""
        return [
            ("Channel", self.name),
            ("ChannelState", str(self.state)),
            ("ChannelStateDesc", _STATE_DESC.get(self.state, "Unknown")),
            ("CallerIDNum", self.caller_number or "<unknown>"),
            ("CallerIDName", self.caller_name or "<unknown>"),
            ("ConnectedLineNum", "<unknown>"),
            ("ConnectedLineName", "<unknown>"),
            ("Language", self.language),
            ("AccountCode", ""),
            ("Context", self.context),
            ("Exten", self.exten),
            ("Priority", str(self.priority)),
            ("Uniqueid", self.uniqueid),
            ("Linkedid", self.linkedid or self.uniqueid),
        ]


class _Session:
    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.authenticated = False
        self.events = True


class FakeAmi:
    """A fake AMI server (see the module docstring). ``async with FakeAmi(...) as ami:``.

    Args:
        username / secret: the manager.conf user that may log in.
        port: 0 for an ephemeral port the first time (the same port after a restart).
    """

    def __init__(self, *, username: str = "recorder",
                 secret: str = "fake-manager-secret",  # noqa: S107 - a fake's throwaway
                 port: int = 0) -> None:
        self.username = username
        self.secret = secret
        self.host = "127.0.0.1"
        self.port = port
        self.channels: dict[str, AmiChannel] = {}
        """Live channels by name."""
        self.actions: list[AmiMessage] = []
        """Every action received, in order (``Secret`` masked)."""
        self.events: list[AmiMessage] = []
        """Every event raised, in order (sent to whoever was logged in with events on)."""
        self.logins = 0
        """Successful logins so far."""
        self._server: asyncio.Server | None = None
        self._sessions: set[_Session] = set()
        self._mmids = 0x7F89F0001900

    # --- lifecycle ----------------------------------------------------------------------

    async def __aenter__(self) -> FakeAmi:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.stop()

    async def start(self) -> None:
        """Listen on 127.0.0.1 (an ephemeral port the first time, the same port afterwards)."""
        if self._server is not None:
            return
        self._server = await asyncio.start_server(
            self._handle, self.host, self.port, reuse_address=True)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Close every session and stop listening."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for session in list(self._sessions):
            session.writer.close()
        self._sessions.clear()
        if server is not None:
            with contextlib.suppress(OSError, ConnectionError):
                await server.wait_closed()

    def settings(self, **overrides: Any) -> AmiSettings:
        """``AmiSettings`` for ``AmiClient`` pointing at this fake (short timeouts for tests)."""
        values: dict[str, Any] = {
            "enabled": True, "host": self.host, "port": self.port, "username": self.username,
            "secret": Secret(self.secret), "connect_timeout": 2.0, "action_timeout": 2.0,
            "reconnect_max": 0.5,
        }
        values.update(overrides)
        return AmiSettings(**values)

    @property
    def sessions(self) -> int:
        """Connections logged in now."""
        return sum(1 for s in self._sessions if s.authenticated)

    # --- what a test (or FakeAsterisk) makes happen -------------------------------------

    def add_channel(self, channel: AmiChannel) -> AmiChannel:
        """Register a live channel (``MixMonitorMute`` finds it by name)."""
        self.channels[channel.name] = channel
        return channel

    def raise_event(self, event: str, fields: Mapping[str, str] | Iterable[tuple[str, str]] = (),
                    *, channel: str | None = None, privilege: str = "call,all") -> AmiMessage:
        """Broadcast ``Event: event`` (after the channel's snapshot headers, if ``channel``).

        Raises:
            KeyError: ``channel`` is not a live channel.
            AmiProtocolError: a key or value that would break the protocol (CR, LF, NUL).
        """
        items = list(fields.items()) if isinstance(fields, Mapping) else list(fields)
        head = self.channels[channel].headers() if channel is not None else []
        message = [("Event", event), ("Privilege", privilege), *head, *items]
        data = encode_message(message)  # refuses line breaks before anything is sent
        self.events.append(AmiMessage(tuple(message)))
        for session in list(self._sessions):
            if session.authenticated and session.events:
                session.writer.write(data)
        return self.events[-1]

    def user_event(self, name: str, fields: Mapping[str, str] | Iterable[tuple[str, str]] = (),
                   *, channel: str | None = None) -> AmiMessage:
        """``UserEvent(name,...)`` run in dialplan on ``channel`` (or by an AMI action)."""
        items = list(fields.items()) if isinstance(fields, Mapping) else list(fields)
        if channel is None:
            return self.raise_event("UserEvent", [("UserEvent", name), *items],
                                    privilege="user,all")
        chan = self.channels[channel]
        return self.raise_event("UserEvent", [*chan.headers(), ("UserEvent", name), *items],
                                privilege="user,all")

    def newexten(self, channel: str, context: str, exten: str = "s", priority: int = 1,
                 application: str = "NoOp", app_data: str = "") -> AmiMessage:
        """The channel runs ``context,exten,priority`` (``Newexten``, as the traces show it)."""
        chan = self.channels[channel]
        chan.context, chan.exten, chan.priority = context, exten, priority
        return self.raise_event("Newexten", [("Extension", exten), ("Application", application),
                                             ("AppData", app_data)],
                                channel=channel, privilege="dialplan,all")

    def queue_caller_join(self, channel: str, queue: str, position: int = 1) -> AmiMessage:
        """The caller joins ``queue`` (``QueueCallerJoin``)."""
        return self.raise_event("QueueCallerJoin", [("Queue", queue), ("Position", str(position)),
                                                    ("Count", str(position))],
                                channel=channel, privilege="agent,all")

    def queue_caller_leave(self, channel: str, queue: str) -> AmiMessage:
        """The caller leaves ``queue`` (``QueueCallerLeave``)."""
        return self.raise_event("QueueCallerLeave", [("Queue", queue), ("Count", "0"),
                                                     ("Position", "1")],
                                channel=channel, privilege="agent,all")

    def start_recording(self, channel: str, recording: FakeRecording,
                        decision_id: str = "") -> str:
        """MixMonitor started on ``channel`` (``i()`` id) and the shipped dialplan's
        ``UserEvent RecordingStarted``; returns the MixMonitorID."""
        chan = self.channels[channel]
        self._mmids += 0x100
        chan.recording, chan.mixmonitor_id = recording, hex(self._mmids)
        self.raise_event("MixMonitorStart", channel=channel)
        self.user_event("RecordingStarted", [
            ("DecisionId", decision_id), ("File", str(recording.path)),
            ("MixMonitorID", chan.mixmonitor_id)], channel=channel)
        return chan.mixmonitor_id

    def hangup(self, channel: str, cause: int = 16, cause_txt: str = "Normal Clearing",
               decision_id: str = "") -> None:
        """The channel hangs up: the hangup handler's ``StopMixMonitor`` (the file closed),
        ``UserEvent RecordingClosed``, then ``Hangup``; the channel is gone."""
        chan = self.channels.get(channel)
        if chan is None:
            return
        if chan.recording is not None:
            chan.recording.close()
            self.raise_event("MixMonitorStop", channel=channel)
            self.user_event("RecordingClosed", [
                ("DecisionId", decision_id), ("File", str(chan.recording.path)),
                ("MixMonitorID", chan.mixmonitor_id)], channel=channel)
        self.raise_event("Hangup", [("Cause", str(cause)), ("Cause-txt", cause_txt)],
                         channel=channel)
        del self.channels[channel]

    # --- the manager session ------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = _Session(writer)
        self._sessions.add(session)
        parser = AmiParser()
        parser.banner = "(client)"  # actions have no banner line
        try:
            writer.write(f"{BANNER}\r\n".encode())
            while data := await reader.read(65536):
                for message in parser.feed(data):
                    if not self._answer(session, message):
                        await writer.drain()
                        return
                await writer.drain()
        except (ConnectionError, OSError, AmiProtocolError):
            pass
        finally:
            self._sessions.discard(session)
            writer.close()

    def _answer(self, session: _Session, message: AmiMessage) -> bool:
        """Answer one action; False when the session ends (``Logoff``, a failed login)."""
        logged = tuple((k, "****" if k.lower() == "secret" else v) for k, v in message.fields)
        self.actions.append(AmiMessage(logged))
        action = (message.get("Action") or "").strip()
        ident = message.get("ActionID")
        reply = self._reply(session, action.lower(), message)
        goodbye = reply[0] == ("Response", "Goodbye")
        keep = not (goodbye or (action.lower() == "login" and not session.authenticated))
        head, rest = reply[:1], reply[1:]
        fields = [*head, *([("ActionID", ident)] if ident is not None else []), *rest]
        try:
            session.writer.write(encode_message(fields))
        except AmiProtocolError:  # an echoed value that would break the protocol
            session.writer.write(encode_message(
                [("Response", "Error"), *([("ActionID", ident)] if ident else []),
                 ("Message", "Invalid header value")]))
        if action.lower() == "login" and session.authenticated and session.events:
            self._send_booted(session)
        return keep

    def _reply(self, session: _Session, action: str, m: AmiMessage) -> _Fields:
        if not action:
            return _error("Missing action in request")
        if action == "login":
            return self._login(session, m)
        if action == "logoff":
            return [("Response", "Goodbye"), ("Message", "Thanks for all the fish.")]
        if not session.authenticated:
            return _error("Permission denied")
        if action == "ping":
            return [("Response", "Success"), ("Ping", "Pong"),
                    ("Timestamp", f"{time.time():.6f}")]
        if action == "events":
            session.events = (m.get("EventMask") or "on").strip().lower() not in _FALSE
            return [("Response", "Success"), ("Events", "On" if session.events else "Off")]
        if action == "userevent":
            name = m.get("UserEvent") or ""
            extra = [(k, v) for k, v in m.fields
                     if k.lower() not in ("action", "actionid", "userevent")]
            self.user_event(name, extra)
            return [("Response", "Success"), ("Message", "Event Sent")]
        if action == "mixmonitormute":
            return self._mute(m)
        return _error("Invalid/unknown command")

    def _login(self, session: _Session, m: AmiMessage) -> _Fields:
        user = (m.get("Username") or "").strip()
        if user.lower() != self.username.lower() or (m.get("Secret") or "") != self.secret:
            session.authenticated = False
            return _error("Authentication failed")
        session.authenticated = True
        session.events = (m.get("Events") or "on").strip().lower() not in _FALSE
        self.logins += 1
        return [("Response", "Success"), ("Message", "Authentication accepted")]

    def _send_booted(self, session: _Session) -> None:
        session.writer.write(encode_message([
            ("Event", "FullyBooted"), ("Privilege", "system,all"), ("Uptime", "1"),
            ("LastReload", "1"), ("Status", "Fully Booted")]))

    def _mute(self, m: AmiMessage) -> _Fields:
        """``MixMonitorMute``, checked in the order of ``app_mixmonitor.c``."""
        direction = (m.get("Direction") or "").strip()
        name = (m.get("Channel") or "").strip()
        state = (m.get("State") or "").strip()
        mmid = (m.get("MixMonitorID") or "").strip()
        if not direction:
            return _error("No direction specified. Must be read, write or both")
        if direction.lower() not in ("read", "write", "both"):
            return _error("Invalid direction specified. Must be read, write or both")
        if not name:
            return _error("No channel specified")
        if not state:
            return _error("No state specified")
        chan = self.channels.get(name)
        if chan is None:
            return _error("No such channel")
        recording = chan.recording
        if recording is None or not recording.is_open or (mmid and mmid != chan.mixmonitor_id):
            return _error("Cannot set mute flag")
        on = state.lower() not in _FALSE
        recording.mute(direction, on)
        self.raise_event("MixMonitorMute",
                         [("Direction", direction), ("State", "1" if on else "0")],
                         channel=name)
        return [("Response", "Success")]


def _error(message: str) -> _Fields:
    return [("Response", "Error"), ("Message", message)]
