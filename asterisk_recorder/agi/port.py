"""The AGI transport of the driver core: one channel over one AGI connection.

This module owns the translation between the driver core's ``ChannelPort`` and AGI commands:

- ``describe``      -> one ``GET FULL VARIABLE`` reading the overrides and identity
- ``answer``        -> ``ANSWER`` (Asterisk only answers a channel that is not up yet)
- ``play``          -> ``STREAM FILE <language>/<sound> "<escape digits>"``; ``result=0`` is
  ``PromptFinished`` (``endpos=0``: nothing played, ``PromptFailed``), ``result=<ASCII>`` a
  ``DigitReceived`` (barge-in), ``result=-1`` a hang-up *or* a missing sound, told apart by
  ``CHANNEL STATUS`` (a dead channel answers ``HANGUP``/``511``)
- ``next_events``   -> ``WAIT FOR DIGIT <ms>`` until the core's next timer
- ``set_variables`` -> ``SET VARIABLE RECORDER_* <value>`` (the dialplan starts MixMonitor)
- ``hand_back``     -> nothing: closing the connection returns the channel to dialplan
- ``recover``       -> after a cancellation, a ``STREAM FILE`` or ``WAIT FOR DIGIT`` still
  running is stopped by sending ``GET FULL VARIABLE ${UNIQUEID}`` (``AgiChannel.settle``)

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
a fixed set of forms whose arguments are configuration (sound ids and languages validated at
load), numbers, or the flow's ``RECORDER_*`` values. It never sends ``EXEC``: recording is
started by the dialplan after the session returns. It must not decide, store or log the call
(the driver core does) nor read configuration.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping

from asterisk_recorder.agi.channel import AgiChannel
from asterisk_recorder.agi.protocol import AgiEnvironment, digit_from_result
from asterisk_recorder.drivers.variables import pack_variables
from asterisk_recorder.errors import (
    AgiCommandError,
    AgiError,
    AgiHangup,
    AgiProtocolError,
    AgiTimeout,
    ChannelGone,
    ChannelUnreachable,
)
from asterisk_recorder.flow.actions import PlayPrompt
from asterisk_recorder.flow.events import (
    ActionFailed,
    Answered,
    CallerHungUp,
    CallInfo,
    DigitReceived,
    Event,
    PromptFailed,
    PromptFinished,
    PromptStarted,
)
from asterisk_recorder.logs import get_logger

__all__ = [
    "GATHER_EXPRESSION",
    "IDENTITY_VARIABLES",
    "NUMBER_VARIABLES",
    "OVERRIDE_VARIABLES",
    "REQUIRED_ENVIRONMENT",
    "AgiPort",
    "call_info_from_environment",
]

_log = get_logger("asterisk_recorder.agi.port")

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


class AgiPort:
    """``ChannelPort`` over one ``AgiChannel`` (its environment already read).

    Args:
        channel: the AGI conversation.
        env: its environment block.
        instance_id: this controller instance (kept in the decision).
        settle_timeout: after a cancellation, how long Asterisk may take to stop (or finish)
            the command that was running and answer ``GET FULL VARIABLE ${UNIQUEID}``; without
            that answer the connection is given up and no variable is set (the dialplan then
            finds no decision and fails closed).
        clock: wall-clock epoch seconds for the events.
    """

    driver = "agi"
    retry_hand_back = False

    def __init__(
        self,
        channel: AgiChannel,
        env: AgiEnvironment,
        *,
        instance_id: str = "",
        settle_timeout: float = 2.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._channel = channel
        self._env = env
        self._instance_id = instance_id
        self._settle_timeout = settle_timeout
        self._clock = clock
        self._gone = False
        self._broken: str | None = None
        self._decision_id = str(uuid.uuid4())
        self.commands = 0
        """How many AGI commands were sent."""

    # -- the call ------------------------------------------------------------------------------

    async def describe(self) -> CallInfo:
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
            decision_id=self._decision_id,
            instance_id=self._instance_id,
            linkedid=values.get("CHANNEL(linkedid)", ""),
            asterisk_id=values.get("ENTITYID", ""),
        )

    def fallback_call(self) -> CallInfo:
        """The call as the environment alone describes it (cancelled before the overrides)."""
        return call_info_from_environment(
            self._env, {}, decision_id=self._decision_id, instance_id=self._instance_id
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
        self.commands += 1
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

    async def answer(self) -> list[Event]:
        """``ANSWER``."""
        self._usable()
        self.commands += 1
        try:
            await self._channel.answer()
        except AgiError as exc:
            return self._failure("Answer", exc)
        return [Answered(self._clock())]

    async def play(self, prompt: PlayPrompt, *, bound: float) -> list[Event]:
        """``STREAM FILE``: the prompt's start and its end (or the key that stopped it)."""
        self._usable()
        sound = f"{prompt.language}/{prompt.sound}" if prompt.language else prompt.sound
        events: list[Event] = [PromptStarted(self._clock())]
        _log.debug("agi.prompt.started", uniqueid=self._env.uniqueid, sound=sound)
        self.commands += 1
        try:
            reply = await self._channel.stream_file(sound, prompt.escape_digits, wait=bound)
        except AgiError as exc:
            return [*events, *self._failure("PlayPrompt", exc)]
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
            return [*events, DigitReceived(now, digit)]
        if result == 0:
            if reply.endpos == 0:
                return [*events, PromptFailed(now, f"{sound} played no samples (missing or empty)")]
            return [*events, PromptFinished(now)]
        # result=-1: the caller hung up, or the sound does not exist. A dead channel answers
        # CHANNEL STATUS with HANGUP and/or 511; a live one with its state.
        self.commands += 1
        try:
            await self._channel.channel_status()
        except AgiError as exc:
            return [*events, *self._failure("PlayPrompt", exc)]
        return [*events, PromptFailed(self._clock(), f"{sound} could not be played")]

    async def stop_prompt(self) -> list[Event]:
        """Nothing: ``STREAM FILE`` already returned when the key stopped it."""
        return []

    async def set_variables(self, variables: tuple[tuple[str, str], ...]) -> list[Event]:
        """One ``SET VARIABLE ARRAY(A,B,...) "a,b,..."`` when they pack, else one each, in order.

        Dialplan reads none of them before the AGI script ends, so one command sets them all.
        """
        self._usable()
        packed = pack_variables(variables)
        for name, value in (packed,) if packed is not None else variables:
            self.commands += 1
            try:
                await self._channel.set_variable(name, value)
            except (AgiHangup, AgiCommandError) as exc:
                if isinstance(exc, AgiHangup) or exc.code == 511:
                    self._gone = True
                    raise ChannelGone(f"channel hung up: {exc}") from exc
                raise ChannelUnreachable(f"SET VARIABLE {name} failed: {exc}") from exc
            except AgiError as exc:
                self._mark_broken(exc)
                raise ChannelUnreachable(f"AGI connection unusable: {exc}") from exc
        if self._hangup_noted():
            return [CallerHungUp(self._clock())]
        return []

    async def hand_back(self) -> None:
        """Nothing to send: the session's end returns the channel to dialplan."""
        self._usable()

    async def next_events(self, timeout: float | None) -> list[Event]:  # noqa: ASYNC109
        """``WAIT FOR DIGIT`` for at most ``timeout`` seconds (at least 1 ms)."""
        self._usable()
        if timeout is None or timeout <= 0:
            return []
        self.commands += 1
        try:
            digit = await self._channel.wait_for_digit(max(1, math.ceil(timeout * 1000)))
        except AgiError as exc:
            return self._failure("StartTimer", exc)
        if digit is None:
            return []
        return [DigitReceived(self._clock(), digit)]

    async def recover(self) -> bool:
        """After a cancellation: wait for the interrupted command's reply (or give up)."""
        if self._broken is not None or self._gone:
            return self._broken is None
        if self._channel.reply_pending and not await self._channel.settle(
            self._settle_timeout, uniqueid=self._env.uniqueid
        ):
            self._mark_broken(
                AgiTimeout(f"no reply within {self._settle_timeout:g} s after the abort")
            )
            return False
        return True

    def report(self) -> Mapping[str, object]:
        """``agi_commands`` (and ``agi_error``) for the log line."""
        fields: dict[str, object] = {"agi_commands": self.commands}
        if self._broken:
            fields["agi_error"] = self._broken[:200]
        return fields

    # -- helpers -------------------------------------------------------------------------------

    def _usable(self) -> None:
        """Raise when the channel can no longer carry out an action."""
        if self._gone:
            raise ChannelGone("channel hung up")
        if self._broken:
            raise ChannelUnreachable(f"AGI connection unusable: {self._broken}")

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

    def _failure(self, action: str, exc: AgiError) -> list[Event]:
        """Translate an AGI error during ``action`` into flow events."""
        now = self._clock()
        if isinstance(exc, AgiHangup) or (isinstance(exc, AgiCommandError) and exc.code == 511):
            self._gone = True
            return [CallerHungUp(now)]
        if isinstance(exc, (AgiTimeout, AgiProtocolError)):
            self._mark_broken(exc)
        return [ActionFailed(now, action, str(exc))]
