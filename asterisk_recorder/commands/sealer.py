"""``asterisk-recorder sealer``: account for, seal and clean up every recording on this host.

This module owns the command's arguments, its signal handling (SIGTERM/SIGINT stop the
loop after the file in hand) and its systemd notifications (``READY=1`` once the ops endpoint
serves and the first scan starts, ``WATCHDOG=1`` pings while the loop runs, ``STOPPING=1``).
It must not do the work itself (``recordings.runner``).
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from asterisk_recorder.config import add_config_arguments, secret_values, settings_from_args
from asterisk_recorder.ledger.database import database_dsn
from asterisk_recorder.logs import configure
from asterisk_recorder.ops.systemd import SystemdNotifier
from asterisk_recorder.recordings.runner import run_sealer
from asterisk_recorder.settings import Settings

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``sealer`` command."""
    parser = subparsers.add_parser(
        "sealer",
        help="seal every closed recording at rest and account for it in the ledger "
        "(runs on the Asterisk host until SIGTERM/SIGINT)",
        description="Watch recording.directory: each file MixMonitor closes gets a "
        "recording.closed fact, is sealed to the current public key of "
        "recordings.retention_class into recordings.sealed_dir and its plaintext removed "
        "(recording.sealed). Files without a decision, of a decision that said skip, empty or "
        "changed since their close go to recordings.quarantine_dir. Serves /healthz, /readyz "
        "and /metrics on recordings.http_port. See docs/recordings.md.",
    )
    add_config_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Load settings, configure logs, run the sealer until a stop signal."""
    settings = settings_from_args(args, require_ari_password=False)
    configure(settings.logging, secrets=secret_values(settings))
    asyncio.run(_main(settings))
    return 0


async def _main(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    systemd = SystemdNotifier()  # Type=notify: READY=1 once serving, WATCHDOG=1 while it runs
    try:
        async with database_dsn(settings) as dsn:
            await run_sealer(settings, dsn, stop, on_ready=lambda _s, _o: systemd.ready())
    finally:
        await systemd.stopping()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
