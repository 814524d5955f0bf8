"""One consent flow over one AGI connection: the FastAGI (and classic AGI) driver.

This module owns the translation between the pure ``ConsentFlow`` and AGI commands:

- ``Answer``        -> ``ANSWER`` (Asterisk only answers a channel that is not up yet)
- ``PlayPrompt``    -> ``STREAM FILE <language>/<sound> "<escape digits>"``; ``result=0`` is
  ``PromptFinished`` (``endpos=0``: nothing played, ``PromptFailed``), ``result=<ASCII>`` a
  ``DigitReceived`` (barge-in), ``result=-1`` a hang-up *or* a missing sound, told apart by
  ``CHANNEL STATUS`` (a dead channel answers ``HANGUP``/``511``)
- ``StartTimer``    -> a deadline; the flow waits on it with ``WAIT FOR DIGIT <ms>``
- ``StoreDecision`` -> ``DecisionSink.store``
- ``SetVariables``  -> ``SET VARIABLE RECORDER_* <value>`` (the dialplan starts MixMonitor)
- ``HandBack``      -> end of the session (closing the connection returns to dialplan)

Shutdown: a session whose task is cancelled (``FastAgiServer.close`` after its grace) fails
closed instead of vanishing: the flow gets ``ActionFailed(action="Abort", reason="controller
shutting down")`` and decides ``failed`` (a decision already made, or a store already under way,
is kept as it is), the decision is stored, ``RECORDER_DECISION=skip`` and the other variables
are set when the channel still answers, and ``consent.decided`` is written once. A ``STREAM
FILE`` or ``WAIT FOR DIGIT`` still running is stopped by sending ``GET FULL VARIABLE
${UNIQUEID}`` (Asterisk ends either when a new command arrives; see ``AgiChannel.settle``).

Numbers: the caller is ``agi_callerid``; the called number is ``RECORDER_CALLED`` (set by the
operator's dialplan), else ``CALLERID(dnid)`` / ``agi_dnid``, else the extension when it is a
number (never ``s``). On an outbound ``Dial(...,U(recorder-consent-callee^...))`` the session
runs on the *called* channel (the subroutine sets ``RECORDER_LEG=callee``): there the caller id
is the called party's own number and the calling party is the connected line (Asterisk 22
``app_dial.c``), so the caller is ``CONNECTEDLINE(num)``/``(name)`` and the called number -- the
party asked for consent -- is ``RECORDER_CALLED`` if the dialplan set it
(``Set(_RECORDER_CALLED=${EXTEN})`` before ``Dial`` passes it down), else that channel's
``CALLERID(num)``.

Caller-controlled text (caller id, name, dialled number) is read from the environment block and
kept as evidence only: it never reaches a command. Every command this module sends is one of
a fixed set of forms whose arguments are configuration (sound ids and languages validated by
the flow), numbers, or the flow's ``RECORDER_*`` values. It never sends ``EXEC``: recording is
started by the dialplan after the session returns. It must not read configuration files or
talk to PostgreSQL itself (the ``DecisionSink`` does).
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from asterisk_recorder.agi.channel import MAX_PROMPT_SECONDS, AgiChannel
from asterisk_recorder.agi.protocol import AgiEnvironment, digit_from_result
from asterisk_recorder.agi.server import SessionHandler
from asterisk_recorder.errors import (
    AgiCommandError,
    AgiError,
    AgiHangup,
    AgiProtocolError,
    AgiTimeout,
)
from asterisk_recorder.flow import ConsentFlow, State
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
    Answered,
    CallerHungUp,
    CallInfo,
    CallOffered,
    DecisionStored,
    DecisionStoreFailed,
    DigitReceived,
    Event,
    PromptFailed,
    PromptFinished,
    PromptStarted,
    TimerExpired,
)
from asterisk_recorder.ledger.sink import DecisionSink, StoreReceipt
from asterisk_recorder.logs import get_logger

__all__ = [
    "GATHER_EXPRESSION",
    "IDENTITY_VARIABLES",
    "NUMBER_VARIABLES",
    "OVERRIDE_VARIABLES",
    "REQUIRED_ENVIRONMENT",
    "ConsentSession",
    "SessionResult",
    "call_info_from_environment",
    "consent_handler",
]

_log = get_logger("asterisk_recorder.agi.session")

REQUIRED_ENVIRONMENT = ("request", "channel", "uniqueid", "threadid")
"""Env variables every Asterisk sends (``agi_threadid`` is the last before the args)."""

OVERRIDE_VARIABLES = ("RECORDER_POLICY", "RECORDER_JURISDICTION", "RECORDER_LANGUAGE")
"""Channel variables that override the policy, jurisdiction and language of one call."""

NUMBER_VARIABLES = (
    "RECORDER_CALLED", "CALLERID(dnid)", "RECORDER_LEG", "CONNECTEDLINE(num)",
    "CONNECTEDLINE(name)",
)
"""The numbers: the operator's ``RECORDER_CALLED``, the DNID, and for the called leg of an
outbound ``Dial(...,U(recorder-consent-callee))`` (``RECORDER_LEG=callee``) the calling party,
which on that channel is the connected line."""

IDENTITY_VARIABLES = ("CHANNEL(linkedid)", "ENTITYID")
"""The call's linkedid and Asterisk's entity id (the ARI ``asterisk_id``)."""

_SEPARATOR = "|"

GATHER_EXPRESSION = _SEPARATOR.join(
    f"${{{name}}}" for name in (*OVERRIDE_VARIABLES, *NUMBER_VARIABLES, *IDENTITY_VARIABLES)
)
"""The one ``GET FULL VARIABLE`` expression read before the flow starts."""

_MAX_EVENTS = 10_000
_CHANNEL_STATE_UP = 6
_ABORT_REASON = "controller shutting down"
_KEPT_ON_ABORT = (DecisionStored, DecisionStoreFailed, CallerHungUp)


@dataclass(frozen=True, slots=True)
class SessionResult:
    """What one AGI consent session did.

    Attributes:
        decision: the decision sent to the ledger (None if the flow never got that far).
        stored: True when the ledger acknowledged it (committed or spooled).
        handed_back: True when the variables were set and the session ended normally.
        hung_up: True when the channel hung up during the session.
        variables: the ``RECORDER_*`` variables set on the channel, in order.
        commands: how many AGI commands were sent.
        channel_id: the call's ``agi_uniqueid``.
        seconds: how long the session ran (environment read to end).
        error: why the AGI connection became unusable, if it did.
        aborted: True when the session was cancelled (shutdown) and failed closed.
    """

    decision: ConsentDecision | None
    stored: bool
    handed_back: bool
    hung_up: bool
    variables: tuple[tuple[str, str], ...]
    commands: int
    channel_id: str = ""
    seconds: float = 0.0
    error: str | None = None
    aborted: bool = False

    @property
    def fail_closed(self) -> bool:
        """True when the call ended without a usable decision handed back to dialplan."""
        return (
            self.decision is None
            or self.aborted
            or self.decision.outcome is Outcome.FAILED
            or not self.stored
            or self.error is not None
            or (not self.hung_up and not self.handed_back)
        )


def _called_number(env: AgiEnvironment, variables: dict[str, str]) -> str:
    """The called number, as the ARI controller picks it.

    ``RECORDER_CALLED`` (the operator's override), else ``CALLERID(dnid)`` (``agi_dnid``), else
    the extension when it holds a digit (``s`` inside a Gosub or ``U()`` means unknown).
    """
    override = variables.get("RECORDER_CALLED", "").strip()
    if override:
        return override
    dnid = variables.get("CALLERID(dnid)", "").strip() or _unknown_to_empty(env.get("dnid"))
    if dnid:
        return dnid
    extension = env.get("extension")
    return extension if any(c.isdigit() for c in extension) else ""


def _unknown_to_empty(value: str) -> str:
    return "" if value == "unknown" else value


def call_info_from_environment(
    env: AgiEnvironment,
    variables: dict[str, str],
    *,
    decision_id: str,
    instance_id: str,
    linkedid: str = "",
    asterisk_id: str = "",
) -> CallInfo:
    """Build the flow's ``CallInfo`` from the AGI environment and channel variables.

    Overrides: the URL query (``?policy=...&lang=...``) or positional AGI args (``policy``,
    ``lang``) first, then ``RECORDER_POLICY`` / ``RECORDER_LANGUAGE``; the jurisdiction from
    ``RECORDER_JURISDICTION``; the called number from ``RECORDER_CALLED``, else
    ``CALLERID(dnid)``, else a numeric extension (see the module docstring for ``U()``).
    Empty values count as absent. Numbers and names are carried
    as-is (evidence); the flow never lets them reach a file name or a command.
    """
    query = env.query
    args = env.args
    policy = query.get("policy") or (args[0] if args else "") or variables.get("RECORDER_POLICY")
    language = (
        query.get("lang")
        or (args[1] if len(args) > 1 else "")
        or variables.get("RECORDER_LANGUAGE")
        or env.language
        or "en"
    )
    jurisdiction = variables.get("RECORDER_JURISDICTION")
    caller_number = _unknown_to_empty(env.get("callerid"))
    caller_name = _unknown_to_empty(env.get("calleridname"))
    called_number = _called_number(env, variables)
    if variables.get("RECORDER_LEG", "").strip() == "callee":
        # The called leg of an outbound call: this channel's caller id is the callee itself.
        called_number = variables.get("RECORDER_CALLED", "").strip() or caller_number
        caller_number = variables.get("CONNECTEDLINE(num)", "").strip()
        caller_name = variables.get("CONNECTEDLINE(name)", "")
    return CallInfo(
        decision_id=decision_id,
        driver="agi",
        channel_id=env.uniqueid,
        channel_name=env.channel,
        uniqueid=env.uniqueid,
        linkedid=linkedid or env.uniqueid,
        asterisk_id=asterisk_id,
        instance_id=instance_id,
        caller_number=caller_number,
        caller_name=caller_name,
        called_number=called_number,
        language=language.strip(),
        policy_override=policy.strip() if policy and policy.strip() else None,
        jurisdiction_override=(
            jurisdiction.strip() if jurisdiction and jurisdiction.strip() else None
        ),
    )


class ConsentSession:
    """Runs one ``ConsentFlow`` over one ``AgiChannel``.

    Args:
        channel: the AGI channel (environment already read).
        env: its environment block.
        flow: a fresh ``ConsentFlow`` for this call.
        sink: where the decision is stored.
        instance_id: this process's instance id (kept in the decision).
        log_decided: write the canonical ``consent.decided`` line (off when the caller, e.g.
            ``serve``, writes it from ``SessionResult``).
        settle_timeout: after a cancellation, how long Asterisk may take to stop (or finish)
            the command that was running and answer ``GET FULL VARIABLE ${UNIQUEID}``; without
            that answer the connection is given up and no variable is set (the dialplan then
            finds no decision and fails closed).
        clock: wall-clock epoch seconds for the flow's events (``time.time``).
        monotonic: monotonic seconds for deadlines and latency (``time.monotonic``).
    """

    def __init__(
        self,
        channel: AgiChannel,
        env: AgiEnvironment,
        *,
        flow: ConsentFlow,
        sink: DecisionSink,
        instance_id: str = "",
        log_decided: bool = True,
        settle_timeout: float = 2.0,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._channel = channel
        self._env = env
        self._flow = flow
        self._instance_id = instance_id
        self._log_enabled = log_decided
        self._sink = sink
        self._clock = clock
        self._monotonic = monotonic
        self._timers: dict[str, float] = {}
        self._gone = False
        self._broken: str | None = None
        self._stored = False
        self._spooled = False
        self._handed_back = False
        self._commands = 0
        self._variables: tuple[tuple[str, str], ...] = ()
        self._prompt_digit: DigitReceived | None = None
        self._settle_timeout = settle_timeout
        self._call: CallInfo | None = None
        self._events: deque[Event] = deque()
        self._todo: deque[Action] = deque()
        self._store_task: asyncio.Future[StoreReceipt] | None = None
        self._store_id = ""
        self._aborting = False
        self.result: SessionResult | None = None
        """What the session did, once ``run`` ended (also when it was cancelled)."""

    # -- entry point ---------------------------------------------------------------------------

    async def run(self) -> SessionResult:
        """Gather the call's details, run the flow to its end, log ``consent.decided``.

        Cancelled (shutdown): the flow is failed closed before ``CancelledError`` propagates;
        ``result`` is set and ``consent.decided`` written in every case.
        """
        started = self._monotonic()
        try:
            self._call = await self._gather()
            self._events.append(CallOffered(self._clock(), self._call))
            await self._drive(self._call)
        except asyncio.CancelledError:
            await self._abort()
            raise
        finally:
            self.result = self._finish(started)
        return self.result

    def _finish(self, started: float) -> SessionResult:
        """Build the result and write ``consent.decided`` (once)."""
        call = self._call or self._fallback_call()
        self._call = call
        if self._log_enabled:
            self._log_decided(self._flow, call, started)
        return SessionResult(
            decision=self._flow.decision,
            stored=self._stored,
            handed_back=self._handed_back,
            hung_up=self._gone,
            variables=self._variables,
            commands=self._commands,
            channel_id=call.uniqueid,
            seconds=self._monotonic() - started,
            error=self._broken,
            aborted=self._aborting,
        )

    def _fallback_call(self) -> CallInfo:
        """The call as the environment alone describes it (cancelled before the overrides)."""
        return call_info_from_environment(
            self._env, {}, decision_id=str(uuid.uuid4()), instance_id=self._instance_id
        )

    async def _drive(self, call: CallInfo) -> None:
        """Run the flow until it is done (the normal path)."""
        flow = self._flow
        events = self._events
        handled = 0
        while not flow.done and handled < _MAX_EVENTS:
            if not events:
                events.extend(await self._wait_for_input(flow))
                if not events:
                    _log.error("agi.session.stuck", state=flow.state.value, call_id=call.uniqueid)
                    break
            event = events.popleft()
            handled += 1
            actions = flow.handle(event)
            events.extend(await self._perform(actions))
            if event is self._prompt_digit and flow.state is State.PROMPTING:
                # The key stopped STREAM FILE but did not decide: the prompt is over anyway.
                events.appendleft(PromptFinished(event.at))

    async def _abort(self) -> None:
        """Fail the flow closed after a cancellation (shutdown), keeping any decision made.

        The action that was interrupted and the rest of its batch are carried out without
        touching the caller (no answer, no prompt): a store under way is awaited, variables
        are set once the interrupted command answered. A flow without a decision gets
        ``ActionFailed("Abort")`` and decides ``failed``. Cancelling again cuts this short.
        """
        self._aborting = True
        flow = self._flow
        _log.warning(
            "agi.session.aborted",
            channel=self._env.channel[:80],
            state=flow.state.value,
            reason=_ABORT_REASON,
        )
        if self._call is None:
            self._call = self._fallback_call()
        events: deque[Event] = deque(e for e in self._events if isinstance(e, _KEPT_ON_ABORT))
        self._events.clear()
        if flow.state is State.NEW:
            events.appendleft(CallOffered(self._clock(), self._call))
        elif self._todo:
            interrupted = list(self._todo)
            events.extend(await self._perform(interrupted))
        abort_fed = False
        handled = 0
        while not flow.done and handled < _MAX_EVENTS:
            if not events:
                if flow.decision is not None or abort_fed:
                    break
                events.append(ActionFailed(self._clock(), "Abort", _ABORT_REASON))
                abort_fed = True
            event = events.popleft()
            handled += 1
            events.extend(await self._perform(flow.handle(event)))

    # -- before the flow -----------------------------------------------------------------------

    async def _gather(self) -> CallInfo:
        """Read the overrides and the call's identity in one ``GET FULL VARIABLE``.

        The fields are joined by ``|``; when the answer does not split into exactly as many
        fields (a value holds a ``|``), each one is read on its own instead, so a value can
        never shift into another field.
        """
        names = (*OVERRIDE_VARIABLES, *NUMBER_VARIABLES, *IDENTITY_VARIABLES)
        values: dict[str, str] = {}
        combined = await self._read(self._channel.get_full_variable, GATHER_EXPRESSION)
        parts = combined.split(_SEPARATOR) if combined is not None else []
        if len(parts) == len(names):
            values = dict(zip(names, parts, strict=True))
        elif not self._broken:
            for name in names:
                value = await self._read(self._channel.get_variable, name)
                if value is not None:
                    values[name] = value
        wanted = (*OVERRIDE_VARIABLES, *NUMBER_VARIABLES)
        variables = {k: v for k, v in values.items() if k in wanted and v}
        return call_info_from_environment(
            self._env,
            variables,
            decision_id=str(uuid.uuid4()),
            instance_id=self._instance_id,
            linkedid=values.get("CHANNEL(linkedid)", ""),
            asterisk_id=values.get("ENTITYID", ""),
        )

    async def _read(
        self, getter: Callable[[str], Awaitable[str | None]], argument: str
    ) -> str | None:
        """Run one GET command; failures leave the value unset (and mark the channel).

        ``GET [FULL] VARIABLE`` still works on a hung-up channel, so the overrides are read
        even then: the ledger's record of an abandoned call shows the policy that applied.
        """
        if self._broken:
            return None
        self._commands += 1
        try:
            value = await getter(argument)
        except AgiHangup:
            self._gone = True
            return None
        except AgiCommandError as exc:
            if exc.code == 511:
                self._gone = True
            return None
        except (AgiTimeout, AgiProtocolError) as exc:
            self._mark_broken(exc)
            return None
        self._hangup_noted()
        return value

    # -- actions -------------------------------------------------------------------------------

    async def _perform(self, actions: list[Action]) -> list[Event]:
        """Carry out one batch of actions; return the events they produced, in order.

        Timer bookkeeping is applied first, so a guard timer listed after ``PlayPrompt``
        already runs while the prompt plays.
        """
        for action in actions:
            if isinstance(action, StartTimer):
                self._timers[action.name] = self._monotonic() + action.seconds
            elif isinstance(action, CancelTimer):
                self._timers.pop(action.name, None)
        events: list[Event] = []
        self._todo = deque(actions)
        while self._todo:
            action = self._todo[0]
            match action:
                case StartTimer() | CancelTimer() | StopPrompt():
                    # StopPrompt: STREAM FILE already returned when the key stopped it.
                    pass
                case Answer():
                    events.extend(await self._answer())
                case PlayPrompt():
                    events.extend(await self._play(action))
                case StoreDecision(decision):
                    events.append(await self._store(decision))
                case SetVariables(variables):
                    events.extend(await self._set_variables(variables))
                case HandBack():
                    self._handed_back = not self._gone and self._broken is None
            self._todo.popleft()
        return events

    def _expired(self, now: float) -> list[Event]:
        """Timers whose deadline passed while a command blocked, earliest first."""
        due = sorted((d, n) for n, d in self._timers.items() if d <= now)
        events: list[Event] = []
        for _, name in due:
            del self._timers[name]
            events.append(TimerExpired(self._clock(), name))
        return events

    def _mark_broken(self, exc: AgiError) -> None:
        """The AGI connection cannot be used any more (garbage, timeout): log it once."""
        if self._broken is None:
            self._broken = str(exc)
            _log.warning(
                "agi.session.connection_unusable",
                channel=self._env.channel[:80],
                error_type=type(exc).__name__,
                error=self._broken[:200],
            )

    def _hangup_noted(self) -> bool:
        """True (once) when Asterisk said ``HANGUP`` during a command that still succeeded."""
        if self._channel.hung_up and not self._gone:
            self._gone = True
            return True
        return False

    def _unavailable(self, action: str) -> list[Event] | None:
        """The event for an action the channel can no longer carry out, or None if it can."""
        if self._gone:
            return [ActionFailed(self._clock(), action, "channel hung up", channel_gone=True)]
        if self._broken:
            return [ActionFailed(self._clock(), action, f"AGI connection unusable: {self._broken}")]
        return None

    def _failure(self, action: str, exc: AgiError) -> list[Event]:
        """Translate an AGI error during ``action`` into flow events."""
        now = self._clock()
        if isinstance(exc, AgiHangup) or (isinstance(exc, AgiCommandError) and exc.code == 511):
            self._gone = True
            return [CallerHungUp(now)]
        if isinstance(exc, (AgiTimeout, AgiProtocolError)):
            self._mark_broken(exc)
        return [ActionFailed(now, action, str(exc))]

    async def _answer(self) -> list[Event]:
        if self._aborting:
            return []  # shutting down: the caller is not touched before the hand-back
        if (unavailable := self._unavailable("Answer")) is not None:
            return unavailable
        self._commands += 1
        try:
            await self._channel.answer()
        except AgiError as exc:
            return [*self._expired(self._monotonic()), *self._failure("Answer", exc)]
        return [*self._expired(self._monotonic()), Answered(self._clock())]

    async def _play(self, prompt: PlayPrompt) -> list[Event]:
        if self._aborting:
            return []
        if (unavailable := self._unavailable("PlayPrompt")) is not None:
            return unavailable
        sound = f"{prompt.language}/{prompt.sound}" if prompt.language else prompt.sound
        events: list[Event] = [PromptStarted(self._clock())]
        _log.debug("agi.prompt.started", uniqueid=self._env.uniqueid, sound=sound)
        self._commands += 1
        try:
            reply = await self._channel.stream_file(
                sound, prompt.escape_digits, wait=self._prompt_bound()
            )
        except AgiError as exc:
            return [*events, *self._expired(self._monotonic()), *self._failure("PlayPrompt", exc)]
        events.extend(self._expired(self._monotonic()))
        now = self._clock()
        result = reply.result
        if result is None:
            return [*events, ActionFailed(now, "PlayPrompt", f"no result: {reply.line!r}")]
        if result > 0:
            try:
                digit = digit_from_result(result)
            except AgiProtocolError as exc:
                self._mark_broken(exc)
                return [*events, ActionFailed(now, "PlayPrompt", str(exc))]
            self._prompt_digit = DigitReceived(now, digit)
            return [*events, self._prompt_digit]
        if result == 0:
            if reply.endpos == 0:
                return [*events, PromptFailed(now, f"{sound} played no samples (missing or empty)")]
            return [*events, PromptFinished(now)]
        # result=-1: the caller hung up, or the sound does not exist. A dead channel answers
        # CHANNEL STATUS with HANGUP and/or 511; a live one with its state.
        self._commands += 1
        try:
            await self._channel.channel_status()
        except AgiError as exc:
            return [*events, *self._failure("PlayPrompt", exc)]
        return [*events, PromptFailed(self._clock(), f"{sound} could not be played")]

    def _prompt_bound(self) -> float:
        """How long STREAM FILE may run: until the earliest timer (the guard), at most 300 s."""
        if not self._timers:
            return MAX_PROMPT_SECONDS
        remaining = min(self._timers.values()) - self._monotonic()
        return max(0.0, min(remaining, MAX_PROMPT_SECONDS))

    async def _store(self, decision: ConsentDecision) -> Event:
        """Store the decision in a task of its own: cancelling the session never cancels it."""
        task = self._store_task
        if task is None or self._store_id != decision.decision_id:
            new: asyncio.Future[StoreReceipt] = asyncio.ensure_future(self._sink.store(decision))
            new.add_done_callback(_retrieve)
            self._store_task, self._store_id = new, decision.decision_id
            task = new
        try:
            receipt = await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.cancelled():  # the sink itself was cancelled, not this session
                return DecisionStoreFailed(self._clock(), "store cancelled")
            raise
        except Exception as exc:  # any failure of the sink fails closed, never crashes
            _log.error(
                "agi.decision.store_failed",
                decision_id=decision.decision_id,
                error_type=type(exc).__name__,
                error=str(exc),
            )
            return DecisionStoreFailed(self._clock(), f"{type(exc).__name__}: {exc}"[:200])
        self._stored = True
        self._spooled = receipt.spooled
        return DecisionStored(self._clock(), receipt.decision_id, spooled=receipt.spooled)

    async def _set_variables(self, variables: tuple[tuple[str, str], ...]) -> list[Event]:
        # After a shutdown abort the cancelled command's reply comes first; a channel that no
        # longer answers gets no variables (the dialplan finds none and fails closed).
        if (
            self._aborting
            and self._channel.reply_pending
            and self._broken is None
            and not await self._channel.settle(self._settle_timeout, uniqueid=self._env.uniqueid)
        ):
            self._mark_broken(
                AgiTimeout(f"no reply within {self._settle_timeout:g} s after the shutdown abort")
            )
        if (unavailable := self._unavailable("SetVariables")) is not None:
            return unavailable
        done: list[tuple[str, str]] = []
        for name, value in variables:
            self._commands += 1
            try:
                await self._channel.set_variable(name, value)
            except AgiError as exc:
                self._variables = tuple(done)
                events = self._failure("SetVariables", exc)
                if not self._gone and not self._broken:
                    await self._force_skip()
                return events
            done.append((name, value))
        self._variables = tuple(done)
        if self._hangup_noted():
            return [CallerHungUp(self._clock())]
        return []

    async def _force_skip(self) -> None:
        """After a failed ``SET VARIABLE``: make sure dialplan does not record (fail closed)."""
        self._commands += 1
        try:
            await self._channel.set_variable("RECORDER_DECISION", "skip")
        except AgiError as exc:
            _log.warning("agi.session.force_skip_failed", error=str(exc))

    # -- waiting -------------------------------------------------------------------------------

    async def _wait_for_input(self, flow: ConsentFlow) -> list[Event]:
        """Nothing to do until a timer runs out or a key arrives: ``WAIT FOR DIGIT``."""
        if not self._timers:
            return []
        name, deadline = min(self._timers.items(), key=lambda item: item[1])
        remaining = deadline - self._monotonic()
        if remaining <= 0:
            del self._timers[name]
            return [TimerExpired(self._clock(), name)]
        if (unavailable := self._unavailable("StartTimer")) is not None:
            return unavailable
        self._commands += 1
        try:
            digit = await self._channel.wait_for_digit(max(1, math.ceil(remaining * 1000)))
        except AgiError as exc:
            return self._failure("StartTimer", exc)
        if digit is None:
            self._timers.pop(name, None)
            return [TimerExpired(self._clock(), name)]
        return [DigitReceived(self._clock(), digit)]

    # -- the canonical log line ----------------------------------------------------------------

    def _log_decided(self, flow: ConsentFlow, call: CallInfo, started: float) -> None:
        """The canonical ``consent.decided`` line, shaped like the one ``serve`` writes."""
        decision = flow.decision
        fields: dict[str, object] = {
            "call_id": call.uniqueid,
            "driver": "agi",
            "channel_id": call.channel_id,
            "channel": call.channel_name,
            "uniqueid": call.uniqueid,
            "linkedid": call.linkedid,
            "decision_id": call.decision_id,
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
            "session_ms": round((self._monotonic() - started) * 1000, 1),
            "stored": self._stored,
            "spooled": self._spooled,
            "handed_back": self._handed_back,
            "hung_up": self._gone,
            "fail_closed": (
                decision is None
                or decision.outcome is Outcome.FAILED
                or not self._stored
                or self._broken is not None
            ),
            "aborted": self._aborting,
            "agi_commands": self._commands,
        }
        if self._broken:
            fields["agi_error"] = self._broken[:200]
        if decision is None or not flow.done:
            _log.error("consent.decided", state=flow.state.value, **fields)
        else:
            _log.info("consent.decided", **fields)


def consent_handler(
    flow_factory: Callable[[], ConsentFlow],
    sink: DecisionSink,
    *,
    instance_id: str = "",
    on_result: Callable[[SessionResult], None] | None = None,
    log_decided: bool = True,
    settle_timeout: float = 2.0,
) -> SessionHandler:
    """A ``SessionHandler`` for ``FastAgiServer`` running ``ConsentSession`` on each call.

    Only the ``consent`` script path is served (``agi://host:port/consent?...``): another path,
    or an environment block missing what Asterisk always sends, is refused with a log line and
    no command (the dialplan then finds no decision and fails closed).
    """

    async def handle(channel: AgiChannel, env: AgiEnvironment) -> None:
        if env.network and env.script_path not in ("consent", ""):
            _log.warning("agi.session.unknown_script", script=env.script_path[:80])
            return
        missing = [name for name in REQUIRED_ENVIRONMENT if not env.get(name)]
        if missing:
            # Asterisk always sends these; a block without them was cut short, e.g. by a
            # blank line injected through a caller name. Refuse: dialplan fails closed.
            _log.warning(
                "agi.session.incomplete_environment",
                missing=missing,
                channel=env.channel[:80],
            )
            return
        session = ConsentSession(
            channel,
            env,
            flow=flow_factory(),
            sink=sink,
            instance_id=instance_id,
            log_decided=log_decided,
            settle_timeout=settle_timeout,
        )
        try:
            await session.run()
        finally:
            # Also when cancelled (shutdown): the failed-closed decision is reported once.
            if on_result is not None and session.result is not None:
                on_result(session.result)

    return handle


def _retrieve(task: asyncio.Future[StoreReceipt]) -> None:
    """Mark a store task's exception as seen (the session logs it when it awaits the task)."""
    if not task.cancelled():
        task.exception()
