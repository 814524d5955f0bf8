"""One call, whatever the transport: the driver core that runs the consent flow over a port.

This module owns the one implementation of a call's life: offer the call to the pure
``ConsentFlow``, carry out its actions through a ``ChannelPort`` (ARI or AGI), keep its timers,
store the decision (in a task of its own, so a cancellation never loses it), set the variables
and hand the channel back (retried while the channel lives), fail closed on shutdown, on a lost
event stream or on any error, record what finally happened to the channel (``CallFate``), and
write the one ``consent.decided`` line. It must not speak a protocol (ports do), decide consent
(the flow does) or know where the ledger lives (it writes through a ``DecisionSink``).

Reading order: ``run`` -> ``_drive`` (events in, actions out) -> ``_perform`` (each action
through the port) -> ``_store`` / ``_hand_back`` -> ``_finish`` (the log line, the fate).
Shutdown and lost streams go through ``abort`` -> ``_abort``; bugs through ``_crashed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Protocol

from asterisk_recorder.drivers.ports import (
    FAIL_CLOSED_VARIABLES,
    CallFate,
    CallReport,
    ChannelPort,
    CoreHooks,
    Fate,
)
from asterisk_recorder.errors import ChannelGone, ChannelUnreachable
from asterisk_recorder.flow.actions import (
    Action,
    Answer,
    CancelTimer,
    HandBack,
    PlayPrompt,
    SetVariables,
    StartTimer,
    StopPrompt,
    StoreDecision,
)
from asterisk_recorder.flow.decision import ConsentDecision, Outcome
from asterisk_recorder.flow.events import (
    ActionFailed,
    CallerHungUp,
    CallInfo,
    CallOffered,
    DecisionStored,
    DecisionStoreFailed,
    DigitReceived,
    Event,
    PromptFinished,
    PromptStarted,
    TimerExpired,
)
from asterisk_recorder.flow.machine import State
from asterisk_recorder.flow.ports import DecisionSink, StoreReceipt
from asterisk_recorder.logs import get_logger
from asterisk_recorder.policy.modes import Mode

__all__ = ["MAX_PROMPT_SECONDS", "CallCore", "FlowLike"]

_log = get_logger("asterisk_recorder.call")

MAX_PROMPT_SECONDS = 300.0
"""The longest a blocking transport may play one prompt (no guard timer running)."""

_MAX_EVENTS = 10_000
_KEPT_ON_ABORT = (DecisionStored, DecisionStoreFailed, CallerHungUp)
_RETRY_DELAYS = (0.1, 0.25, 0.5, 1.0, 2.0)


class FlowLike(Protocol):
    """What the core needs of ``ConsentFlow``."""

    @property
    def done(self) -> bool:
        """True once the flow reached a terminal state."""
        ...

    @property
    def decision(self) -> ConsentDecision | None:
        """The decision, once made."""
        ...

    @property
    def state(self) -> State:
        """Where the flow is."""
        ...

    @property
    def mode(self) -> Mode | None:
        """The consent mode, once the policy decided it."""
        ...

    def handle(self, event: Event) -> list[Action]:
        """Feed one event; get the actions to carry out."""
        ...


class CallCore:
    """Runs one call's ``ConsentFlow`` over one ``ChannelPort`` until it is handed back or gone.

    Args:
        port: the transport for this channel.
        flow: a fresh consent flow.
        sink: where the decision is stored (the ledger).
        hooks: metrics, crash counter and the fate fact (see ``CoreHooks``).
        clock: wall-clock epoch seconds for the flow's events.
        monotonic: monotonic seconds for timers and durations.
    """

    def __init__(
        self,
        port: ChannelPort,
        *,
        flow: FlowLike,
        sink: DecisionSink,
        hooks: CoreHooks | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.port = port
        self._flow = flow
        self._sink = sink
        self._hooks = hooks or CoreHooks()
        self._clock = clock
        self._monotonic = monotonic
        self._call: CallInfo | None = None
        self._pending: deque[Event] = deque()
        self._todo: deque[Action] = deque()
        self._timers: dict[str, float] = {}
        self._to_set: tuple[tuple[str, str], ...] | None = None
        self._preset: tuple[tuple[str, str], ...] | None = None
        self._variables: tuple[tuple[str, str], ...] = ()
        self._play_digit: DigitReceived | None = None
        self._store_task: asyncio.Future[StoreReceipt] | None = None
        self._store_id = ""
        self._stored = False
        self._spooled = False
        self._gone = False
        self._handed_back = False
        self._aborting = False
        self._abort_reason: str | None = None
        self._own_cancels = 0
        self._task: asyncio.Task[object] | None = None
        self._crash: str | None = None
        self._error: str | None = None
        self._fate: CallFate | None = None
        self._finished = False
        self.started = monotonic()
        self.report: CallReport | None = None
        """What the call did, once ``run`` ended (also after a cancellation)."""

    # -- public --------------------------------------------------------------------------------

    @property
    def decision(self) -> ConsentDecision | None:
        """The flow's decision, once made."""
        return self._flow.decision

    @property
    def call(self) -> CallInfo | None:
        """The call as offered to the flow (None before ``describe`` answered)."""
        return self._call

    @property
    def handed_back(self) -> bool:
        """True once the channel went back to dialplan."""
        return self._handed_back

    def abort(self, reason: str) -> None:
        """Fail the call closed now (shutdown, lost events): hand back, not recorded.

        A decision already made, or a store under way, is kept as it is. Calling it again, or
        after the call ended, changes nothing.
        """
        if self._abort_reason is not None or self._finished:
            return
        self._abort_reason = reason
        task = self._task
        if task is not None and not task.done():
            self._own_cancels += 1
            task.cancel()

    async def run(self) -> CallReport:
        """Run the call to its end and return its report (``consent.decided`` is written).

        An error in the transport or the flow ends this call fail-closed and is logged with
        its traceback; it never propagates. A cancellation from outside (the FastAGI server
        closing) fails the call closed, then propagates.
        """
        self._task = asyncio.current_task()
        try:
            try:
                if self._abort_reason is not None:
                    raise asyncio.CancelledError
                self._call = await self.port.describe()
                self._pending.append(CallOffered(self._clock(), self._call))
                await self._drive()
            except asyncio.CancelledError:
                await self._cancelled()
            except Exception as exc:
                await self._crashed(exc)
            await self._safety_net()
        finally:
            await self._finish()
        assert self.report is not None
        return self.report

    # -- the loop ------------------------------------------------------------------------------

    async def _drive(self) -> None:
        """Feed the flow events until it is done: pending ones, due timers, then the port."""
        flow = self._flow
        handled = 0
        while not flow.done and handled < _MAX_EVENTS:
            if self._pending:
                event: Event = self._pending.popleft()
            elif (due := self._due_timer()) is not None:
                event = TimerExpired(self._clock(), due)
            elif not self._timers:
                _log.error("call.stuck", state=flow.state.value, channel_id=self._channel_id())
                return
            else:
                name, deadline = min(self._timers.items(), key=lambda item: item[1])
                timeout = max(0.0, deadline - self._monotonic())
                events = await self._act("StartTimer", self.port.next_events(timeout))
                if events:
                    self._pending.extend(events)
                    continue
                # The port waited the whole time: that timer ran out (whatever the clocks say).
                if self._timers.get(name) != deadline:
                    continue
                del self._timers[name]
                event = TimerExpired(self._clock(), name)
            handled += 1
            await self._handle(event)

    async def _handle(self, event: Event) -> None:
        if isinstance(event, CallerHungUp):
            self._gone = True
        before = len(self._pending)
        await self._perform(self._flow.handle(event))
        if event is self._play_digit:
            self._play_digit = None
            if self._flow.state is State.PROMPTING:
                # A blocking transport's prompt ended with the key; the flow still waits for
                # its end, so say so before what the key's actions produced.
                produced = [self._pending.pop() for _ in range(len(self._pending) - before)]
                self._pending.append(PromptFinished(event.at))
                self._pending.extend(reversed(produced))

    def _due_first(self, events: list[Event], *, skip: int) -> list[Event]:
        """Timers that ran out while a blocking operation ran come before its result.

        (``skip`` leading events, e.g. ``PromptStarted``, stay first.) A guard that expired
        while ``STREAM FILE`` hung is what ended the prompt, whatever the reply says later.
        """
        due: list[Event] = []
        while (name := self._due_timer()) is not None:
            due.append(TimerExpired(self._clock(), name))
        if not due:
            return events
        return [*events[:skip], *due, *events[skip:]]

    def _due_timer(self) -> str | None:
        if not self._timers:
            return None
        name, deadline = min(self._timers.items(), key=lambda item: item[1])
        if deadline > self._monotonic():
            return None
        del self._timers[name]
        return name

    # -- actions -------------------------------------------------------------------------------

    async def _perform(self, actions: list[Action]) -> None:
        """Carry out one batch of actions; the events they produce join ``_pending``.

        Timer bookkeeping is applied first, so a guard timer listed after ``PlayPrompt``
        already runs while a blocking transport plays the prompt.
        """
        for action in actions:
            if isinstance(action, StartTimer):
                self._timers[action.name] = self._monotonic() + action.seconds
            elif isinstance(action, CancelTimer):
                self._timers.pop(action.name, None)
        self._todo = deque(actions)
        while self._todo:
            action = self._todo[0]
            match action:
                case Answer():
                    if not self._aborting:
                        events = await self._act("Answer", self.port.answer())
                        self._pending.extend(self._due_first(events, skip=0))
                case PlayPrompt():
                    if not self._aborting:
                        events = await self._act("PlayPrompt", self.port.play(
                            action, bound=self._prompt_bound()
                        ))
                        for event in events:
                            if isinstance(event, DigitReceived):
                                self._play_digit = event
                        started = 1 if events and isinstance(events[0], PromptStarted) else 0
                        self._pending.extend(self._due_first(events, skip=started))
                case StopPrompt():
                    if not self._aborting:
                        self._pending.extend(await self._act("StopPrompt", self.port.stop_prompt()))
                case StoreDecision(decision=decision, handback=handback):
                    self._pending.append(await self._store(decision, early=handback))
                case SetVariables(variables=variables):
                    self._to_set = variables
                case HandBack():
                    await self._hand_back()
                case StartTimer() | CancelTimer():
                    pass
            self._todo.popleft()
        if self._to_set is not None:
            await self._hand_back(continue_channel=False)

    async def _act(self, name: str, operation: Awaitable[list[Event]]) -> list[Event]:
        """Await one port operation, turning its errors into flow events."""
        try:
            return await operation
        except ChannelGone as exc:
            self._gone = True
            return [ActionFailed(self._clock(), name, str(exc), channel_gone=True)]
        except ChannelUnreachable as exc:
            self._note_error(exc)
            return [ActionFailed(self._clock(), name, str(exc))]

    def _prompt_bound(self) -> float:
        """How long a blocking transport may play: until the earliest timer, at most 300 s."""
        if not self._timers:
            return MAX_PROMPT_SECONDS
        remaining = min(self._timers.values()) - self._monotonic()
        return max(0.0, min(remaining, MAX_PROMPT_SECONDS))

    async def _store(
        self, decision: ConsentDecision, *, early: tuple[tuple[str, str], ...] = ()
    ) -> Event:
        """Store the decision in a task of its own: cancelling the call never cancels it.

        While the ledger commits, the hand-back's ``early`` variables are already set on the
        channel (dialplan reads none of them before ``continue``, which waits for the store);
        when the store fails, the flow's fail-closed variables replace them.
        """
        task = self._store_task
        if task is None or self._store_id != decision.decision_id:
            new: asyncio.Future[StoreReceipt] = asyncio.ensure_future(self._sink.store(decision))
            new.add_done_callback(_retrieve)
            self._store_task, self._store_id = new, decision.decision_id
            task = new
            if early and not self._gone and not self._aborting:
                await self._set_early(early)
        try:
            receipt = await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.cancelled():  # the sink itself was cancelled, not this call
                return DecisionStoreFailed(self._clock(), "store cancelled")
            raise
        except Exception as exc:  # any failure of the sink fails closed, never crashes
            _log.error(
                "call.decision_store_failed",
                decision_id=decision.decision_id,
                error_type=type(exc).__name__,
                error=str(exc)[:200],
            )
            return DecisionStoreFailed(self._clock(), f"{type(exc).__name__}: {exc}"[:200])
        self._stored = True
        self._spooled = receipt.spooled
        return DecisionStored(self._clock(), receipt.decision_id, spooled=receipt.spooled)

    async def _set_early(self, variables: tuple[tuple[str, str], ...]) -> None:
        """Set the hand-back's variables while the store runs (failures: the hand-back retries)."""
        try:
            events = await self.port.set_variables(variables)
        except ChannelGone:
            self._gone = True
            return
        except ChannelUnreachable as exc:
            self._note_error(exc)
            # Never leave a half-written "record" behind; the hand-back sets them all again.
            with contextlib.suppress(ChannelGone, ChannelUnreachable):
                await self.port.set_variables((("RECORDER_DECISION", "skip"),))
            return
        self._preset = variables
        self._pending.extend(events)

    async def _hand_back(self, *, continue_channel: bool = True) -> None:
        """Set the flow's variables and return the channel, retrying while it lives.

        A transient failure (ARI timeout, refused, 5xx) is retried for
        ``hooks.hand_back_retry_for`` seconds; before each retry ``RECORDER_DECISION=skip`` is
        set so that a half-written ``record`` never reaches dialplan. The outcome is the call's
        ``CallFate``: recorded only when dialplan was told ``record`` and the channel went on.
        """
        variables = self._to_set if self._to_set is not None else FAIL_CLOSED_VARIABLES
        self._to_set = None
        deadline = self._monotonic() + self._hooks.hand_back_retry_for
        attempts = 0
        while True:
            if self._gone:
                self._settle_fate(Fate.HUNG_UP, "", "channel gone before the hand-back", attempts)
                return
            attempts += 1
            try:
                if attempts == 1 and self._preset == variables:
                    events = []  # set while the decision was being stored
                else:
                    events = await self.port.set_variables(variables)
                self._variables = variables
                self._pending.extend(events)
                if any(isinstance(e, CallerHungUp) for e in events):
                    self._gone = True
                    continue
                if continue_channel:
                    await self.port.hand_back()
            except ChannelGone:
                self._gone = True
                continue
            except ChannelUnreachable as exc:
                self._note_error(exc)
                retry = (
                    self.port.retry_hand_back
                    and exc.retryable
                    and self._monotonic() + _delay(attempts) < deadline
                )
                if self.port.retry_hand_back:  # (a broken AGI connection logs itself)
                    _log.warning(
                        "call.hand_back_failed",
                        channel_id=self._channel_id(),
                        attempt=attempts,
                        retrying=retry,
                        error=str(exc)[:200],
                    )
                with contextlib.suppress(ChannelGone, ChannelUnreachable):
                    await self.port.set_variables((("RECORDER_DECISION", "skip"),))
                if not retry:
                    self._settle_fate(Fate.STUCK, "", f"hand-back failed: {exc}", attempts)
                    return
                await asyncio.sleep(_delay(attempts))
                continue
            told = dict(variables).get("RECORDER_DECISION", "")
            if not continue_channel:
                return
            self._handed_back = True
            if told == "record":
                self._settle_fate(Fate.RECORDED, told, "", attempts)
            else:
                self._settle_fate(Fate.UNRECORDED, told, self._why_unrecorded(), attempts)
            return

    def _why_unrecorded(self) -> str:
        decision = self._flow.decision
        if decision is not None and decision.record:
            return "the decision was not stored: handed back fail-closed"
        return ""

    def _settle_fate(self, fate: str, told: str, reason: str, attempts: int) -> None:
        self._fate = CallFate(
            decision_id=self._decision_id(),
            fate=fate,
            told=told,
            reason=reason[:200],
            attempts=attempts,
            at=self._clock(),
            driver=self.port.driver,
        )

    def _note_error(self, exc: ChannelUnreachable) -> None:
        if self._error is None and not exc.retryable:
            self._error = str(exc)[:200]

    # -- ends that are not the flow's own ------------------------------------------------------

    async def _cancelled(self) -> None:
        """Shutdown, a lost event stream, or the server closing: fail closed, keep the decision."""
        task = self._task
        own = task is not None and task.cancelling() <= self._own_cancels
        if own and task is not None:
            while task.cancelling():
                task.uncancel()
        reason = self._abort_reason or "controller shutting down"
        try:
            await self._abort(reason)
        except Exception as exc:
            await self._crashed(exc)
        if not own:
            raise asyncio.CancelledError

    async def _abort(self, reason: str) -> None:
        """Fail the flow closed after a cancellation, keeping any decision made.

        The action that was interrupted and the rest of its batch are carried out without
        touching the caller (no answer, no prompt): a store under way is awaited, variables
        are set once the transport is usable again. A flow without a decision gets
        ``ActionFailed("Abort")`` and decides ``failed``.
        """
        self._aborting = True
        flow = self._flow
        _log.warning(
            "call.aborted", channel_id=self._channel_id(), state=flow.state.value, reason=reason
        )
        if not await self.port.recover():
            self._error = self._error or "transport unusable after the abort"
        if self._call is None:
            self._call = self.port.fallback_call()
        kept = [e for e in self._pending if isinstance(e, _KEPT_ON_ABORT)]
        self._pending = deque(kept)
        if flow.state is State.NEW:
            self._pending.appendleft(CallOffered(self._clock(), self._call))
        elif self._todo:
            await self._perform(list(self._todo))
        abort_fed = False
        handled = 0
        while not flow.done and handled < _MAX_EVENTS:
            if not self._pending:
                if flow.decision is not None or abort_fed:
                    break
                self._pending.append(ActionFailed(self._clock(), "Abort", reason))
                abort_fed = True
            handled += 1
            await self._handle(self._pending.popleft())

    async def _crashed(self, exc: Exception) -> None:
        """A bug or an unexpected error in this call: log it, count it, fail the call closed."""
        self._crash = f"{type(exc).__name__}: {exc}"[:200]
        _log.exception("call.crashed", channel_id=self._channel_id(), error=self._crash)
        if self._hooks.on_crash is not None:
            with contextlib.suppress(Exception):
                self._hooks.on_crash(type(exc).__name__)
        if self._call is None:
            with contextlib.suppress(Exception):
                self._call = self.port.fallback_call()
        if self._flow.done or self._call is None:
            return
        self._aborting = True
        try:
            if self._flow.state is State.NEW:
                self._pending = deque([CallOffered(self._clock(), self._call)])
            else:
                self._pending = deque()
            self._pending.append(ActionFailed(self._clock(), "Crash", self._crash))
            await self._drain_pending(limit=100)
        except Exception:
            _log.exception("call.crash_recovery_failed", channel_id=self._channel_id())

    async def _drain_pending(self, *, limit: int) -> None:
        """Handle what is pending (no waiting for the port), at most ``limit`` events."""
        for _ in range(limit):
            if self._flow.done or not self._pending:
                return
            await self._handle(self._pending.popleft())

    async def _safety_net(self) -> None:
        """The flow ended without handing back a live channel: hand it back, not recorded."""
        if self._handed_back or self._gone or self._fate is not None:
            return
        if self._error is not None and not self.port.retry_hand_back:
            self._settle_fate(Fate.STUCK, "", f"transport unusable: {self._error}", 0)
            return
        self._to_set = FAIL_CLOSED_VARIABLES
        try:
            await self._hand_back()
        except Exception as exc:  # never let the safety net itself escape
            _log.exception("call.safety_net_failed", channel_id=self._channel_id())
            self._settle_fate(Fate.STUCK, "", f"safety net failed: {exc}", 0)

    # -- the end -------------------------------------------------------------------------------

    async def _finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        call = self._call
        if call is None:
            with contextlib.suppress(Exception):
                call = self._call = self.port.fallback_call()
        decision = self._flow.decision
        if self._fate is None and decision is not None:
            if self._gone:
                self._settle_fate(Fate.HUNG_UP, "", "channel gone before the hand-back", 0)
            else:
                self._settle_fate(Fate.STUCK, "", "never handed back", 0)
        try:
            transport = dict(self.port.report())
        except Exception:
            transport = {}
        report = CallReport(
            call=call if call is not None else _unknown_call(self.port.driver),
            decision=decision,
            stored=self._stored,
            spooled=self._spooled,
            handed_back=self._handed_back,
            hung_up=self._gone,
            fail_closed=self._is_fail_closed(decision),
            aborted=self._aborting and self._crash is None,
            crashed=self._crash,
            error=self._error,
            variables=self._variables,
            fate=self._fate if decision is not None else None,
            seconds=self._monotonic() - self.started,
            transport=transport,
        )
        self.report = report
        self._log_decided(report)
        if self._hooks.on_finished is not None:
            try:
                self._hooks.on_finished(report)
            except Exception:
                _log.exception("call.report_hook_failed", channel_id=self._channel_id())
        if report.fate is not None and self._stored and self._hooks.record_fate is not None:
            try:
                await asyncio.shield(self._hooks.record_fate(report.fate))
            except asyncio.CancelledError:
                pass
            except Exception as exc:
                _log.error(
                    "call.fate_not_recorded", decision_id=report.fate.decision_id, error=str(exc)
                )

    def _is_fail_closed(self, decision: ConsentDecision | None) -> bool:
        return (
            decision is None
            or self._aborting
            or self._crash is not None
            or decision.outcome is Outcome.FAILED
            or not self._stored
            or self._error is not None
            or (not self._gone and not self._handed_back)
        )

    def _log_decided(self, report: CallReport) -> None:
        """The canonical ``consent.decided`` line: the same fields for every transport."""
        decision = report.decision
        call = report.call
        fate = report.fate
        flow = self._flow
        fields: dict[str, object] = {
            "call_id": call.uniqueid,
            "driver": self.port.driver,
            "channel_id": call.channel_id,
            "channel": call.channel_name[:80],
            "uniqueid": call.uniqueid,
            "linkedid": call.linkedid,
            "decision_id": decision.decision_id if decision else call.decision_id,
            "mode": flow.mode.value if flow.mode else None,
            "outcome": decision.outcome.value if decision else "none",
            "record": decision.record if decision else False,
            "reason": decision.reason if decision else None,
            "policy_rows": list(decision.policy_rows) if decision else [],
            "keys": "".join(k.digit for k in decision.keys) if decision else "",
            "latency_ms": (
                round(max(decision.decided_at - decision.offered_at, 0.0) * 1000, 1)
                if decision
                else None
            ),
            "session_ms": round(report.seconds * 1000, 1),
            "stored": report.stored,
            "spooled": report.spooled,
            "handed_back": report.handed_back,
            "hung_up": report.hung_up,
            "fail_closed": report.fail_closed,
            "aborted": report.aborted,
            "fate": fate.fate if fate else None,
            "told": fate.told if fate else "",
        }
        fields.update(report.transport)
        if report.crashed:
            fields["crashed"] = report.crashed
        if report.error:
            fields["transport_error"] = report.error
        if fate is not None and fate.reason:
            fields["fate_reason"] = fate.reason
        if decision is None or report.crashed or (fate is not None and fate.fate == Fate.STUCK):
            _log.error("consent.decided", state=flow.state.value, **fields)
        elif decision.record and (fate is None or fate.fate != Fate.RECORDED):
            _log.warning("consent.decided", **fields)
        else:
            _log.info("consent.decided", **fields)

    def _channel_id(self) -> str:
        return self._call.channel_id if self._call is not None else ""

    def _decision_id(self) -> str:
        decision = self._flow.decision
        if decision is not None:
            return decision.decision_id
        return self._call.decision_id if self._call is not None else ""


def _delay(attempt: int) -> float:
    return _RETRY_DELAYS[min(attempt, len(_RETRY_DELAYS)) - 1]


def _unknown_call(driver: str) -> CallInfo:
    return CallInfo(
        decision_id="", driver=driver, channel_id="", channel_name="", uniqueid="",
        linkedid="", asterisk_id="", instance_id="", caller_number="", caller_name="",
        called_number="", language="",
    )


def _retrieve(task: asyncio.Future[StoreReceipt]) -> None:
    """Mark a store task's exception as seen (the core logs it when it awaits the task)."""
    if not task.cancelled():
        task.exception()
