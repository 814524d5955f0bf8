"""Pausing a running recording (card payments): events in, actions out, no I/O.

This module owns ``PauseBook``, the pure state machine that keeps, for every recording running
on an Asterisk, whether it is recording or paused, and decides what the driver must do when a
pause or resume is asked for (a DTMF feature code, the HTTP API), when the channel enters or
leaves a payment context or queue, when the watchdog ticks and when the recording closes. The
driver (``drivers/pause.py``) carries out the actions: ``Mute`` through AMI ``MixMonitorMute``
(direction both, so the file keeps its length), ``WriteFact`` into the ledger (``recording.paused``
and ``recording.resumed``, with the wall-clock time, the offset into the recording, the actor
and the reason), ``Alert`` as an ERROR log line and a metric, and ``Refuse`` as the answer to a
request that cannot be done. It must not read a clock (every event carries ``at``), generate
random ids or know a transport.

Life of one recording (one row per state; ``TRANSITIONS`` is the whole table)::

    RECORDING --pause asked / payment entered--> PAUSING --muted--> PAUSED
    PAUSED --resume asked (no payment active) / payment left (automatic pause) / watchdog-->
        RESUMING --unmuted--> RECORDING
    any --recording closed--> CLOSED (a pause still open ends there: ``recording.resumed``
        with source ``close``)

Rules:

1. A fact is written only for what Asterisk confirmed: ``recording.paused`` after the mute
   succeeded, ``recording.resumed`` after the unmute succeeded (or the recording ended).
2. A resume is refused while the channel is in a payment context or queue.
3. A pause never lasts longer than ``PauseRules.max_pause`` without an alert: outside a payment
   context the watchdog resumes it (alert ``pause_overdue``); inside one it stays paused (the
   caller may be reading a card number), alerts ``pause_overdue_in_payment`` once, and resumes
   when the channel leaves.
4. A pause that cannot be made (AMI down, unknown call) alerts: card data may be recorded. A
   resume that cannot be made alerts and is retried every ``retry_every`` seconds.
5. Pausing again while paused does not extend the pause (its start and the watchdog stay).
"""

from __future__ import annotations

import enum
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from asterisk_recorder.errors import FlowError

__all__ = [
    "PAUSE_SOURCES",
    "TRANSITIONS",
    "Alert",
    "ContextEntered",
    "Mute",
    "MuteDone",
    "MuteFailed",
    "PauseAction",
    "PauseBook",
    "PauseEvent",
    "PauseRequested",
    "PauseRules",
    "PauseState",
    "QueueJoined",
    "QueueLeft",
    "RecordingClosed",
    "RecordingStarted",
    "Refuse",
    "Restored",
    "ResumeRequested",
    "Tick",
    "TrackView",
    "WriteFact",
    "pause_fact_id",
]

PAUSE_SOURCES: Final = ("feature", "api", "context", "queue", "watchdog", "close", "console")
"""Who can start or end a pause: a DTMF feature code, the HTTP API, entering/leaving a payment
context or queue, the watchdog, the recording closing, the console."""

_FACT_NAMESPACE: Final = uuid.UUID("6b0f5f5e-7a1d-4c61-9a43-0d2f1c0c5a17")


def pause_fact_id(decision_id: str, kind: str, at: float) -> str:
    """A stable fact id for the pause fact of ``decision_id`` at ``at`` (a re-send is the same
    fact; two pauses of one call never share an id)."""
    return str(uuid.uuid5(_FACT_NAMESPACE, f"{decision_id}|{kind}|{at:.6f}"))


@dataclass(frozen=True, slots=True)
class PauseRules:
    """What the pause machine decides with (built from ``[pause]``).

    Attributes:
        max_pause: seconds after which a pause is resumed by the watchdog (or alerted on, in a
            payment context).
        payment_contexts: dialplan contexts during which the recording is paused automatically.
        payment_queues: queues during which the recording is paused automatically.
        retry_every: seconds between retries of a resume that failed.
    """

    max_pause: float = 180.0
    payment_contexts: tuple[str, ...] = ()
    payment_queues: tuple[str, ...] = ()
    retry_every: float = 5.0

    def __post_init__(self) -> None:
        for name in ("max_pause", "retry_every"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise FlowError(f"pause.{name} must be a positive number of seconds")


# --- events ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecordingStarted:
    """MixMonitor runs on ``channel`` for ``decision_id`` (dialplan's ``RecordingStarted``)."""

    at: float
    decision_id: str
    channel: str
    uniqueid: str
    linkedid: str
    mixmonitor_id: str
    file: str = ""


@dataclass(frozen=True, slots=True)
class _CallRequest:
    """A request about one call's recording, named by ``decision_id``, else the channel
    ``uniqueid``, else the ``linkedid`` shared by every channel of the call (a feature code
    pressed on the agent's leg)."""

    at: float
    source: str
    actor: str
    reason: str
    decision_id: str = ""
    uniqueid: str = ""
    linkedid: str = ""


@dataclass(frozen=True, slots=True)
class PauseRequested(_CallRequest):
    """Someone asks to pause the recording of a call."""


@dataclass(frozen=True, slots=True)
class ResumeRequested(_CallRequest):
    """Someone asks to resume the recording of a call."""


@dataclass(frozen=True, slots=True)
class ContextEntered:
    """The channel ``uniqueid`` runs dialplan in ``context`` (AMI ``Newexten``)."""

    at: float
    uniqueid: str
    context: str


@dataclass(frozen=True, slots=True)
class _QueueEvent:
    at: float
    uniqueid: str
    queue: str


@dataclass(frozen=True, slots=True)
class QueueJoined(_QueueEvent):
    """The channel ``uniqueid`` joined ``queue`` (AMI ``QueueCallerJoin``)."""


@dataclass(frozen=True, slots=True)
class QueueLeft(_QueueEvent):
    """The channel ``uniqueid`` left ``queue`` (AMI ``QueueCallerLeave`` or ``...Abandon``)."""


@dataclass(frozen=True, slots=True)
class MuteDone:
    """Asterisk confirmed the mute (``mute`` True) or unmute of ``decision_id``'s recording."""

    at: float
    decision_id: str
    mute: bool


@dataclass(frozen=True, slots=True)
class MuteFailed:
    """The mute or unmute failed; ``gone`` when the channel no longer exists."""

    at: float
    decision_id: str
    mute: bool
    error: str
    gone: bool = False


@dataclass(frozen=True, slots=True)
class RecordingClosed:
    """The recording of ``decision_id`` (or of channel ``uniqueid``) ended."""

    at: float
    decision_id: str = ""
    uniqueid: str = ""


@dataclass(frozen=True, slots=True)
class Tick:
    """Time passed (the watchdog)."""

    at: float


@dataclass(frozen=True, slots=True)
class Restored:
    """A pause the ledger holds as still open after a restart (``recording.paused`` without its
    ``recording.resumed``): the book takes it up again, watchdog included."""

    at: float
    decision_id: str
    channel: str
    uniqueid: str
    linkedid: str
    mixmonitor_id: str
    started_at: float
    paused_at: float
    source: str
    actor: str
    reason: str
    pause_fact_id: str
    file: str = ""


PauseEvent = (
    RecordingStarted | PauseRequested | ResumeRequested | ContextEntered | QueueJoined
    | QueueLeft | MuteDone | MuteFailed | RecordingClosed | Tick | Restored
)

# --- actions -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Mute:
    """Mute (``mute`` True) or unmute the recording: AMI ``MixMonitorMute`` both; report
    ``MuteDone`` or ``MuteFailed``."""

    decision_id: str
    channel: str
    mixmonitor_id: str
    mute: bool


@dataclass(frozen=True, slots=True)
class WriteFact:
    """Write ``recording.paused`` / ``recording.resumed`` to the ledger."""

    kind: str
    decision_id: str
    at: float
    actor: str
    fact_id: str
    payload: tuple[tuple[str, str | int | float | bool | None], ...]


@dataclass(frozen=True, slots=True)
class Alert:
    """Tell a human: an ERROR log line and ``asterisk_recorder_pause_alerts_total{kind}``."""

    kind: str
    decision_id: str
    message: str


@dataclass(frozen=True, slots=True)
class Refuse:
    """The request cannot be done: ``status`` is the HTTP-like answer (404 no such recording,
    409 not allowed in this state)."""

    status: int
    message: str
    decision_id: str = ""


PauseAction = Mute | WriteFact | Alert | Refuse


class PauseState(enum.Enum):
    """Where one recording is."""

    RECORDING = "recording"
    PAUSING = "pausing"
    PAUSED = "paused"
    RESUMING = "resuming"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class TrackView:
    """What the book knows of one recording (``GET /calls/{id}``, ``/metrics``)."""

    decision_id: str
    state: PauseState
    channel: str
    started_at: float
    paused_at: float | None
    pause_source: str
    pause_actor: str
    payment: tuple[str, ...]
    pauses: int


@dataclass(slots=True)
class _Track:
    decision_id: str
    channel: str
    uniqueid: str
    linkedid: str
    mixmonitor_id: str
    file: str
    started_at: float
    state: PauseState = PauseState.RECORDING
    paused_at: float | None = None
    pause_source: str = ""
    pause_actor: str = ""
    pause_reason: str = ""
    pause_fact: str = ""
    pending_source: str = ""
    pending_actor: str = ""
    pending_reason: str = ""
    payment: set[str] = field(default_factory=set)
    overdue_alerted: bool = False
    retry_at: float | None = None
    pauses: int = 0


# --- the book ----------------------------------------------------------------------------

_Handler = Callable[["PauseBook", _Track, PauseEvent], list[PauseAction]]


class PauseBook:
    """Every running recording's pause state (see the module docstring for the rules).

    ``handle(event)`` returns the actions to carry out, in order; it never raises for an event
    (one that makes no sense is ignored and counted in ``ignored``).
    """

    def __init__(self, rules: PauseRules) -> None:
        self.rules = rules
        self.ignored = 0
        self._tracks: dict[str, _Track] = {}
        self._by_uniqueid: dict[str, str] = {}

    # --- reading ---------------------------------------------------------------------

    def view(self, decision_id: str) -> TrackView | None:
        """The recording of ``decision_id``, or None when none is running."""
        track = self._tracks.get(decision_id)
        return None if track is None else _view(track)

    def views(self) -> list[TrackView]:
        """Every running recording."""
        return [_view(t) for t in self._tracks.values()]

    def paused_count(self) -> int:
        """Recordings paused (or being resumed) now."""
        return sum(t.state in (PauseState.PAUSED, PauseState.RESUMING)
                   for t in self._tracks.values())

    # --- events ----------------------------------------------------------------------

    def handle(self, event: PauseEvent) -> list[PauseAction]:
        """Feed one event; the actions the driver must carry out."""
        if isinstance(event, RecordingStarted):
            return self._started(event)
        if isinstance(event, Restored):
            return self._restored(event)
        if isinstance(event, Tick):
            return self._tick(event)
        if isinstance(event, PauseRequested | ResumeRequested):
            track = self._resolve(event.decision_id, event.uniqueid, event.linkedid)
            if track is None:
                return self._unknown(event)
        elif isinstance(event, ContextEntered | QueueJoined | QueueLeft):
            track = self._track_of(event.uniqueid)
            if track is None:
                self.ignored += 1
                return []
            return self._payment_change(track, event)
        elif isinstance(event, RecordingClosed):
            track = self._resolve(event.decision_id, event.uniqueid, "")
        else:  # MuteDone / MuteFailed
            track = self._tracks.get(event.decision_id)
        if track is None:
            self.ignored += 1
            return []
        handler = TRANSITIONS.get((track.state, type(event)))
        if handler is None:
            self.ignored += 1
            return []
        actions = handler(self, track, event)
        if track.state is PauseState.CLOSED:
            self._forget(track)
        return actions

    # --- lookups ---------------------------------------------------------------------

    def _resolve(self, decision_id: str, uniqueid: str, linkedid: str) -> _Track | None:
        if decision_id:
            return self._tracks.get(decision_id)
        if uniqueid:
            found = self._track_of(uniqueid)
            if found is not None:
                return found
        if linkedid:
            candidates = [t for t in self._tracks.values()
                          if t.linkedid == linkedid or t.uniqueid == linkedid]
            if candidates:
                return max(candidates, key=lambda t: t.started_at)
        return None

    def _track_of(self, uniqueid: str) -> _Track | None:
        decision_id = self._by_uniqueid.get(uniqueid)
        return None if decision_id is None else self._tracks.get(decision_id)

    def _forget(self, track: _Track) -> None:
        self._tracks.pop(track.decision_id, None)
        if self._by_uniqueid.get(track.uniqueid) == track.decision_id:
            self._by_uniqueid.pop(track.uniqueid, None)

    def _unknown(self, event: PauseRequested | ResumeRequested) -> list[PauseAction]:
        name = event.decision_id or event.uniqueid or event.linkedid or "(none)"
        actions: list[PauseAction] = [
            Refuse(404, f"no running recording for call {name}", event.decision_id)
        ]
        if isinstance(event, PauseRequested):
            actions.insert(0, Alert(
                "pause_unknown_call", event.decision_id,
                f"a pause was asked ({event.source}, {event.actor}) for call {name} but no "
                "recording of it is known: card data may be recorded",
            ))
        return actions

    # --- lifecycle -------------------------------------------------------------------

    def _started(self, event: RecordingStarted) -> list[PauseAction]:
        if not event.decision_id or event.decision_id in self._tracks:
            self.ignored += 1
            return []
        track = _Track(event.decision_id, event.channel, event.uniqueid, event.linkedid,
                       event.mixmonitor_id, event.file, event.at)
        self._tracks[track.decision_id] = track
        if event.uniqueid:
            self._by_uniqueid[event.uniqueid] = track.decision_id
        return []

    def _restored(self, event: Restored) -> list[PauseAction]:
        if event.decision_id in self._tracks:
            self.ignored += 1
            return []
        track = _Track(event.decision_id, event.channel, event.uniqueid, event.linkedid,
                       event.mixmonitor_id, event.file, event.started_at,
                       state=PauseState.PAUSED, paused_at=event.paused_at,
                       pause_source=event.source, pause_actor=event.actor,
                       pause_reason=event.reason, pause_fact=event.pause_fact_id, pauses=1)
        self._tracks[track.decision_id] = track
        if event.uniqueid:
            self._by_uniqueid[event.uniqueid] = track.decision_id
        return self._watch(track, event.at)

    def _tick(self, event: Tick) -> list[PauseAction]:
        actions: list[PauseAction] = []
        for track in list(self._tracks.values()):
            if track.state is PauseState.PAUSED:
                actions += self._watch(track, event.at)
        return actions

    def _watch(self, track: _Track, at: float) -> list[PauseAction]:
        """The watchdog for one paused recording."""
        if track.retry_at is not None:
            if at < track.retry_at:
                return []
            track.retry_at = None
            return self._resume(track, at, track.pending_source or "watchdog",
                                track.pending_actor or "watchdog",
                                track.pending_reason or "retrying a resume that failed")
        paused_at = track.paused_at if track.paused_at is not None else at
        over = at - paused_at
        if over < self.rules.max_pause:
            return []
        if track.payment:
            if track.overdue_alerted:
                return []
            track.overdue_alerted = True
            return [Alert(
                "pause_overdue_in_payment", track.decision_id,
                f"recording of call {track.decision_id} paused for {over:.0f} s (max "
                f"{self.rules.max_pause:.0f} s) and still in {', '.join(sorted(track.payment))}: "
                "kept paused until it leaves",
            )]
        return [
            Alert("pause_overdue", track.decision_id,
                  f"recording of call {track.decision_id} paused for {over:.0f} s (max "
                  f"{self.rules.max_pause:.0f} s): resumed by the watchdog"),
            *self._resume(track, at, "watchdog", "watchdog",
                          f"paused longer than {self.rules.max_pause:g} s"),
        ]

    # --- transitions -----------------------------------------------------------------

    def _pause(self, track: _Track, at: float, source: str, actor: str,
               reason: str) -> list[PauseAction]:
        track.state = PauseState.PAUSING
        track.pending_source, track.pending_actor, track.pending_reason = source, actor, reason
        return [Mute(track.decision_id, track.channel, track.mixmonitor_id, True)]

    def _resume(self, track: _Track, at: float, source: str, actor: str,
                reason: str) -> list[PauseAction]:
        track.state = PauseState.RESUMING
        track.pending_source, track.pending_actor, track.pending_reason = source, actor, reason
        return [Mute(track.decision_id, track.channel, track.mixmonitor_id, False)]

    def _on_pause_request(self, track: _Track, event: PauseEvent) -> list[PauseAction]:
        assert isinstance(event, PauseRequested)
        return self._pause(track, event.at, event.source, event.actor, event.reason)

    def _on_pause_again(self, track: _Track, event: PauseEvent) -> list[PauseAction]:
        """Already paused (or pausing): nothing changes; the pause is not extended."""
        assert isinstance(event, PauseRequested)
        return []

    def _on_resume_not_paused(self, track: _Track, event: PauseEvent) -> list[PauseAction]:
        return [Refuse(409, f"the recording of call {track.decision_id} is not paused",
                       track.decision_id)]

    def _on_resume_request(self, track: _Track, event: PauseEvent) -> list[PauseAction]:
        assert isinstance(event, ResumeRequested)
        if track.payment:
            where = ", ".join(sorted(track.payment))
            return [Refuse(409, f"resume refused: call {track.decision_id} is still in {where}",
                           track.decision_id)]
        return self._resume(track, event.at, event.source, event.actor, event.reason)

    def _on_resume_busy(self, track: _Track, event: PauseEvent) -> list[PauseAction]:
        return [Refuse(409, f"the recording of call {track.decision_id} is being paused or "
                            "resumed; try again", track.decision_id)]

    def _on_muted(self, track: _Track, event: PauseEvent) -> list[PauseAction]:
        assert isinstance(event, MuteDone)
        if not event.mute:
            self.ignored += 1
            return []
        track.state = PauseState.PAUSED
        track.paused_at = event.at
        track.pause_source = track.pending_source
        track.pause_actor = track.pending_actor
        track.pause_reason = track.pending_reason
        track.overdue_alerted = False
        track.pauses += 1
        track.pause_fact = pause_fact_id(track.decision_id, "paused", event.at)
        payload: list[tuple[str, str | int | float | bool | None]] = [
            ("offset_s", round(event.at - track.started_at, 3)),
            ("source", track.pause_source),
            ("reason", track.pause_reason),
            ("channel", track.channel),
            ("uniqueid", track.uniqueid),
            ("linkedid", track.linkedid),
            ("mixmonitor_id", track.mixmonitor_id),
            ("recording_started_at", track.started_at),
            ("pause_no", track.pauses),
        ]
        if track.payment:
            payload.append(("payment", ",".join(sorted(track.payment))))
        actions: list[PauseAction] = [WriteFact(
            "recording.paused", track.decision_id, event.at, track.pause_actor,
            track.pause_fact, tuple(payload))]
        if track.pause_source in ("context", "queue") and not track.payment:
            # left the payment context while the pause was under way
            actions += self._resume(track, event.at, track.pause_source, "asterisk",
                                    "left the payment context")
        return actions

    def _on_pause_failed(self, track: _Track, event: PauseEvent) -> list[PauseAction]:
        assert isinstance(event, MuteFailed)
        if not event.mute:
            self.ignored += 1
            return []
        track.state = PauseState.CLOSED if event.gone else PauseState.RECORDING
        return [Alert(
            "pause_failed", track.decision_id,
            f"could not pause the recording of call {track.decision_id} "
            f"({track.pending_source}): {event.error}: card data may be recorded",
        ), Refuse(503 if not event.gone else 404,
                  f"could not pause the recording: {event.error}", track.decision_id)]

    def _on_unmuted(self, track: _Track, event: PauseEvent) -> list[PauseAction]:
        assert isinstance(event, MuteDone)
        if event.mute:
            self.ignored += 1
            return []
        track.state = PauseState.RECORDING
        actions: list[PauseAction] = [self._resumed_fact(
            track, event.at, track.pending_source, track.pending_actor, track.pending_reason)]
        if track.payment:  # entered a payment context while the resume was under way
            where = ", ".join(sorted(track.payment))
            actions += self._pause(track, event.at, "context", "asterisk",
                                   f"entered payment {where}")
        return actions

    def _on_resume_failed(self, track: _Track, event: PauseEvent) -> list[PauseAction]:
        assert isinstance(event, MuteFailed)
        if event.mute:
            self.ignored += 1
            return []
        if event.gone:
            track.state = PauseState.CLOSED
            return [self._resumed_fact(track, event.at, "close", track.pending_actor,
                                       "the call ended while paused")]
        track.state = PauseState.PAUSED
        track.retry_at = event.at + self.rules.retry_every
        return [Alert(
            "resume_failed", track.decision_id,
            f"could not resume the recording of call {track.decision_id}: {event.error}; "
            f"retrying in {self.rules.retry_every:g} s",
        ), Refuse(503, f"could not resume the recording: {event.error}", track.decision_id)]

    def _on_closed(self, track: _Track, event: PauseEvent) -> list[PauseAction]:
        assert isinstance(event, RecordingClosed)
        was = track.state
        track.state = PauseState.CLOSED
        if was in (PauseState.PAUSED, PauseState.RESUMING):
            return [self._resumed_fact(track, event.at, "close", "asterisk",
                                       "the recording ended while paused")]
        return []

    def _resumed_fact(self, track: _Track, at: float, source: str, actor: str,
                      reason: str) -> WriteFact:
        paused_at = track.paused_at if track.paused_at is not None else at
        payload: tuple[tuple[str, str | int | float | bool | None], ...] = (
            ("offset_s", round(at - track.started_at, 3)),
            ("source", source),
            ("reason", reason),
            ("paused_s", round(at - paused_at, 3)),
            ("pause_fact_id", track.pause_fact),
            ("channel", track.channel),
        )
        track.paused_at = None
        track.retry_at = None
        return WriteFact("recording.resumed", track.decision_id, at, actor or source,
                         pause_fact_id(track.decision_id, "resumed", at), payload)

    def _payment_change(
        self, track: _Track, event: ContextEntered | QueueJoined | QueueLeft
    ) -> list[PauseAction]:
        before = bool(track.payment)
        if isinstance(event, ContextEntered):
            track.payment = {p for p in track.payment if not p.startswith("context:")}
            if event.context in self.rules.payment_contexts:
                track.payment.add(f"context:{event.context}")
            where = f"context {event.context}"
        elif isinstance(event, QueueJoined):
            if event.queue in self.rules.payment_queues:
                track.payment.add(f"queue:{event.queue}")
            where = f"queue {event.queue}"
        else:
            track.payment.discard(f"queue:{event.queue}")
            where = f"queue {event.queue}"
        after = bool(track.payment)
        source = "context" if isinstance(event, ContextEntered) else "queue"
        if after and not before and track.state is PauseState.RECORDING:
            return self._pause(track, event.at, source, "asterisk", f"entered payment {where}")
        automatic = track.pause_source in ("context", "queue") or track.overdue_alerted
        if before and not after and track.state is PauseState.PAUSED and automatic:
            return self._resume(track, event.at, source, "asterisk",
                                    f"left payment {where}")
        return []


def _view(track: _Track) -> TrackView:
    return TrackView(track.decision_id, track.state, track.channel, track.started_at,
                     track.paused_at, track.pause_source, track.pause_actor,
                     tuple(sorted(track.payment)), track.pauses)


S = PauseState
TRANSITIONS: dict[tuple[PauseState, type], _Handler] = {
    (S.RECORDING, PauseRequested): PauseBook._on_pause_request,
    (S.RECORDING, ResumeRequested): PauseBook._on_resume_not_paused,
    (S.RECORDING, RecordingClosed): PauseBook._on_closed,
    (S.PAUSING, PauseRequested): PauseBook._on_pause_again,
    (S.PAUSING, ResumeRequested): PauseBook._on_resume_busy,
    (S.PAUSING, MuteDone): PauseBook._on_muted,
    (S.PAUSING, MuteFailed): PauseBook._on_pause_failed,
    (S.PAUSING, RecordingClosed): PauseBook._on_closed,
    (S.PAUSED, PauseRequested): PauseBook._on_pause_again,
    (S.PAUSED, ResumeRequested): PauseBook._on_resume_request,
    (S.PAUSED, RecordingClosed): PauseBook._on_closed,
    (S.RESUMING, PauseRequested): PauseBook._on_pause_again,
    (S.RESUMING, ResumeRequested): PauseBook._on_resume_busy,
    (S.RESUMING, MuteDone): PauseBook._on_unmuted,
    (S.RESUMING, MuteFailed): PauseBook._on_resume_failed,
    (S.RESUMING, RecordingClosed): PauseBook._on_closed,
}
"""The whole per-recording table: ``(state, event type) -> handler``; anything else is ignored."""
del S

