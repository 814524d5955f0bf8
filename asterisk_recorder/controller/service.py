"""``asterisk-recorder serve``: the composition root of the running product.

This module owns wiring and lifecycle: settings -> logs -> ledger (DSN or embedded PostgreSQL,
migrations) -> policy engine -> ARI controllers (one per configured Asterisk) and the FastAGI
server -> the operations HTTP endpoint; then, on stop (SIGTERM/SIGINT): stop taking calls, let
in-flight flows finish for ``controller.shutdown_grace`` seconds, hand back the rest fail-closed,
flush the ledger, exit 0. It must not contain consent logic (flow/ and policy/ do) nor protocol
code (ari/, agi/ do). It emits the one canonical ``consent.decided`` log line per call.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import socket
import time
from collections.abc import Callable

from asterisk_recorder.agi.server import FastAgiServer
from asterisk_recorder.agi.service import start_fastagi
from asterisk_recorder.controller.app import AriController, ControllerHooks
from asterisk_recorder.controller.call import CallSession
from asterisk_recorder.errors import DatabaseUnavailable
from asterisk_recorder.flow import ConsentFlow
from asterisk_recorder.flow.decision import ConsentDecision, Outcome
from asterisk_recorder.ledger import Ledger, migrate
from asterisk_recorder.ledger.database import database_dsn
from asterisk_recorder.ledger.sink import DecisionSink, StoreReceipt
from asterisk_recorder.logs import get_logger
from asterisk_recorder.ops.http import OpsServer, ReadinessReport
from asterisk_recorder.ops.metrics import RecorderMetrics
from asterisk_recorder.policy import PolicyEngine
from asterisk_recorder.settings import Settings

__all__ = ["Service", "default_instance_id", "settle_heap"]

log = get_logger("asterisk_recorder.service")


def settle_heap() -> None:
    """Move everything allocated at start-up out of the garbage collector's sight.

    Modules, policy tables and phonenumbers metadata live for the whole process; scanning them
    in every full collection adds pauses of several milliseconds to whatever call event is
    waiting at that moment. ``gc.freeze()`` after start-up keeps those pauses short.
    """
    gc.collect()
    gc.freeze()


def default_instance_id() -> str:
    """``<hostname>-<pid>``: tells controller instances apart in the ledger."""
    return f"{socket.gethostname()}-{os.getpid()}"


class _ObservedSink:
    """Wraps the ledger to remember which decisions went to the spool (for the log line)."""

    def __init__(self, inner: DecisionSink) -> None:
        self.inner = inner
        self.spooled: set[str] = set()

    async def store(self, decision: ConsentDecision) -> StoreReceipt:
        receipt = await self.inner.store(decision)
        if receipt.spooled:
            self.spooled.add(decision.decision_id)
        return receipt


class Service:
    """The running controller: ARI controllers, FastAGI server, ledger and ops endpoint.

    Args:
        settings: the validated configuration.
        sink: a ``DecisionSink`` to use instead of opening the PostgreSQL ledger (tests,
            integrators embedding the flow).
        clock: wall-clock seconds for the flow's timestamps.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        sink: DecisionSink | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.instance_id = settings.instance_id or default_instance_id()
        self.metrics = RecorderMetrics()
        self.controllers: list[AriController] = []
        self.ledger: Ledger | None = None
        self.ops: OpsServer | None = None
        self.agi: FastAgiServer | None = None
        self.dsn: str | None = None
        self.started = asyncio.Event()
        """Set once every part is listening (the demo and tests wait for it)."""
        self._given_sink = sink
        self._sink: _ObservedSink | None = None
        self._clock = clock
        self._engine = PolicyEngine.from_settings(settings.policy)

    # --- readiness ---------------------------------------------------------------------

    def readiness(self) -> ReadinessReport:
        """ARI connections up and the ledger writable (or spooling)."""
        ledger = self.ledger
        spooling = ledger is not None and not ledger.healthy
        return ReadinessReport.from_state(
            ari_connected={c.server.name: c.ready for c in self.controllers},
            ledger_writable=ledger is None or ledger.healthy,
            ledger_spooling=spooling,
            spool_depth=ledger.spool_depth if ledger is not None else 0,
        )

    def new_flow(self) -> ConsentFlow:
        """A fresh consent flow with this service's settings and policy."""
        return ConsentFlow(self.settings.flow, self._engine)

    # --- lifecycle ---------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set, then shut down gracefully."""
        async with contextlib.AsyncExitStack() as stack:
            if self._given_sink is None:
                dsn = await stack.enter_async_context(database_dsn(self.settings))
                self.dsn = dsn
                try:
                    applied = await migrate(dsn)
                except DatabaseUnavailable as exc:
                    # Calls must still flow: the ledger spools until PostgreSQL (and the
                    # schema) is there, and replays then.
                    log.warning("ledger.migrate_deferred", error=str(exc))
                else:
                    if applied:
                        log.info("ledger.migrated", versions=applied)
                self.ledger = await stack.enter_async_context(
                    Ledger.open(
                        dsn,
                        self.settings.ledger,
                        instance_id=self.instance_id,
                        connect_timeout=self.settings.database.connect_timeout,
                    )
                )
                self._sink = _ObservedSink(self.ledger)
            else:
                self._sink = _ObservedSink(self._given_sink)
            self.metrics.ledger_spool_depth.set_function(
                lambda: float(self.ledger.spool_depth) if self.ledger is not None else 0.0
            )
            self.metrics.calls_active.set_function(
                lambda: float(
                    sum(c.active_calls for c in self.controllers)
                    + (self.agi.active_sessions if self.agi is not None else 0)
                )
            )

            hooks = ControllerHooks(
                on_call_finished=self._call_finished,
                on_reaction=lambda s: self.metrics.reaction_seconds.observe(s),
                on_reconnect=lambda server: self.metrics.ari_reconnects.inc(server=server),
                on_rest_error=lambda server, status: self.metrics.ari_rest_errors.inc(
                    server=server, status=status
                ),
            )
            for server in self.settings.ari:
                if not server.enabled:
                    continue
                self.controllers.append(
                    AriController(
                        server,
                        flow_factory=self.new_flow,
                        sink=self._sink,
                        instance_id=self.instance_id,
                        resync_action=self.settings.controller.resync_action,
                        hooks=hooks,
                        clock=self._clock,
                    )
                )
            tasks = [
                asyncio.create_task(c.run(), name=f"ari-{c.server.name}") for c in self.controllers
            ]
            await self._start_agi(stack)
            self.ops = OpsServer(self.settings.http, self.metrics, self.readiness)
            await self.ops.start()
            stack.push_async_callback(self.ops.close)
            log.info(
                "service.started",
                instance_id=self.instance_id,
                ari_servers=[c.server.name for c in self.controllers],
                agi_port=self.agi.port if self.agi is not None else None,
                ops_port=self.ops.port,
            )
            settle_heap()
            self.started.set()
            try:
                await self._wait(stop, tasks)
            finally:
                grace = self.settings.controller.shutdown_grace
                log.info("service.stopping", grace_seconds=grace)
                # Stop taking calls on both drivers at once; each gives its calls the grace.
                draining = [c.drain(grace) for c in self.controllers]
                if self.agi is not None:
                    draining.append(self.agi.close(grace=grace))
                await asyncio.gather(*draining)
                for task in tasks:
                    if not task.done():
                        task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        log.info("service.stopped")

    async def _wait(self, stop: asyncio.Event, tasks: list[asyncio.Task[None]]) -> None:
        stop_task = asyncio.create_task(stop.wait())
        try:
            done, _ = await asyncio.wait(
                {stop_task, *tasks}, return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                if task is not stop_task and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            stop_task.cancel()

    async def _start_agi(self, stack: contextlib.AsyncExitStack) -> None:
        if not self.settings.agi.enabled:
            return
        assert self._sink is not None
        self.agi = await start_fastagi(
            self.settings,
            flow_factory=self.new_flow,
            sink=self._sink,
            instance_id=self.instance_id,
            metrics=self.metrics,
            on_decided=self._log_decided,
        )
        stack.push_async_callback(self.agi.close)

    # --- per call ----------------------------------------------------------------------

    def _call_finished(
        self, session: CallSession, decision: ConsentDecision | None, seconds: float
    ) -> None:
        self._log_decided(
            decision,
            driver="ari",
            channel_id=session.channel_id,
            seconds=seconds,
            handed_back=session.stats.handed_back,
            fail_closed=session.stats.fail_closed
            or (decision is not None and decision.outcome is Outcome.FAILED),
        )

    def _log_decided(
        self,
        decision: ConsentDecision | None,
        *,
        driver: str,
        channel_id: str,
        seconds: float,
        handed_back: bool,
        fail_closed: bool = False,
    ) -> None:
        """The canonical ``consent.decided`` line (one per call) and the decision metrics."""
        if decision is None:
            log.error(
                "consent.decided", driver=driver, channel_id=channel_id, outcome="none",
                decision_id=None, handed_back=handed_back, fail_closed=True,
                latency_ms=round(seconds * 1000, 1),
            )
            return
        latency = decision.decided_at - decision.offered_at
        self.metrics.observe_decision(
            outcome=decision.outcome.value, mode=decision.mode.value, driver=driver,
            flow_seconds=max(latency, 0.0),
        )
        spooled = self._sink is not None and decision.decision_id in self._sink.spooled
        if self._sink is not None:
            self._sink.spooled.discard(decision.decision_id)
        log.info(
            "consent.decided",
            driver=driver,
            channel_id=channel_id,
            uniqueid=decision.uniqueid,
            linkedid=decision.linkedid,
            decision_id=decision.decision_id,
            mode=decision.mode.value,
            outcome=decision.outcome.value,
            record=decision.record,
            policy_rows=list(decision.policy_rows),
            keys="".join(k.digit for k in decision.keys),
            latency_ms=round(max(latency, 0.0) * 1000, 1),
            session_ms=round(seconds * 1000, 1),
            spooled=spooled,
            handed_back=handed_back,
            fail_closed=fail_closed,
        )
