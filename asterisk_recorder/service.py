"""The composition root: the one place the running product is built from its settings.

This module owns wiring and lifecycle, for ``serve``, the classic ``agi`` command and the demo
alike: settings -> ledger (DSN or embedded PostgreSQL, migrations) -> policy engine -> the call
parts every driver shares (``CallParts``: flow factory, driver-core hooks for metrics and the
fate fact, instance id) -> ARI controllers (one per configured Asterisk) and the FastAGI server
-> the operations HTTP endpoint; then, on stop (SIGTERM/SIGINT): stop taking calls, let
in-flight flows finish for ``controller.shutdown_grace`` seconds, hand back the rest
fail-closed, flush the ledger. It must not contain consent logic (flow/, policy/), call logic
(drivers/) or protocol code (ari/, agi/, controller/).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import hashlib
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

from asterisk_recorder.agi.channel import AgiChannel
from asterisk_recorder.agi.protocol import AgiEnvironment
from asterisk_recorder.agi.server import FastAgiServer
from asterisk_recorder.agi.session import SessionResult, consent_handler
from asterisk_recorder.ami.client import AmiClient
from asterisk_recorder.ami.pauses import AmiMuteControl, pause_event
from asterisk_recorder.ami.protocol import AmiMessage
from asterisk_recorder.controller.app import AriController, ControllerHooks
from asterisk_recorder.drivers.pause import PauseDriver, PauseOutcome
from asterisk_recorder.drivers.ports import CallFate, CallReport, CoreHooks, Fate
from asterisk_recorder.errors import DatabaseUnavailable, LedgerError
from asterisk_recorder.flow import ConsentFlow
from asterisk_recorder.flow.facts import CALL_FATE, CALL_HAND_BACK_FAILED, LedgerFact
from asterisk_recorder.flow.pause import PauseRules
from asterisk_recorder.flow.ports import DecisionSink
from asterisk_recorder.ledger import Ledger, migrate
from asterisk_recorder.ledger.checkpoints import Checkpointer, witness_from_target
from asterisk_recorder.ledger.database import database_dsn
from asterisk_recorder.ledger.pauses import LedgerPauseStore
from asterisk_recorder.ledger.signing import close_signing_key, load_signing_key
from asterisk_recorder.ledger.witness import WitnessPusher
from asterisk_recorder.logs import get_logger
from asterisk_recorder.ops.control import ControlApi
from asterisk_recorder.ops.http import OpsServer, ReadinessCheck, ReadinessReport
from asterisk_recorder.ops.metrics import RecorderMetrics
from asterisk_recorder.ops.systemd import SystemdNotifier
from asterisk_recorder.policy import PolicyEngine
from asterisk_recorder.settings import Settings

__all__ = [
    "CallParts",
    "Service",
    "build",
    "call_parts",
    "default_instance_id",
    "fate_fact",
    "ledger_fate_recorder",
    "run_classic_agi",
    "settle_heap",
]

log = get_logger("asterisk_recorder.service")


def settle_heap() -> None:
    """Move everything allocated at start-up out of the garbage collector's sight.

    Modules, policy tables and phonenumbers metadata live for the whole process; scanning them
    in every full collection adds pauses of several milliseconds to whatever call event is
    waiting at that moment. ``gc.freeze()`` after start-up keeps those pauses short.
    """
    gc.collect()
    gc.freeze()


def default_instance_id(settings: Settings | None = None) -> str:
    """``<hostname>-<digest>``: the same across restarts, different for two services on a host.

    The digest covers what tells two deployments on one host apart (the ARI apps and servers,
    the FastAGI port), so a restart keeps its id and the ledger can follow one instance.
    """
    host = socket.gethostname() or "localhost"
    if settings is None:
        return host
    identity = "|".join(
        [f"{s.url}/{s.app}" for s in settings.ari if s.enabled]
        + [f"agi:{settings.agi.port}" if settings.agi.enabled else ""]
    )
    return f"{host}-{hashlib.sha256(identity.encode()).hexdigest()[:8]}"


FateRecorder = Callable[[CallFate], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class CallParts:
    """What every driver needs to run a call, built once from the settings.

    Attributes:
        instance_id: this service's stable id (kept in every decision).
        engine: the policy engine.
        hooks: the driver core's hooks (metrics, crash counter, fate fact).
    """

    instance_id: str
    engine: PolicyEngine
    hooks: CoreHooks
    settings: Settings

    def new_flow(self) -> ConsentFlow:
        """A fresh consent flow with these settings and this policy."""
        return ConsentFlow(self.settings.flow, self.engine)


def call_parts(
    settings: Settings,
    *,
    metrics: RecorderMetrics | None = None,
    record_fate: FateRecorder | None = None,
) -> CallParts:
    """Build the call parts every driver shares (ARI, FastAGI, classic AGI, demo)."""
    def finished(report: CallReport) -> None:
        if metrics is None:
            return
        decision = report.decision
        if decision is not None:
            metrics.observe_decision(
                outcome=decision.outcome.value, mode=decision.mode.value,
                driver=report.call.driver,
                flow_seconds=max(decision.decided_at - decision.offered_at, 0.0),
            )
        if report.fate is not None:
            metrics.call_fates.inc(fate=report.fate.fate, driver=report.call.driver)

    def crashed(error: str) -> None:
        if metrics is not None:
            metrics.calls_crashed.inc(error=error)

    hooks = CoreHooks(
        on_finished=finished,
        on_crash=crashed,
        record_fate=record_fate,
        hand_back_retry_for=settings.controller.hand_back_retry,
    )
    return CallParts(
        instance_id=settings.instance_id or default_instance_id(settings),
        engine=PolicyEngine.from_settings(settings.policy),
        hooks=hooks,
        settings=settings,
    )


_FACT_IDS = uuid.UUID("5f1c6e4e-8d0a-4c39-9a51-6f1f0f4c2a11")
"""Namespace of the fate facts' ids: the same fate handed in twice is kept once."""


def fate_fact(fate: CallFate, *, actor: str) -> LedgerFact:
    """The ledger fact that keeps ``fate`` (``call.fate``, or ``call.hand_back_failed``)."""
    fact_id = str(uuid.uuid5(_FACT_IDS, f"{fate.decision_id}/{fate.fate}/{fate.attempts}"))
    extra: dict[str, str | int] = {"driver": fate.driver} if fate.driver else {}
    if fate.fate == Fate.STUCK:
        payload: dict[str, str | int] = {
            "reason": fate.reason or "every hand-back attempt failed",
            "attempts": fate.attempts, **extra,
        }
        if fate.told:
            payload["told"] = fate.told
        return LedgerFact(CALL_HAND_BACK_FAILED, fate.decision_id, fate.at, actor, payload,
                          fact_id=fact_id)
    reason = fate.reason or {
        Fate.RECORDED: "dialplan was told record; MixMonitor starts there",
        Fate.UNRECORDED: f"dialplan was told {fate.told or 'nothing'}",
        Fate.HUNG_UP: "the channel was gone before the hand-back",
    }.get(fate.fate, fate.fate)
    payload = {"fate": fate.fate, "reason": reason, "attempts": fate.attempts, **extra}
    if fate.told:
        payload["told"] = fate.told
    return LedgerFact(CALL_FATE, fate.decision_id, fate.at, actor, payload, fact_id=fact_id)


def ledger_fate_recorder(sink: object, *, actor: str) -> FateRecorder | None:
    """Keep each ``CallFate`` as a fact in ``sink``, when it keeps facts (``FactSink``)."""
    record = getattr(sink, "record_fact", None)
    if not callable(record):
        return None

    async def keep(fate: CallFate) -> object:
        return await record(fate_fact(fate, actor=actor))

    return keep


async def run_classic_agi(
    settings: Settings, channel: AgiChannel, env: AgiEnvironment
) -> SessionResult | None:
    """One classic ``AGI()`` session: the same call parts as ``serve``, a ledger of its own.

    The ledger must exist (``db migrate``) and ``database.dsn`` name it: a per-call process never
    starts the embedded PostgreSQL.
    """
    results: list[SessionResult] = []
    parts = call_parts(settings)
    async with Ledger.open(
        settings.database.dsn.value,
        settings.ledger,
        instance_id=parts.instance_id,
        connect_timeout=settings.database.connect_timeout,
    ) as ledger:
        hooks = dataclasses.replace(
            parts.hooks, record_fate=ledger_fate_recorder(ledger, actor=parts.instance_id)
        )
        handler = consent_handler(
            parts.new_flow,
            ledger,
            instance_id=parts.instance_id,
            on_result=results.append,
            hooks=hooks,
        )
        await handler(channel, env)
    return results[0] if results else None


def build(
    settings: Settings,
    *,
    sink: DecisionSink | None = None,
    clock: Callable[[], float] = time.time,
) -> Service:
    """The running service for ``settings`` (``await service.run(stop)`` runs it)."""
    return Service(settings, sink=sink, clock=clock)


class Service:
    """The running product: ARI controllers, FastAGI server, ledger and ops endpoint.

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
        self.metrics = RecorderMetrics()
        self.parts = call_parts(settings, metrics=self.metrics, record_fate=self._record_fate)
        self.instance_id = self.parts.instance_id
        self.controllers: list[AriController] = []
        self.ledger: Ledger | None = None
        self.checkpointer: Checkpointer | None = None
        self.pusher: WitnessPusher | None = None
        self.ops: OpsServer | None = None
        self.agi: FastAgiServer | None = None
        self.ami: AmiClient | None = None
        self.pauses: PauseDriver | None = None
        self.dsn: str | None = None
        self.started = asyncio.Event()
        """Set once every part is listening (the demo and tests wait for it)."""
        self._given_sink = sink
        self._sink: DecisionSink | None = sink
        self._clock = clock
        self.systemd = SystemdNotifier()
        """``READY=1`` / ``WATCHDOG=1`` / ``STOPPING=1`` under systemd ``Type=notify``."""

    # --- readiness ---------------------------------------------------------------------

    def readiness(self) -> ReadinessReport:
        """ARI connections up and the ledger writable (or spooling)."""
        ledger = self.ledger
        spooling = ledger is not None and not ledger.healthy
        report = ReadinessReport.from_state(
            ari_connected={c.server.name: c.ready for c in self.controllers},
            ledger_writable=ledger is None or ledger.healthy,
            ledger_spooling=spooling,
            spool_depth=ledger.spool_depth if ledger is not None else 0,
            witnesses_lagging=self._checkpoints_behind(),
        )
        if self.ami is None:
            return report
        up = self.ami.connected
        ami = ReadinessCheck("ami", up, "connected" if up else
                             "disconnected: recordings cannot be paused")
        return ReadinessReport((*report.checks, ami))

    def _checkpoints_behind(self) -> list[str] | None:
        """Witnesses (and the checkpointer) behind by more than ``witness_max_lag``."""
        if self.checkpointer is None:
            return None
        max_lag = self.settings.ledger.witness_max_lag
        behind = self.pusher.lagging(max_lag) if self.pusher is not None else []
        if self.checkpointer.uncovered_for() > max_lag:
            behind.append("checkpoints (none signed for the newest entries)")
        return behind

    def new_flow(self) -> ConsentFlow:
        """A fresh consent flow with this service's settings and policy."""
        return self.parts.new_flow()

    async def _record_fate(self, fate: CallFate) -> object:
        target = self.ledger if self.ledger is not None else self._given_sink
        record = ledger_fate_recorder(target, actor=self.instance_id)
        if record is None:
            return None
        return await record(fate)

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
                self._sink = self.ledger
                await self._start_checkpoints(stack, dsn)
            sink = self._sink
            assert sink is not None
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
                core=self.parts.hooks,
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
                        sink=sink,
                        instance_id=self.instance_id,
                        resync_action=self.settings.controller.resync_action,
                        hooks=hooks,
                        clock=self._clock,
                    )
                )
            tasks = [
                asyncio.create_task(c.run(), name=f"ari-{c.server.name}") for c in self.controllers
            ]
            await self._start_agi(stack, sink)
            mounts = await self._start_pauses(stack, sink)
            self.ops = OpsServer(self.settings.http, self.metrics, self.readiness, mounts=mounts)
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
            self.systemd.ready()
            try:
                await self._wait(stop, tasks)
            finally:
                grace = self.settings.controller.shutdown_grace
                log.info("service.stopping", grace_seconds=grace)
                await self.systemd.stopping()
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

    async def _start_checkpoints(self, stack: contextlib.AsyncExitStack, dsn: str) -> None:
        """Grow the tree, sign checkpoints and push them to the witnesses, off the call path."""
        settings = self.settings.ledger
        if not settings.checkpoints:
            return
        try:
            witnesses = [witness_from_target(t, settings) for t in settings.witnesses]
            key = load_signing_key(settings)
        except LedgerError as exc:  # calls must still flow; /readyz and the log say why
            log.error("checkpoint.disabled", error=str(exc))
            return
        stack.callback(close_signing_key, key)  # a PKCS#11 session; runs after the task stops
        if witnesses:
            self.pusher = WitnessPusher(witnesses, metrics=self.metrics)
            await self.pusher.start()
            stack.push_async_callback(self.pusher.close)
        checkpointer = Checkpointer(
            dsn,
            key,
            every=settings.checkpoint_every,
            interval=settings.checkpoint_interval,
            pusher=self.pusher,
            connect_timeout=self.settings.database.connect_timeout,
            timestamp_url=settings.timestamp_url,
        )
        self.checkpointer = checkpointer
        task = asyncio.create_task(checkpointer.run(), name="checkpointer")

        async def stop() -> None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await checkpointer.close()

        stack.push_async_callback(stop)
        self.metrics.ledger_tree_size.set_function(lambda: float(checkpointer.tree_size))
        self.metrics.checkpoint_size.set_function(lambda: float(checkpointer.checkpoint_size))
        self.metrics.checkpoint_uncovered_seconds.set_function(checkpointer.uncovered_for)
        self.metrics.checkpoint_failures.set_function(lambda: float(checkpointer.failures))
        log.info(
            "checkpoint.started",
            origin=key.name,
            verifier=key.verifier().to_text(),
            witnesses=[w.name for w in witnesses],
        )

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

    async def _start_pauses(
        self, stack: contextlib.AsyncExitStack, sink: DecisionSink
    ) -> list[Callable[[Any], None]]:
        """The pause driver over AMI, its watchdog, and its HTTP API (``[pause]``)."""
        pause = self.settings.pause
        if not (pause.enabled and self.settings.ami.enabled):
            return []
        rules = PauseRules(max_pause=pause.max_pause, payment_contexts=pause.payment_contexts,
                           payment_queues=pause.payment_queues, retry_every=pause.retry_every)
        holder: list[PauseDriver] = []

        def on_event(message: AmiMessage) -> None:
            if not holder:
                return
            event = pause_event(message, holder[0].now())
            if event is not None:
                holder[0].notify(event)

        client = AmiClient(self.settings.ami, on_event=on_event)
        store = (LedgerPauseStore(self.dsn, connect_timeout=self.settings.database.connect_timeout)
                 if self.dsn is not None else None)
        driver = PauseDriver(rules, AmiMuteControl(client), cast(Any, sink), store=store,
                             clock=self._clock)
        holder.append(driver)
        self.ami, self.pauses = client, driver
        await driver.start()
        stack.push_async_callback(driver.close)
        await client.start()
        stack.push_async_callback(client.close)
        self.metrics.pauses_active.set_function(lambda: float(driver.book.paused_count()))
        self.metrics.pause_alerts.set_function(lambda: float(sum(driver.alerts.values())))
        log.info("pause.started", max_pause=pause.max_pause,
                 payment_contexts=list(pause.payment_contexts),
                 payment_queues=list(pause.payment_queues),
                 api=bool(pause.api_token.value))
        return [ControlApi(_PauseApi(driver), pause.api_token.value).mount]

    async def _start_agi(self, stack: contextlib.AsyncExitStack, sink: DecisionSink) -> None:
        if not self.settings.agi.enabled:
            return
        handler = consent_handler(
            self.new_flow,
            sink,
            instance_id=self.instance_id,
            hooks=self.parts.hooks,
            clock=self._clock,
        )
        server = FastAgiServer(
            self.settings.agi,
            handler,
            on_reaction=self.metrics.reaction_seconds.observe,
            allowed_peers=self.settings.agi.allowed_peers,
            on_refused=lambda host: self.metrics.agi_peers_refused.inc(),
        )
        await server.start()
        self.agi = server
        self.metrics.agi_sessions_active.set_function(lambda: float(server.active_sessions))
        stack.push_async_callback(server.close)


class _PauseApi:
    """The control API's ``PauseControl`` over the pause driver."""

    def __init__(self, driver: PauseDriver) -> None:
        self._driver = driver

    async def pause(self, decision_id: str, actor: str,
                    reason: str) -> tuple[int, str, dict[str, object] | None]:
        return _answer(await self._driver.pause(source="api", actor=actor, reason=reason,
                                                decision_id=decision_id))

    async def resume(self, decision_id: str, actor: str,
                     reason: str) -> tuple[int, str, dict[str, object] | None]:
        return _answer(await self._driver.resume(source="api", actor=actor, reason=reason,
                                                 decision_id=decision_id))

    def state(self, decision_id: str) -> dict[str, object] | None:
        view = self._driver.book.view(decision_id)
        return None if view is None else _view_json(view)


def _view_json(view: Any) -> dict[str, object]:
    return {"decision_id": view.decision_id, "state": view.state.value,
            "channel": view.channel, "paused_at": view.paused_at,
            "pause_source": view.pause_source or None, "payment": list(view.payment),
            "pauses": view.pauses}


def _answer(outcome: PauseOutcome) -> tuple[int, str, dict[str, object] | None]:
    view = None if outcome.view is None else _view_json(outcome.view)
    return outcome.status, outcome.message, view
