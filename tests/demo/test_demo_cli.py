"""``asterisk-recorder demo`` tells the truth: what it changes, every call, every ledger row.

This module owns running the demo command (fake Asterisk, the suite's real PostgreSQL) as a user
would and checking its output: the settings it uses instead of the configured ones are printed
with the configured value, scenario names are whole, every decision's full id is printed and
``asterisk-recorder ledger show --call ID`` finds each one in the same database; each recorded
call ends sealed and verified, and a tampered copy fails verification.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from asterisk_recorder.cli import main
from asterisk_recorder.demo.scenarios import SCENARIOS

_DECISION_RE = re.compile(
    r"^#(\d+) decision ([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$", re.M
)


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "asterisk_recorder", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def test_demo_prints_its_changes_every_row_and_ids_ledger_show_finds(
    pg_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Configured site and timeout are named; each printed decision id works with ledger show."""
    config = tmp_path / "recorder.toml"
    config.write_text('[policy]\nsite_jurisdiction = "GB"\n[flow]\ninput_timeout = 4.0\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASTERISK_RECORDER_")}
    env.update(HOME=str(tmp_path), XDG_DATA_HOME=str(tmp_path / "data"))

    demo = _run(env, "demo", "--config", str(config), "--dsn", pg_dsn)

    assert 0 == demo.returncode, demo.stdout + demo.stderr
    out = demo.stdout
    assert re.search(r"^  policy.site_jurisdiction +US-NY \(configured: GB\):", out, re.M)
    assert re.search(r"^  flow.input_timeout +1.5 s \(configured: 4 s\):", out, re.M)
    for scenario in SCENARIOS:
        assert scenario.name in out, "scenario names are printed whole"
    found = _DECISION_RE.findall(out)
    expected = [str(i) for i, s in enumerate(SCENARIOS, 1) if s.app == "consent-recorder"]
    assert expected == [number for number, _ in found]
    assert "#8 no ledger row: the controller never saw this call" in out
    assert "9/9 scenarios as expected; ledger verify: OK" in out
    recorded = [s for s in SCENARIOS if s.expect.startswith("recorded")]
    sealed = re.findall(r"^  sealed ([0-9a-f]{64})  decision \S+  verify OK", out, re.M)
    assert len(sealed) == len(recorded), "one sealed line per recorded call, each verified"
    assert re.search(r"^  tampered copy \S+ \(one bit flipped\): verify FAILED, as it must: "
                     r"chunk \d+", out, re.M)
    assert f"recordings: {len(recorded)} sealed, verify OK" in out
    kept = re.findall(r"^         retention standard \(90d, rule default\): kept until "
                      r"\d{4}-\d\d-\d\d$", out, re.M)
    assert len(kept) == len(recorded), "each sealed recording says how long it is kept"
    assert re.search(r"^  paused by demo-agent-7 \(card payment\): POST /calls/\S+/pause -> 200$",
                     out, re.M)
    assert re.search(r"^  resumed by demo-agent-7 \(payment finished\): POST /calls/\S+/resume "
                     r"-> 200$", out, re.M)
    spans = re.findall(r"^         paused spans (\d+\.\d\d)-(\d+\.\d\d) s \(recording.paused / "
                       r"recording.resumed\); PCI check passed: \S+:silent, 0 DTMF", out, re.M)
    assert len(spans) == 1, "the paused call's sealed recording lists its span, proven silent"
    start, end = (float(x) for x in spans[0])
    assert 0.3 <= start < end
    assert end - start >= 1.0
    assert re.search(r"^  recording.mixmonitor_options +'' \(configured: 'b'\):", out, re.M)
    assert re.search(r"^  legal hold \S+ on decision \S+ \(recording.hold_placed", out, re.M)
    assert (f"disposal dry run, once retention has passed: {len(recorded) - 1} of this run's "
            "recordings would be disposed of, 1 kept back by the hold") in out
    for number, decision_id in found:
        expect = SCENARIOS[int(number) - 1].expect
        assert 0 == main(["ledger", "show", "--call", decision_id, "--dsn", pg_dsn])
        shown = capsys.readouterr().out
        assert re.search(rf"^decision_id\s+{decision_id}$", shown, re.M)
        assert re.search(rf"^outcome\s+{expect}$", shown, re.M)


async def _cover_up(dsn: str, keep: int) -> None:
    """As a superuser: delete the newest entries, rewind the head, wipe every checkpoint."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute("SET LOCAL session_replication_role = replica")
            head = None
            for table in ("decisions", "ledger_facts", "ledger_events"):
                sql = f"SELECT hash FROM {table} WHERE seq = $1"  # noqa: S608 - fixed names
                found = await conn.fetchval(sql, keep)
                head = found if found is not None else head
            await conn.execute(
                "DELETE FROM decision_personal WHERE decision_id IN "
                "(SELECT decision_id FROM decisions WHERE seq > $1)", keep
            )
            for table in ("ledger_facts", "decisions", "ledger_events"):
                await conn.execute(f"DELETE FROM {table} WHERE seq > $1", keep)  # noqa: S608
            await conn.execute(
                "UPDATE ledger_head SET seq = $1, hash = $2 WHERE id = 1", keep, head
            )
            await conn.execute("DELETE FROM ledger_checkpoints")
            await conn.execute("DELETE FROM ledger_tiles")
            await conn.execute("UPDATE ledger_tree SET size = 0")
    finally:
        await conn.close()


def test_demo_witness_catches_a_cover_up_that_the_database_alone_cannot(
    pg_dsn: str, tmp_path: Path
) -> None:
    """demo --witness DIR ends with a checkpoint there; a superuser's cover-up fails verify."""
    import asyncio

    env = {k: v for k, v in os.environ.items() if not k.startswith("ASTERISK_RECORDER_")}
    env.update(HOME=str(tmp_path), XDG_DATA_HOME=str(tmp_path / "data"))
    witness = tmp_path / "witness"

    demo = _run(env, "demo", "--dsn", pg_dsn, "--witness", str(witness))
    before = _run(env, "ledger", "verify", "--dsn", pg_dsn, "--witness", str(witness))
    found = re.search(r"^checkpoint: (\d+) entries", demo.stdout, re.M)
    assert found is not None, demo.stdout + demo.stderr
    size = int(found.group(1))
    asyncio.run(_cover_up(pg_dsn, size - 5))
    alone = _run(env, "ledger", "verify", "--dsn", pg_dsn)
    after = _run(env, "ledger", "verify", "--dsn", pg_dsn, "--witness", str(witness))

    assert 0 == demo.returncode, demo.stdout + demo.stderr
    assert f"witness dir:{witness}: holds checkpoint {size}" in demo.stdout
    assert (0, "verify OK") == (before.returncode, before.stdout.splitlines()[-1])
    assert 0 == alone.returncode, "without the witness the cover-up is invisible"
    assert 1 == after.returncode
    assert f"entries {size - 4}..{size} are missing" in after.stderr
    assert "which the database no longer has" in after.stderr
