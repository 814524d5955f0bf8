"""One consent call over one AGI connection: the FastAGI (and classic AGI) session handler.

This module owns ``consent_handler`` (the ``SessionHandler`` ``FastAgiServer`` runs per
connection: it checks the script path and the environment block, then runs the driver core
over an ``AgiPort``) and ``SessionResult``, the AGI view of the core's ``CallReport``. It must
not contain call logic (``drivers/core.py`` does) nor protocol code (``agi/port.py``,
``agi/channel.py`` do).

Shutdown: a session whose task is cancelled (``FastAgiServer.close`` after its grace) fails
closed in the core (the decision is stored, ``RECORDER_DECISION=skip`` set when the channel still
answers, ``consent.decided`` written once), then the cancellation propagates.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from asterisk_recorder.agi.channel import AgiChannel
from asterisk_recorder.agi.port import (
    GATHER_EXPRESSION,
    IDENTITY_VARIABLES,
    NUMBER_VARIABLES,
    OVERRIDE_VARIABLES,
    REQUIRED_ENVIRONMENT,
    AgiPort,
    call_info_from_environment,
)
from asterisk_recorder.agi.protocol import AgiEnvironment
from asterisk_recorder.agi.server import SessionHandler
from asterisk_recorder.drivers.core import CallCore, FlowLike
from asterisk_recorder.drivers.ports import CallReport, CoreHooks
from asterisk_recorder.flow.decision import ConsentDecision
from asterisk_recorder.flow.ports import DecisionSink
from asterisk_recorder.logs import get_logger

__all__ = [
    "GATHER_EXPRESSION",
    "IDENTITY_VARIABLES",
    "NUMBER_VARIABLES",
    "OVERRIDE_VARIABLES",
    "REQUIRED_ENVIRONMENT",
    "SessionResult",
    "call_info_from_environment",
    "consent_handler",
]

_log = get_logger("asterisk_recorder.agi.session")


@dataclass(frozen=True, slots=True)
class SessionResult:
    """What one AGI consent session did (built from the core's ``CallReport``).

    Attributes:
        decision: the decision sent to the ledger (None if the flow never got that far).
        stored: True when the ledger acknowledged it (committed or spooled).
        handed_back: True when the variables were set and the session ended normally.
        hung_up: True when the channel hung up during the session.
        variables: the ``RECORDER_*`` variables set on the channel, in order.
        commands: how many AGI commands were sent.
        channel_id: the call's ``agi_uniqueid``.
        seconds: how long the session ran.
        error: why the AGI connection became unusable, if it did.
        aborted: True when the session was cancelled (shutdown) and failed closed.
        fail_closed: True when the call ended without a usable decision handed back.
        report: the core's full report.
    """

    decision: ConsentDecision | None
    stored: bool
    handed_back: bool
    hung_up: bool
    variables: tuple[tuple[str, str], ...]
    commands: int
    channel_id: str
    seconds: float
    error: str | None
    aborted: bool
    fail_closed: bool
    report: CallReport

    @classmethod
    def from_report(cls, report: CallReport, commands: int) -> SessionResult:
        """The AGI view of ``report``."""
        return cls(
            decision=report.decision,
            stored=report.stored,
            handed_back=report.handed_back,
            hung_up=report.hung_up,
            variables=report.variables,
            commands=commands,
            channel_id=report.call.uniqueid,
            seconds=report.seconds,
            error=report.error,
            aborted=report.aborted,
            fail_closed=report.fail_closed,
            report=report,
        )


def consent_handler(
    flow_factory: Callable[[], FlowLike],
    sink: DecisionSink,
    *,
    instance_id: str = "",
    on_result: Callable[[SessionResult], None] | None = None,
    hooks: CoreHooks | None = None,
    settle_timeout: float = 2.0,
    clock: Callable[[], float] = time.time,
) -> SessionHandler:
    """A ``SessionHandler`` for ``FastAgiServer`` running the driver core on each call.

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
        port = AgiPort(
            channel, env, instance_id=instance_id, settle_timeout=settle_timeout, clock=clock
        )
        core = CallCore(port, flow=flow_factory(), sink=sink, hooks=hooks, clock=clock)
        try:
            await core.run()
        finally:
            # Also when cancelled (shutdown): the failed-closed decision is reported once.
            if on_result is not None and core.report is not None:
                on_result(SessionResult.from_report(core.report, port.commands))

    return handle
