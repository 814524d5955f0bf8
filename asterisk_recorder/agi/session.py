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

Caller-controlled text (caller id, name, dialled number) is read from the environment block and
kept as evidence only: it never reaches a command. Every command this module sends is one of
a fixed set of forms whose arguments are configuration (sound ids and languages validated by
the flow), numbers, or the flow's ``RECORDER_*`` values. It never sends ``EXEC``: recording is
started by the dialplan after the session returns. It must not read configuration files or
talk to PostgreSQL itself (the ``DecisionSink`` does).
"""

from __future__ import annotations

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
from asterisk_recorder.flow.decision import ConsentDecision
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
from asterisk_recorder.ledger.sink import DecisionSink
from asterisk_recorder.logs import get_logger

__all__ = [
    "GATHER_EXPRESSION",
    "IDENTITY_VARIABLES",
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

IDENTITY_VARIABLES = ("CHANNEL(linkedid)", "ENTITYID")
"""The call's linkedid and Asterisk's entity id (the ARI ``asterisk_id``)."""

_SEPARATOR = "|"

GATHER_EXPRESSION = _SEPARATOR.join(
    f"${{{name}}}" for name in (*OVERRIDE_VARIABLES, *IDENTITY_VARIABLES)
)
"""The one ``GET FULL VARIABLE`` expression read before the flow starts."""

_MAX_EVENTS = 10_000
_CHANNEL_STATE_UP = 6


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

    @property
    def fail_closed(self) -> bool:
        """True when the call ended without a usable decision handed back to dialplan."""
        return (
            self.decision is None
            or not self.stored
            or self.error is not None
            or (not self.hung_up and not self.handed_back)
        )


def _called_number(env: AgiEnvironment) -> str:
    """The dialled number: the extension, or the DNID when the extension is ``s``-like."""
    extension = env.get("extension")
    if any(c.isdigit() for c in extension):
        return extension
    dnid = env.get("dnid")
    return "" if dnid == "unknown" else dnid


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
    ``RECORDER_JURISDICTION``. Empty values count as absent. Numbers and names are carried
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
    return CallInfo(
        decision_id=decision_id,
        driver="agi",
        channel_id=env.uniqueid,
        channel_name=env.channel,
        uniqueid=env.uniqueid,
        linkedid=linkedid or env.uniqueid,
        asterisk_id=asterisk_id,
        instance_id=instance_id,
        caller_number=_unknown_to_empty(env.get("callerid")),
        caller_name=_unknown_to_empty(env.get("calleridname")),
        called_number=_called_number(env),
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
        sink: where the decision is stored.
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

    # -- entry point ---------------------------------------------------------------------------

    async def run(self) -> SessionResult:
        """Gather the call's details, run the flow to its end, log ``consent.decided``."""
        started = self._monotonic()
        call = await self._gather()
        flow = self._flow
        events: deque[Event] = deque([CallOffered(self._clock(), call)])
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
        if self._log_enabled:
            self._log_decided(flow, call, started)
        return SessionResult(
            decision=flow.decision,
            stored=self._stored,
            handed_back=self._handed_back,
            hung_up=self._gone,
            variables=self._variables,
            commands=self._commands,
            channel_id=call.uniqueid,
            seconds=self._monotonic() - started,
            error=self._broken,
        )

    # -- before the flow -----------------------------------------------------------------------

    async def _gather(self) -> CallInfo:
        """Read the overrides and the call's identity in one ``GET FULL VARIABLE``.

        The fields are joined by ``|``; when the answer does not split into exactly as many
        fields (a value holds a ``|``), each one is read on its own instead, so a value can
        never shift into another field.
        """
        names = (*OVERRIDE_VARIABLES, *IDENTITY_VARIABLES)
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
        variables = {k: v for k, v in values.items() if k in OVERRIDE_VARIABLES and v}
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
        for action in actions:
            match action:
                case StartTimer() | CancelTimer() | StopPrompt():
                    # StopPrompt: STREAM FILE already returned when the key stopped it.
                    continue
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
        if (unavailable := self._unavailable("Answer")) is not None:
            return unavailable
        self._commands += 1
        try:
            await self._channel.answer()
        except AgiError as exc:
            return [*self._expired(self._monotonic()), *self._failure("Answer", exc)]
        return [*self._expired(self._monotonic()), Answered(self._clock())]

    async def _play(self, prompt: PlayPrompt) -> list[Event]:
        if (unavailable := self._unavailable("PlayPrompt")) is not None:
            return unavailable
        sound = f"{prompt.language}/{prompt.sound}" if prompt.language else prompt.sound
        events: list[Event] = [PromptStarted(self._clock())]
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
        try:
            receipt = await self._sink.store(decision)
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
            "fail_closed": decision is None or not self._stored or self._broken is not None,
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
        result = await ConsentSession(
            channel,
            env,
            flow=flow_factory(),
            sink=sink,
            instance_id=instance_id,
            log_decided=log_decided,
        ).run()
        if on_result is not None:
            on_result(result)

    return handle
