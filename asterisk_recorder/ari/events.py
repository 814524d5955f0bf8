"""Typed, frozen ARI events and the parser that turns one decoded WebSocket frame into one.

This module owns the event models the controller consumes (field names as in Asterisk 22's
``events.json``), the synthetic ``Connected``/``Disconnected`` events the stream adds, and
``UnknownEvent`` for any type it does not model. It must not do I/O, must not import aiohttp,
and must never let a malformed frame escape as anything but ``AriProtocolError`` (with a reason
naming the field) so the stream can log it and carry on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar, TypeAlias

from asterisk_recorder.ari.models import (
    Channel,
    Playback,
    opt_str,
    parse_channel,
    parse_playback,
    req_int,
    req_obj,
    req_str,
)
from asterisk_recorder.errors import AriProtocolError

__all__ = [
    "EVENT_TYPES",
    "ApplicationRegistered",
    "ApplicationReplaced",
    "AriEvent",
    "ChannelCallerId",
    "ChannelConnectedLine",
    "ChannelCreated",
    "ChannelDestroyed",
    "ChannelDialplan",
    "ChannelDtmfReceived",
    "ChannelHangupRequest",
    "ChannelStateChange",
    "ChannelUserevent",
    "ChannelVarset",
    "Connected",
    "Dial",
    "Disconnected",
    "Event",
    "PlaybackContinuing",
    "PlaybackFinished",
    "PlaybackStarted",
    "StasisEnd",
    "StasisStart",
    "StreamEvent",
    "UnknownEvent",
    "parse_event",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Fields every Asterisk event carries (ARI ``Message`` + ``Event``)."""

    application: str
    timestamp: str
    asterisk_id: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class StasisStart(Event):
    """A channel entered the app; ``args`` are the ``Stasis()`` arguments."""

    type: ClassVar[str] = "StasisStart"
    args: tuple[str, ...]
    channel: Channel
    replace_channel: Channel | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StasisEnd(Event):
    """A channel left the app (hang-up, ``continue``, or ``move``)."""

    type: ClassVar[str] = "StasisEnd"
    channel: Channel


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelDtmfReceived(Event):
    """The caller pressed ``digit`` for ``duration_ms`` (sent at the end of the digit)."""

    type: ClassVar[str] = "ChannelDtmfReceived"
    digit: str
    duration_ms: int
    channel: Channel


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelHangupRequest(Event):
    """A hang-up was requested; ``soft`` hang-ups carry softhangup flags in ``cause``."""

    type: ClassVar[str] = "ChannelHangupRequest"
    channel: Channel
    cause: int | None = None
    soft: bool = False
    tech_cause: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelDestroyed(Event):
    """The channel is gone for good."""

    type: ClassVar[str] = "ChannelDestroyed"
    channel: Channel
    cause: int
    cause_txt: str
    tech_cause: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelStateChange(Event):
    """The channel's ``state`` changed (e.g. ``Ring`` -> ``Up`` on answer)."""

    type: ClassVar[str] = "ChannelStateChange"
    channel: Channel


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelVarset(Event):
    """A channel (or global, when ``channel`` is None) variable was set."""

    type: ClassVar[str] = "ChannelVarset"
    variable: str
    value: str
    channel: Channel | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PlaybackStarted(Event):
    """A playback began playing."""

    type: ClassVar[str] = "PlaybackStarted"
    playback: Playback


@dataclass(frozen=True, slots=True, kw_only=True)
class PlaybackContinuing(Event):
    """A playback moved on to its next media URI."""

    type: ClassVar[str] = "PlaybackContinuing"
    playback: Playback


@dataclass(frozen=True, slots=True, kw_only=True)
class PlaybackFinished(Event):
    """A playback ended: ``playback.state`` is ``done`` (also when stopped) or ``failed``."""

    type: ClassVar[str] = "PlaybackFinished"
    playback: Playback


@dataclass(frozen=True, slots=True, kw_only=True)
class ApplicationReplaced(Event):
    """Another connection took this app over; this socket no longer gets its events."""

    type: ClassVar[str] = "ApplicationReplaced"


@dataclass(frozen=True, slots=True, kw_only=True)
class ApplicationRegistered(Event):
    """The app was registered (outbound WebSockets send it first)."""

    type: ClassVar[str] = "ApplicationRegistered"


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelCallerId(Event):
    """The channel's caller id changed."""

    type: ClassVar[str] = "ChannelCallerId"
    caller_presentation: int
    caller_presentation_txt: str
    channel: Channel


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelConnectedLine(Event):
    """The channel's connected line changed."""

    type: ClassVar[str] = "ChannelConnectedLine"
    channel: Channel


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelCreated(Event):
    """A channel was created."""

    type: ClassVar[str] = "ChannelCreated"
    channel: Channel


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelDialplan(Event):
    """The channel started a dialplan application."""

    type: ClassVar[str] = "ChannelDialplan"
    channel: Channel
    dialplan_app: str
    dialplan_app_data: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelUserevent(Event):
    """A dialplan ``UserEvent()``; ``userevent`` holds its key/value pairs as sent."""

    type: ClassVar[str] = "ChannelUserevent"
    eventname: str
    userevent: Mapping[str, Any] = field(hash=False)
    channel: Channel | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Dial(Event):
    """Dial progress between ``caller`` (absent for originates) and ``peer``."""

    type: ClassVar[str] = "Dial"
    peer: Channel
    dialstatus: str
    caller: Channel | None = None
    forwarded: Channel | None = None
    forward: str = ""
    dialstring: str = ""


@dataclass(frozen=True, slots=True)
class UnknownEvent:
    """An event of a type this package does not model; ``raw`` is the decoded frame."""

    type: str
    raw: Mapping[str, Any] = field(hash=False)
    application: str = ""


@dataclass(frozen=True, slots=True)
class Connected:
    """Synthetic: the event WebSocket is (re)connected. Resynchronise now.

    Asterisk does not queue events while no socket is connected, so after every ``Connected``
    the controller must ask ``GET /applications/{app}`` which channels are still in the app.

    Attributes:
        apps: the app names subscribed on this socket.
        server: the label of the Asterisk server (``AriServerSettings.name``).
        connection: 1 for the first connection, 2 for the first reconnection, and so on.
        at: wall-clock Unix time of the connection.
    """

    type: ClassVar[str] = "Connected"
    apps: tuple[str, ...]
    server: str
    connection: int
    at: float

    @property
    def reconnected(self) -> bool:
        """True from the second connection on."""
        return self.connection > 1


@dataclass(frozen=True, slots=True)
class Disconnected:
    """Synthetic: the event WebSocket went away; the stream is reconnecting.

    Attributes:
        apps / server: as in ``Connected``.
        reason: why (close code, error text).
        at: wall-clock Unix time.
    """

    type: ClassVar[str] = "Disconnected"
    apps: tuple[str, ...]
    server: str
    reason: str
    at: float


AriEvent: TypeAlias = (
    StasisStart
    | StasisEnd
    | ChannelDtmfReceived
    | ChannelHangupRequest
    | ChannelDestroyed
    | ChannelStateChange
    | ChannelVarset
    | PlaybackStarted
    | PlaybackContinuing
    | PlaybackFinished
    | ApplicationReplaced
    | ApplicationRegistered
    | ChannelCallerId
    | ChannelConnectedLine
    | ChannelCreated
    | ChannelDialplan
    | ChannelUserevent
    | Dial
    | UnknownEvent
)
"""Every event ``parse_event`` can return."""

StreamEvent: TypeAlias = AriEvent | Connected | Disconnected
"""Every item an ``EventStream`` yields."""


# --- parsing -------------------------------------------------------------------------------


def _base(raw: Mapping[str, Any], where: str) -> dict[str, Any]:
    return {
        "application": req_str(raw, "application", where),
        "timestamp": req_str(raw, "timestamp", where),
        "asterisk_id": opt_str(raw, "asterisk_id", where),
    }


def _channel(raw: Mapping[str, Any], key: str, where: str) -> Channel:
    return parse_channel(req_obj(raw, key, where), f"{where}.{key}")


def _opt_channel(raw: Mapping[str, Any], key: str, where: str) -> Channel | None:
    value = raw.get(key)
    if value is None:
        return None
    return parse_channel(value, f"{where}.{key}")


def _opt_int(raw: Mapping[str, Any], key: str, where: str) -> int | None:
    value = raw.get(key)
    if value is None:
        return None
    if type(value) is not int:
        raise AriProtocolError(f"{where}.{key}: expected integer, got {type(value).__name__}")
    return value


def _stasis_start(raw: Mapping[str, Any], w: str) -> AriEvent:
    args = raw.get("args", [])
    if type(args) is not list or any(type(a) is not str for a in args):
        raise AriProtocolError(f"{w}.args: expected a list of strings")
    return StasisStart(
        **_base(raw, w),
        args=tuple(args),
        channel=_channel(raw, "channel", w),
        replace_channel=_opt_channel(raw, "replace_channel", w),
    )


def _stasis_end(raw: Mapping[str, Any], w: str) -> AriEvent:
    return StasisEnd(**_base(raw, w), channel=_channel(raw, "channel", w))


def _dtmf(raw: Mapping[str, Any], w: str) -> AriEvent:
    return ChannelDtmfReceived(
        **_base(raw, w),
        digit=req_str(raw, "digit", w),
        duration_ms=req_int(raw, "duration_ms", w),
        channel=_channel(raw, "channel", w),
    )


def _hangup_request(raw: Mapping[str, Any], w: str) -> AriEvent:
    soft = raw.get("soft", False)
    if type(soft) is not bool:
        raise AriProtocolError(f"{w}.soft: expected boolean, got {type(soft).__name__}")
    return ChannelHangupRequest(
        **_base(raw, w),
        channel=_channel(raw, "channel", w),
        cause=_opt_int(raw, "cause", w),
        soft=soft,
        tech_cause=_opt_int(raw, "tech_cause", w),
    )


def _destroyed(raw: Mapping[str, Any], w: str) -> AriEvent:
    return ChannelDestroyed(
        **_base(raw, w),
        channel=_channel(raw, "channel", w),
        cause=req_int(raw, "cause", w),
        cause_txt=req_str(raw, "cause_txt", w),
        tech_cause=_opt_int(raw, "tech_cause", w),
    )


def _state_change(raw: Mapping[str, Any], w: str) -> AriEvent:
    return ChannelStateChange(**_base(raw, w), channel=_channel(raw, "channel", w))


def _varset(raw: Mapping[str, Any], w: str) -> AriEvent:
    return ChannelVarset(
        **_base(raw, w),
        variable=req_str(raw, "variable", w),
        value=req_str(raw, "value", w),
        channel=_opt_channel(raw, "channel", w),
    )


def _playback(
    cls: type[PlaybackStarted | PlaybackContinuing | PlaybackFinished],
) -> Callable[[Mapping[str, Any], str], AriEvent]:
    def parse(raw: Mapping[str, Any], w: str) -> AriEvent:
        return cls(
            **_base(raw, w), playback=parse_playback(req_obj(raw, "playback", w), f"{w}.playback")
        )

    return parse


def _replaced(raw: Mapping[str, Any], w: str) -> AriEvent:
    return ApplicationReplaced(**_base(raw, w))


def _registered(raw: Mapping[str, Any], w: str) -> AriEvent:
    return ApplicationRegistered(**_base(raw, w))


def _caller_id(raw: Mapping[str, Any], w: str) -> AriEvent:
    return ChannelCallerId(
        **_base(raw, w),
        caller_presentation=req_int(raw, "caller_presentation", w),
        caller_presentation_txt=req_str(raw, "caller_presentation_txt", w),
        channel=_channel(raw, "channel", w),
    )


def _connected_line(raw: Mapping[str, Any], w: str) -> AriEvent:
    return ChannelConnectedLine(**_base(raw, w), channel=_channel(raw, "channel", w))


def _created(raw: Mapping[str, Any], w: str) -> AriEvent:
    return ChannelCreated(**_base(raw, w), channel=_channel(raw, "channel", w))


def _dialplan(raw: Mapping[str, Any], w: str) -> AriEvent:
    return ChannelDialplan(
        **_base(raw, w),
        channel=_channel(raw, "channel", w),
        dialplan_app=req_str(raw, "dialplan_app", w),
        dialplan_app_data=req_str(raw, "dialplan_app_data", w),
    )


def _userevent(raw: Mapping[str, Any], w: str) -> AriEvent:
    return ChannelUserevent(
        **_base(raw, w),
        eventname=req_str(raw, "eventname", w),
        userevent=MappingProxyType(dict(req_obj(raw, "userevent", w))),
        channel=_opt_channel(raw, "channel", w),
    )


def _dial(raw: Mapping[str, Any], w: str) -> AriEvent:
    return Dial(
        **_base(raw, w),
        peer=_channel(raw, "peer", w),
        dialstatus=req_str(raw, "dialstatus", w),
        caller=_opt_channel(raw, "caller", w),
        forwarded=_opt_channel(raw, "forwarded", w),
        forward=opt_str(raw, "forward", w),
        dialstring=opt_str(raw, "dialstring", w),
    )


_PARSERS: dict[str, Callable[[Mapping[str, Any], str], AriEvent]] = {
    "StasisStart": _stasis_start,
    "StasisEnd": _stasis_end,
    "ChannelDtmfReceived": _dtmf,
    "ChannelHangupRequest": _hangup_request,
    "ChannelDestroyed": _destroyed,
    "ChannelStateChange": _state_change,
    "ChannelVarset": _varset,
    "PlaybackStarted": _playback(PlaybackStarted),
    "PlaybackContinuing": _playback(PlaybackContinuing),
    "PlaybackFinished": _playback(PlaybackFinished),
    "ApplicationReplaced": _replaced,
    "ApplicationRegistered": _registered,
    "ChannelCallerId": _caller_id,
    "ChannelConnectedLine": _connected_line,
    "ChannelCreated": _created,
    "ChannelDialplan": _dialplan,
    "ChannelUserevent": _userevent,
    "Dial": _dial,
}

EVENT_TYPES: Mapping[str, type[Event]] = MappingProxyType(
    {
        cls.type: cls
        for cls in (
            StasisStart,
            StasisEnd,
            ChannelDtmfReceived,
            ChannelHangupRequest,
            ChannelDestroyed,
            ChannelStateChange,
            ChannelVarset,
            PlaybackStarted,
            PlaybackContinuing,
            PlaybackFinished,
            ApplicationReplaced,
            ApplicationRegistered,
            ChannelCallerId,
            ChannelConnectedLine,
            ChannelCreated,
            ChannelDialplan,
            ChannelUserevent,
            Dial,
        )
    }
)
"""ARI event type name -> the model class that represents it."""


def parse_event(raw: Any) -> AriEvent:
    """Turn one decoded frame into a typed event.

    Unknown ``type`` values give ``UnknownEvent``; anything malformed (not an object, no
    ``type``, a declared field missing or of the wrong JSON type) raises ``AriProtocolError``
    with the field path in its message.
    """
    if type(raw) is not dict:
        raise AriProtocolError(f"frame: expected a JSON object, got {type(raw).__name__}")
    kind = raw.get("type")
    if type(kind) is not str:
        raise AriProtocolError("frame.type: missing or not a string")
    parser = _PARSERS.get(kind)
    if parser is None:
        app = raw.get("application")
        return UnknownEvent(
            type=kind, raw=MappingProxyType(raw), application=app if type(app) is str else ""
        )
    return parser(raw, kind)
