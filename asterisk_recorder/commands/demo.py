"""``asterisk-recorder demo``: place demo calls through the real controller and show the ledger.

This module owns the command's arguments only; ``asterisk_recorder.demo`` runs the scenarios.
It must not change the product's behaviour for the demo beyond pointing ARI at the fake (or the
``--ari-url`` Asterisk), the demo's site (US-NY) and a short input timeout, each of which the
demo prints with the configured value and why.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from asterisk_recorder.config import load, secret_values
from asterisk_recorder.demo import run_demo
from asterisk_recorder.logs import configure
from asterisk_recorder.settings import LoggingSettings

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``demo`` command."""
    parser = subparsers.add_parser(
        "demo",
        help="run the real controller against a fake Asterisk and print the ledger",
        description="Start the ledger's PostgreSQL (embedded unless database.dsn is set), a "
        "fake Asterisk on loopback and the real serve code; place calls covering opt-out, "
        "silent acceptance, opt-in accepted/declined, timeout, hang-up, an interstate call and "
        "an unreachable controller; print this run's ledger rows (each with its decision id, "
        "for 'asterisk-recorder ledger show --call ID') and verify the hash chain. The demo "
        "runs with site US-NY and an input timeout of at most 1.5 s, which its scenarios are "
        "written for; it prints every setting it uses instead of the configured one.",
    )
    parser.add_argument("--config", metavar="FILE", default=None,
                        help="TOML configuration (database, ledger, flow, policy sections apply)")
    parser.add_argument("--dsn", default=None, help="PostgreSQL DSN instead of the embedded one")
    parser.add_argument(
        "--ari-url", default=None, metavar="URL",
        help="drive this real Asterisk instead of the fake (its ARI user and password come from "
        "the configuration; include dialplan/recorder.conf and dialplan/recorder-demo.conf)",
    )
    parser.add_argument(
        "--witness", default=None, metavar="DIR",
        help="push the ledger's signed checkpoints to DIR (absolute), end with one covering the "
        "last entry, and verify against it; 'ledger verify --witness DIR' checks it later",
    )
    parser.add_argument("--verbose", action="store_true", help="show the controller's log lines")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo; exit 0 when every scenario behaved and the ledger verifies."""
    overrides: dict[str, object] = {}
    if args.ari_url:
        overrides["ari.url"] = args.ari_url
    else:
        overrides["ari.enabled"] = "false"  # the fake Asterisk stands in; no password needed
    if args.dsn:
        overrides["database.dsn"] = args.dsn
    if args.witness:
        overrides["ledger.witnesses"] = str(Path(args.witness).resolve())
    settings = load(args.config, overrides=overrides)
    level = "info" if args.verbose else "warning"
    configure(LoggingSettings(level=level, format="console"), secrets=secret_values(settings))
    real = settings.ari[0] if args.ari_url else None
    return asyncio.run(run_demo(settings, real_asterisk=real))
