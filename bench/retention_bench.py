"""Benchmark of disposal: N expired sealed recordings disposed of, and the ledger growth it causes.

Runs against its own embedded PostgreSQL in a temporary directory (or a fresh database on the
server named by ``ASTERISK_RECORDER_TEST_DSN``). Prints one JSON object, then a table.

    python bench/retention_bench.py [--count 100000] [--buckets 10]

Setup (not timed): N real decisions and N real ``recording.sealed`` facts in the ledger (each
with ``retain_until`` in the past, spread over ``--buckets`` key buckets of real P-384 keys of
a past month), and N **zero-length placeholder files** at the places the facts name (sealing
100k real envelopes would measure the sealer, not disposal: deleting a file costs the same
whatever its size on the file systems we target). Timed: one ``Disposer.run()`` as
``recording dispose`` runs it (the ledger's inventory, the holds, per batch of 500 the
``recording.disposing`` facts, the deletes with an fsync of the directory each, the
``recording.disposed`` facts; then every emptied key destroyed with its fact). The reference,
in the same run, deletes a second set of N placeholder files with plain ``os.unlink`` (and,
separately, ``os.unlink`` + fsync of the directory, what a durable delete costs); the ratio is
disposal time / plain unlink time. Ledger growth: the rows and the payload bytes of the facts
the run added, and the growth of ``ledger_facts`` on disk (table + indexes).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import structlog
from bench_db import database

from asterisk_recorder.flow.decision import ConsentDecision, KeyPress, Outcome, PartyRecord
from asterisk_recorder.flow.facts import LedgerFact
from asterisk_recorder.ledger import Ledger, migrate
from asterisk_recorder.ledger.database import connect_app
from asterisk_recorder.policy.modes import Mode
from asterisk_recorder.recordings.disposal import Disposer
from asterisk_recorder.recordings.keys import KeyStore
from asterisk_recorder.settings import LedgerSettings, Secret
from asterisk_recorder.settings.retention import parse_retention

__all__ = ["main"]

_DAY = 86400.0


def _decision(index: int, decided: float) -> ConsentDecision:
    decision_id = str(uuid.uuid4())
    caller = f"+1212555{index % 10000:04d}"
    return ConsentDecision(
        decision_id=decision_id, driver="ari", channel_id=f"{int(decided)}.{index}",
        channel_name=f"PJSIP/trunk-{index:08x}", uniqueid=f"{int(decided)}.{index}",
        linkedid=f"{int(decided)}.{index}", asterisk_id="08:00:27:aa:bb:cc",
        instance_id="bench", caller_number=caller, caller_name="Bench Caller",
        called_number="+14155550199",
        parties=(PartyRecord("caller", caller, "US-NY", "US-NY", Mode.OPT_OUT),),
        mode=Mode.OPT_IN, policy_rows=("US-NY",), policy_version="bench",
        prompt_id="recorder/consent-opt-in", language="en", keys=(KeyPress("1", decided),),
        outcome=Outcome.RECORDED_CONSENTED, reason="accept key pressed",
        offered_at=decided - 4, answered_at=decided - 3.5, disclosure_started_at=decided - 3.4,
        disclosure_finished_at=decided - 0.5, decided_at=decided,
        recording_path=f"/var/spool/asterisk/monitor/recorder/{decision_id}.wav",
    )


async def _gather_chunked(items: list[Any], work: Any, chunk: int = 1000) -> None:
    for start in range(0, len(items), chunk):
        await asyncio.gather(*(work(item) for item in items[start:start + chunk]))


async def _setup(dsn: str, settings: LedgerSettings, root: Path, count: int,
                 buckets: int) -> KeyStore:
    sealed = root / "sealed"
    store = KeyStore(root / "kek-public", root / "kek-private")
    old = time.time() - 400 * _DAY
    month = datetime.fromtimestamp(old, UTC).strftime("%Y-%m")
    keks = [store.create(f"bench{b}", month).kek_id for b in range(buckets)]
    decisions = [_decision(i, old) for i in range(count)]
    async with Ledger.open(dsn, settings, instance_id="sealer:bench") as ledger:
        await _gather_chunked(decisions, ledger.store)
        facts = []
        for index, decision in enumerate(decisions):
            relative = f"{index % 97:02d}/{decision.decision_id}.wav.arrec"
            path = sealed / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
            kek = keks[index % buckets]
            facts.append(LedgerFact(
                "recording.sealed", decision.decision_id, old, "sealer:bench",
                {"file": relative, "recording_id": decision.decision_id,
                 "plain_sha256": uuid.uuid4().hex * 2, "sealed_sha256": uuid.uuid4().hex * 2,
                 "kek_id": kek, "plain_bytes": 960_000, "sealed_bytes": 960_600,
                 "retention_class": kek.split("-")[0], "retention_period": "30d",
                 "retention_rule": "default", "retain_until": old + 30 * _DAY},
                fact_id=str(uuid.uuid4())))
        await _gather_chunked(facts, ledger.record_fact)
    return store


async def _facts_size(conn: asyncpg.Connection) -> tuple[int, int, int]:
    rows = int(await conn.fetchval("SELECT count(*) FROM ledger_facts"))
    payload = int(await conn.fetchval(
        "SELECT coalesce(sum(octet_length(payload) + octet_length(actor) + 120), 0) "
        "FROM ledger_facts"))
    disk = int(await conn.fetchval("SELECT pg_total_relation_size('ledger_facts')"))
    return rows, payload, disk


def _reference(root: Path, count: int, *, fsync: bool) -> float:
    directory = root / ("ref-fsync" if fsync else "ref")
    paths = []
    for index in range(count):
        path = directory / f"{index % 97:02d}" / f"{index}.arrec"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        paths.append(path)
    started = time.perf_counter()
    for path in paths:
        os.unlink(path)
        if fsync:
            fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    return time.perf_counter() - started


async def _run(count: int, buckets: int, batch: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="retention-bench-") as tmp:
        root = Path(tmp)
        async with database(root) as dsn:
            await migrate(dsn)
            settings = LedgerSettings(spool_dir=str(root / "spool"), ack_timeout=10.0,
                                      digest_key=Secret("bench-digest-key-0123456789abcdef"))
            setup_started = time.perf_counter()
            store = await _setup(dsn, settings, root, count, buckets)
            setup = time.perf_counter() - setup_started
            conn = await connect_app(dsn)
            try:
                before = await _facts_size(conn)
                async with Ledger.open(dsn, settings, instance_id="cli:bench") as ledger:
                    disposer = Disposer(conn, ledger, sealed_dir=root / "sealed",
                                        periods=parse_retention(["standard=30d"]),
                                        actor="cli:bench", keys=store, batch=batch)
                    started = time.perf_counter()
                    report = await disposer.run()
                    elapsed = time.perf_counter() - started
                after = await _facts_size(conn)
            finally:
                await conn.close()
            left = sum(1 for _ in (root / "sealed").rglob("*.arrec"))
        plain = _reference(root, count, fsync=False)
        durable = _reference(root, count, fsync=True)
    return {
        "count": count,
        "buckets": buckets,
        "batch": batch,
        "files": "zero-length placeholders at the locations real recording.sealed facts name",
        "setup_s": round(setup, 2),
        "disposed": len(report.disposed),
        "files_left": left,
        "keys_destroyed": len(report.keys_destroyed),
        "dispose_s": round(elapsed, 3),
        "dispose_files_per_s": round(count / elapsed, 1),
        "reference_unlink_s": round(plain, 3),
        "reference_unlink_files_per_s": round(count / plain, 1),
        "reference_unlink_fsync_s": round(durable, 3),
        "ratio_vs_unlink": round(elapsed / plain, 1),
        "ratio_vs_unlink_fsync": round(elapsed / durable, 2),
        "ledger_rows_added": after[0] - before[0],
        "ledger_rows_per_recording": round((after[0] - before[0]) / count, 3),
        "ledger_fact_bytes_added": after[1] - before[1],
        "ledger_disk_bytes_added": after[2] - before[2],
        "ledger_disk_bytes_per_recording": round((after[2] - before[2]) / count, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--buckets", type=int, default=10)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(40), cache_logger_on_first_use=True)
    result = asyncio.run(_run(args.count, args.buckets, args.batch))
    print(json.dumps(result))
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")
    return 0 if result["files_left"] == 0 and result["disposed"] == args.count else 1


if __name__ == "__main__":
    sys.exit(main())
