"""Operator paths: the erase confirmation on a terminal, the purge progress bar, tail --follow,
and where the DSN comes from."""

from __future__ import annotations

import asyncio
import io
import os
import pty
import select
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import asyncpg
import pytest
from ledger_helpers import FIXED_KEY

from asterisk_recorder.commands.ledger import _progress_bar, parse_age
from asterisk_recorder.flow.decision import ConsentDecision
from asterisk_recorder.ledger import Ledger
from asterisk_recorder.ledger.admin import export_number, follow
from asterisk_recorder.ledger.database import connect_app, database_dsn, resolve_dsn
from asterisk_recorder.ledger.keys import DigestKey
from asterisk_recorder.settings import DatabaseSettings, LedgerSettings, Secret, Settings

Factory = Callable[..., ConsentDecision]
NUMBER = "+12125550100"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_is_drawn_only_on_a_terminal() -> None:
    """A terminal gets a bar that ends at 100 %; a pipe gets nothing."""
    terminal = _Terminal()
    bar = _progress_bar(terminal)
    assert bar is not None
    bar(0, 4)
    bar(2, 4)
    bar(4, 4)

    assert None is _progress_bar(io.StringIO())
    assert terminal.getvalue().endswith("] 100% 4/4\n")
    assert " 50% 2/4" in terminal.getvalue()


@pytest.mark.parametrize("text", ["90", "0", "-1d", "90 days", "d", ""])
def test_bad_age_is_refused(text: str) -> None:
    """An age needs a whole number and a unit."""
    with pytest.raises(ValueError, match="not an age"):
        parse_age(text)


def test_zero_age_means_everything_decided_before_now() -> None:
    """``0d`` (any unit) is accepted as age 0: purge guards it with a confirmation instead."""
    assert [0, 0, 0] == [parse_age(t) for t in ("0d", "0s", "0w")]


def test_ages_convert_to_seconds() -> None:
    """s, m, h, d and w are understood."""
    assert [5, 120, 3600, 90 * 86400, 2 * 604800] == [
        parse_age(t) for t in ("5s", "2m", "1h", "90d", "2w")
    ]


def _read_until(fd: int, needle: bytes, limit: float = 60.0) -> bytes:
    seen = b""
    deadline = time.monotonic() + limit
    while needle not in seen:
        assert time.monotonic() < deadline, f"never saw {needle!r}; got {seen!r}"
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    return seen


def _erase_on_a_terminal(config: Path) -> tuple[bytes, bytes, int]:
    """Run ``ledger erase`` with a pseudo-terminal as stdin/stdout and answer 'yes'."""
    main_fd, child_fd = pty.openpty()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "asterisk_recorder",
            "ledger",
            "erase",
            "--config",
            str(config),
            "--number",
            NUMBER,
        ],
        stdin=child_fd,
        stdout=child_fd,
        stderr=child_fd,
    )
    os.close(child_fd)
    try:
        prompt = _read_until(main_fd, b"Type 'yes'")
        os.write(main_fd, b"yes\n")
        output = _read_until(main_fd, b"recorded as ledger event")
        return prompt, output, process.wait(60)
    finally:
        process.kill()
        os.close(main_fd)


async def test_erase_on_a_terminal_asks_and_erases_after_yes(
    ledger_dsn: str,
    decision_factory: Factory,
    tmp_path_factory: pytest.TempPathFactory,
    digest_key: DigestKey,
) -> None:
    """On a terminal, erase shows what it will do and proceeds only after 'yes'."""
    work = tmp_path_factory.mktemp("tty")
    (work / "recordings").mkdir()
    config = work / "recorder.toml"
    config.write_text(
        f'[ari]\nenabled = false\n[database]\ndsn = "{ledger_dsn}"\n'
        f'[ledger]\nspool_dir = "{work / "spool"}"\ndigest_key = "{FIXED_KEY}"\n'
        f'[recording]\ndirectory = "{work / "recordings"}"\n'
    )
    settings = LedgerSettings(spool_dir=str(work / "spool"), digest_key=Secret(FIXED_KEY))
    async with Ledger.open(ledger_dsn, settings) as ledger:
        await ledger.store(decision_factory(caller_number=NUMBER, recording_path=None))
    prompt, output, code = await asyncio.to_thread(_erase_on_a_terminal, config)

    assert 0 == code
    assert b"Erase the personal data of 1 decisions about +12125550100" in prompt
    assert b"erased personal data of 1 decisions" in output
    conn = await connect_app(ledger_dsn)
    try:
        exported = await export_number(conn, digest_key, NUMBER)
    finally:
        await conn.close()
    assert [True] == [row["personal_data_erased"] for row in exported]


async def test_follow_yields_decisions_stored_after_it_started(
    ledger_dsn: str,
    ledger_settings: LedgerSettings,
    decision_factory: Factory,
    owner: asyncpg.Connection,
) -> None:
    """tail --follow from the head skips older rows and picks up one committed after a poll."""
    older, later = decision_factory(), decision_factory()
    async with Ledger.open(ledger_dsn, ledger_settings) as ledger:
        await ledger.store(older)
    conn = await connect_app(ledger_dsn)
    try:
        head = await conn.fetchval("SELECT max(seq) FROM decisions")
        stream = follow(conn, head, interval=0.02)
        waiting = asyncio.create_task(anext(stream))
        # the follower has polled once (found nothing after the head) before `later` exists
        await _until_polled(owner, conn.get_server_pid())
        polled_before_commit = not waiting.done()
        async with Ledger.open(ledger_dsn, ledger_settings) as ledger:
            await ledger.store(later)
        view = await asyncio.wait_for(waiting, 10)
        await stream.aclose()
    finally:
        await conn.close()

    assert 1 == head
    assert polled_before_commit
    assert (2, later.decision_id) == (view["seq"], view["decision_id"])


async def _until_polled(observer: asyncpg.Connection, pid: int) -> None:
    """Wait (up to 10 s) until backend ``pid`` has finished a follow query and sits idle."""
    deadline = time.monotonic() + 10
    while True:
        row = await observer.fetchrow(
            "SELECT state, query FROM pg_stat_activity WHERE pid = $1", pid
        )
        if row is not None and row["state"] == "idle" and "d.seq > $1" in row["query"]:
            return
        assert time.monotonic() < deadline, "the follower never polled"
        await asyncio.sleep(0.01)


def test_configured_dsn_is_used_as_is() -> None:
    """With database.dsn set, nothing is started."""
    settings = Settings(database=DatabaseSettings(dsn=Secret("postgresql://u@db/ledger")))

    assert ("postgresql://u@db/ledger", None) == resolve_dsn(settings)


async def test_empty_dsn_starts_and_stops_the_embedded_postgres(tmp_path: Path) -> None:
    """With no DSN, the embedded PostgreSQL in embedded_data_dir is started, then stopped."""
    data_dir = tmp_path / "pgdata"
    settings = replace(Settings(), database=DatabaseSettings(embedded_data_dir=str(data_dir)))
    async with database_dsn(settings) as dsn:
        raw = await asyncpg.connect(dsn)
        try:
            answer = await raw.fetchval("SELECT 1")
        finally:
            await raw.close()

    assert 1 == answer
    assert [True, False] == await asyncio.to_thread(
        lambda: [(data_dir / "PG_VERSION").exists(), (data_dir / "postmaster.pid").exists()]
    )
