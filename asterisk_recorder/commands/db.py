"""``asterisk-recorder db migrate``: create or upgrade the ledger schema.

This module owns the command's arguments and output only; the work is
``asterisk_recorder.ledger.migrate``. Exit codes: 0 applied or already up to date, 1 the database
could not be reached or a migration failed (or an applied one was edited), 2 bad configuration.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from asterisk_recorder import config
from asterisk_recorder.ledger.database import database_dsn
from asterisk_recorder.ledger.migrate import migrate
from asterisk_recorder.settings import Settings

__all__ = ["register", "run_migrate"]


def register(subparsers: Any) -> None:
    """Add the ``db`` sub-command and its ``migrate`` action."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "db", help="manage the ledger's PostgreSQL schema"
    )
    actions = parser.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    migrate_parser = actions.add_parser(
        "migrate",
        help="apply the schema migrations not yet applied (safe to run from several hosts)",
        description="Apply every ledger migration not yet applied, in one transaction under an "
        "advisory lock. Uses database.dsn, or starts the embedded PostgreSQL when it is empty.",
    )
    config.add_config_arguments(migrate_parser, only=("--dsn", "--log-level", "--log-format"))
    migrate_parser.set_defaults(func=run_migrate)


async def _migrate(settings: Settings) -> list[str]:
    async with database_dsn(settings) as dsn:
        return await migrate(dsn, connect_timeout=settings.database.connect_timeout)


def run_migrate(args: argparse.Namespace) -> int:
    """Apply pending migrations and print what was applied."""
    settings = config.settings_from_args(args, require_ari_password=False)
    applied = asyncio.run(_migrate(settings))
    if applied:
        for version in applied:
            print(f"applied {version}")
    else:
        print("schema is up to date")
    return 0
