"""Benchmark of the consent ledger: sustained group-commit throughput and time-to-acknowledge.

Runs against its own embedded PostgreSQL in a temporary directory (or a fresh database on the
server named by ``ASTERISK_RECORDER_TEST_DSN``). Prints one JSON object, then a table.

    python bench/ledger_bench.py [--decisions 30000] [--rate 500] [--seconds 10]

Targets (issue 4): >= 5,000 decisions/s sustained; p99 time-to-acknowledge <= 25 ms at 500/s.
Targets (issue 15): throughput with the checkpointer running >= 0.9x without it, measured in
the same run (alternating off/on rounds, best of each); an inclusion proof in a 10-million-leaf
tree stored in PostgreSQL < 5 ms; fetching and verifying a consistency proof between two
checkpoints of that tree < 5 ms.
It also measures the time to acknowledge when PostgreSQL is a black hole (a TCP path that
swallows every byte): the first decisions wait for ``ack_timeout`` and are spooled, the ones
after are spooled at once until PostgreSQL answers again.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit, urlunsplit

import structlog
from bench_db import database

from asterisk_recorder.flow.decision import ConsentDecision, KeyPress, Outcome, PartyRecord
from asterisk_recorder.ledger import Ledger, migrate
from asterisk_recorder.ledger.checkpoints import Checkpointer
from asterisk_recorder.ledger.database import connect_app
from asterisk_recorder.ledger.merkle import TileBuilder, verify_consistency, verify_inclusion
from asterisk_recorder.ledger.note import SigningKey
from asterisk_recorder.ledger.tree import tree_consistency, tree_inclusion, tree_root
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


class _Blackhole:
    """TCP on 127.0.0.1 relaying to PostgreSQL until told to go silent (then swallows bytes)."""

    def __init__(self, dsn: str) -> None:
        parts = urlsplit(dsn)
        query = parse_qs(parts.query)
        self._host = query["host"][0] if "host" in query else (parts.hostname or "127.0.0.1")
        self._port = parts.port or 5432
        self.silent = False
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.dsn = ""
        """The DSN through the relay (set by ``start``)."""
        self._parts = parts

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        netloc = f"{self._parts.username or 'postgres'}@127.0.0.1:{self.port}"
        self.dsn = urlunsplit((self._parts.scheme, netloc, self._parts.path, "", ""))

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            while data := await reader.read(65536):
                if self.silent:
                    continue
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.silent:
            self._track(asyncio.create_task(self._pipe(reader, writer)))
            return
        if self._host.startswith("/"):
            up_reader, up_writer = await asyncio.open_unix_connection(
                f"{self._host}/.s.PGSQL.{self._port}"
            )
        else:
            up_reader, up_writer = await asyncio.open_connection(self._host, self._port)
        self._track(asyncio.create_task(self._pipe(reader, up_writer)))
        self._track(asyncio.create_task(self._pipe(up_reader, writer)))

    def _track(self, task: asyncio.Task[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


async def _blackhole(
    dsn: str, settings: LedgerSettings, burst: int, after: int
) -> dict[str, float]:
    """Ack times once PostgreSQL silently stops answering: a burst, then one by one."""
    proxy = _Blackhole(dsn)
    await proxy.start()
    try:
        async with Ledger.open(
            proxy.dsn, settings, instance_id="bench", retry_interval=60, connect_timeout=1.0
        ) as ledger:
            for i in range(20):  # warm: committed through the proxy
                await ledger.store(_decision(i))
            proxy.silent = True

            async def timed(decision: ConsentDecision) -> tuple[float, bool]:
                sent = time.perf_counter()
                receipt = await ledger.store(decision)
                return time.perf_counter() - sent, receipt.spooled

            first = await asyncio.gather(*(timed(_decision(i)) for i in range(burst)))
            later = [await timed(_decision(i)) for i in range(after)]
    finally:
        await proxy.stop()
    first_s = sorted(t for t, _ in first)
    later_s = sorted(t for t, _ in later)
    return {
        "ack_timeout_s": settings.ack_timeout,
        "burst": burst,
        "burst_max_ms": round(first_s[-1] * 1000, 1),
        "burst_min_ms": round(first_s[0] * 1000, 1),
        "after": after,
        "after_p50_ms": round(later_s[len(later_s) // 2] * 1000, 2),
        "after_max_ms": round(later_s[-1] * 1000, 2),
        "spooled": sum(s for _, s in first) + sum(s for _, s in later),
        "acknowledged": len(first) + len(later),
    }


async def _checkpointing(
    dsn: str, settings: LedgerSettings, count: int, callers: int, rounds: int
) -> dict[str, object]:
    """Throughput without and with a checkpointer running beside the ledger, alternating."""
    key = SigningKey.generate("bench.local/ledger")
    off: list[float] = []
    on: list[float] = []
    signed = 0
    for _ in range(rounds):  # alternate, so drift (autovacuum, other load) hits both alike
        off.append((await _throughput(dsn, settings, count, callers))["decisions_per_s"])
        checkpointer = Checkpointer(dsn, key, every=1000, interval=1.0, poll=0.2)
        task = asyncio.create_task(checkpointer.run())
        try:
            on.append((await _throughput(dsn, settings, count, callers))["decisions_per_s"])
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await checkpointer.cycle(force=True)
            signed = checkpointer.checkpoint_size
            await checkpointer.close()
    return {
        "decisions_per_round": count,
        "rounds": rounds,
        "off_decisions_per_s": off,
        "on_decisions_per_s": on,
        "ratio_best": round(max(on) / max(off), 3),
        "ratio_median": round(statistics.median(on) / statistics.median(off), 3),
        "final_checkpoint_size": signed,
    }


async def _big_tree(dsn: str, leaves: int, samples: int) -> dict[str, object]:
    """Tiles of a ``leaves``-leaf tree in ledger_tiles; time proofs read from PostgreSQL."""
    import random

    started = time.perf_counter()
    builder = TileBuilder()
    conn = await connect_app(dsn)
    try:
        async with conn.transaction():
            chunk = 1 << 16
            done = 0
            while done < leaves:
                n = min(chunk, leaves - done)
                raw = os.urandom(32 * n)
                changed = builder.append([raw[i : i + 32] for i in range(0, len(raw), 32)])
                await conn.execute(
                    "INSERT INTO ledger_tiles (level, idx, hashes) SELECT * FROM "
                    "unnest($1::smallint[], $2::bigint[], $3::bytea[]) "
                    "ON CONFLICT (level, idx) DO UPDATE SET hashes = EXCLUDED.hashes",
                    [t.level for t in changed],
                    [t.index for t in changed],
                    list(changed.values()),
                )
                done += n
            await conn.execute("UPDATE ledger_tree SET size = $1 WHERE id = 1", leaves)
        build_s = time.perf_counter() - started
        root = builder.root()
        assert await tree_root(conn, leaves) == root
        old = leaves - 1000
        old_root = await tree_root(conn, old)
        rng = random.Random(15)
        inclusion: list[float] = []
        consistency: list[float] = []
        for _ in range(samples):
            index = rng.randrange(leaves)
            t0 = time.perf_counter()
            proof = await tree_inclusion(conn, index, leaves)
            inclusion.append(time.perf_counter() - t0)
            assert len(proof) <= leaves.bit_length()
            t0 = time.perf_counter()
            cproof = await tree_consistency(conn, old, leaves)
            verify_consistency(old, leaves, old_root, root, cproof)
            consistency.append(time.perf_counter() - t0)
        # one inclusion proof checked end to end (needs the leaf: read it from its tile)
        tile = await conn.fetchval("SELECT hashes FROM ledger_tiles WHERE level = 0 AND idx = 0")
        verify_inclusion(bytes(tile)[32:64], 1, leaves, await tree_inclusion(conn, 1, leaves),
                         root)
        size_bytes = await conn.fetchval("SELECT pg_total_relation_size('ledger_tiles')")
    finally:
        await conn.close()

    def pct(values: list[float], p: float) -> float:
        values = sorted(values)
        return round(values[min(len(values) - 1, int(p * len(values)))] * 1000, 3)

    return {
        "leaves": leaves,
        "build_s": round(build_s, 1),
        "tiles_bytes": int(size_bytes),
        "inclusion_p50_ms": pct(inclusion, 0.5),
        "inclusion_p99_ms": pct(inclusion, 0.99),
        "consistency_p50_ms": pct(consistency, 0.5),
        "consistency_p99_ms": pct(consistency, 0.99),
        "samples": samples,
    }


async def _run(args: argparse.Namespace) -> dict[str, object]:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    with tempfile.TemporaryDirectory(prefix="ledger-bench-") as tmp:
        workdir = Path(tmp)
        settings = LedgerSettings(
            spool_dir=str(workdir / "spool"),
            digest_key=Secret("bench-key"),
        )
        async with database(workdir) as dsn:
            await migrate(dsn)
            # latency first: steady 500/s on a warm server, not right behind a 30k burst's
            # checkpoint and autovacuum
            latency = await _latency(dsn, settings, args.rate, args.seconds)
            throughput = await _throughput(dsn, settings, args.decisions, args.callers)
            blackhole = await _blackhole(dsn, settings, args.blackhole_burst, 200)
            checkpointing = await _checkpointing(
                dsn, settings, args.checkpoint_decisions, args.callers, args.checkpoint_rounds
            )
            conn = await connect_app(dsn)
            try:
                started = time.perf_counter()
                report = await verify_chain(conn)
                verify_s = time.perf_counter() - started
            finally:
                await conn.close()
        async with database(workdir) as dsn:
            await migrate(dsn)
            big_tree = await _big_tree(dsn, args.tree_leaves, args.proof_samples)
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
        "blackhole": blackhole,
        "checkpointing": checkpointing,
        "big_tree": big_tree,
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
            "blackhole_ack_bound_ms": round((settings.ack_timeout + 1.0) * 1000),
            "blackhole_met": blackhole["burst_max_ms"] <= (settings.ack_timeout + 1.0) * 1000
            and blackhole["spooled"] == blackhole["acknowledged"],
            "checkpointing_ratio_min": 0.9,
            "checkpointing_met": cast(float, checkpointing["ratio_best"]) >= 0.9,
            "proof_ms_max": 5,
            "proof_met": cast(float, big_tree["inclusion_p99_ms"]) < 5
            and cast(float, big_tree["consistency_p99_ms"]) < 5,
        },
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print JSON then a table; exit 1 if a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=30_000)
    parser.add_argument("--callers", type=int, default=1_000)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--blackhole-burst", type=int, default=50)
    parser.add_argument("--checkpoint-decisions", type=int, default=20_000)
    parser.add_argument("--checkpoint-rounds", type=int, default=3)
    parser.add_argument("--tree-leaves", type=int, default=10_000_000)
    parser.add_argument("--proof-samples", type=int, default=300)
    args = parser.parse_args(argv)
    result = asyncio.run(_run(args))
    print(json.dumps(result))
    t, lat, ver, bh, cp, tree = (
        cast(dict[str, Any], result[k])
        for k in ("throughput", "latency", "verify", "blackhole", "checkpointing", "big_tree")
    )
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
        (
            "ack, PG black hole",
            f"{bh['burst_max_ms']} ms",
            f"max of a burst of {bh['burst']} (ack_timeout {bh['ack_timeout_s']} s)",
            f"<= {cast(dict[str, Any], result['targets'])['blackhole_ack_bound_ms']} ms",
        ),
        (
            "ack, PG still a hole",
            f"{bh['after_p50_ms']} ms p50",
            f"max {bh['after_max_ms']} ms over {bh['after']} (spool + fsync)",
            "",
        ),
        ("spooled", f"{t['spooled'] + lat['spooled']}", "should be 0 with PostgreSQL up", ""),
        ("verify", f"{ver['rows_per_s']:,.0f} rows/s", f"{ver['rows']} rows, ok={ver['ok']}", ""),
        (
            "checkpointing on/off",
            f"{cp['ratio_best']}x (median {cp['ratio_median']}x)",
            f"best {max(cp['on_decisions_per_s']):,.0f} vs "
            f"{max(cp['off_decisions_per_s']):,.0f}/s",
            ">= 0.9x",
        ),
        (
            "inclusion proof",
            f"{tree['inclusion_p50_ms']} ms p50",
            f"p99 {tree['inclusion_p99_ms']} ms, {tree['leaves']:,} leaves in PostgreSQL",
            "< 5 ms",
        ),
        (
            "consistency proof",
            f"{tree['consistency_p50_ms']} ms p50",
            f"p99 {tree['consistency_p99_ms']} ms, fetched + verified",
            "< 5 ms",
        ),
    ]
    print()
    print(f"{'measure':<22} {'value':<22} {'detail':<48} target")
    for row in rows:
        print(f"{row[0]:<22} {row[1]:<22} {row[2]:<48} {row[3]}")
    targets = cast(dict[str, Any], result["targets"])
    names = ("throughput_met", "latency_met", "blackhole_met", "checkpointing_met", "proof_met")
    met = all(targets[k] for k in names)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
