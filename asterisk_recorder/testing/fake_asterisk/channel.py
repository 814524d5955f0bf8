"""The fake's channel model: a channel's state, its playbacks, its control queue, its JSON.

This module owns ``FakeChannel`` (what a test may read about one call), the ``Playback`` and
queued ``Command`` of a channel, the sounds the fake knows (``DEFAULT_SOUNDS``) and how long
media plays, the hang-up cause names and texts, and ``channel_snapshot`` (the ARI ``Channel``
JSON as Asterisk 22 renders it). It must not send events or answer requests: ``control`` and
``events`` drive it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from asterisk_recorder.testing.fake_asterisk.records import ContinueRecord, now_iso

__all__ = [
    "DEFAULT_SOUNDS",
    "DIGIT_SECONDS",
    "HANGUP_CAUSES",
    "SOFTHANGUP_EXPLICIT",
    "Command",
    "FakeChannel",
    "Playback",
    "cause_txt",
    "channel_snapshot",
    "media_seconds",
]


DEFAULT_SOUNDS: Mapping[str, float] = MappingProxyType(
    {
        "hello-world": 1.40,  # measured in the traces: PlaybackStarted -> Finished 1.402 s
        "beep": 0.25,
        "recorder/consent-announce": 4.0,
        "recorder/consent-opt-in": 6.0,
        "recorder/consent-opt-out": 5.0,
        "silence/1": 1.0,
        "silence/2": 2.0,
    }
)
"""Seconds each known sound plays (before ``time_scale``). Anything else fails like Asterisk."""

DIGIT_SECONDS = 0.5
HANGUP_CAUSES = {
    "normal": 16,
    "busy": 17,
    "congestion": 34,
    "no_answer": 19,
    "timeout": 19,
    "rejected": 21,
    "unallocated": 1,
    "normal_unspecified": 31,
    "number_incomplete": 28,
    "codec_mismatch": 58,
    "interworking": 127,
    "failure": 38,
    "answered_elsewhere": 26,
}
SOFTHANGUP_EXPLICIT = 32
"""ARI ``DELETE /channels/{id}`` is a soft hang-up; its ``ChannelHangupRequest.cause`` carries
the softhangup flag AST_SOFTHANGUP_EXPLICIT (32), as the traces show."""


@dataclass(eq=False)
class Playback:
    """One playback on a channel (mutable: its state and media index advance as it plays)."""

    id: str
    media: list[str]
    channel_id: str
    language: str
    state: str = "queued"
    index: int = 0
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def json(self) -> dict[str, Any]:
        """The ARI ``Playback`` JSON, as in ``PlaybackStarted``/``Finished`` events."""
        out: dict[str, Any] = {
            "id": self.id,
            "media_uri": self.media[self.index],
            "target_uri": f"channel:{self.channel_id}",
            "language": self.language,
            "state": self.state,
        }
        if self.index + 1 < len(self.media):
            out["next_media_uri"] = self.media[self.index + 1]
        return out


@dataclass(eq=False)
class Command:
    """A request queued on a channel's control queue; ``done`` is set when it has run."""

    kind: str
    run: Callable[[], Awaitable[None]]
    done: asyncio.Future[None] | None = None


class FakeChannel:
    """The fake's view of one channel. Read it in tests; change it only through the fake."""

    def __init__(
        self,
        *,
        channel_id: str,
        name: str,
        caller_name: str,
        caller_number: str,
        context: str,
        extension: str,
        priority: int,
        language: str,
        variables: Mapping[str, str],
        protocol_id: str,
    ) -> None:
        self.id = channel_id
        self.name = name
        self.state = "Ring"
        self.caller_name = caller_name
        self.caller_number = caller_number
        self.context = context
        self.extension = extension
        self.priority = priority
        self.app_name = ""
        self.app_data = ""
        self.language = language
        self.protocol_id = protocol_id
        self.creationtime = now_iso()
        self.variables: dict[str, str] = dict(variables)
        self.app: str | None = None
        """The Stasis app the channel is in, None outside Stasis."""
        self.args: tuple[str, ...] = ()
        self.hung_up = False
        self.hangup_cause: int | None = None
        self.continued: ContinueRecord | None = None
        self.dtmf_sent: list[str] = []
        """DTMF the app sent *to* the caller with ``POST /dtmf``."""
        self.subscribers: set[str] = set()
        """Apps subscribed with ``POST /applications/{app}/subscription``."""
        self.listed_vars: tuple[str, ...] = tuple(variables)
        """Variables shown as ``channelvars`` when the fake has no ``channelvars`` list."""
        self.playback: Playback | None = None
        self.queue: asyncio.Queue[Command] = asyncio.Queue()
        self.worker: asyncio.Task[None] | None = None

    @property
    def in_stasis(self) -> bool:
        """True while the channel is in a Stasis app."""
        return self.app is not None


def channel_snapshot(ch: FakeChannel, channelvars: Sequence[str] | None) -> dict[str, Any]:
    """The ARI ``Channel`` JSON of ``ch`` as Asterisk 22 renders it.

    ``channelvars`` are the variable names listed (``ari.conf`` ``channelvars``); None lists the
    variables the call was originated with, if any.
    """
    snap: dict[str, Any] = {
        "id": ch.id,
        "name": ch.name,
        "state": ch.state,
        "protocol_id": ch.protocol_id,
        "caller": {"name": ch.caller_name, "number": ch.caller_number},
        "connected": {"name": ch.caller_name, "number": ch.caller_number},
        "accountcode": "",
        "dialplan": {
            "context": ch.context,
            "exten": ch.extension,
            "priority": ch.priority,
            "app_name": ch.app_name,
            "app_data": ch.app_data,
        },
        "creationtime": ch.creationtime,
        "language": ch.language,
    }
    names: Iterable[str] | None = channelvars
    if names is None:
        names = ch.listed_vars or None
    if names is not None:
        snap["channelvars"] = {n: ch.variables.get(n, "") for n in names}
    return snap


def media_seconds(media: str, sounds: Mapping[str, float]) -> float | None:
    """Seconds ``media`` (``sound:``, ``digits:``, ``number:``, ``recording:``) plays.

    None: Asterisk could not play it (an unknown sound or a malformed URI).
    """
    scheme, _, rest = media.partition(":")
    if scheme == "sound":
        return sounds.get(rest)
    if scheme == "digits" and rest and all(c in "0123456789*#" for c in rest):
        return DIGIT_SECONDS * len(rest)
    if scheme == "number" and rest.lstrip("-").isdigit():
        return DIGIT_SECONDS * len(rest)
    if scheme == "recording":
        return sounds.get(media)
    return None


def cause_txt(cause: int) -> str:
    """Asterisk's ``cause_txt`` for a hang-up cause code."""
    return {
        16: "Normal Clearing",
        17: "User busy",
        19: "No user responding",
        21: "Call Rejected",
        34: "Circuit/channel congestion",
    }.get(cause, "Unknown")
