"""``asterisk-recorder serve``: run the ARI controller, the FastAGI server and the ops endpoint.

This module owns the command's arguments and its signal handling (SIGTERM/SIGINT start the
graceful shutdown). It must not do the work itself: the composition root
(``asterisk_recorder.service.build``) makes the running service.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from asterisk_recorder.config import add_config_arguments, secret_values, settings_from_args
from asterisk_recorder.logs import configure
from asterisk_recorder.service import Service, build

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``serve`` command."""
    parser = subparsers.add_parser(
        "serve",
        help="run the consent controller (ARI + FastAGI) until SIGTERM/SIGINT",
        description="Connect to Asterisk's ARI, take every call dialplan hands to the Stasis "
        "app (and every FastAGI session), run the consent flow, keep the decision in the "
        "ledger and hand the channel back to dialplan. SIGTERM/SIGINT: stop taking calls, "
        "finish in-flight flows for controller.shutdown_grace seconds, hand back the rest "
        "fail-closed, flush the ledger, exit 0.",
    )
    add_config_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Load settings, configure logs, serve until a stop signal."""
    settings = settings_from_args(args)
    configure(settings.logging, secrets=secret_values(settings))
    return asyncio.run(_serve(build(settings)))


async def _serve(service: Service) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await service.run(stop)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    return 0
