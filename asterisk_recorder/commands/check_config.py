"""``asterisk-recorder check-config``: validate the configuration and show what is in effect.

This module owns the command's arguments and output only; loading and validation are
``config.load``'s (which also runs the flow's and the policy's own checks and loads the policy
table, so what passes here passes at the first call). It must never print a secret: the
effective configuration is rendered with passwords, keys and the DSN's password masked. Exit
codes: 0 valid, 2 any problem (each printed on its own line on stderr by ``cli.main``).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from asterisk_recorder import config

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``check-config`` sub-command."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "check-config",
        help="validate the configuration and print it with secrets masked",
        description="Load the configuration (file, ASTERISK_RECORDER_* environment, flags), "
        "print the effective values with secrets masked and exit 0; print every problem on "
        "stderr and exit 2 otherwise.",
    )
    config.add_config_arguments(parser)
    parser.add_argument("--sample", action="store_true",
                        help="print a sample configuration file with every key and exit")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Validate and print the effective configuration; ``ConfigError`` propagates (exit 2)."""
    if getattr(args, "sample", False):
        sys.stdout.write(config.render_sample())
        return 0
    settings = config.settings_from_args(args)
    sys.stdout.write(config.render_effective(settings))
    return 0
