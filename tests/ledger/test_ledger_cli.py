"""The ``db`` and ``ledger`` commands, run through ``cli.main`` against a real PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
import pytest
from ledger_helpers import FIXED_KEY, make_decision

from asterisk_recorder.cli import main
from asterisk_recorder.flow.decision import ConsentDecision
from asterisk_recorder.ledger import Ledger
from asterisk_recorder.ledger.spool import SPOOL_NAME, Spool
from asterisk_recorder.settings import LedgerSettings, Secret

NUMBER = "+12125550100"


@pytest.fixture
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory whose path the configuration accepts as a recording directory."""
    return tmp_path_factory.mktemp("cli")


def _config(workdir: Path, dsn: str) -> Path:
    path = workdir / "recorder.toml"
    (workdir / "recordings").mkdir(exist_ok=True)
    path.write_text(
        "[ari]\nenabled = false\n"
        f'[database]\ndsn = "{dsn}"\n'
        f'[ledger]\nspool_dir = "{workdir / "spool"}"\ndigest_key = "{FIXED_KEY}"\n'
        f'[recording]\ndirectory = "{workdir / "recordings"}"\n'
    )
    return path


def _store(dsn: str, workdir: Path, decisions: list[ConsentDecision]) -> None:
    settings = LedgerSettings(spool_dir=str(workdir / "spool"), digest_key=Secret(FIXED_KEY))

    async def run() -> None:
        async with Ledger.open(dsn, settings) as ledger:
            for decision in decisions:
                await ledger.store(decision)

    with contextlib.redirect_stdout(io.StringIO()):  # the ledger's own log lines
        asyncio.run(run())


def _sql(dsn: str, sql: str) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            async with conn.transaction():
                await conn.execute("SET LOCAL session_replication_role = replica")
                await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


def test_db_migrate_applies_then_reports_up_to_date(
    pg_dsn: str, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``db migrate`` prints what it applied, then that the schema is current."""
    config = str(_config(workdir, pg_dsn))

    assert 0 == main(["db", "migrate", "--config", config])
    assert "applied 0001_ledger" in capsys.readouterr().out
    assert 0 == main(["db", "migrate", "--config", config])
    assert "schema is up to date\n" == capsys.readouterr().out


def test_db_migrate_against_unreachable_database_exits_1(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No PostgreSQL: a clear error and exit 1."""
    config = str(_config(workdir, "postgresql://postgres@/postgres?host=/nonexistent"))

    assert 1 == main(["db", "migrate", "--config", config])
    assert "cannot reach PostgreSQL" in capsys.readouterr().err


def test_verify_passes_then_reports_a_superuser_edit_with_exit_1(
    ledger_dsn: str, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``ledger verify`` exits 0 on an intact chain, 1 with the position and id of an edit."""
    config = str(_config(workdir, ledger_dsn))
    decisions = [make_decision() for _ in range(3)]
    _store(ledger_dsn, workdir, decisions)

    assert 0 == main(["ledger", "verify", "--config", config])
    assert "chain OK: 3 rows" in capsys.readouterr().out
    _sql(ledger_dsn, "UPDATE decisions SET outcome = 'failed' WHERE seq = 2")
    assert 1 == main(["ledger", "verify", "--config", config, "--json"])
    report = json.loads(capsys.readouterr().out)
    assert (False, 2, decisions[1].decision_id) == (
        report["ok"],
        report["position"],
        report["entry_id"],
    )


def test_spool_status_shows_waiting_and_quarantined(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``ledger spool-status --json`` counts pending decisions and their age."""
    config = str(_config(workdir, "postgresql://postgres@/postgres?host=/nonexistent"))
    spool = Spool(workdir / "spool")
    spool.append([make_decision(), make_decision()])

    assert 0 == main(["ledger", "spool-status", "--config", config, "--json"])
    status = json.loads(capsys.readouterr().out)
    assert (2, 0, [str(workdir / "spool" / SPOOL_NAME)]) == (
        status["pending"],
        status["quarantined"],
        status["files"],
    )
    assert status["oldest_spooled_at"] is not None
    assert 0 == main(["ledger", "spool-status", "--config", config])
    assert "waiting:         2 decisions" in capsys.readouterr().out


def test_export_json_and_csv(
    ledger_dsn: str, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``ledger export`` prints the number's decisions as JSON or CSV, formulas neutralised."""
    config = str(_config(workdir, ledger_dsn))
    decision = make_decision(caller_number=NUMBER, caller_name='=HYPERLINK("http://x")')
    _store(
        ledger_dsn,
        workdir,
        [
            decision,
            make_decision(caller_number="+15555550000", called_number="+15555550001", parties=()),
        ],
    )

    assert 0 == main(["ledger", "export", "--config", config, "--number", NUMBER])
    exported = json.loads(capsys.readouterr().out)
    assert [decision.decision_id] == [d["decision_id"] for d in exported["decisions"]]
    assert 0 == main(
        ["ledger", "export", "--config", config, "--number", NUMBER, "--format", "csv"]
    )
    lines = capsys.readouterr().out.splitlines()
    assert 2 == len(lines)
    assert lines[0].startswith("seq,decision_id,decided_at")
    assert "'=HYPERLINK" in lines[1]
    assert f",{NUMBER}," in lines[1]


def test_erase_without_yes_and_without_a_terminal_is_refused(
    ledger_dsn: str, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Piped stdin and no --yes: nothing is erased, exit 2."""
    config = str(_config(workdir, ledger_dsn))
    _store(ledger_dsn, workdir, [make_decision(caller_number=NUMBER)])

    assert 2 == main(["ledger", "erase", "--config", config, "--number", NUMBER])
    assert "refusing to erase without --yes" in capsys.readouterr().err
    assert 0 == main(["ledger", "export", "--config", config, "--number", NUMBER])
    assert NUMBER in capsys.readouterr().out


def test_erase_with_yes_deletes_recording_and_personal_data(
    ledger_dsn: str, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``ledger erase --yes`` erases, reports, and the chain still verifies."""
    config = str(_config(workdir, ledger_dsn))
    decision_id = str(uuid.uuid4())
    recording = workdir / "recordings" / f"{decision_id}.wav"
    recording.write_bytes(b"RIFF")
    _store(
        ledger_dsn,
        workdir,
        [
            make_decision(
                decision_id=decision_id, caller_number=NUMBER, recording_path=str(recording)
            )
        ],
    )

    assert 0 == main(["ledger", "erase", "--config", config, "--number", NUMBER, "--yes"])
    assert "erased personal data of 1 decisions; recordings: 1 deleted" in capsys.readouterr().out
    assert not recording.exists()
    assert 0 == main(["ledger", "verify", "--config", config])


def test_purge_rejects_a_bad_age_and_purges_old_decisions(
    ledger_dsn: str, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--older-than`` needs a unit; a valid purge reports what it removed."""
    config = str(_config(workdir, ledger_dsn))
    _store(ledger_dsn, workdir, [make_decision(decided_at=1_000_000_000.0, recording_path=None)])

    assert 2 == main(["ledger", "purge", "--config", config, "--older-than", "90"])
    assert "not an age" in capsys.readouterr().err
    assert 0 == main(["ledger", "purge", "--config", config, "--older-than", "90d"])
    assert "purged personal data of 1 decisions" in capsys.readouterr().out


def test_purge_older_than_0d_needs_yes_off_a_terminal_then_purges_everything(
    ledger_dsn: str, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--older-than 0d``: refused (exit 2) without --yes on piped stdin; with it, all goes."""
    config = str(_config(workdir, ledger_dsn))
    _store(ledger_dsn, workdir, [make_decision(recording_path=None) for _ in range(2)])

    assert 2 == main(["ledger", "purge", "--config", config, "--older-than", "0d"])
    assert "refusing to purge every decision (--older-than 0d) without --yes" in (
        capsys.readouterr().err
    )
    assert 0 == main(["ledger", "purge", "--config", config, "--older-than", "0d", "--yes"])
    assert "purged personal data of 2 decisions older than 0d" in capsys.readouterr().out
    assert 0 == main(["ledger", "verify", "--config", config])


def test_verify_names_the_head_and_the_last_good_row_when_the_head_disagrees(
    ledger_dsn: str, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A break found at the ledger head says so and names the last row, never ``(id None)``."""
    config = str(_config(workdir, ledger_dsn))
    decisions = [make_decision() for _ in range(3)]
    _store(ledger_dsn, workdir, decisions)
    _sql(ledger_dsn, "UPDATE ledger_head SET seq = 7")

    assert 1 == main(["ledger", "verify", "--config", config])
    err = capsys.readouterr().err
    assert "id None" not in err
    assert "chain BROKEN at the head (the ledger_head row, which records 7 rows)" in err
    assert f"(3 rows, the last is position 3, id {decisions[2].decision_id})" in err
    assert 1 == main(["ledger", "verify", "--config", config, "--json"])
    report = json.loads(capsys.readouterr().out)
    assert (True, decisions[2].decision_id) == (report["at_head"], report["last_entry_id"])


def test_show_finds_a_call_by_uniqueid_and_escapes_control_characters(
    ledger_dsn: str, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``ledger show --call`` matches the uniqueid; a hostile name cannot reach the terminal raw."""
    config = str(_config(workdir, ledger_dsn))
    decision = make_decision(uniqueid="1763900000.77", caller_name="evil\x1b[2Jname")
    _store(ledger_dsn, workdir, [decision])

    assert 0 == main(["ledger", "show", "--config", config, "--call", "1763900000.77"])
    out = capsys.readouterr().out
    assert decision.decision_id in out
    assert "\x1b" not in out
    assert "evil\\x1b[2Jname" in out
    assert 1 == main(["ledger", "show", "--config", config, "--call", "nope"])


def test_tail_prints_the_newest_decisions_in_order(
    ledger_dsn: str, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``ledger tail -n 2`` prints the last two decisions, oldest first."""
    config = str(_config(workdir, ledger_dsn))
    decisions = [make_decision() for _ in range(3)]
    _store(ledger_dsn, workdir, decisions)

    assert 0 == main(["ledger", "tail", "--config", config, "-n", "2", "--json"])
    shown = [json.loads(line)["decision_id"] for line in capsys.readouterr().out.splitlines()]
    assert [d.decision_id for d in decisions[1:]] == shown


def test_console_script_runs_ledger_verify(ledger_dsn: str, workdir: Path) -> None:
    """The installed entry point runs the command in a separate process."""
    config = str(_config(workdir, ledger_dsn))

    done = subprocess.run(
        [sys.executable, "-m", "asterisk_recorder", "ledger", "verify", "--config", config],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
        timeout=60,
    )

    assert (0, "chain OK: 0 rows") == (done.returncode, done.stdout.split(" verified")[0])
