"""The configuration flags of the commands: ``add_config_arguments`` and ``settings_from_args``.

This module owns the common flags (``--config`` and the overrides ``--dsn``, ``--ari-url``,
``--log-level``, ``--log-format``, ``--http-port``, ``--agi-port``, ``--site``), their mapping to
dotted keys, and which commands need a real database (``DATABASE_COMMANDS``). Passwords are
never flags (they would show in the process list). It must not convert or check values itself
(``loader.load`` does).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable

from asterisk_recorder.settings.loader import load
from asterisk_recorder.settings.schema import CONFIG_ENV
from asterisk_recorder.settings.sections import (
    Settings,
)

__all__ = [
    "DATABASE_COMMANDS",
    "add_config_arguments",
    "settings_from_args",
]


_FLAGS: tuple[tuple[str, str, str, str], ...] = (
    ("--dsn", "database.dsn", "DSN",
     "PostgreSQL DSN (visible in the process list: prefer ASTERISK_RECORDER_DATABASE_DSN)"),
    ("--ari-url", "ari.url", "URL", "base URL of Asterisk's HTTP server"),
    ("--log-level", "logging.level", "LEVEL", "debug, info, warning, error or critical"),
    ("--log-format", "logging.format", "FORMAT", "auto, json or console"),
    ("--http-port", "http.port", "PORT", "port of the operations HTTP endpoint"),
    ("--agi-port", "agi.port", "PORT", "port of the FastAGI server"),
    ("--site", "policy.site_jurisdiction", "CODE", "your own jurisdiction, e.g. US-CA"),
)


def add_config_arguments(
    parser: argparse.ArgumentParser, *, only: Iterable[str] | None = None
) -> None:
    """Add ``--config FILE`` and the common override flags to ``parser``.

    Passwords are deliberately not flags (they would show in the process list): set them in
    the file or the environment.

    Args:
        only: the override flags this command uses (e.g. ``("--dsn", "--log-level")``);
            ``None`` adds them all.
    """
    wanted = None if only is None else set(only)
    group = parser.add_argument_group("configuration")
    group.add_argument("--config", metavar="FILE", default=None,
                       help=f"TOML configuration file (default: ${CONFIG_ENV}, else built-in "
                       "defaults)")
    for flag, key, metavar, text in _FLAGS:
        if wanted is not None and flag not in wanted:
            continue
        group.add_argument(flag, dest=_dest(key), metavar=metavar, default=None,
                           help=f"{text} (overrides {key})")


def _dest(key: str) -> str:
    return "config_override_" + key.replace(".", "_")


DATABASE_COMMANDS: frozenset[str] = frozenset({"serve", "check-config"})
"""Commands that need a real database (or an explicit ``database.embedded = true``)."""


def settings_from_args(
    args: argparse.Namespace, *, require_ari_password: bool = True,
    require_database: bool | None = None,
) -> Settings:
    """Load the configuration named by ``args.config`` with the flags' overrides applied.

    Args:
        require_database: see ``load``; ``None`` (the default) means "when ``args.command``
            is one of ``DATABASE_COMMANDS``" (``serve``, ``check-config``).
    """
    overrides: dict[str, object] = {}
    for _flag, key, _metavar, _text in _FLAGS:
        value = getattr(args, _dest(key), None)
        if value is not None:
            overrides[key] = value
    if require_database is None:
        require_database = getattr(args, "command", None) in DATABASE_COMMANDS
    return load(
        getattr(args, "config", None),
        overrides=overrides,
        require_ari_password=require_ari_password,
        require_database=require_database,
    )
