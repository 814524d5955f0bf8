"""Disposal of sealed recordings past retention (or erased), holds, and crypto-shredding.

This module owns the one function that deletes a sealed file (``delete_sealed``: every
deletion goes through it; local files only, a storage backend plugs in here), the legal holds'
facts (``place_hold``, ``release_hold``), and the disposal run (``Disposer``), in this order for
each batch of recordings, under one PostgreSQL advisory lock that ``place_hold`` takes too (so
a hold is either in the ledger before a batch reads the holds, or placed after the batch is
done):

1. read the holds in force; drop every recording a hold covers;
2. ``recording.disposing`` for each (digest, location, run id), committed (never spooled);
3. ``delete_sealed`` each file (unlink, fsync the directory);
4. ``recording.disposed`` for each (``deleted``, or ``already_gone``).

A run that stops anywhere is finished by the next: a ``disposing`` fact with no end is deleted
and declared ``disposed``, unless a hold placed since covers it and its file is still there
(then ``recording.disposal_cancelled``). After the recordings, every key all of whose
recordings are disposed of (none held, none quarantined, its month over) is destroyed:
``recording.key_destroyed`` (reason ``retention``) first, then the private key; a key whose
fact is in the ledger but whose private file is still there is destroyed on the next run.
Test hook: ``ASTERISK_RECORDER_TEST_DISPOSAL_CRASH`` names a step (``CRASH_POINTS``) at which
the process SIGKILLs itself. It must not parse arguments or print (``commands/recording.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import stat
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import asyncpg

from asterisk_recorder.errors import KeyUnavailable, LedgerError, RecordingError
from asterisk_recorder.flow.facts import (
    MAX_TEXT_CHARS,
    RECORDING_DISPOSAL_CANCELLED,
    RECORDING_DISPOSED,
    RECORDING_DISPOSING,
    RECORDING_HOLD_PLACED,
    RECORDING_HOLD_RELEASED,
    LedgerFact,
    Scalar,
)
from asterisk_recorder.ledger.keys import DigestKey
from asterisk_recorder.ledger.sink import StoreReceipt
from asterisk_recorder.ledger.text import clean
from asterisk_recorder.recordings.access import key_fact
from asterisk_recorder.recordings.keys import KekInfo, KeyStore
from asterisk_recorder.recordings.retention import (
    BucketPlan,
    Hold,
    Inventory,
    SealedRecording,
    active_holds,
    held_by,
    load_inventory,
    plan_buckets,
)
from asterisk_recorder.recordings.storage import Stores
from asterisk_recorder.settings.retention import Period

__all__ = [
    "CRASH_ENV",
    "CRASH_POINTS",
    "LOCK_KEY",
    "DisposalReport",
    "Disposer",
    "FactWriter",
    "delete_sealed",
    "disposal_lock",
    "number_digest",
    "place_hold",
    "release_hold",
]

CRASH_ENV = "ASTERISK_RECORDER_TEST_DISPOSAL_CRASH"
"""Test hook: SIGKILL the disposing process at this step (one of ``CRASH_POINTS``)."""
CRASH_POINTS = ("disposing", "deleted", "disposed", "key_fact")
"""After the batch's ``disposing`` facts, after its deletes, after its ``disposed`` facts,
after a ``recording.key_destroyed`` fact (before the private key is destroyed)."""
LOCK_KEY = int.from_bytes(uuid.uuid5(uuid.NAMESPACE_URL, "asterisk-recorder:disposal").bytes[:8],
                          "big", signed=True)
"""The advisory lock shared by a disposal batch and placing a hold."""


def _crash_point(name: str) -> None:
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def _clock() -> float:
    """Now, epoch seconds (tests replace it with ``unittest.mock``)."""
    return time.time()


class FactWriter(Protocol):
    """Where facts go (``Ledger.record_fact``)."""

    async def record_fact(self, fact: LedgerFact) -> StoreReceipt: ...  # pragma: no cover


def delete_sealed(location: str, stores: Stores | None = None) -> str:
    """Delete the sealed file at ``location``: ``deleted``, or ``missing`` when it is gone.

    The one place a sealed file is deleted. An ``s3://`` location is deleted by its store
    (every version: ``SealedStore.delete``); a local location must be an absolute path to a
    regular file (never a link); the directory is fsynced, so the deletion survives a crash.

    Raises:
        RecordingError: no store for the location, a link or not a file, the operating system
            or the store refused (``StoreLocked``: its Object Lock has not expired yet).
    """
    if "://" in location:
        if stores is None:
            raise RecordingError(
                f"sealed location {location!r} is not a local file and no store is configured "
                "for it (recordings.store)"
            )
        return "deleted" if stores.for_location(location).delete(location) else "missing"
    path = Path(location)
    if not path.is_absolute():
        raise RecordingError(f"sealed location {location!r} is not an absolute path")
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return "missing"
    if not stat.S_ISREG(info.st_mode):
        raise RecordingError(f"{location} is not a regular file (a link?): not deleted")
    try:
        os.unlink(path)
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        raise RecordingError(f"cannot delete {location}: {exc.strerror}") from exc
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return "deleted"


@contextlib.asynccontextmanager
async def disposal_lock(conn: asyncpg.Connection) -> AsyncIterator[None]:
    """Hold the disposal advisory lock on ``conn`` (session level) for the block."""
    await conn.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
    try:
        yield
    finally:
        if not conn.is_closed():
            await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)


def number_digest(key: DigestKey, number: str) -> str:
    """The keyed digest (hex) the ledger stores a number as: a hold never holds it plainly."""
    if not number.strip():
        raise RecordingError("a hold on a number needs the number")
    return key.digest(clean(number).text).hex()


async def _committed(writer: FactWriter, fact: LedgerFact) -> StoreReceipt:
    receipt = await writer.record_fact(fact)
    if receipt.spooled:
        raise LedgerError(
            f"{fact.kind} went to the local spool (PostgreSQL did not answer in time): "
            "nothing was deleted; run again when the ledger answers"
        )
    return receipt


async def place_hold(
    conn: asyncpg.Connection,
    writer: FactWriter,
    *,
    scope: str,
    reason: str,
    actor: str,
    decision_id: str | None = None,
    digest: str | None = None,
    from_at: float | None = None,
    to_at: float | None = None,
) -> tuple[str, Hold | None]:
    """Write ``recording.hold_placed`` under the disposal lock; return its id and the hold.

    Raises:
        RecordingError: no reason, a bad scope, an empty range.
        LedgerError: the fact could not be committed (then there is no hold).
    """
    if not reason.strip():
        raise RecordingError("a hold needs a reason (--reason: case, matter, request)")
    payload: dict[str, Scalar] = {"scope": scope, "reason": reason[:MAX_TEXT_CHARS]}
    if scope == "decision":
        if decision_id is None:
            raise RecordingError("a hold on a recording needs its decision id")
    elif scope == "number":
        payload["number_digest"] = digest
    elif scope == "dates":
        if from_at is None or to_at is None or to_at < from_at:
            raise RecordingError("a hold on dates needs --from before --to")
        payload.update({"from_at": from_at, "to_at": to_at})
    else:
        raise RecordingError(f"unknown hold scope {scope!r}")
    hold_id = str(uuid.uuid4())
    async with disposal_lock(conn):
        await _committed(writer, LedgerFact(
            RECORDING_HOLD_PLACED, decision_id if scope == "decision" else None, _clock(),
            actor, payload, fact_id=hold_id))
    found = [h for h in await active_holds(conn) if h.hold_id == hold_id]
    return hold_id, found[0] if found else None


async def release_hold(
    conn: asyncpg.Connection, writer: FactWriter, hold_id: str, *, reason: str, actor: str
) -> Hold:
    """Write ``recording.hold_released`` for a hold in force; return the hold released.

    Raises:
        RecordingError: no reason, or no hold ``hold_id`` in force.
    """
    if not reason.strip():
        raise RecordingError("releasing a hold needs a reason (--reason)")
    held = {h.hold_id: h for h in await active_holds(conn)}
    if hold_id not in held:
        raise RecordingError(f"no hold {hold_id} is in force (never placed, or released)")
    hold = held[hold_id]
    await _committed(writer, LedgerFact(
        RECORDING_HOLD_RELEASED, hold.decision_id if hold.scope == "decision" else None,
        _clock(), actor, {"hold_id": hold_id, "reason": reason[:MAX_TEXT_CHARS]}))
    return hold


@dataclass
class DisposalReport:
    """What a run did (or, dry, would do).

    Attributes:
        run_id: the run's id (in every fact it wrote).
        disposed: recordings whose file this run deleted (or found gone) and declared.
        resumed: of those, recordings an interrupted run had started.
        held: decision id -> hold ids of recordings due or asked for that a hold kept back.
        cancelled: interrupted disposals a hold placed since stopped.
        keys_destroyed: key ids destroyed (crypto-shredding).
        keys_waiting: key ids whose fact is written but no private key directory was given.
        plans: the buckets after the run (or as planned, dry).
    """

    run_id: str
    disposed: list[SealedRecording] = field(default_factory=list)
    resumed: list[SealedRecording] = field(default_factory=list)
    held: dict[str, tuple[str, ...]] = field(default_factory=dict)
    cancelled: list[str] = field(default_factory=list)
    keys_destroyed: list[str] = field(default_factory=list)
    keys_waiting: list[str] = field(default_factory=list)
    plans: list[BucketPlan] = field(default_factory=list)


class Disposer:
    """One disposal run against the ledger.

    Args:
        conn: a connection of its own (reads, and the advisory lock).
        writer: where facts go (committed; a spooled fact stops the run before any delete).
        periods: the configured classes (only for recordings sealed without a period).
        actor: who disposes (``cli:user@host``).
        keys: the key store with its private backend (a directory or a PKCS#11 token);
            ``None``: keys are not destroyed
            (the report names the keys due).
        batch: recordings per batch (one lock, one round of facts).
        between_batches: called after each batch with the lock released (tests).
    """

    def __init__(
        self,
        conn: asyncpg.Connection,
        writer: FactWriter,
        *,
        sealed_dir: Path,
        periods: dict[str, Period],
        actor: str,
        keys: KeyStore | None = None,
        batch: int = 500,
        between_batches: Callable[[], Awaitable[None]] | None = None,
        within_lock: Callable[[], Awaitable[None]] | None = None,
        stores: Stores | None = None,
    ) -> None:
        self._conn = conn
        self._stores = stores
        self._writer = writer
        self._sealed_dir = Path(sealed_dir)
        self._periods = periods
        self._actor = actor
        self._keys = keys
        self._batch = max(1, batch)
        self._between = between_batches
        self._within = within_lock

    async def inventory(self, decision_ids: Sequence[str] | None = None) -> Inventory:
        """The ledger's sealed recordings (all, or those of ``decision_ids``)."""
        return await load_inventory(self._conn, self._sealed_dir, self._periods,
                                    decision_ids=decision_ids)

    def _months(self) -> dict[str, str]:
        if self._keys is None:
            return {}
        try:
            return {info.kek_id: info.month for info in self._keys.list()}
        except KeyUnavailable:
            return {}

    async def plan(self, now: float | None = None) -> tuple[list[BucketPlan], list[Hold]]:
        """The buckets and holds as they stand (read only: the dry run and ``retention show``)."""
        at = _clock() if now is None else now
        holds = await active_holds(self._conn)
        plans = plan_buckets(await self.inventory(), holds, at, months=self._months())
        return plans, holds

    def _fact(self, kind: str, recording: SealedRecording, run_id: str,
              reason: str, **extra: Scalar) -> LedgerFact:
        payload: dict[str, Scalar] = {
            "file": recording.file, "location": recording.location,
            "sealed_sha256": recording.sealed_sha256, "kek_id": recording.kek_id,
            "retention_class": recording.retention_class, "reason": reason, "run_id": run_id,
            **extra,
        }
        return LedgerFact(kind, recording.decision_id, _clock(), self._actor, payload,
                          fact_id=str(uuid.uuid5(uuid.NAMESPACE_URL,
                                                 f"{kind}:{run_id}:{recording.decision_id}")))

    async def _facts(self, facts: Sequence[LedgerFact]) -> None:
        await asyncio.gather(*(_committed(self._writer, fact) for fact in facts))

    async def run(
        self,
        *,
        reason: str = "retention",
        decision_ids: Sequence[str] | None = None,
        now: float | None = None,
    ) -> DisposalReport:
        """Finish interrupted disposals, dispose of what is due (``retention``: past
        ``retain_until``; ``erasure``: every recording of ``decision_ids``) and not held, then
        destroy the keys left with no recording.

        Raises:
            KeyUnavailable: the private key backend (a PKCS#11 token) cannot be reached; it
                is checked before anything is written or deleted, so a later run does it all.
        """
        at = _clock() if now is None else now
        if self._keys is not None and self._keys.private is not None:
            # a token absent or a PIN refused stops the run here: nothing deleted, no fact
            await asyncio.to_thread(self._keys.private.check)
        report = DisposalReport(run_id=str(uuid.uuid4()))
        await self._resume(report)
        inventory = await self.inventory(decision_ids)
        todo = [
            r for r in inventory.recordings if r.state == "present" and (
                reason == "erasure" or (r.retain_until is not None and r.retain_until <= at))
        ]
        for start in range(0, len(todo), self._batch):
            await self._dispose_batch(todo[start:start + self._batch], reason, report)
            if self._between is not None:
                await self._between()
        await self._destroy_keys(report, at)
        report.plans, _holds = await self.plan(at)
        return report

    async def _dispose_batch(
        self, batch: Sequence[SealedRecording], reason: str, report: DisposalReport
    ) -> None:
        async with disposal_lock(self._conn):
            held = held_by(await active_holds(self._conn))
            if self._within is not None:
                await self._within()
            go = [r for r in batch if r.decision_id not in held]
            report.held.update({r.decision_id: held[r.decision_id] for r in batch
                                if r.decision_id in held})
            if not go:
                return
            await self._facts([self._fact(RECORDING_DISPOSING, r, report.run_id, reason)
                               for r in go])
            _crash_point("disposing")
            outcomes = await asyncio.to_thread(
                lambda: [delete_sealed(r.location, self._stores) for r in go]
            )
            _crash_point("deleted")
            await self._facts([
                self._fact(RECORDING_DISPOSED, r, report.run_id, reason,
                           outcome="deleted" if outcome == "deleted" else "already_gone")
                for r, outcome in zip(go, outcomes, strict=True)
            ])
            _crash_point("disposed")
            report.disposed.extend(go)

    async def _resume(self, report: DisposalReport) -> None:
        """Finish every ``disposing`` fact a stopped run left without an end."""
        inventory = await self.inventory()
        pending = [r for r in inventory.recordings if r.state == "disposing"]
        if not pending:
            return
        async with disposal_lock(self._conn):
            held = held_by(await active_holds(self._conn))
            for recording in pending:
                run_id = recording.disposing_run or report.run_id
                reason = await self._disposing_reason(recording, run_id)
                present = await asyncio.to_thread(os.path.lexists, recording.location) \
                    if "://" not in recording.location else True
                if recording.decision_id in held and present:
                    await _committed(self._writer, LedgerFact(
                        RECORDING_DISPOSAL_CANCELLED, recording.decision_id, _clock(),
                        self._actor, {"run_id": run_id,
                                      "hold_id": held[recording.decision_id][0],
                                      "sealed_sha256": recording.sealed_sha256}))
                    report.cancelled.append(recording.decision_id)
                    report.held[recording.decision_id] = held[recording.decision_id]
                    continue
                outcome = await asyncio.to_thread(delete_sealed, recording.location, self._stores)
                await _committed(self._writer, self._fact(
                    RECORDING_DISPOSED, recording, run_id, reason,
                    outcome="deleted" if outcome == "deleted" else "already_gone"))
                report.disposed.append(recording)
                report.resumed.append(recording)

    async def _disposing_reason(self, recording: SealedRecording, run_id: str) -> str:
        row = await self._conn.fetchval(
            "SELECT payload::jsonb ->> 'reason' FROM ledger_facts WHERE kind = $1 "
            "AND decision_id = $2 AND payload::jsonb ->> 'run_id' = $3 ORDER BY seq DESC LIMIT 1",
            RECORDING_DISPOSING, uuid.UUID(recording.decision_id), run_id,
        )
        return str(row) if row in ("retention", "erasure") else "retention"

    async def _destroy_keys(self, report: DisposalReport, now: float) -> None:
        """Crypto-shred every key whose recordings are all disposed of (fact first)."""
        plans, _holds = await self.plan(now)
        for plan in plans:
            if plan.destroyed is not None:
                self._finish_destroyed(plan.kek_id, report)
                continue
            if not plan.destroyable(now):
                continue
            info = self._key_info(plan)
            if info is None:
                report.keys_waiting.append(plan.kek_id)
                continue
            why = "retention" if info.state != "destroyed" else (
                "retention (the key was destroyed earlier without a ledger entry)")
            await _committed(self._writer, key_fact(info, actor=self._actor, at=_clock(),
                                                    reason=why))
            _crash_point("key_fact")
            self._finish_destroyed(plan.kek_id, report)

    def _key_info(self, plan: BucketPlan) -> KekInfo | None:
        if self._keys is None or self._keys.private is None:
            return None
        for info in self._keys.list():
            if info.kek_id == plan.kek_id and (info.private_present or info.state == "destroyed"):
                return info
        return None

    def _finish_destroyed(self, kek_id: str, report: DisposalReport) -> None:
        """The ledger says destroyed: destroy the private key if this store still has it."""
        if self._keys is None or self._keys.private is None:
            return
        if self._keys.has_private(kek_id):
            self._keys.destroy(kek_id, confirm=kek_id)
            report.keys_destroyed.append(kek_id)
