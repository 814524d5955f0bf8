"""The operations HTTP endpoint: ``/healthz``, ``/readyz`` and ``/metrics``.

This module owns the small aiohttp server ``serve`` runs beside the controller and the
``ReadinessReport`` it answers ``/readyz`` with. It must not decide readiness itself (the
composition root passes a callable that looks at the ARI connections and the ledger) and must
not change any state: its own routes are read-only GETs (HEAD is answered too). The only
routes that act are the call-control API's (``ops/control.py``), mounted through ``mounts``
when ``pause.api_token`` is set.

* ``/healthz``: 200 while the process runs and its event loop answers.
* ``/readyz``: 200 when every check of the report passes (every ARI connection up, the ledger
  writable or spooling), else 503; the JSON body names each check and which ones fail.
* ``/metrics``: Prometheus text format 0.0.4.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from aiohttp import web

from asterisk_recorder.errors import ConfigError
from asterisk_recorder.ops.metrics import RecorderMetrics, Registry
from asterisk_recorder.settings import HttpSettings

__all__ = [
    "METRICS_CONTENT_TYPE",
    "READINESS_TIMEOUT",
    "OpsServer",
    "ReadinessCheck",
    "ReadinessProbe",
    "ReadinessReport",
]

METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""Content-Type of ``/metrics`` (Prometheus text exposition format 0.0.4)."""

READINESS_TIMEOUT = 2.0
"""Seconds the readiness callable gets before ``/readyz`` answers 503 on its own."""


@dataclass(frozen=True, slots=True)
class ReadinessCheck:
    """One named readiness condition.

    Attributes:
        name: e.g. ``ari:default`` or ``ledger``.
        ok: True when the condition holds.
        detail: a short human-readable state, e.g. ``connected``, ``spooling (3 queued)``.
    """

    name: str
    ok: bool
    detail: str = ""


@dataclass(frozen=True, slots=True)
class ReadinessReport:
    """The answer to "can this process take calls now?": ready when every check passes."""

    checks: tuple[ReadinessCheck, ...]

    @property
    def ready(self) -> bool:
        """True when every check passes (and there is at least one)."""
        return bool(self.checks) and all(check.ok for check in self.checks)

    @property
    def failing(self) -> tuple[str, ...]:
        """Names of the checks that fail."""
        return tuple(check.name for check in self.checks if not check.ok)

    @classmethod
    def from_state(
        cls,
        *,
        ari_connected: Mapping[str, bool],
        ledger_writable: bool,
        ledger_spooling: bool,
        spool_depth: int = 0,
        witnesses_lagging: Sequence[str] | None = None,
    ) -> ReadinessReport:
        """Build the product's report.

        Args:
            ari_connected: per ARI server name, whether its WebSocket is up.
            ledger_writable: PostgreSQL accepts decisions.
            ledger_spooling: PostgreSQL is away but the local spool accepts decisions.
            spool_depth: decisions waiting in the spool (shown in the detail).
            witnesses_lagging: checkpoint witnesses behind by more than the allowed lag
                (``None``: no witnesses configured, no check).
        """
        checks = [
            ReadinessCheck(f"ari:{name}", up, "connected" if up else "disconnected")
            for name, up in ari_connected.items()
        ]
        if ledger_writable:
            ledger = ReadinessCheck("ledger", True, "writable")
        elif ledger_spooling:
            ledger = ReadinessCheck("ledger", True, f"spooling ({spool_depth} queued)")
        else:
            ledger = ReadinessCheck("ledger", False, "neither PostgreSQL nor the spool is writable")
        checks.append(ledger)
        if witnesses_lagging is not None:
            checks.append(
                ReadinessCheck(
                    "witnesses",
                    not witnesses_lagging,
                    "behind: " + ", ".join(witnesses_lagging) if witnesses_lagging else "current",
                )
            )
        return cls(tuple(checks))

    def as_json(self) -> dict[str, object]:
        """The ``/readyz`` body."""
        return {
            "ready": self.ready,
            "failing": list(self.failing),
            "checks": [
                {"name": check.name, "ok": check.ok, "detail": check.detail}
                for check in self.checks
            ],
        }


ReadinessProbe = Callable[[], Awaitable[ReadinessReport] | ReadinessReport]
"""What ``OpsServer`` calls on every ``/readyz``: a plain or an async function."""


class OpsServer:
    """The operations HTTP server.

    Use ``await start()`` then ``await close()`` (or ``async with``). Port 0 in the settings
    picks a free port; ``port`` and ``url`` tell which. When ``settings.enabled`` is false,
    ``start()`` does nothing and ``port`` stays None.
    """

    def __init__(
        self,
        settings: HttpSettings,
        metrics: RecorderMetrics | Registry,
        readiness: ReadinessProbe,
        *,
        readiness_timeout: float = READINESS_TIMEOUT,
        mounts: Sequence[Callable[[web.Application], None]] = (),
    ) -> None:
        self._settings = settings
        self._mounts = tuple(mounts)
        self._metrics = metrics
        self._readiness = readiness
        self._readiness_timeout = readiness_timeout
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:8090``.

        Raises:
            RuntimeError: the server is not listening.
        """
        if self.port is None:
            raise RuntimeError("the ops server is not listening")
        host = self._settings.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    def build_app(self) -> web.Application:
        """The aiohttp application with the three routes."""
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics_route)
        for mount in self._mounts:
            mount(app)
        return app

    async def start(self) -> None:
        """Listen on ``settings.host:settings.port``.

        Raises:
            ConfigError: the address cannot be bound (in use, not local, permission).
            RuntimeError: already started.
        """
        if not self._settings.enabled:
            return
        if self._runner is not None:
            raise RuntimeError("the ops server is already started")
        runner = web.AppRunner(self.build_app(), access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self._settings.host, self._settings.port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise ConfigError(
                f"http: cannot listen on {self._settings.host}:{self._settings.port}: "
                f"{exc.strerror or exc}"
            ) from exc
        self._runner = runner
        address = runner.addresses[0]
        self.port = int(address[1])

    async def close(self) -> None:
        """Stop listening; safe to call twice or before ``start``."""
        runner, self._runner = self._runner, None
        self.port = None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> OpsServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _healthz(self, request: web.Request) -> web.Response:
        del request
        return web.json_response({"status": "ok"})

    async def _readyz(self, request: web.Request) -> web.Response:
        del request
        try:
            report = await asyncio.wait_for(self._probe(), self._readiness_timeout)
        except TimeoutError:
            report = ReadinessReport(
                (ReadinessCheck("readiness", False, "the readiness probe timed out"),)
            )
        except Exception as exc:  # the endpoint reports a broken probe, it never crashes
            report = ReadinessReport(
                (ReadinessCheck("readiness", False, f"probe failed: {type(exc).__name__}"),)
            )
        return web.Response(
            status=200 if report.ready else 503,
            body=json.dumps(report.as_json(), ensure_ascii=True).encode("ascii"),
            content_type="application/json",
        )

    async def _probe(self) -> ReadinessReport:
        result = self._readiness()
        if inspect.isawaitable(result):
            result = await result
        if not isinstance(result, ReadinessReport):
            raise TypeError(f"readiness probe returned {type(result).__name__}")
        return result

    async def _metrics_route(self, request: web.Request) -> web.Response:
        del request
        body = self._metrics.exposition().encode("utf-8")
        return web.Response(body=body, headers={"Content-Type": METRICS_CONTENT_TYPE})
