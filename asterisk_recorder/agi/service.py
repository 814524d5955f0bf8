"""Wiring of the FastAGI server into ``asterisk-recorder serve``.

This module owns ``start_fastagi``: it builds the ``FastAgiServer`` with the consent session
handler, reports each finished session to the service (which writes the canonical
``consent.decided`` line and the decision metrics), exposes the open-session gauge and feeds
each AGI reaction time (reply received -> next command sent) to ``reaction_seconds``. It must
not contain protocol or consent logic.

Shutdown: ``await server.close(grace=settings.controller.shutdown_grace)`` at the start of the
drain (next to the ARI controllers' ``drain``), so no FastAGI connection is taken while
draining. ``calls_active`` covers AGI when the service adds ``server.active_sessions`` to it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from asterisk_recorder.agi.server import FastAgiServer
from asterisk_recorder.agi.session import SessionResult, consent_handler
from asterisk_recorder.flow import ConsentFlow
from asterisk_recorder.flow.decision import ConsentDecision
from asterisk_recorder.ledger.sink import DecisionSink
from asterisk_recorder.settings import Settings

__all__ = ["DecidedHook", "start_fastagi"]


class DecidedHook(Protocol):
    """The service's ``consent.decided`` writer (``Service._log_decided``)."""

    def __call__(
        self,
        decision: ConsentDecision | None,
        *,
        driver: str,
        channel_id: str,
        seconds: float,
        handed_back: bool,
        fail_closed: bool = False,
    ) -> None:
        """Log one finished call."""


async def start_fastagi(
    settings: Settings,
    *,
    flow_factory: Callable[[], ConsentFlow],
    sink: DecisionSink,
    instance_id: str,
    metrics: Any = None,
    on_decided: DecidedHook | None = None,
) -> FastAgiServer:
    """Start the FastAGI consent server on ``settings.agi`` and return it (``close()`` it).

    Args:
        settings: the configuration (``agi`` section: host, port, limits).
        flow_factory: a fresh ``ConsentFlow`` per call.
        sink: the ledger.
        instance_id: kept in every decision.
        metrics: ``RecorderMetrics`` (its ``agi_sessions_active`` gauge is attached and every
            AGI reaction time is observed in ``reaction_seconds``), or None.
        on_decided: writes ``consent.decided``; None lets each session write its own line.
    """

    def finished(result: SessionResult) -> None:
        if on_decided is not None:
            on_decided(
                result.decision,
                driver="agi",
                channel_id=result.channel_id,
                seconds=result.seconds,
                handed_back=result.handed_back,
                fail_closed=result.fail_closed,
            )

    handler = consent_handler(
        flow_factory,
        sink,
        instance_id=instance_id,
        on_result=finished,
        log_decided=on_decided is None,
    )
    reaction = getattr(metrics, "reaction_seconds", None)
    server = FastAgiServer(
        settings.agi,
        handler,
        on_reaction=reaction.observe if reaction is not None else None,
    )
    await server.start()
    gauge = getattr(metrics, "agi_sessions_active", None)
    if gauge is not None:
        gauge.set_function(lambda: float(server.active_sessions))
    return server
