"""The ops HTTP server answers /healthz, /readyz and /metrics over a real socket."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest

from asterisk_recorder.errors import ConfigError
from asterisk_recorder.ops.http import (
    METRICS_CONTENT_TYPE,
    OpsServer,
    ReadinessCheck,
    ReadinessProbe,
    ReadinessReport,
)
from asterisk_recorder.ops.metrics import RecorderMetrics
from asterisk_recorder.settings import HttpSettings

LOCAL = HttpSettings(enabled=True, host="127.0.0.1", port=0)
READY = ReadinessReport.from_state(
    ari_connected={"default": True}, ledger_writable=True, ledger_spooling=False
)


@pytest.fixture
def metrics() -> RecorderMetrics:
    """A fresh metric set."""
    return RecorderMetrics()


Serve = Callable[..., Awaitable[OpsServer]]
"""Starts an OpsServer with a readiness probe (and an optional probe timeout)."""


@pytest.fixture
async def serve(metrics: RecorderMetrics) -> AsyncIterator[Serve]:
    """Start an OpsServer on 127.0.0.1:0 with a given probe; closed after the test."""
    servers: list[OpsServer] = []

    async def start(probe: ReadinessProbe, probe_timeout: float = 2.0) -> OpsServer:
        server = OpsServer(LOCAL, metrics, probe, readiness_timeout=probe_timeout)
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.close()


async def _get(url: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, response.headers["Content-Type"], await response.text()


async def _get_json(url: str) -> tuple[int, object]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.json()


async def test_healthz_answers_while_the_process_runs(serve: Serve) -> None:
    """/healthz is 200 even when the process is not ready."""
    server = await serve(lambda: ReadinessReport(()))

    status, _, body = await _get(f"{server.url}/healthz")

    assert (200, '{"status": "ok"}') == (status, body)


async def test_readyz_is_200_when_ari_up_and_ledger_writable(serve: Serve) -> None:
    """Every ARI connection up and PostgreSQL writable: ready."""
    server = await serve(lambda: READY)

    status, body = await _get_json(f"{server.url}/readyz")

    assert 200 == status
    assert {
        "ready": True,
        "failing": [],
        "checks": [
            {"name": "ari:default", "ok": True, "detail": "connected"},
            {"name": "ledger", "ok": True, "detail": "writable"},
        ],
    } == body


async def test_readyz_is_200_while_the_ledger_spools(serve: Serve) -> None:
    """PostgreSQL away but the spool writable still counts as ready."""
    report = ReadinessReport.from_state(
        ari_connected={"pbx1": True},
        ledger_writable=False,
        ledger_spooling=True,
        spool_depth=3,
    )

    async def probe() -> ReadinessReport:
        return report

    server = await serve(probe)

    status, body = await _get_json(f"{server.url}/readyz")

    assert 200 == status
    assert {"name": "ledger", "ok": True, "detail": "spooling (3 queued)"} in body["checks"]


async def test_readyz_is_503_and_names_the_disconnected_server(serve: Serve) -> None:
    """One of two ARI connections down: 503 naming it."""
    report = ReadinessReport.from_state(
        ari_connected={"pbx1": True, "pbx2": False}, ledger_writable=True, ledger_spooling=False
    )
    server = await serve(lambda: report)

    status, body = await _get_json(f"{server.url}/readyz")

    assert (503, ["ari:pbx2"]) == (status, body["failing"])


async def test_readyz_is_503_when_neither_database_nor_spool_is_writable(serve: Serve) -> None:
    """The ledger check fails when nothing can keep a decision."""
    report = ReadinessReport.from_state(
        ari_connected={"default": True}, ledger_writable=False, ledger_spooling=False
    )
    server = await serve(lambda: report)

    status, body = await _get_json(f"{server.url}/readyz")

    assert (503, ["ledger"]) == (status, body["failing"])


async def test_readyz_is_503_when_the_probe_raises(serve: Serve) -> None:
    """A probe that raises is reported, not propagated; the server keeps serving."""

    def probe() -> ReadinessReport:
        raise RuntimeError("boom")

    server = await serve(probe)

    status, body = await _get_json(f"{server.url}/readyz")
    health, _, _ = await _get(f"{server.url}/healthz")

    assert 503 == status
    assert [{"name": "readiness", "ok": False, "detail": "probe failed: RuntimeError"}] == body[
        "checks"
    ]
    assert 200 == health


async def test_readyz_is_503_when_the_probe_hangs(serve: Serve) -> None:
    """A probe slower than the timeout answers 503 instead of hanging the scrape."""

    async def probe() -> ReadinessReport:
        await asyncio.sleep(10)
        return READY

    server = await serve(probe, probe_timeout=0.05)

    status, body = await _get_json(f"{server.url}/readyz")

    assert (503, ["readiness"]) == (status, body["failing"])


async def test_readyz_with_no_checks_is_not_ready(serve: Serve) -> None:
    """An empty report (nothing configured yet) is not ready."""
    server = await serve(lambda: ReadinessReport(()))

    status, _ = await _get_json(f"{server.url}/readyz")

    assert 503 == status


async def test_readyz_is_503_when_the_probe_returns_the_wrong_type(serve: Serve) -> None:
    """A probe returning something else than a ReadinessReport is a failed probe."""
    server = await serve(lambda: True)  # type: ignore[arg-type,return-value]

    status, body = await _get_json(f"{server.url}/readyz")

    assert (503, ["readiness"]) == (status, body["failing"])


async def test_metrics_serves_the_registry_as_text_0_0_4(
    serve: Serve, metrics: RecorderMetrics
) -> None:
    """/metrics returns the exposition text with the 0.0.4 content type."""
    metrics.calls_active.set(2)
    metrics.ari_rest_errors.inc(server="pbx1", status="404")
    server = await serve(lambda: READY)

    status, content_type, body = await _get(f"{server.url}/metrics")

    assert (200, METRICS_CONTENT_TYPE) == (status, content_type)
    assert metrics.exposition() == body
    assert "asterisk_recorder_calls_active 2.0\n" in body
    assert 'asterisk_recorder_ari_rest_errors_total{server="pbx1",status="404"} 1.0\n' in body


async def test_metrics_with_hostile_label_value_stays_parseable(
    serve: Serve, metrics: RecorderMetrics
) -> None:
    """A server name with quotes, newlines and invalid UTF-8 is escaped on the wire."""
    metrics.ari_reconnects.inc(server='evil"}\n fake 1\udcff')
    server = await serve(lambda: READY)

    _, _, body = await _get(f"{server.url}/metrics")

    assert (
        'asterisk_recorder_ari_reconnects_total{server="evil\\"}\\n fake 1\\\\udcff"} 1.0\n' in body
    )


async def test_unknown_path_is_404_and_post_is_405(serve: Serve) -> None:
    """Only the three GET routes exist."""
    server = await serve(lambda: READY)

    async with aiohttp.ClientSession() as session:
        async with session.get(f"{server.url}/admin") as missing:
            missing_status = missing.status
        async with session.post(f"{server.url}/metrics") as post:
            post_status = post.status

    assert (404, 405) == (missing_status, post_status)


async def test_port_in_use_is_a_config_error(metrics: RecorderMetrics) -> None:
    """Binding a port already taken raises ConfigError naming the address."""
    blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port = blocker.getsockname()[1]
    try:
        server = OpsServer(HttpSettings(host="127.0.0.1", port=port), metrics, lambda: READY)
        with pytest.raises(ConfigError, match=f"127.0.0.1:{port}"):
            await server.start()
    finally:
        blocker.close()

    assert server.port is None


async def test_close_stops_listening(metrics: RecorderMetrics) -> None:
    """After close() the port refuses connections, and close() twice is harmless."""
    async with OpsServer(LOCAL, metrics, lambda: READY) as server:
        url = server.url
    await server.close()

    with pytest.raises(aiohttp.ClientConnectionError):
        await _get(f"{url}/healthz")


async def test_disabled_server_does_not_listen(metrics: RecorderMetrics) -> None:
    """enabled = false: start() binds nothing and url is unavailable."""
    server = OpsServer(HttpSettings(enabled=False, port=0), metrics, lambda: READY)
    await server.start()

    assert server.port is None
    with pytest.raises(RuntimeError, match="not listening"):
        _ = server.url


def test_readiness_check_is_frozen() -> None:
    """Reports are immutable values."""
    check = ReadinessCheck("ledger", True)
    with pytest.raises(AttributeError):
        check.ok = False  # type: ignore[misc]

    assert ReadinessCheck("ledger", True, "") == check
