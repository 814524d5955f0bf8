"""Fixtures of the end-to-end suite (a real Asterisk 22; skipped when none is configured).

Point the suite at an Asterisk started with this directory's configuration
(``tests/e2e/run_local_asterisk.sh`` does that for an installed binary) through
``ASTERISK_RECORDER_E2E_ARI_URL``, ``ASTERISK_RECORDER_E2E_ARI_USER`` and
``ASTERISK_RECORDER_E2E_ARI_PASSWORD``. Without them every test here is skipped with that
reason, so CI needs no Asterisk. The controller under test runs as a real
``asterisk-recorder serve`` process on the same host (it writes to the suite's real PostgreSQL;
Asterisk writes the recordings into the test's temporary directory, so Asterisk must run on
this host as a user that may write there).
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from e2e_harness import AriTarget, CallerSim, RecorderProcess, free_port, run_cli

from asterisk_recorder.ledger import migrate

SKIP_REASON = (
    "ASTERISK_RECORDER_E2E_ARI_URL is not set: no real Asterisk 22 to test against "
    "(start one with tests/e2e/run_local_asterisk.sh)"
)


@pytest.fixture(scope="session")
def ari_target() -> AriTarget:
    """The Asterisk under test; skips the test when none is configured."""
    target = AriTarget.from_env(os.environ)
    if target is None:
        pytest.skip(SKIP_REASON)
    return target


@pytest.fixture(autouse=True)
def _needs_asterisk(ari_target: AriTarget) -> None:
    """Every e2e test needs the Asterisk (and is skipped with the reason above without it)."""


@pytest.fixture
def recordings_dir(tmp_path: Path) -> Path:
    """Where the controller tells Asterisk to write recordings (empty at the start)."""
    directory = tmp_path / "recordings"
    directory.mkdir()
    directory.chmod(0o777)
    return directory


@pytest.fixture
async def caller(ari_target: AriTarget) -> AsyncIterator[CallerSim]:
    """The simulated caller, connected as ARI app ``caller-sim``."""
    sim = CallerSim(ari_target)
    async with sim.running():
        yield sim


def controller_config(
    target: AriTarget,
    *,
    dsn: str,
    recordings: Path,
    spool: Path,
    http_port: int,
    agi: bool,
    extra: str = "",
    mixmonitor_options: str | None = None,
) -> str:
    """The TOML configuration ``serve`` runs with in the suite."""

    def q(value: str) -> str:
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

    return f"""\
instance_id = "e2e"

[ari]
url = {q(target.url)}
username = {q(target.user)}
password = {q(target.password)}
app = {q(target.app)}

[agi]
enabled = {"true" if agi else "false"}
host = "127.0.0.1"
port = {target.agi_port}

[database]
dsn = {q(dsn)}

[ledger]
spool_dir = {q(str(spool))}

[flow]
input_timeout = 2.0
max_retries = 0

[recording]
directory = {q(str(recordings))}
{"" if mixmonitor_options is None else f"mixmonitor_options = {q(mixmonitor_options)}"}

[http]
host = "127.0.0.1"
port = {http_port}

[logging]
level = "debug"
format = "json"

[controller]
shutdown_grace = 1.0
{extra}"""


async def _run_recorder(
    target: AriTarget, dsn: str, recordings: Path, tmp_path: Path, *, agi: bool
) -> AsyncIterator[RecorderProcess]:
    await migrate(dsn)
    http_port = free_port()
    config = tmp_path / "asterisk-recorder.toml"
    config.write_text(
        controller_config(
            target,
            dsn=dsn,
            recordings=recordings,
            spool=tmp_path / "spool",
            http_port=http_port,
            agi=agi,
        )
    )
    process = RecorderProcess(
        config_file=config, log_file=tmp_path / "serve.log", http_port=http_port
    )
    await process.start()
    try:
        yield process
    finally:
        code = await process.stop()
        assert 0 == code, f"serve exited with {code}:\n{process.log_tail()}"


@pytest.fixture
async def recorder(
    ari_target: AriTarget, pg_dsn: str, recordings_dir: Path, tmp_path: Path
) -> AsyncIterator[RecorderProcess]:
    """A running ``asterisk-recorder serve`` (ARI only) for this test; must exit 0 on SIGTERM."""
    async for process in _run_recorder(ari_target, pg_dsn, recordings_dir, tmp_path, agi=False):
        yield process


@pytest.fixture
async def agi_recorder(
    ari_target: AriTarget, pg_dsn: str, recordings_dir: Path, tmp_path: Path
) -> AsyncIterator[RecorderProcess]:
    """A running ``serve`` with its FastAGI server on the port the suite's dialplan uses."""
    async for process in _run_recorder(ari_target, pg_dsn, recordings_dir, tmp_path, agi=True):
        yield process


@dataclass(frozen=True, slots=True)
class SealerSetup:
    """A running ``asterisk-recorder sealer`` and the directories and keys it works with."""

    process: RecorderProcess
    sealed: Path
    quarantine: Path
    public_keys: Path
    private_keys: Path
    kek_id: str


@pytest.fixture
async def sealer(
    ari_target: AriTarget,
    pg_dsn: str,
    recordings_dir: Path,
    tmp_path: Path,
    recorder: RecorderProcess,
) -> AsyncIterator[SealerSetup]:
    """The real ``asterisk-recorder sealer`` beside ``recorder`` (same ledger, spool, directory).

    Its key is made by ``recording keys create`` (this UTC month, class ``standard``); the
    private half lives in a directory the sealer is not told about.
    """
    public, private = tmp_path / "kek-public", tmp_path / "kek-private"
    sealed, quarantine = tmp_path / "sealed", tmp_path / "quarantine"
    http_port = free_port()
    extra = f"""
[recordings]
sealed_dir = "{sealed}"
quarantine_dir = "{quarantine}"
key_dir = "{public}"
retention_class = "standard"
scan_interval = 1.0
settle_after = 2.0
orphan_after = 30.0
absent_after = 300.0
max_lag = 60.0
http_port = {http_port}
"""
    config = tmp_path / "sealer.toml"
    config.write_text(
        controller_config(
            ari_target,
            dsn=pg_dsn,
            recordings=recordings_dir,
            spool=tmp_path / "spool",
            http_port=free_port(),
            agi=False,
            extra=extra,
        )
    )
    month = datetime.now(UTC).strftime("%Y-%m")
    code, out, err = await run_cli(
        "recording", "keys", "create", "--public-keys", str(public), "--private-keys",
        str(private), "--class", "standard", "--month", month, "--config", str(config),
    )
    assert 0 == code, err
    [kek_id] = re.findall(r"key (\S+) for standard", out)
    process = RecorderProcess(
        config_file=config, log_file=tmp_path / "sealer.log", http_port=http_port,
        command="sealer",
    )
    await process.start()
    try:
        yield SealerSetup(process, sealed, quarantine, public, private, kek_id)
    finally:
        code = await process.stop()
        assert 0 == code, f"sealer exited with {code}:\n{process.log_tail()}"
