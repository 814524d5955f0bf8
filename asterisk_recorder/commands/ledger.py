"""``asterisk-recorder ledger ...``: verify, spool-status, export, erase, purge, show, tail.

This module owns the commands' arguments, confirmations and output only; the work is done by
``asterisk_recorder.ledger`` (``verify``, ``admin``, ``spool``). Text that came from callers is
printed with control characters escaped, so a hostile caller name cannot drive the terminal.
Exit codes: 0 ok, 1 a broken chain / nothing found / runtime failure, 2 bad usage or config.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import getpass
import json
import re
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO, TypeVar

import asyncpg

from asterisk_recorder import config
from asterisk_recorder.commands import checkpoint
from asterisk_recorder.commands._retention import with_ledger
from asterisk_recorder.ledger import Ledger, admin
from asterisk_recorder.ledger.database import connect_app, database_dsn
from asterisk_recorder.ledger.keys import DigestKey, load_digest_key, spool_directory
from asterisk_recorder.ledger.spool import Spool
from asterisk_recorder.recordings.disposal import Disposer, number_digest
from asterisk_recorder.recordings.retention import active_holds, decisions_of_number
from asterisk_recorder.recordings.storage import stores_from_settings
from asterisk_recorder.settings import Settings
from asterisk_recorder.settings.retention import parse_retention

__all__ = ["parse_age", "register"]

_T = TypeVar("_T")
_AGE_RE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_PHONE_RE = re.compile(r"^[+-][0-9 ()./-]*$")


def parse_age(text: str) -> float:
    """``90d`` -> seconds; units ``s``, ``m``, ``h``, ``d``, ``w``; ``0d`` (or ``0s`` ...) is 0.

    Raises:
        ValueError: ``text`` is not a whole number (0 or more) followed by a unit.
    """
    match = _AGE_RE.match(text)
    if match is None:
        raise ValueError(
            f"{text!r} is not an age like 90d, 12h, 30m, 2w (0d: everything decided before now)"
        )
    return int(match.group(1)) * _AGE_UNITS[match.group(2)]


def _safe(value: object) -> str:
    """Printable text: control characters (and lone surrogates) shown as escapes."""
    text = "" if value is None else str(value)
    return _CONTROL_RE.sub(
        lambda m: (
            f"\\x{ord(m.group()):02x}" if ord(m.group()) < 256 else f"\\u{ord(m.group()):04x}"
        ),
        text,
    )


def _actor() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"cli:{user}@{socket.gethostname()}"


def register(subparsers: Any) -> None:
    """Add the ``ledger`` sub-command and its actions."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "ledger", help="inspect, verify and maintain the consent ledger"
    )
    actions = parser.add_subparsers(dest="ledger_command", metavar="ACTION", required=True)

    def action(
        name: str, func: Callable[[argparse.Namespace], int], text: str, description: str
    ) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = actions.add_parser(name, help=text, description=description)
        config.add_config_arguments(sub, only=("--dsn", "--log-level", "--log-format"))
        sub.set_defaults(func=func)
        return sub

    verify = action(
        "verify",
        checkpoint.run_verify,
        "verify the chain, its checkpoints and what the witnesses hold",
        "Recompute every row's hash in chain order and check the links, the personal "
        "values against their digests (and that every erased one was erased by the product), "
        "and the head; then check every stored checkpoint's signature and that the rows "
        "still produce its Merkle root, and, with --witness, that the database is consistent "
        "with every checkpoint the witness holds. Exit 1 on any problem, each named with the "
        "entries concerned.",
    )
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    checkpoint.add_verify_arguments(verify)

    status = action(
        "spool-status",
        run_spool_status,
        "show decisions waiting in the spool",
        "Count the decisions spooled while PostgreSQL was away, the oldest, the "
        "bytes, and the torn lines kept in quarantine.",
    )
    status.add_argument("--json", action="store_true", help="print the status as JSON")

    export = action(
        "export",
        run_export,
        "export everything about one number",
        "Print every decision about NUMBER (as caller, called or party) with its "
        "recording path, its facts and effective outcome: a data subject's access request. "
        "JSON carries each decision's consent receipt (checkable with 'ledger check-receipt').",
    )
    export.add_argument("--number", required=True, help="the phone number, exactly as stored")
    export.add_argument("--format", choices=("json", "csv"), default="json")

    erase = action(
        "erase",
        run_erase,
        "erase one number's personal data and recordings",
        "Remove the personal data of every decision about NUMBER and delete their "
        "recordings (sealed ones through 'recording dispose''s path, each a recording.disposed "
        "fact; a recording under legal hold is kept and named); the chain stays verifiable "
        "and the erasure is itself recorded. "
        "Asks for confirmation on a terminal; without one, --yes is required.",
    )
    erase.add_argument("--number", required=True, help="the phone number, exactly as stored")
    erase.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    purge = action(
        "purge",
        run_purge,
        "retention: purge old recordings and personal data",
        "Remove the personal data and recordings of decisions older than AGE "
        "(e.g. 90d). The decisions and the chain stay; each chunk is recorded. "
        "AGE 0 (0d, 0s, ...) purges every decision decided before now: it asks for "
        "confirmation on a terminal; without one, --yes is required.",
    )
    purge.add_argument(
        "--older-than", required=True, metavar="AGE", help="age like 90d, 12h, 2w; 0d = all"
    )
    purge.add_argument(
        "--yes", action="store_true", help="do not ask for confirmation (needed only for AGE 0)"
    )

    show = action(
        "show",
        run_show,
        "show the decisions of one call",
        "Show every decision whose decision id, uniqueid, linkedid or channel id is ID, "
        "the facts linked to it (hand-back, fate, recording) and the effective outcome.",
    )
    show.add_argument("--call", required=True, metavar="ID")
    show.add_argument("--json", action="store_true", help="print JSON")

    tail = action(
        "tail",
        run_tail,
        "show the newest decisions",
        "Print the newest decisions, one line each; --follow keeps printing new ones.",
    )
    tail.add_argument("-n", "--lines", type=int, default=20, metavar="N")
    tail.add_argument("--follow", "-f", action="store_true")
    tail.add_argument("--json", action="store_true", help="print JSON lines")
    checkpoint.add_actions(action)


async def _with_conn(settings: Settings, work: Callable[[asyncpg.Connection], Awaitable[_T]]) -> _T:
    async with database_dsn(settings) as dsn:
        conn = await connect_app(dsn, connect_timeout=settings.database.connect_timeout)
        try:
            return await work(conn)
        finally:
            await conn.close()


def run_spool_status(args: argparse.Namespace) -> int:
    """``ledger spool-status``."""
    settings = config.settings_from_args(args, require_ari_password=False)
    status = Spool(spool_directory(settings.ledger)).status()
    if args.json:
        print(
            json.dumps(
                {
                    "directory": status.directory,
                    "pending": status.pending,
                    "bytes": status.bytes,
                    "oldest_spooled_at": status.oldest_spooled_at,
                    "files": status.files,
                    "quarantined": status.quarantined,
                    "quarantine_file": status.quarantine_file,
                }
            )
        )
        return 0
    oldest = (
        "-"
        if status.oldest_spooled_at is None
        else datetime.fromtimestamp(status.oldest_spooled_at, UTC).isoformat()
    )
    print(f"spool directory: {status.directory}")
    print(f"waiting:         {status.pending} decisions ({status.bytes} bytes)")
    print(f"oldest:          {oldest}")
    print(
        f"quarantined:     {status.quarantined} torn or garbled lines"
        + (f" in {status.quarantine_file}" if status.quarantine_file else "")
    )
    return 0


def _csv_cell(value: object) -> str:
    text = "" if value is None else value if isinstance(value, str) else json.dumps(value)
    # spreadsheet formula injection: a hostile caller name must not become a formula
    if text[:1] in ("=", "@", "\t", "\r") or (
        text[:1] in "+-" and text and not _PHONE_RE.match(text)
    ):
        return "'" + text
    return text


def _write_csv(rows: list[dict[str, Any]], out: TextIO) -> None:
    columns = [
        "seq",
        "decision_id",
        "decided_at",
        "outcome",
        "mode",
        "caller_number",
        "caller_name",
        "called_number",
        "personal_data_erased",
        "recording_path",
        "driver",
        "uniqueid",
        "linkedid",
        "channel_name",
        "asterisk_id",
        "instance_id",
        "policy_rows",
        "policy_version",
        "prompt_id",
        "language",
        "keys",
        "reason",
        "parties",
        "offered_at",
        "answered_at",
        "disclosure_started_at",
        "disclosure_finished_at",
        "text_notes",
        "hash",
        "effective",
        "facts",
    ]
    writer = csv.writer(out)
    writer.writerow(columns)
    for row in rows:
        cells = dict(row)
        effective = row.get("effective")
        cells["effective"] = effective["summary"] if isinstance(effective, dict) else None
        writer.writerow([_csv_cell(cells.get(c)) for c in columns])


def run_export(args: argparse.Namespace) -> int:
    """``ledger export --number N``."""
    settings = config.settings_from_args(args, require_ari_password=False)
    key = load_digest_key(settings.ledger)
    with_receipts = args.format == "json"
    rows = asyncio.run(
        _with_conn(
            settings, lambda c: admin.export_number(c, key, args.number, receipts=with_receipts)
        )
    )
    if args.format == "csv":
        _write_csv(rows, sys.stdout)
    else:
        json.dump(
            {"number": args.number, "decisions": rows}, sys.stdout, indent=2, ensure_ascii=True
        )
        sys.stdout.write("\n")
    return 0


def run_erase(args: argparse.Namespace) -> int:
    """``ledger erase --number N [--yes]``."""
    settings = config.settings_from_args(args, require_ari_password=False)
    key = load_digest_key(settings.ledger)
    root = Path(settings.flow.recording.directory)
    if not args.yes:
        if not sys.stdin.isatty():
            print("refusing to erase without --yes: stdin is not a terminal", file=sys.stderr)
            return 2
        found = asyncio.run(
            _with_conn(settings, lambda c: admin.export_number(c, key, args.number))
        )
        live = [r for r in found if not r["personal_data_erased"]]
        recordings = sum(1 for r in live if r["recording_path"])
        answer = input(
            f"Erase the personal data of {len(live)} decisions about "
            f"{_safe(args.number)} and delete {recordings} recordings? "
            "Type 'yes' to proceed: "
        )
        if answer.strip().lower() != "yes":
            print("nothing erased", file=sys.stderr)
            return 1
    disposed, held = asyncio.run(_dispose_number(settings, key, args.number))
    result = asyncio.run(
        _with_conn(
            settings, lambda c: admin.erase_number(c, key, args.number, root, actor=_actor())
        )
    )
    counts = ", ".join(f"{len(v)} {k}" for k, v in sorted(result.recordings.items())) or "none"
    print(
        f"erased personal data of {result.personal_rows_removed} decisions; recordings: "
        f"{counts}; recorded as ledger event {result.event_seq}"
    )
    print(f"sealed recordings disposed of: {disposed} (each a recording.disposed fact)")
    for decision_id, why in held.items():
        print(f"kept under legal hold (its personal data erased, the sealed recording kept): "
              f"{decision_id}: {why}")
    for path in result.recordings.get("refused", []):
        print(f"refused to delete {_safe(path)}: outside {root}", file=sys.stderr)
    return 0 if not result.recordings.get("failed") else 1


async def _dispose_number(settings: Settings, key: DigestKey, number: str
                          ) -> tuple[int, dict[str, str]]:
    """Dispose of the sealed recordings of ``number`` (reason ``erasure``) through the one
    disposal path; return how many, and the held ones with their holds' ids and reasons."""

    async def work(conn: asyncpg.Connection, ledger: Ledger) -> tuple[int, dict[str, str]]:
        ids = await decisions_of_number(conn, number_digest(key, number))
        if not ids:
            return 0, {}
        disposer = Disposer(conn, ledger, sealed_dir=Path(settings.recordings.sealed_dir),
                            periods=parse_retention(settings.recordings.retention),
                            actor=_actor(), stores=stores_from_settings(settings.recordings))
        report = await disposer.run(reason="erasure", decision_ids=ids)
        reasons = {h.hold_id: h for h in await active_holds(conn)}
        held = {
            decision_id: "; ".join(
                f"hold {i} ({reasons[i].reason}, placed by {reasons[i].actor})"
                for i in hold_ids if i in reasons)
            for decision_id, hold_ids in report.held.items()
        }
        return sum(1 for r in report.disposed if r.decision_id in set(ids)), held

    return await with_ledger(settings, work)


def _progress_bar(out: TextIO) -> Callable[[int, int], None] | None:
    if not out.isatty():
        return None

    def show(done: int, total: int) -> None:
        width = 30
        fill = width if total == 0 else width * done // total
        percent = 100 if total == 0 else 100 * done // total
        out.write(f"\rpurging [{'#' * fill}{'.' * (width - fill)}] {percent:3d}% {done}/{total}")
        if done >= total:
            out.write("\n")
        out.flush()

    return show


def run_purge(args: argparse.Namespace) -> int:
    """``ledger purge --older-than AGE [--yes]``."""
    try:
        age = parse_age(args.older_than)
    except ValueError as exc:
        print(f"error: --older-than: {exc}", file=sys.stderr)
        return 2
    settings = config.settings_from_args(args, require_ari_password=False)
    key = load_digest_key(settings.ledger)
    root = Path(settings.flow.recording.directory)
    cutoff = time.time() - age
    if age == 0 and not args.yes:
        if not sys.stdin.isatty():
            print(
                f"refusing to purge every decision (--older-than {_safe(args.older_than)}) "
                "without --yes: stdin is not a terminal",
                file=sys.stderr,
            )
            return 2
        count = asyncio.run(_with_conn(settings, lambda c: admin.count_older_than(c, cutoff)))
        answer = input(
            f"Purge the personal data and recordings of every decision decided before now "
            f"({count} decisions)? Type 'yes' to proceed: "
        )
        if answer.strip().lower() != "yes":
            print("nothing purged", file=sys.stderr)
            return 1
    progress = _progress_bar(sys.stderr)
    result = asyncio.run(
        _with_conn(
            settings,
            lambda c: admin.purge_older_than(
                c, key, cutoff, root, actor=_actor(), progress=progress
            ),
        )
    )
    counts = ", ".join(f"{len(v)} {k}" for k, v in sorted(result.recordings.items())) or "none"
    print(
        f"purged personal data of {result.personal_rows_removed} decisions older than "
        f"{args.older_than}; recordings: {counts}"
    )
    return 0 if not result.recordings.get("failed") else 1


def _line(view: dict[str, Any]) -> str:
    return "  ".join(
        [
            f"{view['seq']:>8}",
            _safe(view["decided_at"]),
            f"{_safe(view['outcome']):<24}",
            f"{_safe(view['mode']):<8}",
            _safe(view["decision_id"]),
            _safe(view["caller_number"] if not view["personal_data_erased"] else "(erased)"),
            "->",
            _safe(view["called_number"] if not view["personal_data_erased"] else "(erased)"),
        ]
    )


def run_show(args: argparse.Namespace) -> int:
    """``ledger show --call ID``."""
    settings = config.settings_from_args(args, require_ari_password=False)
    views = asyncio.run(_with_conn(settings, lambda c: admin.show_call(c, args.call)))
    if not views:
        print(f"no decision for call {_safe(args.call)}", file=sys.stderr)
        return 1
    for view in views:
        if args.json:
            print(json.dumps(view, ensure_ascii=True))
            continue
        for name, value in view.items():
            if name in ("facts", "effective"):
                continue
            shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=True)
            print(f"{name:<24} {_safe(shown)}")
        _print_facts(view)
        print()
    return 0


def _print_facts(view: dict[str, Any]) -> None:
    """The decision's facts, one line each, then its effective outcome."""
    facts = view.get("facts") or []
    print(f"{'facts':<24} {len(facts)}")
    for fact in facts:
        payload = json.dumps(fact["payload"], ensure_ascii=True, sort_keys=True)
        print(
            f"  {fact['seq']:>8}  {_safe(fact['at'])}  {_safe(fact['kind']):<22} "
            f"{_safe(payload)}  by {_safe(fact['actor'])}"
        )
    effective = view.get("effective")
    if effective:
        flag = "  !! the facts contradict the decision" if effective["mismatch"] else ""
        print(f"{'effective':<24} {_safe(effective['summary'])}{flag}")


def run_tail(args: argparse.Namespace) -> int:
    """``ledger tail [-n N] [--follow]``."""
    settings = config.settings_from_args(args, require_ari_password=False)

    def emit(view: dict[str, Any]) -> None:
        print(json.dumps(view, ensure_ascii=True) if args.json else _line(view), flush=True)

    async def work(conn: asyncpg.Connection) -> int:
        views = await admin.tail(conn, max(args.lines, 0))
        last = 0
        for view in views:
            emit(view)
        last = (
            views[-1]["seq"]
            if views
            else int(await conn.fetchval("SELECT coalesce(max(seq), 0) FROM decisions"))
        )
        if args.follow:
            async for view in admin.follow(conn, last):
                emit(view)
        return 0

    return asyncio.run(_with_conn(settings, work))
