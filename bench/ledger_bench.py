"""Benchmark of the consent ledger: sustained group-commit throughput and time-to-acknowledge.

Runs against its own embedded PostgreSQL in a temporary directory (or a fresh database on the
server named by ``ASTERISK_RECORDER_TEST_DSN``). Prints one JSON object, then a table.

    python bench/ledger_bench.py [--decisions 30000] [--rate 500] [--seconds 10]

Targets (issue 4): >= 5,000 decisions/s sustained; p99 time-to-acknowledge <= 25 ms at 500/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import structlog

from asterisk_recorder.embedded_pg import EmbeddedPostgres
from asterisk_recorder.flow.decision import ConsentDecision, KeyPress, Outcome, PartyRecord
from asterisk_recorder.ledger import Ledger, migrate
from asterisk_recorder.ledger.database import connect_app
from asterisk_recorder.ledger.verify import verify_chain
from asterisk_recorder.policy.modes import Mode
from asterisk_recorder.settings import LedgerSettings, Secret

__all__ = ["main"]


def _decision(index: int) -> ConsentDecision:
    now = time.time()
    decision_id = str(uuid.uuid4())
    caller = f"+1212555{index % 10000:04d}"
    return ConsentDecision(
        decision_id=decision_id,
        driver="ari",
        channel_id=f"{int(now)}.{index}",
        channel_name=f"PJSIP/trunk-{index:08x}",
        uniqueid=f"{int(now)}.{index}",
        linkedid=f"{int(now)}.{index}",
        asterisk_id="08:00:27:aa:bb:cc",
        instance_id="bench",
        caller_number=caller,
        caller_name="Bench Caller",
        called_number="+14155550199",
        parties=(
            PartyRecord("caller", caller, "US-NY", "US-NY", Mode.OPT_OUT),
            PartyRecord("called", "+14155550199", "US-CA", "US-CA", Mode.OPT_IN),
        ),
        mode=Mode.OPT_IN,
        policy_rows=("US-NY", "US-CA"),
        policy_version="bench",
        prompt_id="recorder/consent-opt-in",
        language="en",
        keys=(KeyPress("1", now),),
        outcome=Outcome.RECORDED_CONSENTED,
        reason="accept key pressed",
        offered_at=now - 4,
        answered_at=now - 3.5,
        disclosure_started_at=now - 3.4,
        disclosure_finished_at=now - 0.5,
        decided_at=now,
        recording_path=f"/var/spool/asterisk/monitor/recorder/2026/11/23/{decision_id}.wav",
    )


@asynccontextmanager
async def _database(workdir: Path) -> AsyncIterator[str]:
    external = os.environ.get("ASTERISK_RECORDER_TEST_DSN")
    if external:
        name = f"bench_{uuid.uuid4().hex[:12]}"
        admin = await asyncpg.connect(external)
        await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.close()
        parts = urlsplit(external)
        try:
            yield urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, ""))
        finally:
            admin = await asyncpg.connect(external)
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()
        return
    server = EmbeddedPostgres(workdir / "pgdata", delete_on_stop=True)
    dsn = await asyncio.to_thread(server.start)
    try:
        yield dsn
    finally:
        await asyncio.to_thread(server.stop)


async def _throughput(
    dsn: str, settings: LedgerSettings, count: int, callers: int
) -> dict[str, float]:
    decisions = [_decision(i) for i in range(count)]
    per_caller = [decisions[i::callers] for i in range(callers)]
    spooled = 0

    async def caller(mine: list[ConsentDecision]) -> None:
        nonlocal spooled
        for decision in mine:
            spooled += (await ledger.store(decision)).spooled

    async with Ledger.open(dsn, settings, instance_id="bench") as ledger:
        started = time.perf_counter()
        cpu_started = time.process_time()
        await asyncio.gather(*(caller(m) for m in per_caller))
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
    return {
        "decisions": count,
        "concurrent_callers": callers,
        "seconds": round(elapsed, 3),
        "decisions_per_s": round(count / elapsed, 1),
        "python_cpu_s": round(cpu, 3),
        "python_cpu_us_per_decision": round(cpu / count * 1e6, 1),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "spooled": spooled,
    }


async def _latency(
    dsn: str, settings: LedgerSettings, rate: float, seconds: float
) -> dict[str, float]:
    count = int(rate * seconds)
    decisions = [_decision(i) for i in range(count)]
    latencies: list[float] = []
    spooled = 0
    async with Ledger.open(dsn, settings, instance_id="bench") as ledger:
        loop = asyncio.get_running_loop()
        tasks: set[asyncio.Task[None]] = set()

        async def one(decision: ConsentDecision) -> None:
            nonlocal spooled
            sent = time.perf_counter()
            receipt = await ledger.store(decision)
            latencies.append(time.perf_counter() - sent)
            spooled += receipt.spooled

        # open loop: one call arrives every 1/rate s whatever the ledger is doing
        start = loop.time()
        for index, decision in enumerate(decisions):
            delay = start + index / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(one(decision))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        while tasks:
            await asyncio.gather(*tasks)
    latencies.sort()

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000, 2)

    return {
        "rate_per_s": rate,
        "decisions": count,
        "p50_ms": pct(0.50),
        "p90_ms": pct(0.90),
        "p99_ms": pct(0.99),
        "max_ms": round(latencies[-1] * 1000, 2),
        "mean_ms": round(statistics.fmean(latencies) * 1000, 2),
        "spooled": spooled,
    }


async def _run(args: argparse.Namespace) -> dict[str, object]:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    with tempfile.TemporaryDirectory(prefix="ledger-bench-") as tmp:
        workdir = Path(tmp)
        settings = LedgerSettings(
            spool_dir=str(workdir / "spool"),
            digest_key=Secret("bench-key"),
        )
        async with _database(workdir) as dsn:
            await migrate(dsn)
            # latency first: steady 500/s on a warm server, not right behind a 30k burst's
            # checkpoint and autovacuum
            latency = await _latency(dsn, settings, args.rate, args.seconds)
            throughput = await _throughput(dsn, settings, args.decisions, args.callers)
            conn = await connect_app(dsn)
            try:
                started = time.perf_counter()
                report = await verify_chain(conn)
                verify_s = time.perf_counter() - started
            finally:
                await conn.close()
    return {
        "benchmark": "ledger",
        "cpu_count": os.cpu_count(),
        "settings": {
            "batch_interval_s": settings.batch_interval,
            "batch_max": settings.batch_max,
            "ack_timeout_s": settings.ack_timeout,
        },
        "throughput": throughput,
        "latency": latency,
        "verify": {
            "rows": report.rows,
            "ok": report.ok,
            "seconds": round(verify_s, 3),
            "rows_per_s": round(report.rows / verify_s, 1),
        },
        "targets": {
            "decisions_per_s_min": 5000,
            "p99_ms_max_at_500_per_s": 25,
            "throughput_met": throughput["decisions_per_s"] >= 5000,
            "latency_met": latency["p99_ms"] <= 25,
        },
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print JSON then a table; exit 1 if a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=30_000)
    parser.add_argument("--callers", type=int, default=1_000)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    result = asyncio.run(_run(args))
    print(json.dumps(result))
    t, lat, ver = (cast(dict[str, Any], result[k]) for k in ("throughput", "latency", "verify"))
    rows = [
        (
            "sustained throughput",
            f"{t['decisions_per_s']:,.0f} decisions/s",
            f"{t['decisions']} decisions, {t['concurrent_callers']} concurrent callers",
            ">= 5,000/s",
        ),
        ("ack p50 @ 500/s", f"{lat['p50_ms']} ms", f"{lat['decisions']} decisions", ""),
        ("ack p99 @ 500/s", f"{lat['p99_ms']} ms", f"max {lat['max_ms']} ms", "<= 25 ms"),
        (
            "python CPU",
            f"{t['python_cpu_us_per_decision']} us/decision",
            f"load average {t['load_average_1m']} on {os.cpu_count()} cores",
            "",
        ),
        ("spooled", f"{t['spooled'] + lat['spooled']}", "should be 0 with PostgreSQL up", ""),
        ("verify", f"{ver['rows_per_s']:,.0f} rows/s", f"{ver['rows']} rows, ok={ver['ok']}", ""),
    ]
    print()
    print(f"{'measure':<22} {'value':<22} {'detail':<48} target")
    for row in rows:
        print(f"{row[0]:<22} {row[1]:<22} {row[2]:<48} {row[3]}")
    targets = cast(dict[str, Any], result["targets"])
    return 0 if targets["throughput_met"] and targets["latency_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
