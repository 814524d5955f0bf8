"""``asterisk-recorder agi``: the real command in a subprocess, Asterisk's side on its pipes."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
from pathlib import Path

import asyncpg
import pytest
from agi_helpers import real_environment

from asterisk_recorder.ledger import migrate
from asterisk_recorder.testing.agi_peer import Finish, HangUp, Press, ScriptedAsterisk, Silence

CLASSIC = [
    line
    for line in real_environment(
        {
            "request": "asterisk-recorder-agi",
            "callerid": "+14155551234",
            "calleridname": 'Mallory "), ${SHELL(id)}',
            "extension": "+12125550000",
        },
        args=("opt_out", "en"),
    )
    if not line.startswith(("agi_network", "agi_network_script"))
]
"""What Asterisk sends to ``AGI(asterisk-recorder-agi,opt_out,en)``."""


def command() -> list[str]:
    """The installed console script (falls back to ``python -m asterisk_recorder``)."""
    script = shutil.which("asterisk-recorder", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "asterisk_recorder"]


async def run_agi(
    peer: ScriptedAsterisk, dsn: str, tmp_path: Path
) -> tuple[int, list[dict[str, object]]]:
    """Run ``asterisk-recorder agi`` with ``peer`` playing Asterisk; return exit code and logs."""
    env = {
        **os.environ,
        "ASTERISK_RECORDER_DATABASE_DSN": dsn,
        "ASTERISK_RECORDER_LEDGER_SPOOL_DIR": str(tmp_path / "spool"),
        "ASTERISK_RECORDER_LOGGING_FORMAT": "json",
        "ASTERISK_RECORDER_INSTANCE_ID": "classic-test",
    }
    proc = await asyncio.create_subprocess_exec(
        *command(),
        "agi",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    assert proc.stderr is not None
    stderr_task = asyncio.create_task(proc.stderr.read())
    await asyncio.wait_for(peer.run(proc.stdout, proc.stdin), timeout=60)
    proc.stdin.close()
    code = await asyncio.wait_for(proc.wait(), timeout=60)
    stderr = (await stderr_task).decode()
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    return code, lines


@pytest.fixture
async def ledger_dsn(pg_dsn: str) -> str:
    """A fresh database with the ledger schema (``db migrate`` already run)."""
    await migrate(pg_dsn)
    return pg_dsn


async def stored_outcomes(dsn: str) -> list[tuple[str, str, str]]:
    """``(driver, outcome, instance_id)`` of every decision in the ledger."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT driver, outcome, instance_id FROM decisions ORDER BY seq")
    finally:
        await conn.close()
    return [(r["driver"], r["outcome"], r["instance_id"]) for r in rows]


async def test_classic_agi_opt_out_key_is_stored_and_handed_back(
    ledger_dsn: str, tmp_path: Path
) -> None:
    """Key 1 over stdin/stdout: ledger row, RECORDER_DECISION=skip, exit 0, logs on stderr."""
    peer = ScriptedAsterisk(CLASSIC, prompts=[Press("1")])

    code, logs = await run_agi(peer, ledger_dsn, tmp_path)

    assert 0 == code
    assert peer.closed_by_program
    assert "skip" == peer.variables["RECORDER_DECISION"]
    assert [("agi", "not_recorded_opted_out", "classic-test")] == await stored_outcomes(ledger_dsn)
    decided = [e for e in logs if e.get("event") == "consent.decided"]
    assert 1 == len(decided)
    assert peer.variables["RECORDER_DECISION_ID"] == decided[0]["decision_id"]
    assert all(not line.startswith("{") for line in peer.lines)  # no log line on stdout
    assert not any("Mallory" in line for line in peer.lines)


async def test_classic_agi_silence_records(ledger_dsn: str, tmp_path: Path) -> None:
    """No key after the opt-out disclosure: recorded_notified, RECORDER_FILE set."""
    peer = ScriptedAsterisk(CLASSIC, prompts=[Finish()], waits=[Silence()])

    code, _ = await run_agi(peer, ledger_dsn, tmp_path)

    assert 0 == code
    assert "record" == peer.variables["RECORDER_DECISION"]
    assert peer.variables["RECORDER_FILE"].endswith(".wav")
    assert [("agi", "recorded_notified", "classic-test")] == await stored_outcomes(ledger_dsn)


async def test_classic_agi_hang_up_with_sighup_still_stores_abandoned(
    ledger_dsn: str, tmp_path: Path
) -> None:
    """Asterisk's SIGHUP on hang-up does not kill the command before it stores ``abandoned``."""
    peer = ScriptedAsterisk(CLASSIC, prompts=[HangUp()])
    env = {
        **os.environ,
        "ASTERISK_RECORDER_DATABASE_DSN": ledger_dsn,
        "ASTERISK_RECORDER_LEDGER_SPOOL_DIR": str(tmp_path / "spool"),
        "ASTERISK_RECORDER_INSTANCE_ID": "classic-test",
    }
    proc = await asyncio.create_subprocess_exec(
        *command(),
        "agi",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env=env,
    )
    assert proc.stdin is not None
    assert proc.stdout is not None

    async def hang_up_when_prompted() -> None:
        while not any(c[:2] == ["STREAM", "FILE"] for c in peer.commands):
            await asyncio.sleep(0.01)
        proc.send_signal(1)  # SIGHUP, as res_agi.c sends it

    watcher = asyncio.create_task(hang_up_when_prompted())
    await asyncio.wait_for(peer.run(proc.stdout, proc.stdin), timeout=60)
    watcher.cancel()
    proc.stdin.close()
    code = await asyncio.wait_for(proc.wait(), timeout=60)

    assert 0 == code
    assert [("agi", "abandoned", "classic-test")] == await stored_outcomes(ledger_dsn)


async def test_classic_agi_garbage_on_stdin_exits_1_without_commands(tmp_path: Path) -> None:
    """Something that is not an AGI environment: exit 1, nothing written to stdout."""
    env = {**os.environ, "ASTERISK_RECORDER_DATABASE_DSN": "postgresql://127.0.0.1:1/none"}
    proc = await asyncio.create_subprocess_exec(
        *command(),
        "agi",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(b"hello\n\n"), timeout=60)

    assert 1 == proc.returncode
    assert b"" == out
    assert b"agi.session.bad_environment" in err


async def test_classic_agi_without_a_dsn_exits_2_and_writes_nothing() -> None:
    """No ``database.dsn``: configuration error (exit 2); the embedded server is never started."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASTERISK_RECORDER_")}
    proc = await asyncio.create_subprocess_exec(
        *command(),
        "agi",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(b"agi_request: x\n\n"), timeout=60)

    assert 2 == proc.returncode
    assert b"" == out
    assert b"database.dsn" in err
