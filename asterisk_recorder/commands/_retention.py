"""``asterisk-recorder recording hold|dispose|retention``: legal holds, disposal, the plan.

This module owns those actions' arguments and output only (``recording.py`` adds them to its
parser); the work is done by ``asterisk_recorder.recordings.disposal`` and ``.retention``.
Holds and disposal facts go to the ledger through ``Ledger.record_fact`` and must be committed
(a spooled fact stops the action). A number is turned into its keyed digest before anything is
written: no plain number reaches a fact. Exit codes: 0 ok, 1 runtime failure, 2 bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import re
import socket
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any, TypeVar

import asyncpg

from asterisk_recorder import config
from asterisk_recorder.errors import RecordingError
from asterisk_recorder.flow.recording import DECISION_ID_RE
from asterisk_recorder.ledger import Ledger
from asterisk_recorder.ledger.database import connect_app, database_dsn
from asterisk_recorder.ledger.keys import load_digest_key
from asterisk_recorder.recordings import disposal
from asterisk_recorder.recordings.disposal import DisposalReport, Disposer
from asterisk_recorder.recordings.keys import KeyStore
from asterisk_recorder.recordings.pkcs11_kek import Pkcs11PrivateKeys
from asterisk_recorder.recordings.retention import (
    BucketPlan,
    Hold,
    active_holds,
    month_end,
    month_over,
)
from asterisk_recorder.recordings.storage import stores_from_settings
from asterisk_recorder.settings import Settings
from asterisk_recorder.settings.retention import parse_retention

__all__ = ["actor", "add_actions", "key_store", "with_ledger"]

_T = TypeVar("_T")
_DAY_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def actor() -> str:
    """Who runs the command: ``cli:user@host`` (as the other commands' facts)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"cli:{user}@{socket.gethostname()}"


def _settings(args: argparse.Namespace) -> Settings:
    settings = config.settings_from_args(args, require_ari_password=False)
    if not settings.database.dsn and not settings.database.embedded:
        raise RecordingError("holds and disposal live in the ledger: configure a DSN (--dsn)")
    return settings


async def with_ledger(
    settings: Settings, work: Callable[[asyncpg.Connection, Ledger], Awaitable[_T]]
) -> _T:
    """Run ``work`` with a reading connection and a ``Ledger`` writing as ``actor()``."""
    async with database_dsn(settings) as dsn:
        conn = await connect_app(dsn, connect_timeout=settings.database.connect_timeout)
        try:
            async with Ledger.open(dsn, settings.ledger, instance_id=actor()) as ledger:
                return await work(conn, ledger)
        finally:
            await conn.close()


async def _reading(settings: Settings, work: Callable[[asyncpg.Connection], Awaitable[_T]]) -> _T:
    """Run ``work`` with a reading connection only (no ledger writer: nothing is written)."""
    async with database_dsn(settings) as dsn:
        conn = await connect_app(dsn, connect_timeout=settings.database.connect_timeout)
        try:
            return await work(conn)
        finally:
            await conn.close()


class _ReadOnly:
    """The writer of a read-only action: writing is a bug."""

    async def record_fact(self, fact: object) -> Any:
        raise RecordingError(f"a read-only action tried to write {fact!r}")


def _disposer(settings: Settings, conn: asyncpg.Connection, ledger: Ledger | _ReadOnly,
              keys: KeyStore | None, batch: int = 500) -> Disposer:
    return Disposer(conn, ledger, sealed_dir=Path(settings.recordings.sealed_dir),
                    periods=parse_retention(settings.recordings.retention), actor=actor(),
                    keys=keys, batch=batch, stores=stores_from_settings(settings.recordings))


def add_actions(actions: Any) -> None:
    """Add ``hold``, ``dispose`` and ``retention`` to the ``recording`` parser's actions."""
    hold: argparse.ArgumentParser = actions.add_parser(
        "hold", help="legal holds: nothing a hold covers is ever disposed of",
        description="Place, release or list legal holds (each a ledger fact with who and why).",
    )
    hold_actions = hold.add_subparsers(dest="hold_command", metavar="HOLD_ACTION", required=True)
    place: argparse.ArgumentParser = hold_actions.add_parser(
        "set", help="place a hold on a recording, a number or a range of dates",
        description="Place a legal hold on one recording (--decision), every call of a number "
        "(--number: matched through its keyed digest, never stored plainly) or every call "
        "decided in a range of dates (--from/--to, YYYY-MM-DD UTC, both days included).",
    )
    config.add_config_arguments(place, only=("--dsn", "--log-level", "--log-format"))
    what = place.add_mutually_exclusive_group(required=True)
    what.add_argument("--decision", metavar="ID")
    what.add_argument("--number", metavar="N")
    what.add_argument("--from", dest="from_date", metavar="DATE")
    place.add_argument("--to", dest="to_date", metavar="DATE")
    place.add_argument("--reason", required=True, help="the matter, case or request")
    place.set_defaults(func=run_hold_set)
    release: argparse.ArgumentParser = hold_actions.add_parser(
        "release", help="release a hold", description="Release a hold in force (a ledger fact).")
    config.add_config_arguments(release, only=("--dsn", "--log-level", "--log-format"))
    release.add_argument("hold_id", metavar="HOLD_ID")
    release.add_argument("--reason", required=True)
    release.set_defaults(func=run_hold_release)
    listing: argparse.ArgumentParser = hold_actions.add_parser(
        "list", help="list the holds in force", description="List the holds in force.")
    config.add_config_arguments(listing, only=("--dsn", "--log-level", "--log-format"))
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=run_hold_list)

    dispose: argparse.ArgumentParser = actions.add_parser(
        "dispose", help="delete sealed recordings past retention, then destroy emptied keys",
        description="Delete every sealed recording past its retention (as recorded in the "
        "ledger when it was sealed) that no hold covers, each deletion between a "
        "recording.disposing and a recording.disposed fact; finish a run that was interrupted; "
        "then destroy the private key of every key bucket whose recordings are all disposed "
        "of (recording.key_destroyed, reason retention). --dry-run prints the same list and "
        "writes nothing.",
    )
    config.add_config_arguments(dispose, only=("--dsn", "--log-level", "--log-format"))
    dispose.add_argument("--dry-run", action="store_true", help="print what would go; act not")
    dispose.add_argument("--public-keys", type=Path, metavar="DIR",
                         help="key metadata (default: recordings.key_dir)")
    dispose.add_argument("--private-keys", type=Path, metavar="DIR",
                         help="the private keys (required unless --dry-run or "
                         "recordings.kek_pkcs11_module names a token)")
    dispose.add_argument("--batch", type=int, default=500, help=argparse.SUPPRESS)
    dispose.add_argument("--json", action="store_true")
    dispose.set_defaults(func=run_dispose)

    retention: argparse.ArgumentParser = actions.add_parser(
        "retention", help="what will be disposed of when, per class and key bucket",
        description="Retention as the ledger records it.")
    retention_actions = retention.add_subparsers(dest="retention_command", metavar="ACTION",
                                                 required=True)
    show: argparse.ArgumentParser = retention_actions.add_parser(
        "show", help="per class and key bucket: what goes when, what holds keep back",
        description="Per class and key bucket: recordings present, due now, the next and last "
        "due dates, what holds keep back, and when the bucket's key can be destroyed.")
    config.add_config_arguments(show, only=("--dsn", "--log-level", "--log-format"))
    show.add_argument("--public-keys", type=Path, metavar="DIR")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=run_retention_show)


def _day(at: float | None) -> str:
    return "-" if at is None else datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d")


def _date(text: str, *, end: bool) -> float:
    """``YYYY-MM-DD`` (the whole UTC day) or an ISO 8601 time with a zone."""
    if _DAY_RE.match(text):
        try:
            day = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
        except ValueError as exc:
            raise RecordingError(f"{text!r} is not a date (YYYY-MM-DD)") from exc
        if end:
            day = datetime.combine(day.date(), time.max, UTC)
        return day.timestamp()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise RecordingError(f"{text!r} is not a date (YYYY-MM-DD) or an ISO time") from exc
    if moment.tzinfo is None:
        raise RecordingError(f"{text!r} has no time zone (add Z or +01:00)")
    return moment.timestamp()


def run_hold_set(args: argparse.Namespace) -> int:
    """``recording hold set``."""
    settings = _settings(args)
    scope = "decision" if args.decision else "number" if args.number is not None else "dates"
    digest = None
    from_at = to_at = None
    if scope == "decision" and not DECISION_ID_RE.match(args.decision):
        raise RecordingError(f"--decision {args.decision!r} is not a decision id")
    if scope == "number":
        digest = disposal.number_digest(load_digest_key(settings.ledger), args.number)
    if scope == "dates":
        if args.to_date is None:
            raise RecordingError("--from needs --to")
        from_at, to_at = _date(args.from_date, end=False), _date(args.to_date, end=True)
    elif args.to_date is not None:
        raise RecordingError("--to goes with --from")

    async def work(conn: asyncpg.Connection, ledger: Ledger) -> tuple[str, Hold | None, int, int]:
        if scope == "decision" and not await conn.fetchval(
            "SELECT 1 FROM decisions WHERE decision_id = $1::uuid", args.decision
        ):
            raise RecordingError(f"the ledger holds no decision {args.decision}")
        hold_id, hold = await disposal.place_hold(
            conn, ledger, scope=scope, reason=args.reason, actor=actor(),
            decision_id=args.decision, digest=digest, from_at=from_at, to_at=to_at)
        covers = sorted(hold.covers) if hold is not None else []
        inventory = await _disposer(settings, conn, ledger, None).inventory(covers)
        present = sum(1 for r in inventory.recordings if r.state != "disposed")
        gone = sum(1 for r in inventory.recordings if r.state == "disposed")
        return hold_id, hold, present, gone

    hold_id, hold, present, gone = asyncio.run(with_ledger(settings, work))
    what = hold.what if hold is not None else scope
    print(f"hold {hold_id} placed on {what} by {actor()}: keeps back {present} sealed "
          f"recordings" + (f"; {gone} it covers were disposed of before it" if gone else ""))
    return 0


def run_hold_release(args: argparse.Namespace) -> int:
    """``recording hold release HOLD_ID``."""
    settings = _settings(args)

    async def work(conn: asyncpg.Connection, ledger: Ledger) -> Hold:
        return await disposal.release_hold(conn, ledger, args.hold_id, reason=args.reason,
                                           actor=actor())

    hold = asyncio.run(with_ledger(settings, work))
    print(f"hold {hold.hold_id} on {hold.what} released by {actor()}")
    return 0


def _hold_view(hold: Hold) -> dict[str, Any]:
    return {"hold_id": hold.hold_id, "scope": hold.scope, "what": hold.what,
            "reason": hold.reason, "actor": hold.actor, "at": hold.at,
            "decisions": len(hold.covers)}


def run_hold_list(args: argparse.Namespace) -> int:
    """``recording hold list``."""
    settings = _settings(args)

    holds = asyncio.run(_reading(settings, active_holds))
    if args.json:
        print(json.dumps([_hold_view(h) for h in holds]))
        return 0
    if not holds:
        print("no hold in force")
    for hold in holds:
        print(f"{hold.hold_id}  {hold.what}  placed {_day(hold.at)} by {hold.actor}: "
              f"{hold.reason} ({len(hold.covers)} decisions)")
    return 0


def _key_due(plan: BucketPlan, now: float) -> str:
    if plan.destroyed is not None:
        return f"destroyed {_day(plan.destroyed.at)}"
    if plan.held:
        return f"kept: {len(plan.held)} held"
    if plan.quarantined:
        return f"kept: {plan.quarantined} quarantined"
    if plan.present == len(plan.due) and plan.disposing == 0 and month_over(plan.month, now):
        return "destroyed by the next dispose"
    moments = [x for x in (plan.last_due, month_end(plan.month)) if x is not None]
    return f"from {_day(max(moments))}" if moments else "unknown"


def _plan_view(plan: BucketPlan, now: float) -> dict[str, Any]:
    return {
        "retention_class": plan.retention_class, "month": plan.month, "kek_id": plan.kek_id,
        "present": plan.present, "due": len(plan.due), "held": len(plan.held),
        "disposed": plan.disposed, "disposing": plan.disposing,
        "quarantined": plan.quarantined, "next_due": plan.next_due,
        "last_due": plan.last_due, "key": _key_due(plan, now),
        "held_by": {k: list(v) for k, v in plan.held.items()},
        "due_recordings": [
            {"decision_id": r.decision_id, "file": r.file, "retain_until": r.retain_until,
             "period_from": r.period_from}
            for r in plan.due
        ],
    }


def _print_plan(plans: list[BucketPlan], holds: list[Hold], now: float, *,
                listing: bool) -> None:
    if not plans:
        print("no sealed recording in the ledger")
    else:
        print(f"{'CLASS':<12} {'MONTH':<8} {'KEY':<34} {'PRESENT':>7} {'DUE':>6} {'HELD':>5} "
              f"{'GONE':>6}  {'NEXT DUE':<10}  {'LAST DUE':<10}  KEY DESTRUCTION")
    for plan in plans:
        print(f"{plan.retention_class:<12} {plan.month:<8} {plan.kek_id:<34} "
              f"{plan.present:>7} {len(plan.due):>6} {len(plan.held):>5} {plan.disposed:>6}  "
              f"{_day(plan.next_due):<10}  {_day(plan.last_due):<10}  {_key_due(plan, now)}")
    by_id = {h.hold_id: h for h in holds}
    for plan in plans:
        for decision_id, hold_ids in plan.held.items():
            reasons = "; ".join(f"hold {i} ({by_id[i].reason})" for i in hold_ids if i in by_id)
            print(f"  held back: {decision_id} ({plan.retention_class} {plan.month}) by {reasons}")
    if listing:
        for plan in plans:
            for rec in plan.due:
                print(f"  dispose: {rec.decision_id} {rec.retention_class} key {rec.kek_id} "
                      f"due {_day(rec.retain_until)} {rec.location}"
                      + (" (period from today's config: none recorded)"
                         if rec.period_from == "config" else ""))
    for hold in holds:
        print(f"hold {hold.hold_id}: {hold.what}, placed {_day(hold.at)} by {hold.actor}: "
              f"{hold.reason}")


def key_store(settings: Settings, public: Path | None, private: Path | None, *,
              token: bool = True) -> KeyStore:
    """The key store of ``public`` (default ``recordings.key_dir``) with its private side: the
    PKCS#11 token of ``recordings.kek_pkcs11_module`` when set (and ``token``), else the
    ``private`` directory (``None``: public keys only)."""
    rec = settings.recordings
    public_dir = public or Path(rec.key_dir)
    if rec.kek_pkcs11_module and token:
        if private is not None:
            raise RecordingError(
                "recordings.kek_pkcs11_module is set: the private keys are in its token; "
                "drop --private-keys")
        return KeyStore(public_dir, private=Pkcs11PrivateKeys(
            rec.kek_pkcs11_module, rec.kek_pkcs11_token, rec.kek_pkcs11_pin.value))
    return KeyStore(public_dir, private)


def _store(settings: Settings, public: Path | None, private: Path | None) -> KeyStore:
    return key_store(settings, public, private, token=False)


def run_retention_show(args: argparse.Namespace) -> int:
    """``recording retention show``."""
    settings = _settings(args)
    keys = _store(settings, args.public_keys, None)
    now = disposal._clock()

    async def work(conn: asyncpg.Connection) -> tuple[list[BucketPlan], list[Hold]]:
        return await _disposer(settings, conn, _ReadOnly(), keys).plan(now)

    plans, holds = asyncio.run(_reading(settings, work))
    if args.json:
        print(json.dumps({"buckets": [_plan_view(p, now) for p in plans],
                          "holds": [_hold_view(h) for h in holds]}))
        return 0
    _print_plan(plans, holds, now, listing=False)
    return 0


def run_dispose(args: argparse.Namespace) -> int:
    """``recording dispose [--dry-run]``."""
    settings = _settings(args)
    if not args.dry_run and args.private_keys is None \
            and not settings.recordings.kek_pkcs11_module:
        raise RecordingError(
            "dispose destroys the keys of emptied buckets: give --private-keys DIR, or set "
            "recordings.kek_pkcs11_module (or --dry-run to see the list)")
    keys = (_store(settings, args.public_keys, None) if args.dry_run
            else key_store(settings, args.public_keys, args.private_keys))
    now = disposal._clock()

    async def dry(conn: asyncpg.Connection) -> tuple[list[BucketPlan], list[Hold]]:
        return await _disposer(settings, conn, _ReadOnly(), keys).plan(now)

    if args.dry_run:
        plans, holds = asyncio.run(_reading(settings, dry))
        if args.json:
            print(json.dumps({"dry_run": True, "buckets": [_plan_view(p, now) for p in plans],
                              "holds": [_hold_view(h) for h in holds]}))
            return 0
        _print_plan(plans, holds, now, listing=True)
        due = sum(len(p.due) for p in plans)
        print(f"dry run: {due} recordings would be disposed of; nothing deleted, no fact written")
        return 0

    async def act(conn: asyncpg.Connection, ledger: Ledger) -> DisposalReport:
        return await _disposer(settings, conn, ledger, keys, args.batch).run(now=now)

    report = asyncio.run(with_ledger(settings, act))
    if args.json:
        print(json.dumps({
            "run_id": report.run_id, "disposed": [r.decision_id for r in report.disposed],
            "resumed": [r.decision_id for r in report.resumed],
            "held": {k: list(v) for k, v in report.held.items()},
            "cancelled": report.cancelled, "keys_destroyed": report.keys_destroyed,
            "keys_waiting": report.keys_waiting,
        }))
        return 1 if report.keys_waiting else 0
    for rec in report.disposed:
        print(f"disposed: {rec.decision_id} ({rec.retention_class}, key {rec.kek_id}) "
              f"{rec.location}" + (" [resumed]" if rec in report.resumed else ""))
    for decision_id, hold_ids in report.held.items():
        print(f"held back: {decision_id} by hold {', '.join(hold_ids)}")
    for kek_id in report.keys_destroyed:
        print(f"key destroyed: {kek_id} (every recording sealed to it is disposed of)")
    where = keys.private.where if keys.private is not None else args.private_keys
    for kek_id in report.keys_waiting:
        print(f"key {kek_id}: every recording sealed to it is disposed of, but its private key "
              f"is not in {where} (or {keys.public_dir} lacks its metadata): NOT "
              "destroyed; give the right directories and run dispose again", file=sys.stderr)
    print(f"run {report.run_id}: {len(report.disposed)} disposed of "
          f"({len(report.resumed)} resumed), {len(report.held)} held back, "
          f"{len(report.keys_destroyed)} keys destroyed")
    return 1 if report.keys_waiting else 0
