"""``serve``: the composed product (ARI controller, FastAGI, ledger, ops HTTP) end to end."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from structlog.testing import capture_logs

from asterisk_recorder.flow.decision import Outcome
from asterisk_recorder.ledger.admin import show_call
from asterisk_recorder.ledger.database import connect_app
from asterisk_recorder.ledger.sink import MemorySink
from asterisk_recorder.ledger.verify import verify_chain
from asterisk_recorder.service import Service
from asterisk_recorder.settings import (
    AgiSettings,
    HttpSettings,
    LedgerSettings,
    PolicySettings,
    Secret,
    Settings,
)
from asterisk_recorder.testing import FakeAsterisk
from asterisk_recorder.testing.agi_peer import Hold, ScriptedAsterisk
from tests.agi.agi_helpers import consent_env
from tests.controller.conftest import FAST_FLOW

DIGEST_KEY = "0123456789abcdef0123456789abcdef"


def service_settings(fake: FakeAsterisk, dsn: str, spool: Path) -> Settings:
    """Settings for a service on free loopback ports, ledger in ``dsn``."""
    base = Settings()
    return dataclasses.replace(
        base,
        instance_id="svc-test",
        ari=(fake.settings("consent-recorder"),),
        agi=AgiSettings(enabled=True, host="127.0.0.1", port=0),
        http=HttpSettings(enabled=True, host="127.0.0.1", port=0),
        database=dataclasses.replace(base.database, dsn=Secret(dsn)),
        ledger=LedgerSettings(spool_dir=str(spool), digest_key=Secret(DIGEST_KEY)),
        policy=PolicySettings(site_jurisdiction="US-NY"),
        flow=FAST_FLOW,
        controller=dataclasses.replace(base.controller, hand_back_retry=0.5),
    )


@pytest.fixture
async def running(pg_dsn: str, tmp_path: Path) -> AsyncIterator[tuple[Service, FakeAsterisk]]:
    """A started service against a fake Asterisk and a fresh real database."""
    fake = FakeAsterisk(time_scale=0.05)
    await fake.start()
    service = Service(service_settings(fake, pg_dsn, tmp_path / "spool"))
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        await asyncio.wait_for(service.started.wait(), 20)
        await fake.wait_for_app("consent-recorder")
        yield service, fake
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)
        await fake.stop()


async def test_call_decision_lands_in_the_real_ledger_and_verifies(
    running: tuple[Service, FakeAsterisk],
) -> None:
    """A call through serve is stored in PostgreSQL with its channel ids; the chain verifies."""
    service, fake = running
    ch = await fake.originate(
        caller_number="+14155550100", caller_name="Alice", extension="2125550100",
        args=("policy=opt_out", "lang=en", "linkedid=1700000000.1"),
    )
    await fake.wait_for_event("PlaybackStarted", channel_id=ch.id)
    await fake.send_dtmf(ch.id, "1")
    record = await fake.wait_for_continue(ch.id)
    assert service.dsn is not None
    conn = await connect_app(service.dsn)
    try:
        rows = []
        async with asyncio.timeout(5):
            while not rows:
                rows = await show_call(conn, record.variables["RECORDER_DECISION_ID"])
        report = await verify_chain(conn)
    finally:
        await conn.close()

    row = rows[0]
    assert "not_recorded_opted_out" == row["outcome"]
    assert ch.id == row["uniqueid"]
    assert "1700000000.1" == row["linkedid"]
    assert "ari" == row["driver"]
    assert "svc-test" == row["instance_id"]
    assert "+14155550100" == row["caller_number"]
    assert ["1"] == [k["digit"] for k in row["keys"]]
    assert report.ok


async def test_what_happened_to_the_channel_is_a_fact_linked_to_the_decision(
    running: tuple[Service, FakeAsterisk],
) -> None:
    """Recorded call: a ``call.fate`` fact (recorded, told record) follows its decision."""
    service, fake = running
    ch = await fake.originate(caller_number="+12125550100", extension="2125550199")
    record = await fake.wait_for_continue(ch.id)
    assert "record" == record.variables["RECORDER_DECISION"]
    assert service.dsn is not None
    conn = await connect_app(service.dsn)
    try:
        rows: list[dict[str, object]] = []
        async with asyncio.timeout(5):
            while not rows or not rows[0]["facts"]:
                rows = await show_call(conn, record.variables["RECORDER_DECISION_ID"])
                await asyncio.sleep(0.02)
        report = await verify_chain(conn)
    finally:
        await conn.close()

    facts = rows[0]["facts"]
    assert isinstance(facts, list)
    assert ["call.fate"] == [f["kind"] for f in facts]
    assert "recorded" == facts[0]["payload"]["fate"]
    assert "record" == facts[0]["payload"]["told"]
    assert "ari" == facts[0]["payload"]["driver"]
    effective = rows[0]["effective"]
    assert isinstance(effective, dict)
    assert "recorded" == effective["status"]
    assert report.ok


async def test_a_refused_hand_back_makes_the_ledger_say_not_recorded(
    running: tuple[Service, FakeAsterisk],
) -> None:
    """Asterisk refuses the hand-back of a 'record' decision: the ledger says it was not."""
    service, fake = running
    fake.fail("POST", "/ari/channels/*/continue", 503, "Service Unavailable", times=None)
    ch = await fake.originate(caller_number="+12125550100", extension="2125550199")
    assert service.dsn is not None
    conn = await connect_app(service.dsn)
    try:
        rows: list[dict[str, object]] = []
        async with asyncio.timeout(service.settings.controller.hand_back_retry + 10):
            while not rows or not rows[0]["facts"]:
                rows = await show_call(conn, ch.id)
                await asyncio.sleep(0.05)
        fake.clear_faults()
    finally:
        await conn.close()

    assert "recorded_notified" == rows[0]["outcome"]  # what the decision claimed
    facts = rows[0]["facts"]
    assert isinstance(facts, list)
    assert "call.hand_back_failed" == facts[0]["kind"]
    effective = rows[0]["effective"]
    assert isinstance(effective, dict)
    assert "recorded" != effective["status"]
    assert effective["mismatch"]


async def test_ops_endpoints_report_health_readiness_and_metrics(
    running: tuple[Service, FakeAsterisk],
) -> None:
    """/healthz is 200, /readyz 200 with ARI and ledger up, /metrics counts the decision."""
    service, fake = running
    ch = await fake.originate(caller_number="+12125550100", extension="2125550199")
    await fake.wait_for_continue(ch.id)
    assert service.ops is not None
    async with aiohttp.ClientSession() as http:
        async with http.get(service.ops.url + "/healthz") as resp:
            health = resp.status
        async with http.get(service.ops.url + "/readyz") as resp:
            ready, body = resp.status, await resp.json()
        async with asyncio.timeout(5):
            while True:
                async with http.get(service.ops.url + "/metrics") as resp:
                    metrics = await resp.text()
                if "recorded_notified" in metrics:
                    break
                await asyncio.sleep(0.02)

    assert 200 == health
    assert 200 == ready
    assert body["ready"] is True
    assert (
        'asterisk_recorder_decisions_total{outcome="recorded_notified",mode="announce",'
        'driver="ari"} 1' in metrics
    )


async def test_readyz_fails_when_asterisk_is_unreachable(
    running: tuple[Service, FakeAsterisk],
) -> None:
    """With the event socket down and refused, /readyz answers 503 naming the ARI check."""
    service, fake = running
    fake.refuse_websockets()
    await fake.drop_websockets()
    assert service.ops is not None
    async with aiohttp.ClientSession() as http, asyncio.timeout(5):
        while True:
            async with http.get(service.ops.url + "/readyz") as resp:
                if resp.status == 503:
                    body = await resp.json()
                    break
            await asyncio.sleep(0.02)

    assert ["ari:fake"] == body["failing"]


async def test_one_canonical_consent_decided_line_per_call(
    running: tuple[Service, FakeAsterisk],
) -> None:
    """Each call produces exactly one ``consent.decided`` log line with ids and outcome."""
    _, fake = running
    with capture_logs() as logs:
        ch = await fake.originate(caller_number="+12125550100", extension="2125550199")
        record = await fake.wait_for_continue(ch.id)
        async with asyncio.timeout(5):
            while not [e for e in logs if e["event"] == "consent.decided"]:
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)

    lines = [e for e in logs if e["event"] == "consent.decided"]
    assert 1 == len(lines)
    line = lines[0]
    assert record.variables["RECORDER_DECISION_ID"] == line["decision_id"]
    assert ("announce", "recorded_notified", ch.id) == (
        line["mode"], line["outcome"], line["channel_id"]
    )
    assert 0 < line["latency_ms"] <= line["session_ms"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _write_config(path: Path, fake: FakeAsterisk, dsn: str, spool: Path) -> None:
    path.write_text(
        textwrap.dedent(
            f"""
            instance_id = "sigterm-test"
            [ari]
            url = "{fake.url}"
            username = "{fake.username}"
            app = "consent-recorder"
            [agi]
            enabled = false
            [http]
            port = {_free_port()}
            [ledger]
            spool_dir = "{spool}"
            [controller]
            shutdown_grace = 0.2
            [flow]
            input_timeout = 30.0
            [policy]
            site_jurisdiction = "US-NY"
            """
        )
    )


async def test_serve_command_hands_back_in_flight_calls_and_exits_zero_on_sigterm(
    pg_dsn: str, tmp_path: Path
) -> None:
    """SIGTERM: the in-flight call is handed back fail-closed and the process exits 0."""
    fake = FakeAsterisk(time_scale=1.0)
    await fake.start()
    config = tmp_path / "recorder.toml"
    _write_config(config, fake, pg_dsn, tmp_path / "spool")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "ASTERISK_RECORDER_ARI_PASSWORD": fake.password,
        "ASTERISK_RECORDER_DATABASE_DSN": pg_dsn,
        "ASTERISK_RECORDER_LEDGER_DIGEST_KEY": DIGEST_KEY,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "asterisk_recorder", "serve", "--config", str(config),
        "--log-format", "json", env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        try:
            await fake.wait_for_app("consent-recorder", within=30)
        except TimeoutError:
            proc.kill()
            _, err = await proc.communicate()
            raise AssertionError(err.decode()) from None
        ch = await fake.originate(caller_number="+4930901820", extension="2125550100")
        await fake.wait_for_event("PlaybackStarted", channel_id=ch.id)
        proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(proc.communicate(), 30)
        record = await fake.wait_for_continue(ch.id)
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await fake.stop()

    assert 0 == proc.returncode, err.decode()
    assert "skip" == record.variables["RECORDER_DECISION"]
    events = [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
    decided = [e for e in events if e.get("event") == "consent.decided"]
    assert ["failed"] == [e["outcome"] for e in decided]
    assert fake.password not in out.decode() + err.decode()


async def test_calls_still_flow_and_are_spooled_when_postgresql_is_down_at_start(
    tmp_path: Path,
) -> None:
    """PostgreSQL unreachable from the start: serve still runs, decisions go to the spool."""
    fake = FakeAsterisk(time_scale=0.05)
    await fake.start()
    dead = f"postgresql://recorder@127.0.0.1:{_free_port()}/recorder"
    service = Service(service_settings(fake, dead, tmp_path / "spool"))
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        await asyncio.wait_for(service.started.wait(), 30)
        await fake.wait_for_app("consent-recorder")
        with capture_logs() as logs:
            ch = await fake.originate(caller_number="+12125550100", extension="2125550199")
            record = await fake.wait_for_continue(ch.id, within=15)
            async with asyncio.timeout(5):
                while not [e for e in logs if e["event"] == "consent.decided"]:
                    await asyncio.sleep(0.01)
        report = service.readiness()
        assert service.ledger is not None
        async with asyncio.timeout(5):  # the decision, then the fact of its fate
            while service.ledger.spool_depth < 2:
                await asyncio.sleep(0.01)
        depth = service.ledger.spool_depth
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await fake.stop()

    line = next(e for e in logs if e["event"] == "consent.decided")
    assert "record" == record.variables["RECORDER_DECISION"]
    assert line["spooled"] is True
    assert report.ready
    assert ["ledger"] == [c.name for c in report.checks if "spooling" in c.detail]
    assert 2 == depth  # the decision and its call.fate fact, both durable in the spool


async def test_one_process_serves_several_asterisk_servers(tmp_path: Path) -> None:
    """Two Asterisk servers configured: each gets its own ARI connection and its calls."""
    first = FakeAsterisk(time_scale=0.05, asterisk_id="02:00:00:00:00:01")
    second = FakeAsterisk(time_scale=0.05, asterisk_id="02:00:00:00:00:02")
    await first.start()
    await second.start()
    sink = MemorySink()
    settings = dataclasses.replace(
        service_settings(first, "postgresql://unused@127.0.0.1:1/x", tmp_path / "spool"),
        ari=(first.settings(name="pbx1"), second.settings(name="pbx2")),
        agi=AgiSettings(enabled=False),
    )
    service = Service(settings, sink=sink)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        await asyncio.wait_for(service.started.wait(), 20)
        await first.wait_for_app("consent-recorder")
        await second.wait_for_app("consent-recorder")
        a = await first.originate(caller_number="+12125550100", extension="2125550199")
        b = await second.originate(caller_number="+12125550101", extension="2125550199")
        await first.wait_for_continue(a.id)
        await second.wait_for_continue(b.id)
        readiness = service.readiness()
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)
        await first.stop()
        await second.stop()

    assert {(a.id, "02:00:00:00:00:01"), (b.id, "02:00:00:00:00:02")} == {
        (d.channel_id, d.asterisk_id) for d in sink.decisions
    }
    ari_checks = [c.name for c in readiness.checks if c.name.startswith("ari")]
    assert ["ari:pbx1", "ari:pbx2"] == ari_checks


async def test_shutdown_fails_closed_a_fastagi_call_still_in_its_disclosure(
    tmp_path: Path,
) -> None:
    """Stopping serve mid-disclosure (FastAGI): skip handed back, ``failed`` stored, one log."""
    fake = FakeAsterisk(time_scale=0.05)
    await fake.start()
    sink = MemorySink()
    settings = dataclasses.replace(
        service_settings(fake, "postgresql://unused@127.0.0.1:1/x", tmp_path / "spool"),
        controller=dataclasses.replace(Settings().controller, shutdown_grace=0.2),
    )
    service = Service(settings, sink=sink)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    peer = ScriptedAsterisk(
        consent_env("consent?policy=opt_out"),
        prompts=[Hold(30.0)],
    )
    with capture_logs() as logs:
        try:
            await asyncio.wait_for(service.started.wait(), 20)
            assert service.agi is not None
            call = asyncio.create_task(peer.connect("127.0.0.1", service.agi.port))
            async with asyncio.timeout(5):
                while not any(c[:2] == ["STREAM", "FILE"] for c in peer.commands):
                    await asyncio.sleep(0.01)
            stop.set()
            await asyncio.wait_for(call, 20)
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
            await fake.stop()

    decided = [e for e in logs if e["event"] == "consent.decided" and e.get("driver") == "agi"]
    assert [Outcome.FAILED] == [d.outcome for d in sink.decisions]
    assert 1 == len(decided)
    assert "skip" == peer.variables.get("RECORDER_DECISION")
