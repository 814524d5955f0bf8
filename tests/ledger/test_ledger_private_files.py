"""The spool directory is 0700 and its files 0600 whatever the umask, not only under systemd."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from ledger_helpers import make_decision
from structlog.testing import capture_logs

from asterisk_recorder.ledger import Ledger
from asterisk_recorder.ledger.keys import KEY_FILE_NAME, load_digest_key
from asterisk_recorder.ledger.spool import QUARANTINE_NAME, SPOOL_NAME, Spool
from asterisk_recorder.settings import LedgerSettings, Secret


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def shell_umask() -> Iterator[None]:
    """The umask of an interactive shell (022), restored afterwards."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.mark.usefixtures("shell_umask")
def test_spool_directory_and_append_file_are_private_under_umask_022(tmp_path: Path) -> None:
    """A spool created from scratch (parents too) is 0700 with decisions.jsonl 0600."""
    spool = Spool(tmp_path / "state" / "spool")

    spool.append([make_decision()])

    assert 0o700 == _mode(spool.directory)
    assert 0o600 == _mode(spool.directory / SPOOL_NAME)


@pytest.mark.usefixtures("shell_umask")
def test_quarantine_and_rewritten_replay_file_are_private_under_umask_022(tmp_path: Path) -> None:
    """A torn line goes to a 0600 quarantine; the cleaned replay file stays 0600."""
    spool = Spool(tmp_path / "spool")
    spool.append([make_decision()])
    with open(spool.path, "ab") as handle:
        handle.write(b'{"v":1,"torn')
    [replay] = spool.take()

    batch = spool.read(replay)

    assert 1 == batch.quarantined
    assert 0o600 == _mode(spool.directory / QUARANTINE_NAME)
    assert 0o600 == _mode(replay)


@pytest.mark.usefixtures("shell_umask")
def test_digest_key_creates_a_private_spool_directory_under_umask_022(tmp_path: Path) -> None:
    """The key file (written before any spool) is 0600 in a 0700 directory, not 0755."""
    directory = tmp_path / "spool"

    load_digest_key(LedgerSettings(spool_dir=str(directory)))

    assert 0o700 == _mode(directory)
    assert 0o600 == _mode(directory / KEY_FILE_NAME)


def test_files_are_exactly_0600_even_under_a_umask_that_removes_owner_bits(tmp_path: Path) -> None:
    """Under umask 0277 the owner can still write: modes are set, not left to the umask."""
    previous = os.umask(0o277)
    try:
        spool = Spool(tmp_path / "spool")
        spool.append([make_decision()])
        spool.append([make_decision()])
    finally:
        os.umask(previous)

    assert 0o700 == _mode(spool.directory)
    assert 0o600 == _mode(spool.path)
    assert 2 == len(spool.path.read_text().splitlines())


@pytest.mark.usefixtures("shell_umask")
def test_key_file_left_world_readable_by_an_older_release_is_tightened(tmp_path: Path) -> None:
    """An existing 0644 digest.key of ours becomes 0600 when it is next loaded."""
    directory = tmp_path / "spool"
    directory.mkdir(mode=0o700)
    key = directory / KEY_FILE_NAME
    key.write_text("ab" * 32 + "\n")
    key.chmod(0o644)

    load_digest_key(LedgerSettings(spool_dir=str(directory)))

    assert 0o600 == _mode(key)


def test_cli_outside_systemd_creates_the_spool_0700_under_a_shell_umask(
    ledger_dsn: str, tmp_path: Path
) -> None:
    """`umask 022; asterisk-recorder ledger verify` leaves a 0700 spool and a 0600 key."""
    spool = tmp_path / "home" / ".local" / "share" / "asterisk-recorder" / "spool"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASTERISK_RECORDER_")}
    env.update(
        ASTERISK_RECORDER_DATABASE_DSN=ledger_dsn,
        XDG_DATA_HOME=str(tmp_path / "home" / ".local" / "share"),
    )
    proc = subprocess.run(
        ["sh", "-c", 'umask 022; exec "$0" -m asterisk_recorder ledger verify', sys.executable],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert 0 == proc.returncode, proc.stderr
    assert 0o700 == _mode(spool)
    assert 0o600 == _mode(spool / KEY_FILE_NAME)


async def test_ledger_warns_about_a_spool_directory_open_to_others(
    ledger_dsn: str, tmp_path: Path
) -> None:
    """An operator's 0755 spool_dir is left alone (it may be shared) but named in a warning."""
    directory = tmp_path / "spool"
    directory.mkdir()
    directory.chmod(0o755)
    settings = LedgerSettings(spool_dir=str(directory), digest_key=Secret("k"))

    with capture_logs() as logs:
        async with Ledger.open(ledger_dsn, settings):
            pass

    [warning] = [e for e in logs if e["event"] == "ledger.spool.not_private"]
    assert "0755" == warning["mode"]
    assert str(directory) == warning["directory"]
    assert 0o755 == _mode(directory)
