"""``asterisk-recorder agi``: one consent session as a classic AGI script (stdin/stdout).

For dialplans that prefer ``AGI(asterisk-recorder-agi,<policy>,<lang>)`` (a wrapper script that
runs ``asterisk-recorder agi``) to the FastAGI server of ``serve``. Asterisk writes the
environment and replies on our stdin and reads commands from our stdout, so this command logs
to stderr only and never prints anything else on stdout. The ledger must already exist
(``asterisk-recorder db migrate``); set ``database.dsn`` so that each call connects to the
running PostgreSQL. This module owns argument parsing and process wiring only.

Exit codes: 0 the session ran (whatever the caller decided), 1 the AGI conversation or the
ledger failed, 2 bad configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from typing import Any

from asterisk_recorder import config, logs
from asterisk_recorder.agi.channel import AgiChannel
from asterisk_recorder.errors import AgiError, ConfigError
from asterisk_recorder.service import run_classic_agi
from asterisk_recorder.settings import Settings

__all__ = ["ARI_ENABLED_ENV", "open_stdio", "register", "run"]

ARI_ENABLED_ENV = "ASTERISK_RECORDER_ARI_ENABLED"
"""Set to ``false`` in this process: a classic AGI session never talks to ARI."""

_log = logs.get_logger("asterisk_recorder.commands.agi")


def register(subparsers: Any) -> None:
    """Add the ``agi`` sub-command."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "agi",
        help="run one consent session as a classic AGI script over stdin/stdout",
        description="Run the consent flow for the channel that started this process with "
        "AGI(): read Asterisk's environment on stdin, send AGI commands on stdout, store the "
        "decision in the ledger, set RECORDER_* and exit. Logs go to stderr. AGI arguments: "
        "1 = policy override, 2 = language.",
    )
    config.add_config_arguments(parser, only=("--dsn", "--log-level", "--log-format", "--site"))
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run one classic AGI session; ``ConfigError`` propagates (exit 2)."""
    # This process speaks AGI only: ARI settings (and their required password) do not apply.
    os.environ[ARI_ENABLED_ENV] = "false"
    settings = config.settings_from_args(args, require_ari_password=False)
    if not settings.database.dsn:
        # The embedded PostgreSQL is started and stopped by its owner (serve); a per-call
        # process must never start or stop it.
        raise ConfigError(
            "database.dsn: missing; asterisk-recorder agi connects to a running PostgreSQL: "
            "set ASTERISK_RECORDER_DATABASE_DSN or [database] dsn"
        )
    logs.configure(settings.logging, stream=sys.stderr, secrets=config.secret_values(settings))
    return asyncio.run(_session(settings))


async def open_stdio() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Asyncio streams over this process's stdin and stdout (pipes, as ``AGI()`` gives them).

    Raises:
        ConfigError: stdin or stdout is not a pipe, socket or terminal.
    """
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    try:
        await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(0, "rb", buffering=0)
        )
        transport, protocol = await loop.connect_write_pipe(
            asyncio.streams.FlowControlMixin, os.fdopen(1, "wb", buffering=0)
        )
    except ValueError as exc:
        raise ConfigError(
            f"asterisk-recorder agi needs stdin/stdout pipes from Asterisk's AGI(): {exc}"
        ) from exc
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    return reader, writer


async def _session(settings: Settings) -> int:
    loop = asyncio.get_running_loop()
    # Asterisk sends SIGHUP when the caller hangs up (AGISIGHUP); the default action would kill
    # us before the abandoned decision is stored. The protocol tells us anyway (511 / -1).
    loop.add_signal_handler(signal.SIGHUP, lambda: _log.debug("agi.sighup"))
    reader, writer = await open_stdio()
    channel = AgiChannel(reader, writer, read_timeout=settings.agi.read_timeout)
    try:
        env = await channel.read_environment()
    except AgiError as exc:
        _log.error("agi.session.bad_environment", error=str(exc))
        return 1
    try:
        result = await run_classic_agi(settings, channel, env)
    except AgiError as exc:
        _log.error("agi.session.failed", error=str(exc))
        return 1
    writer.close()
    if result is None or result.decision is None or not result.stored:
        return 1
    return 0
