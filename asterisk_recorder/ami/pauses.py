"""AMI as the pause driver's transport: events in, ``MixMonitorMute`` out.

This module owns ``pause_event`` (one AMI message -> the pause book's event, or None) and
``AmiMuteControl`` (the ``MuteControl`` port over an AMI client). What it reads:

* ``UserEvent RecordingStarted`` / ``RecordingClosed``: raised by the shipped dialplan
  (``recorder-consent-apply`` and its hangup handler) with ``DecisionId``, ``File`` and
  ``MixMonitorID``; the channel headers (``Channel``, ``Uniqueid``, ``Linkedid``) say where.
* ``UserEvent RecorderPause`` / ``RecorderResume``: the feature codes of
  ``dialplan/recorder-pause.conf`` (pressed on the agent's leg, which shares the call's
  ``Linkedid``); the actor is ``agent:<channel>``.
* ``Newexten`` (the channel's context), ``QueueCallerJoin`` / ``QueueCallerLeave`` /
  ``QueueCallerAbandon`` (its queue), ``Hangup`` (the recording ends at the latest there).

Every value is data: a decision id must be a UUID, names are cut at 200 characters and text
with control characters is dropped. It must not decide anything (the pause book does).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Protocol

from asterisk_recorder.ami.protocol import AmiMessage
from asterisk_recorder.errors import AmiActionFailed, ChannelGone
from asterisk_recorder.flow.pause import (
    ContextEntered,
    PauseEvent,
    PauseRequested,
    QueueJoined,
    QueueLeft,
    RecordingClosed,
    RecordingStarted,
    ResumeRequested,
)

__all__ = ["FEATURE_EVENTS", "AmiMuteControl", "pause_event"]

FEATURE_EVENTS = ("RecorderPause", "RecorderResume")
"""The user events the feature codes raise."""

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_BAD = re.compile(r"[\x00-\x1f\x7f]")
_MAX = 200


def _text(message: AmiMessage, name: str) -> str:
    value = message.get(name) or ""
    if _BAD.search(value):
        return ""
    return value.strip()[:_MAX]


def pause_event(message: AmiMessage, at: float) -> PauseEvent | None:
    """The pause book's event for ``message`` (received at ``at``), or None."""
    kind = message.get("Event")
    if kind is None:
        return None
    uniqueid = _text(message, "Uniqueid")
    if kind == "UserEvent":
        name = _text(message, "UserEvent")
        decision = _text(message, "DecisionId")
        decision = decision if _UUID.fullmatch(decision) else ""
        if name == "RecordingStarted" and decision:
            mmid = _text(message, "MixMonitorID")
            channel = _text(message, "Channel")
            if not (mmid and channel):
                return None
            return RecordingStarted(at, decision, channel, uniqueid,
                                    _text(message, "Linkedid") or uniqueid, mmid,
                                    _text(message, "File"))
        if name == "RecordingClosed":
            return RecordingClosed(at, decision, uniqueid)
        if name in FEATURE_EVENTS:
            reason = _text(message, "Reason") or "feature code"
            actor = f"agent:{_text(message, 'Channel') or 'unknown'}"
            request = PauseRequested if name == "RecorderPause" else ResumeRequested
            return request(at, "feature", actor, reason, decision_id=decision,
                           uniqueid=uniqueid, linkedid=_text(message, "Linkedid"))
        return None
    if kind == "Newexten":
        context = _text(message, "Context")
        return ContextEntered(at, uniqueid, context) if uniqueid and context else None
    if kind == "QueueCallerJoin":
        queue = _text(message, "Queue")
        return QueueJoined(at, uniqueid, queue) if uniqueid and queue else None
    if kind in ("QueueCallerLeave", "QueueCallerAbandon"):
        queue = _text(message, "Queue")
        return QueueLeft(at, uniqueid, queue) if uniqueid and queue else None
    if kind == "Hangup" and uniqueid:
        return RecordingClosed(at, "", uniqueid)
    return None


class _Actions(Protocol):
    async def action(self, name: str, fields: Mapping[str, str] | None = ..., *,
                     wait: float | None = None) -> AmiMessage: ...


class AmiMuteControl:
    """``MixMonitorMute`` (direction both) of one recording; ``ChannelGone`` for a channel
    Asterisk no longer has, other ``AmiError`` as raised by the client."""

    def __init__(self, client: _Actions) -> None:
        self._client = client

    async def mute(self, channel: str, mixmonitor_id: str, mute: bool) -> None:
        fields = {"Channel": channel, "Direction": "both", "State": "1" if mute else "0"}
        if mixmonitor_id:
            fields["MixMonitorID"] = mixmonitor_id
        try:
            await self._client.action("MixMonitorMute", fields)
        except AmiActionFailed as exc:
            if "no such channel" in str(exc).lower():
                raise ChannelGone(f"channel {channel} is gone: {exc}") from exc
            raise
