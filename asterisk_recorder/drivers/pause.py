"""The pause driver: runs the pure ``PauseBook`` over a mute port, the ledger and a clock.

This module owns ``PauseDriver``: it feeds the book the events a transport reports (AMI
``RecordingStarted``/``RecordingClosed`` user events, ``Newexten``, queue joins, the feature
codes), the requests of the HTTP API and a watchdog tick every second, and carries out the
book's actions: ``Mute`` through a ``MuteControl`` port (AMI ``MixMonitorMute`` in
``ami/pauses.py``), ``WriteFact`` into a ``FactSink`` (the ledger, which spools when
PostgreSQL is away, so a pause fact is never lost), ``Alert`` as an ERROR log line and a
counter. On start it takes up the pauses the ledger holds as still open (``PauseStore``), so a
controller restart during a pause keeps its watchdog. It must not decide anything (the book
does), speak a protocol or write SQL.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from asterisk_recorder.errors import ChannelGone, RecorderError
from asterisk_recorder.flow.facts import LedgerFact
from asterisk_recorder.flow.pause import (
    Alert,
    Mute,
    MuteDone,
    MuteFailed,
    PauseAction,
    PauseBook,
    PauseEvent,
    PauseRequested,
    PauseRules,
    PauseState,
    Refuse,
    Restored,
    ResumeRequested,
    Tick,
    TrackView,
    WriteFact,
)
from asterisk_recorder.flow.ports import FactSink
from asterisk_recorder.logs import get_logger

__all__ = ["MuteControl", "PauseDriver", "PauseOutcome", "PauseStore"]

log = get_logger("asterisk_recorder.pause")


class MuteControl(Protocol):
    """Mute or unmute one MixMonitor (AMI ``MixMonitorMute`` direction both).

    Raises ``ChannelGone`` when the channel no longer exists, another ``RecorderError`` when
    the transport failed (AMI down, an error response).
    """

    async def mute(self, channel: str, mixmonitor_id: str, mute: bool) -> None: ...


class PauseStore(Protocol):
    """Where open pauses are found after a restart (the ledger)."""

    async def open_pauses(self) -> Sequence[Restored]: ...


@dataclass(frozen=True, slots=True)
class PauseOutcome:
    """The answer to a pause or resume request.

    Attributes:
        status: 200 done (or nothing to do), 404 no such recording, 409 not in this state,
            503 Asterisk could not be reached.
        message: one line for the caller.
        view: the recording's state afterwards (None when unknown).
    """

    status: int
    message: str
    view: TrackView | None


class PauseDriver:
    """Carries out the pause book's actions (see the module docstring).

    Args:
        rules: the pause rules (``[pause]``).
        mute: the mute port.
        facts: where ``recording.paused`` / ``recording.resumed`` go.
        store: open pauses to take up at start (None: none).
        clock: wall-clock seconds (the only clock; tests pass a fake).
        tick_every: seconds between watchdog ticks.
    """

    def __init__(
        self,
        rules: PauseRules,
        mute: MuteControl,
        facts: FactSink,
        *,
        store: PauseStore | None = None,
        clock: Callable[[], float] = time.time,
        tick_every: float = 1.0,
    ) -> None:
        self.book = PauseBook(rules)
        self._mute = mute
        self._facts = facts
        self._store = store
        self._clock = clock
        self._tick_every = tick_every
        self._task: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[list[Refuse]]] = set()
        self.alerts: Counter[str] = Counter()
        """Alerts raised, by kind (``/metrics``)."""
        self.facts_failed = 0

    # --- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Take up the open pauses, then run the watchdog."""
        if self._store is not None:
            try:
                restored = await self._store.open_pauses()
            except RecorderError as exc:
                self._alert(Alert("restore_failed", "", f"open pauses could not be read: {exc}"))
                restored = ()
            for event in restored:
                log.warning("pause.restored", decision_id=event.decision_id,
                            paused_at=event.paused_at, source=event.source)
                await self.feed(event)
        self._task = asyncio.create_task(self._watchdog(), name="pause-watchdog")

    async def close(self) -> None:
        """Stop the watchdog and wait for the actions under way."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    async def _watchdog(self) -> None:
        while True:
            await asyncio.sleep(self._tick_every)
            await self.feed(Tick(self._clock()))

    # --- input -----------------------------------------------------------------------

    def now(self) -> float:
        """The driver's clock."""
        return self._clock()

    def notify(self, event: PauseEvent) -> None:
        """Feed an event from a callback (a transport's event handler): runs in a task."""
        task = asyncio.get_running_loop().create_task(self.feed(event))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def feed(self, event: PauseEvent) -> list[Refuse]:
        """Feed one event and carry out what follows; the refusals among the actions."""
        return await self._run(self.book.handle(event))

    async def pause(self, *, source: str, actor: str, reason: str,
                    decision_id: str = "", uniqueid: str = "", linkedid: str = "") -> PauseOutcome:
        """Pause a call's recording; returns once Asterisk answered."""
        event = PauseRequested(self._clock(), source, actor, reason, decision_id, uniqueid,
                               linkedid)
        return self._outcome(await self.feed(event), decision_id, want=PauseState.PAUSED)

    async def resume(self, *, source: str, actor: str, reason: str,
                     decision_id: str = "", uniqueid: str = "", linkedid: str = "") -> PauseOutcome:
        """Resume a call's recording (refused while it is in a payment context)."""
        event = ResumeRequested(self._clock(), source, actor, reason, decision_id, uniqueid,
                                linkedid)
        return self._outcome(await self.feed(event), decision_id, want=PauseState.RECORDING)

    def _outcome(self, refusals: list[Refuse], decision_id: str,
                 *, want: PauseState) -> PauseOutcome:
        named = decision_id or (refusals[0].decision_id if refusals else "")
        view = self.book.view(named) if named else None
        if refusals:
            last = refusals[-1]
            return PauseOutcome(last.status, last.message, view)
        if view is None:
            return PauseOutcome(200, "done", None)
        word = "paused" if view.state is PauseState.PAUSED else view.state.value
        if view.state is want:
            return PauseOutcome(200, word, view)
        return PauseOutcome(200, f"{word} (unchanged)", view)

    # --- actions ---------------------------------------------------------------------

    async def _run(self, actions: list[PauseAction]) -> list[Refuse]:
        refusals: list[Refuse] = []
        for action in actions:
            if isinstance(action, Mute):
                refusals += await self._do_mute(action)
            elif isinstance(action, WriteFact):
                await self._write(action)
            elif isinstance(action, Alert):
                self._alert(action)
            else:
                refusals.append(action)
        return refusals

    async def _do_mute(self, action: Mute) -> list[Refuse]:
        result: PauseEvent
        try:
            await self._mute.mute(action.channel, action.mixmonitor_id, action.mute)
        except ChannelGone as exc:
            result = MuteFailed(self._clock(), action.decision_id, action.mute, str(exc),
                                gone=True)
        except RecorderError as exc:
            result = MuteFailed(self._clock(), action.decision_id, action.mute, str(exc))
        else:
            result = MuteDone(self._clock(), action.decision_id, action.mute)
        return await self.feed(result)

    async def _write(self, action: WriteFact) -> None:
        fact = LedgerFact(action.kind, action.decision_id, action.at, action.actor,
                          dict(action.payload), fact_id=action.fact_id)
        word = "paused" if action.kind == "recording.paused" else "resumed"
        payload = dict(action.payload)
        log.info(f"recording.{word}", decision_id=action.decision_id,
                 offset_s=payload.get("offset_s"), source=payload.get("source"),
                 actor=action.actor, reason=payload.get("reason"))
        try:
            await self._facts.record_fact(fact)
        except RecorderError as exc:
            self.facts_failed += 1
            self._alert(Alert("fact_failed", action.decision_id,
                              f"{action.kind} could not be written: {exc}"))

    def _alert(self, alert: Alert) -> None:
        self.alerts[alert.kind] += 1
        log.error("pause.alert", kind=alert.kind, decision_id=alert.decision_id or None,
                  message=alert.message)
