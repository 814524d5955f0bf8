"""What the ledger says about every sealed recording's retention: inventory, holds, the plan.

This module owns the read side of retention (docs/recordings.md, "Retention"): the inventory of
sealed recordings from their ``recording.sealed`` facts (class, key, ``retain_until``) and their
disposal facts (``disposing``, ``disposed``, ``disposal_cancelled``); the legal holds in force
(``recording.hold_placed`` minus ``recording.hold_released``) and the decisions each one covers
(a decision, a number through its keyed digest, or a range of decision times); the plan: what is
due, what a hold keeps back, which key buckets become destroyable and when. Disposal decides
from these facts only, never from today's configuration (a recording sealed before its period
was recorded falls back to the configured period of its class, and says so). It must not write
facts nor delete anything (``disposal`` does).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import asyncpg

from asterisk_recorder.errors import RecordingError
from asterisk_recorder.flow.facts import (
    RECORDING_DISPOSAL_CANCELLED,
    RECORDING_DISPOSED,
    RECORDING_DISPOSING,
    RECORDING_HOLD_PLACED,
    RECORDING_HOLD_RELEASED,
    RECORDING_KEY_DESTROYED,
)
from asterisk_recorder.settings.retention import Period, retain_until

__all__ = [
    "BucketPlan",
    "Hold",
    "Inventory",
    "KeyEvent",
    "SealedRecording",
    "active_holds",
    "decisions_of_number",
    "destroyed_key",
    "disposal_notice",
    "held_by",
    "key_notice",
    "load_inventory",
    "month_end",
    "month_over",
    "plan_buckets",
    "sealed_location",
]


def sealed_location(sealed_dir: Path, file: str) -> str:
    """The location of a sealed file named (relative) by its ``recording.sealed`` fact.

    Local files only (an absolute path below ``sealed_dir``); an ``s3://`` location is passed
    through for a storage backend to handle.

    Raises:
        RecordingError: ``file`` is absolute or leaves ``sealed_dir`` (``..``).
    """
    if file.startswith("s3://"):
        return file
    relative = PurePosixPath(file)
    if relative.is_absolute() or ".." in relative.parts or not relative.parts or "\x00" in file:
        raise RecordingError(f"the ledger names sealed file {file!r}, not below the sealed dir")
    return str(Path(sealed_dir) / relative)


@dataclass(frozen=True, slots=True)
class SealedRecording:
    """One sealed recording as the ledger knows it.

    Attributes:
        decision_id, file, location, sealed_sha256, kek_id: which recording, where.
        retention_class: the class recorded at seal time.
        retain_until: epoch seconds from which it may be disposed of (``None``: unknown).
        period_from: ``ledger`` (recorded at seal time) or ``config`` (sealed before periods
            were recorded: the configured period of its class from the seal time).
        sealed_at: the fact's time.
        state: ``present``, ``disposing`` (a run wrote its intent and stopped), ``disposed``.
        disposing_run: the run id of an unfinished ``disposing`` fact.
        disposed_at / disposed_by: the ``recording.disposed`` fact's time and actor.
    """

    decision_id: str
    file: str
    location: str
    sealed_sha256: str
    kek_id: str
    retention_class: str
    retain_until: float | None
    period_from: str
    sealed_at: float
    state: str = "present"
    disposing_run: str | None = None
    disposed_at: float | None = None
    disposed_by: str | None = None


@dataclass(frozen=True, slots=True)
class Hold:
    """A legal hold in force (placed, not released).

    Attributes:
        hold_id: the fact id of its ``recording.hold_placed``.
        scope: ``decision``, ``number`` or ``dates``.
        reason, actor, at: why, who, when.
        decision_id / number_digest / from_at / to_at: what it covers.
        covers: the decision ids it covers now.
    """

    hold_id: str
    scope: str
    reason: str
    actor: str
    at: float
    decision_id: str | None = None
    number_digest: str | None = None
    from_at: float | None = None
    to_at: float | None = None
    covers: frozenset[str] = frozenset()

    @property
    def what(self) -> str:
        """The hold's scope for people (a number shows as its digest's head, never plain)."""
        if self.scope == "decision":
            return f"decision {self.decision_id}"
        if self.scope == "number":
            return f"number (digest {str(self.number_digest)[:12]}...)"
        return f"calls decided {_day(self.from_at)} to {_day(self.to_at)}"


@dataclass(frozen=True, slots=True)
class KeyEvent:
    """A ``recording.key_destroyed`` fact: which key, when, by whom, why."""

    kek_id: str
    at: float
    actor: str
    reason: str


@dataclass(frozen=True, slots=True)
class Inventory:
    """Every sealed recording, the keys destroyed, and the keys quarantined files still use."""

    recordings: tuple[SealedRecording, ...]
    destroyed_keys: Mapping[str, KeyEvent]
    quarantined_keys: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class BucketPlan:
    """One key (of one {class, month} bucket): what it seals and when it can be destroyed.

    Attributes:
        kek_id, retention_class, month: the key and its bucket.
        present / disposed / disposing: counts of its recordings in each state.
        due: recordings present, past retention and not held (disposable now).
        held: recordings present that a hold keeps back (decision id -> hold ids).
        next_due / last_due: the earliest / latest ``retain_until`` of its present recordings.
        quarantined: quarantined files sealed to this key (never disposed by retention:
            they keep the key until an operator decides).
        destroyed: the key's ``recording.key_destroyed`` fact, when there is one.
    """

    kek_id: str
    retention_class: str
    month: str
    present: int = 0
    disposed: int = 0
    disposing: int = 0
    due: tuple[SealedRecording, ...] = ()
    held: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    next_due: float | None = None
    last_due: float | None = None
    quarantined: int = 0
    destroyed: KeyEvent | None = None

    def destroyable(self, now: float) -> bool:
        """Every recording sealed to the key is disposed of, none held or quarantined, the
        month is over and the key is not destroyed yet."""
        return (
            self.destroyed is None and self.disposed > 0 and self.present == 0
            and self.disposing == 0 and self.quarantined == 0
            and month_over(self.month, now)
        )


def _day(at: float | None) -> str:
    return "?" if at is None else datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d")


def month_end(month: str) -> float | None:
    """The first instant after ``YYYY-MM`` (UTC), or ``None`` for no such month."""
    try:
        year, number = int(month[:4]), int(month[5:7])
        year, number = (year + 1, 1) if number == 12 else (year, number + 1)
        return datetime(year, number, 1, tzinfo=UTC).timestamp()
    except ValueError:
        return None


def month_over(month: str, now: float) -> bool:
    """``YYYY-MM`` ended before ``now`` (UTC): nothing new is sealed to its bucket."""
    end = month_end(month)
    return end is not None and now >= end


def _month_of(kek_id: str) -> str:
    """The month in a key id made by ``KeyStore`` (``class-YYYYMM-hex``), else ``?``."""
    parts = kek_id.split("-")
    if len(parts) >= 3 and len(parts[-2]) == 6 and parts[-2].isdigit():
        return f"{parts[-2][:4]}-{parts[-2][4:]}"
    return "?"


def _payload(row: asyncpg.Record) -> dict[str, Any]:
    value = json.loads(row["payload"])
    return value if isinstance(value, dict) else {}


def _float(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _names_version(payload: Mapping[str, Any], sealed_sha256: str | None) -> bool:
    """Whether a fact is about the version ``sealed_sha256`` (a fact naming none: every one)."""
    named = payload.get("sealed_sha256")
    return not named or sealed_sha256 is None or named == sealed_sha256


async def load_inventory(
    conn: asyncpg.Connection,
    sealed_dir: Path,
    periods: Mapping[str, Period],
    *,
    decision_ids: Sequence[str] | None = None,
) -> Inventory:
    """Read every sealed recording (or those of ``decision_ids``) with its disposal state.

    ``periods`` (the configured classes) is used only for recordings sealed before their
    period was recorded in ``recording.sealed``.
    """
    ids = None if decision_ids is None else [uuid.UUID(i) for i in decision_ids]
    sealed = await conn.fetch(
        "SELECT DISTINCT ON (f.decision_id) f.decision_id::text AS id, f.at, f.payload "
        "FROM ledger_facts f WHERE f.kind = 'recording.sealed' "
        "AND ($1::uuid[] IS NULL OR f.decision_id = ANY($1::uuid[])) "
        "ORDER BY f.decision_id, f.seq DESC",
        ids,
    )
    current = {row["id"]: str(_payload(row).get("sealed_sha256", "")) for row in sealed}
    # a redaction gives a decision a new sealed version and disposes of the old one: every
    # fact below counts only for the version it names (its sealed_sha256)
    stored: dict[str, str] = {}
    for row in await conn.fetch(
        "SELECT f.decision_id::text AS id, f.payload FROM ledger_facts f "
        "WHERE f.kind = 'recording.stored' "
        "AND ($1::uuid[] IS NULL OR f.decision_id = ANY($1::uuid[])) ORDER BY f.seq",
        ids,
    ):
        payload = _payload(row)
        if _names_version(payload, current.get(row["id"])):
            stored[row["id"]] = str(payload.get("location", ""))
    # the latest recording.stored of the current version says where it is now
    ends = await conn.fetch(
        "SELECT f.decision_id::text AS id, f.kind, f.at, f.actor, f.payload FROM ledger_facts f "
        "WHERE f.kind = ANY($2::text[]) "
        "AND ($1::uuid[] IS NULL OR f.decision_id = ANY($1::uuid[])) ORDER BY f.seq",
        ids,
        [RECORDING_DISPOSING, RECORDING_DISPOSED, RECORDING_DISPOSAL_CANCELLED],
    )
    state: dict[str, tuple[str, str | None, float | None, str | None]] = {}
    for row in ends:
        payload = _payload(row)
        if not _names_version(payload, current.get(row["id"])):
            continue  # a fact about an older (redacted) version
        if row["kind"] == RECORDING_DISPOSING:
            state[row["id"]] = ("disposing", str(payload.get("run_id")), None, None)
        elif row["kind"] == RECORDING_DISPOSED:
            state[row["id"]] = ("disposed", None, row["at"].timestamp(), row["actor"])
        else:
            state[row["id"]] = ("present", None, None, None)
    recordings: list[SealedRecording] = []
    for row in sealed:
        payload = _payload(row)
        at = row["at"].timestamp()
        klass = str(payload.get("retention_class") or "standard")
        until = _float(payload.get("retain_until"))
        source = "ledger"
        if until is None:
            period = periods.get(klass)
            until = None if period is None else retain_until(at, period)
            source = "config"
        file = str(payload.get("file", ""))
        now_state = state.get(row["id"], ("present", None, None, None))
        recordings.append(SealedRecording(
            decision_id=row["id"], file=file,
            location=stored.get(row["id"]) or sealed_location(sealed_dir, file),
            sealed_sha256=str(payload.get("sealed_sha256", "")),
            kek_id=str(payload.get("kek_id", "")), retention_class=klass,
            retain_until=until, period_from=source, sealed_at=at, state=now_state[0],
            disposing_run=now_state[1], disposed_at=now_state[2], disposed_by=now_state[3],
        ))
    destroyed: dict[str, KeyEvent] = {}
    for row in await conn.fetch(
        "SELECT at, actor, payload FROM ledger_facts WHERE kind = $1 ORDER BY seq",
        RECORDING_KEY_DESTROYED,
    ):
        payload = _payload(row)
        kek = str(payload.get("kek_id"))
        destroyed.setdefault(kek, KeyEvent(kek, row["at"].timestamp(), row["actor"],
                                           str(payload.get("reason", ""))))
    quarantined = {
        str(row["kek"]): int(row["n"])
        for row in await conn.fetch(
            "SELECT payload::jsonb ->> 'kek_id' AS kek, count(*) AS n FROM ledger_facts "
            "WHERE kind = 'recording.quarantined' AND payload::jsonb ? 'kek_id' GROUP BY 1"
        )
        if row["kek"]
    }
    return Inventory(tuple(recordings), destroyed, quarantined)


async def active_holds(conn: asyncpg.Connection) -> list[Hold]:
    """Every hold placed and not released, each with the decisions it covers now."""
    released = {
        str(_payload(row).get("hold_id"))
        for row in await conn.fetch(
            "SELECT payload FROM ledger_facts WHERE kind = $1", RECORDING_HOLD_RELEASED
        )
    }
    holds: list[Hold] = []
    for row in await conn.fetch(
        "SELECT fact_id::text AS id, decision_id::text AS did, at, actor, payload "
        "FROM ledger_facts WHERE kind = $1 ORDER BY seq",
        RECORDING_HOLD_PLACED,
    ):
        if row["id"] in released:
            continue
        payload = _payload(row)
        scope = str(payload.get("scope"))
        hold = Hold(
            hold_id=row["id"], scope=scope, reason=str(payload.get("reason", "")),
            actor=row["actor"], at=row["at"].timestamp(), decision_id=row["did"],
            number_digest=payload.get("number_digest"),
            from_at=_float(payload.get("from_at")), to_at=_float(payload.get("to_at")),
        )
        covers = await _covered(conn, hold)
        holds.append(Hold(**{**_fields(hold), "covers": frozenset(covers)}))
    return holds


async def decisions_of_number(conn: asyncpg.Connection, digest: str) -> list[str]:
    """Every decision about the number whose keyed digest (hex) is ``digest``: as caller,
    called or any party (the same match as ``ledger export`` and ``ledger erase``)."""
    raw = bytes.fromhex(digest)
    rows = await conn.fetch(
        "SELECT decision_id::text AS id FROM decisions WHERE caller_number_digest = $1 "
        "OR called_number_digest = $1 OR parties @> $2::jsonb ORDER BY seq",
        raw, json.dumps([{"number_digest": raw.hex()}]),
    )
    return [row["id"] for row in rows]


def _fields(hold: Hold) -> dict[str, Any]:
    return {name: getattr(hold, name) for name in Hold.__slots__}


async def _covered(conn: asyncpg.Connection, hold: Hold) -> list[str]:
    if hold.scope == "decision":
        return [] if hold.decision_id is None else [hold.decision_id]
    if hold.scope == "number":
        return [] if not hold.number_digest else await decisions_of_number(
            conn, str(hold.number_digest))
    if hold.from_at is None or hold.to_at is None:
        return []
    rows = await conn.fetch(
        "SELECT decision_id::text AS id FROM decisions WHERE decided_at >= $1 AND decided_at <= $2",
        datetime.fromtimestamp(hold.from_at, UTC), datetime.fromtimestamp(hold.to_at, UTC),
    )
    return [row["id"] for row in rows]


def held_by(holds: Iterable[Hold]) -> dict[str, tuple[str, ...]]:
    """decision id -> the ids of the holds covering it."""
    out: dict[str, list[str]] = {}
    for hold in holds:
        for decision_id in hold.covers:
            out.setdefault(decision_id, []).append(hold.hold_id)
    return {key: tuple(value) for key, value in out.items()}


def plan_buckets(
    inventory: Inventory,
    holds: Sequence[Hold],
    now: float,
    *,
    months: Mapping[str, str] | None = None,
) -> list[BucketPlan]:
    """One ``BucketPlan`` per key the recordings were sealed to, by class, month and key.

    ``months`` maps key ids to their bucket month (from the key store); a key id the store
    does not know gets the month its id carries.
    """
    held = held_by(holds)
    groups: dict[str, list[SealedRecording]] = {}
    for recording in inventory.recordings:
        groups.setdefault(recording.kek_id, []).append(recording)
    plans: list[BucketPlan] = []
    for kek_id, members in groups.items():
        present = [r for r in members if r.state == "present"]
        dues = [r.retain_until for r in present if r.retain_until is not None]
        plans.append(BucketPlan(
            kek_id=kek_id,
            retention_class=members[0].retention_class,
            month=(months or {}).get(kek_id) or _month_of(kek_id),
            present=len(present),
            disposed=sum(1 for r in members if r.state == "disposed"),
            disposing=sum(1 for r in members if r.state == "disposing"),
            due=tuple(
                r for r in present
                if r.retain_until is not None and r.retain_until <= now
                and r.decision_id not in held
            ),
            held={r.decision_id: held[r.decision_id] for r in present if r.decision_id in held},
            next_due=min(dues, default=None),
            last_due=max(dues, default=None),
            quarantined=inventory.quarantined_keys.get(kek_id, 0),
            destroyed=inventory.destroyed_keys.get(kek_id),
        ))
    return sorted(plans, key=lambda p: (p.retention_class, p.month, p.kek_id))


def disposal_notice(inventory: Inventory, decision_id: str) -> str | None:
    """Why the recording of ``decision_id`` cannot be opened any more, from the ledger:
    ``disposed on <date> by <actor>`` or ``key destroyed on <date> by <actor>``; else None."""
    for recording in inventory.recordings:
        if recording.decision_id != decision_id:
            continue
        if recording.state == "disposed" and recording.disposed_at is not None:
            return (f"recording {decision_id} was disposed on {_stamp(recording.disposed_at)} "
                    f"by {recording.disposed_by}: its sealed file was deleted")
        event = inventory.destroyed_keys.get(recording.kek_id)
        if event is not None:
            return key_notice(event, decision_id)
    return None


async def destroyed_key(conn: asyncpg.Connection, kek_id: str) -> KeyEvent | None:
    """The ``recording.key_destroyed`` fact of ``kek_id``, if the ledger has one."""
    row = await conn.fetchrow(
        "SELECT at, actor, payload FROM ledger_facts WHERE kind = $1 "
        "AND payload::jsonb ->> 'kek_id' = $2 ORDER BY seq LIMIT 1",
        RECORDING_KEY_DESTROYED, kek_id,
    )
    if row is None:
        return None
    return KeyEvent(kek_id, row["at"].timestamp(), row["actor"],
                    str(_payload(row).get("reason", "")))


def key_notice(event: KeyEvent, decision_id: str | None = None) -> str:
    """``key <id> destroyed on <date> by <actor> (reason)`` for people."""
    what = f"recording {decision_id}: " if decision_id else ""
    return (f"{what}key {event.kek_id} destroyed on {_stamp(event.at)} by {event.actor} "
            f"({event.reason}): no copy of a recording sealed to it can be opened")


def _stamp(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
