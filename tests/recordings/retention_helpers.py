"""Helpers of the retention tests: old recordings sealed by the real sealer, a config, the CLI.

A recording is made "old" the honest way: its WAV file's mtime (the sealer's close time) is
set back before the real sealer seals it, so its ``retain_until`` in ``recording.sealed`` is
already past and its key bucket is a month that is over. No clock is faked for that.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from sealer_helpers import FIXED_KEY, SealerEnv

from asterisk_recorder.cli import main
from asterisk_recorder.flow.decision import PartyRecord
from asterisk_recorder.ledger.store import Ledger
from asterisk_recorder.policy.modes import Mode
from asterisk_recorder.recordings.catalog import Catalog
from asterisk_recorder.recordings.sealer import Sealer
from asterisk_recorder.recordings.wav import tone_pcm, write_wav

__all__ = ["DAY", "all_facts", "cli", "config_file", "old_recordings", "private_key_path"]

DAY = 86400.0


def config_file(env: SealerEnv, *, retention: str = '["standard=30d"]', rules: str = "[]") -> Path:
    """A configuration for the CLI on ``env`` (ledger, directories, retention)."""
    path = env.root / "recorder.toml"
    path.write_text(
        "[ari]\nenabled = false\n"
        f'[database]\ndsn = "{env.dsn}"\n'
        f'[ledger]\nspool_dir = "{env.root / "spool"}"\ndigest_key = "{FIXED_KEY}"\n'
        f'[recording]\ndirectory = "{env.paths.recordings}"\n'
        f'[recordings]\nsealed_dir = "{env.paths.sealed}"\n'
        f'quarantine_dir = "{env.paths.quarantine}"\nkey_dir = "{env.paths.keys}"\n'
        f"retention = {retention}\nretention_rules = {rules}\n"
    )
    return path


def month_of(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m")


async def old_recordings(
    env: SealerEnv,
    numbers: list[str],
    *,
    age_days: float = 100.0,
    retention: tuple[str, ...] = ("standard=30d",),
    rules: tuple[str, ...] = (),
    classes: tuple[str, ...] = ("standard",),
    jurisdiction: str = "US-NY",
    seconds: float = 0.5,
    **decision: Any,
) -> list[str]:
    """One decision per caller number, its WAV closed ``age_days`` ago, sealed by the real
    sealer into the ledger; the decision ids."""
    closed = time.time() - age_days * DAY
    store = env.key_store()
    have = {(i.retention_class, i.month) for i in store.list() if i.state == "active"}
    for klass in classes:
        if (klass, month_of(closed)) not in have:
            store.create(klass, month_of(closed))
    ids: list[str] = []
    for number in numbers:
        parties = (PartyRecord("caller", number, jurisdiction, jurisdiction, Mode.OPT_IN),)
        made, path = await env.decision(caller_number=number, parties=parties, **decision)
        write_wav(path, tone_pcm(seconds))
        os.utime(path, (closed, closed))
        ids.append(made.decision_id)
    async with Ledger.open(env.dsn, env.ledger_settings(), instance_id="sealer:test") as ledger:
        catalog = Catalog(env.dsn)
        sealer = Sealer(env.settings(retention=retention, retention_rules=rules), env.paths,
                        ledger, catalog, actor="sealer:test")
        sealer.prepare()
        try:
            await sealer.scan()
        finally:
            await catalog.close()
    return ids


async def all_facts(dsn: str, kind_prefix: str = "recording.") -> list[dict[str, Any]]:
    """Every fact of ``kind_prefix`` in chain order: seq, kind, decision, actor, payload."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT seq, kind, decision_id::text AS decision_id, actor, payload FROM ledger_facts "
            "WHERE kind LIKE $1 ORDER BY seq", kind_prefix + "%")
    finally:
        await conn.close()
    return [{"seq": r["seq"], "kind": r["kind"], "decision_id": r["decision_id"],
             "actor": r["actor"], "payload": json.loads(r["payload"])} for r in rows]


async def cli(*args: str) -> int:
    """``asterisk-recorder ARGS`` in a thread (it runs its own event loop)."""
    return await asyncio.to_thread(main, list(args))


def private_key_path(env: SealerEnv, kek_id: str) -> Path:
    return env.private_dir / f"{kek_id}.key.pem"


def new_id() -> str:
    return str(uuid.uuid4())
