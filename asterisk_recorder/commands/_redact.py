"""``asterisk-recorder recording redact ID --from T1 --to T2 --reason TEXT``.

This module owns the action's arguments, its confirmation and its output only (``recording.py``
adds it to its parser); the work is done by ``asterisk_recorder.recordings.redact``. Every fact
must be committed to PostgreSQL (a spooled fact stops the action before anything is deleted).
It must not print audio, key material or a number. Exit codes: 0 ok, 1 refused or failed,
2 bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
from pathlib import Path
from typing import Any

import asyncpg

from asterisk_recorder import config
from asterisk_recorder.commands._retention import actor, key_store, with_ledger
from asterisk_recorder.errors import LedgerError, RecordingError
from asterisk_recorder.flow.facts import LedgerFact
from asterisk_recorder.flow.recording import DECISION_ID_RE
from asterisk_recorder.ledger import Ledger
from asterisk_recorder.recordings.redact import Redaction, redact_recording
from asterisk_recorder.recordings.storage import stores_from_settings

__all__ = ["add_redact_action", "parse_offset"]

_OFFSET_RE = re.compile(r"^(?:(?:(\d+):)?(\d{1,2}):)?(\d+(?:\.\d+)?)$")


def parse_offset(text: str) -> float:
    """An offset into a recording: seconds (``75``, ``75.5``), ``M:SS`` or ``H:MM:SS[.s]``.

    Raises:
        RecordingError: anything else.
    """
    match = _OFFSET_RE.match(text.strip())
    if match is None:
        raise RecordingError(f"{text!r} is not an offset (seconds, M:SS or H:MM:SS)")
    hours, minutes, seconds = match.groups()
    if minutes is not None and float(seconds) >= 60:
        raise RecordingError(f"{text!r}: seconds must be below 60 after a colon")
    return int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(seconds)


def add_redact_action(actions: Any) -> None:
    """Add ``redact`` to the ``recording`` parser's actions."""
    redact: argparse.ArgumentParser = actions.add_parser(
        "redact", help="replace a span of a recording by silence; the unredacted version goes",
        description="Open the recording (recording.accessed first), replace [--from, --to) by "
        "digital silence in memory, seal the result as a new version to the same key, record "
        "recording.redacted (who, why, the span, both digests) and the new recording.sealed, "
        "then dispose of the old version (recording.disposing / recording.disposed, reason "
        "redaction). A recording under legal hold is refused. Irreversible: --confirm repeats "
        "the id.",
    )
    config.add_config_arguments(redact, only=("--dsn", "--log-level", "--log-format"))
    redact.add_argument("decision_id", metavar="ID", help="the recording's decision id")
    redact.add_argument("--from", dest="from_offset", required=True, metavar="T1",
                        help="start of the span: seconds, M:SS or H:MM:SS")
    redact.add_argument("--to", dest="to_offset", required=True, metavar="T2",
                        help="end of the span (excluded)")
    redact.add_argument("--reason", required=True, help="why (ticket, request, PCI incident)")
    redact.add_argument("--confirm", required=True, metavar="ID",
                        help="repeat the decision id: the unredacted audio is destroyed")
    redact.add_argument("--public-keys", type=Path, metavar="DIR",
                        help="key metadata (default: recordings.key_dir)")
    redact.add_argument("--private-keys", type=Path, metavar="DIR",
                        help="the private keys (not with recordings.kek_pkcs11_module)")
    redact.add_argument("--json", action="store_true")
    redact.set_defaults(func=run_redact)


def run_redact(args: argparse.Namespace) -> int:
    """``recording redact``."""
    settings = config.settings_from_args(args, require_ari_password=False)
    if not settings.database.dsn and not settings.database.embedded:
        raise RecordingError("a redaction is recorded in the ledger: configure a DSN (--dsn)")
    if not DECISION_ID_RE.match(args.decision_id):
        raise RecordingError(f"{args.decision_id!r} is not a decision id")
    if args.confirm != args.decision_id:
        raise RecordingError(f"--confirm {args.confirm!r} does not repeat {args.decision_id}; "
                             "nothing was changed")
    if not args.reason.strip():
        raise RecordingError("--reason must say why the span is redacted")
    from_s, to_s = parse_offset(args.from_offset), parse_offset(args.to_offset)
    if to_s <= from_s:
        raise RecordingError(f"--to {args.to_offset} must come after --from {args.from_offset}")
    if not settings.recordings.kek_pkcs11_module and args.private_keys is None:
        raise RecordingError("redaction opens the recording: give --private-keys DIR, or set "
                             "recordings.kek_pkcs11_module")
    keys = key_store(settings, args.public_keys, args.private_keys)
    opener = keys.opener()
    who = actor()

    async def work(conn: asyncpg.Connection, ledger: Ledger) -> Redaction:
        async def record(fact: LedgerFact) -> None:
            receipt = await ledger.record_fact(fact)
            if receipt.spooled:
                raise LedgerError(f"{fact.kind} went to the local spool (PostgreSQL did not "
                                  "answer in time): stopped; run the same redaction again")

        return await redact_recording(
            conn, decision_id=args.decision_id, from_s=from_s, to_s=to_s, reason=args.reason,
            who=who, opener=opener, public_key=keys.public,
            sealed_dir=Path(settings.recordings.sealed_dir),
            stores=stores_from_settings(settings.recordings), record=record)

    try:
        done = asyncio.run(with_ledger(settings, work))
    finally:
        close = getattr(opener, "close", None)
        if close is not None:
            close()
    seconds = to_s - from_s
    if args.json:
        print(json.dumps({
            "decision_id": done.decision_id, "from_s": from_s, "to_s": to_s,
            "samples_silenced": done.samples, "version": done.version,
            "old_file": done.old_file, "new_file": done.new_file,
            "old_sealed_sha256": done.old_sealed_sha256,
            "new_sealed_sha256": done.new_sealed_sha256, "actor": who,
        }))
        return 0
    print(f"redacted {done.decision_id}: {from_s:g}-{to_s:g} s ({seconds:g} s, "
          f"{done.samples} samples) silenced by {who}")
    print(f"new version {done.version}: {done.new_file} (sealed {done.new_sealed_sha256[:16]}...)")
    print(f"old version disposed of: {done.old_file} (sealed {done.old_sealed_sha256[:16]}...)")
    return 0
