"""Running the sealer: its ledger, its read side, its ops endpoint, one ``Sealer``.

This module owns ``sealer_parts`` (the directories and the actor from the settings) and
``run_sealer`` (open a ``Ledger`` with the sealer's own spool, a ``Catalog``, the ops endpoint
on ``recordings.http_port``, the store of ``recordings.store``, then ``Sealer.run`` until
``stop``). The sealer spools its facts in
``<ledger spool>/sealer`` so it never shares a spool file with ``serve`` on the same host.
It must not parse arguments or install signal handlers (``commands/sealer.py`` does).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from asterisk_recorder.ledger.keys import load_digest_key, spool_directory
from asterisk_recorder.ledger.store import Ledger
from asterisk_recorder.ops.http import OpsServer
from asterisk_recorder.recordings.catalog import Catalog
from asterisk_recorder.recordings.sealer import RetainUntil, Sealer, SealerPaths
from asterisk_recorder.recordings.storage import stores_from_settings
from asterisk_recorder.settings import Settings

__all__ = ["run_sealer", "sealer_actor", "sealer_paths"]


def sealer_paths(settings: Settings) -> SealerPaths:
    """The recording, sealed, quarantine and key directories named by ``settings``."""
    rec = settings.recordings
    return SealerPaths(
        recordings=Path(settings.flow.recording.directory),
        sealed=Path(rec.sealed_dir),
        quarantine=Path(rec.quarantine_dir),
        keys=Path(rec.key_dir),
    )


def sealer_actor(settings: Settings) -> str:
    """Who states the sealer's facts: ``sealer:<instance id or host name>``."""
    return f"sealer:{settings.instance_id or socket.gethostname() or 'localhost'}"


async def run_sealer(
    settings: Settings,
    dsn: str,
    stop: asyncio.Event,
    *,
    on_ready: Callable[[Sealer, OpsServer], None] | None = None,
    retain_until: RetainUntil | None = None,
) -> None:
    """Run the sealer against ledger ``dsn`` until ``stop`` is set; sealed files go to
    ``recordings.store`` (``retain_until`` gives each upload its Object Lock date)."""
    key = load_digest_key(settings.ledger)
    spool = spool_directory(settings.ledger) / "sealer"
    ledger_settings = replace(settings.ledger, spool_dir=str(spool))
    catalog = Catalog(dsn, connect_timeout=settings.database.connect_timeout)
    actor = sealer_actor(settings)
    async with Ledger.open(dsn, ledger_settings, instance_id=actor, key=key) as ledger:
        sealer = Sealer(settings.recordings, sealer_paths(settings), ledger, catalog,
                        actor=actor, store=stores_from_settings(settings.recordings).primary,
                        retain_until=retain_until)
        http = replace(settings.http, port=settings.recordings.http_port)
        ops = OpsServer(http, sealer.metrics.registry, sealer.readiness)
        try:
            await ops.start()
            if on_ready is not None:
                on_ready(sealer, ops)
            await sealer.run(stop)
        finally:
            await ops.close()
            await catalog.close()
