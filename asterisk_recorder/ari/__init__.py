"""ARI: a small typed REST client and event stream for Asterisk 22, on aiohttp.

This package owns how the product talks to Asterisk's REST interface: ``AriClient`` (REST, one
per server), ``EventStream`` (the ``/ari/events`` WebSocket with reconnection and a synthetic
``Connected`` event), and the typed models/events they return. It must not hold call state or
make consent decisions; that is the controller's job.
"""

from __future__ import annotations

from asterisk_recorder.ari.client import AriClient
from asterisk_recorder.ari.events import (
    ApplicationRegistered,
    ApplicationReplaced,
    AriEvent,
    ChannelCallerId,
    ChannelConnectedLine,
    ChannelCreated,
    ChannelDestroyed,
    ChannelDialplan,
    ChannelDtmfReceived,
    ChannelHangupRequest,
    ChannelStateChange,
    ChannelUserevent,
    ChannelVarset,
    Connected,
    Dial,
    Disconnected,
    Event,
    PlaybackContinuing,
    PlaybackFinished,
    PlaybackStarted,
    StasisEnd,
    StasisStart,
    StreamEvent,
    UnknownEvent,
    parse_event,
)
from asterisk_recorder.ari.models import (
    Application,
    AsteriskInfo,
    AsteriskPing,
    CallerId,
    Channel,
    DialplanLocation,
    Playback,
)
from asterisk_recorder.ari.stream import EventStream

__all__ = [
    "Application",
    "ApplicationRegistered",
    "ApplicationReplaced",
    "AriClient",
    "AriEvent",
    "AsteriskInfo",
    "AsteriskPing",
    "CallerId",
    "Channel",
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
    "DialplanLocation",
    "Disconnected",
    "Event",
    "EventStream",
    "Playback",
    "PlaybackContinuing",
    "PlaybackFinished",
    "PlaybackStarted",
    "StasisEnd",
    "StasisStart",
    "StreamEvent",
    "UnknownEvent",
    "parse_event",
]
