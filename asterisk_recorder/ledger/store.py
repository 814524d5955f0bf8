"""The ``Ledger``: the ``DecisionSink`` and ``FactSink`` drivers store decisions and facts into.

This module owns the durability promise. ``store`` (a decision) and ``record_fact`` (a fact
about one) hand the entry to ONE writer task, which
group-commits whatever is pending every ``batch_interval`` (at most ``batch_max`` per
transaction). A decision is acknowledged once committed, or, when PostgreSQL does not commit
within ``ack_timeout``, once it is fsynced to the spool. The same writer replays the spool when
PostgreSQL is back (spooled decisions keep their order; new decisions are spooled behind them
until the spool is drained), and the decision id (fact id) makes every replay idempotent.
Decisions and facts share the queue, the spool and the chain, so their order is kept. It must not
build SQL itself (``chain.py``) nor parse spool files (``spool.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import structlog

from asterisk_recorder.errors import DatabaseUnavailable, LedgerError, SpoolError
from asterisk_recorder.flow.decision import ConsentDecision
from asterisk_recorder.flow.facts import LedgerFact
from asterisk_recorder.ledger.chain import append_entries
from asterisk_recorder.ledger.database import connect_app
from asterisk_recorder.ledger.keys import DigestKey, load_digest_key, spool_directory
from asterisk_recorder.ledger.records import (
    DecisionRecord,
    FactRecord,
    build_decision_record,
    build_fact_record,
)
from asterisk_recorder.ledger.sink import DecisionSink, FactSink, StoreReceipt
from asterisk_recorder.ledger.spool import Spool, SpoolEntry
from asterisk_recorder.settings import LedgerSettings

__all__ = ["Ledger"]

if TYPE_CHECKING:

    def _is_a_sink(ledger: Ledger) -> DecisionSink:
        return ledger  # mypy proves Ledger satisfies the DecisionSink protocol

    def _is_a_fact_sink(ledger: Ledger) -> FactSink:
        return ledger  # ... and the FactSink protocol


_log = structlog.get_logger("asterisk_recorder.ledger")
_REPLAY_TIMEOUT = 10.0
"""Seconds one replay chunk may take (nobody waits on it; new decisions are spooled meanwhile)."""


Record = DecisionRecord | FactRecord


def _entry_id(entry: SpoolEntry) -> str:
    if isinstance(entry, LedgerFact):
        return str(entry.fact_id)
    return entry.decision_id


def _what(entry: SpoolEntry) -> str:
    """``decision <id>`` or ``fact <kind> <id>`` for messages."""
    if isinstance(entry, LedgerFact):
        return f"fact {entry.kind} {entry.fact_id}"
    return f"decision {entry.decision_id}"


def _build(entry: SpoolEntry, key: DigestKey) -> Record:
    if isinstance(entry, LedgerFact):
        return build_fact_record(entry)
    return build_decision_record(entry, key)


@dataclass(slots=True, eq=False)
class _Pending:
    record: Record
    entry: SpoolEntry
    future: asyncio.Future[StoreReceipt]
    claimed: bool = field(default=False)
    """The guard timer took it over: the writer must skip it."""
    settled: bool = field(default=False)
    """Committed, spooled or rejected: nothing more to do (the future may be cancelled)."""


def _is_data_error(exc: BaseException) -> bool:
    """True for errors about a row's content (class 22/23), which retrying cannot fix.

    A unique violation is not one: ids already stored are skipped before inserting, so it can
    only mean a chain position is taken (an edited ``ledger_head``); that is the database's
    problem, and the decisions are spooled until an operator repairs it.
    """
    state = getattr(exc, "sqlstate", None) or ""
    return isinstance(state, str) and state[:2] in {"22", "23"} and state != "23505"


def _refusal(entry: SpoolEntry, exc: BaseException) -> str:
    """Why PostgreSQL refused ``entry``, in words (a fact's unknown decision named plainly)."""
    if isinstance(entry, LedgerFact) and getattr(exc, "sqlstate", None) == "23503":
        return (
            f"fact {entry.kind} names decision {entry.decision_id}, which the ledger does not "
            "hold (store the decision first)"
        )
    return str(exc)


class Ledger:
    """The PostgreSQL consent ledger with its local spool; a ``DecisionSink``.

    Open it with ``async with Ledger.open(dsn, settings.ledger, instance_id=...) as ledger``.
    Opening never fails because PostgreSQL is down: the ledger then spools and keeps trying.

    Args:
        dsn: PostgreSQL DSN (schema migrated with ``migrate``).
        settings: spool directory, timeouts, batching and digest key.
        instance_id: this controller's id (for logs).
        connect_timeout: seconds per connection attempt.
        retry_interval: seconds between reconnection attempts while PostgreSQL is away.
        key: the digest key (default: from ``settings``).
    """

    def __init__(
        self,
        dsn: str,
        settings: LedgerSettings,
        *,
        instance_id: str = "",
        connect_timeout: float = 5.0,
        retry_interval: float = 1.0,
        key: DigestKey | None = None,
    ) -> None:
        self._dsn = dsn
        self._settings = settings
        self.instance_id = instance_id
        self._connect_timeout = connect_timeout
        self._retry_interval = retry_interval
        self._key = key if key is not None else load_digest_key(settings)
        self.spool = Spool(spool_directory(settings))
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue()
        self._conn: asyncpg.Connection | None = None
        self._writer: asyncio.Task[None] | None = None
        self._spool_depth = 0
        self._healthy = False
        self._closing = False
        self._next_retry = 0.0
        self._guard = settings.ack_timeout * 2 + 2.0
        self._guard_tasks: set[asyncio.Task[None]] = set()
        self._last_batch = 0.0
        self._warned = False

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls,
        dsn: str,
        settings: LedgerSettings,
        *,
        instance_id: str = "",
        connect_timeout: float = 5.0,
        retry_interval: float = 1.0,
        key: DigestKey | None = None,
    ) -> AsyncIterator[Ledger]:
        """Start a ledger (connect, replay any spool) and close it (drain, disconnect) after."""
        ledger = cls(
            dsn,
            settings,
            instance_id=instance_id,
            connect_timeout=connect_timeout,
            retry_interval=retry_interval,
            key=key,
        )
        await ledger.start()
        try:
            yield ledger
        finally:
            await ledger.close()

    @property
    def healthy(self) -> bool:
        """True while PostgreSQL answers and nothing waits in the spool."""
        return self._healthy and self._spool_depth == 0

    @property
    def spool_depth(self) -> int:
        """How many decisions wait in the spool for PostgreSQL."""
        return self._spool_depth

    @property
    def key(self) -> DigestKey:
        """The digest key this ledger writes with."""
        return self._key

    async def start(self) -> None:
        """Count the spool, try PostgreSQL once, and start the writer task."""
        status = await asyncio.to_thread(self.spool.status)
        self._spool_depth = status.pending
        mode = await asyncio.to_thread(self.spool.shared_mode)
        if mode is not None:
            _log.warning(
                "ledger.spool.not_private",
                directory=str(self.spool.directory),
                mode=f"{mode:04o}",
                hint="spooled decisions hold caller numbers: chmod 0700 the directory",
            )
        if status.quarantined:
            _log.warning(
                "ledger.spool.quarantined",
                count=status.quarantined,
                file=status.quarantine_file,
            )
        await self._recover(replay=False)  # the writer replays in the background
        self._next_retry = 0.0
        self._writer = asyncio.create_task(self._run(), name="ledger-writer")

    async def close(self) -> None:
        """Store (or spool) everything already handed in, then disconnect."""
        if self._closing:
            return
        self._closing = True
        self._queue.put_nowait(None)
        if self._writer is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._writer), self._guard + 5.0)
            except TimeoutError:
                self._writer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._writer
        leftovers: list[_Pending] = []
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is not None and not item.claimed and not item.settled:
                leftovers.append(item)
        if leftovers:
            await self._spool_items(leftovers)
        if self._guard_tasks:  # spools started by guard timers must reach the disk
            await asyncio.gather(*self._guard_tasks, return_exceptions=True)
        await self._disconnect()

    async def store(self, decision: ConsentDecision) -> StoreReceipt:
        """Keep ``decision``; return once it is committed or fsynced to the spool.

        Raises:
            LedgerError: the decision is malformed (id not a UUID, time not finite), the ledger
                is closed, or it could be neither committed nor spooled.
        """
        if self._closing:
            raise LedgerError("the ledger is closed")
        return await self._submit(decision, build_decision_record(decision, self._key))

    async def record_fact(self, fact: LedgerFact) -> StoreReceipt:
        """Keep ``fact`` in the chain, behind everything handed in before it.

        Same promise as ``store``: return once committed or fsynced to the spool. A fact
        without ``fact_id`` gets a fresh one (in the receipt); give a stable one to make a
        retry of the same fact idempotent.

        Raises:
            LedgerError: the fact is malformed (unknown kind, bad payload, time not finite),
                names a decision the ledger does not hold (it is kept in the quarantine file),
                the ledger is closed, or it could be neither committed nor spooled.
        """
        if self._closing:
            raise LedgerError("the ledger is closed")
        if fact.fact_id is None:
            fact = replace(fact, fact_id=str(uuid.uuid4()))
        return await self._submit(fact, build_fact_record(fact))

    async def _submit(self, entry: SpoolEntry, record: Record) -> StoreReceipt:
        loop = asyncio.get_running_loop()
        item = _Pending(record, entry, loop.create_future())
        self._queue.put_nowait(item)
        guard = loop.call_later(self._guard, self._guard_expired, item)
        try:
            # If the caller is cancelled (hung-up call), this future is cancelled but the
            # writer still stores the decision: it skips only items the guard has claimed.
            return await item.future
        finally:
            guard.cancel()

    def _guard_expired(self, item: _Pending) -> None:
        """The writer did not answer within the guard time: keep the promise ourselves."""
        if item.settled or item.future.done():
            return
        item.claimed = True
        _log.warning("ledger.writer.stuck", entry=_what(item.entry))
        task = asyncio.get_running_loop().create_task(self._spool_claimed(item))
        self._guard_tasks.add(task)
        task.add_done_callback(self._guard_tasks.discard)

    async def _spool_claimed(self, item: _Pending) -> None:
        try:
            await asyncio.to_thread(self.spool.append, [item.entry])
        except SpoolError as exc:
            item.settled = True
            if not item.future.done():
                item.future.set_exception(
                    LedgerError(
                        f"{_what(item.entry)} could be neither committed nor spooled: {exc}"
                    )
                )
            return
        self._spool_depth += 1
        self._resolve(item, spooled=True)

    # -- the writer -------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            batch: list[_Pending] = []
            stop = False
            try:
                behind = self._spool_depth > 0 or not self._healthy
                if behind and time.monotonic() >= self._next_retry and not self._closing:
                    await self._recover()
                    behind = self._spool_depth > 0 or not self._healthy
                batch, stop = await self._collect(self._retry_interval if behind else None)
                if batch:
                    await self._write(batch)
                if stop:
                    return
            except Exception as exc:  # the one writer must outlive any surprise
                _log.exception("ledger.writer.error", error=repr(exc))
                await self._lost(exc)
                await self._spool_items(batch)
                if stop:
                    return

    async def _collect(self, wait: float | None) -> tuple[list[_Pending], bool]:
        try:
            first = await asyncio.wait_for(self._queue.get(), wait)
        except TimeoutError:
            return [], False
        if first is None:
            return [], True
        batch = [first]
        # at most one group commit per batch_interval: a lone decision after a quiet spell
        # goes at once, a stream is gathered into one transaction per interval
        loop = asyncio.get_running_loop()
        delay = self._last_batch + self._settings.batch_interval - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        self._last_batch = loop.time()
        stop = False
        while len(batch) < self._settings.batch_max and not self._queue.empty():
            item = self._queue.get_nowait()
            if item is None:
                stop = True
                break
            batch.append(item)
        return [i for i in batch if not i.claimed], stop

    async def _write(self, batch: list[_Pending]) -> None:
        if self._healthy and self._spool_depth == 0 and self._conn is not None:
            try:
                await self._commit(batch)
                return
            except DatabaseUnavailable as exc:
                _log.warning("ledger.database.unavailable", error=str(exc), spooling=len(batch))
        await self._spool_items(batch)

    async def _commit(self, batch: list[_Pending]) -> None:
        """Commit ``batch`` within ``ack_timeout`` and acknowledge it; isolate bad rows."""
        try:
            await self._append([i.record for i in batch])
        except asyncpg.PostgresError as exc:
            if not _is_data_error(exc):
                raise
            for item in batch:  # one row is poisonous: find it, keep the others
                try:
                    await self._append([item.record])
                except asyncpg.PostgresError as row_exc:
                    if not _is_data_error(row_exc):
                        raise
                    await self._reject(item, row_exc)
                else:
                    self._resolve(item, spooled=False)
            return
        for item in batch:
            self._resolve(item, spooled=False)

    async def _append(self, records: Sequence[Record], *, within: float | None = None) -> list[str]:
        """Append in one transaction within ``within`` seconds (default ``ack_timeout``).

        Raises:
            asyncpg.PostgresError: a data error (class 22/23) caused by a row's content.
            DatabaseUnavailable: anything else; the connection is dropped.
        """
        conn = self._conn
        if conn is None:
            raise DatabaseUnavailable("not connected")
        bound = self._settings.ack_timeout if within is None else within
        try:
            return await asyncio.wait_for(append_entries(conn, records), bound)
        except asyncpg.PostgresError as exc:
            if _is_data_error(exc):
                raise
            await self._lost(exc)
            raise DatabaseUnavailable(f"PostgreSQL refused the batch: {exc}") from exc
        except Exception as exc:  # timeouts, lost sockets, asyncpg client state errors
            await self._lost(exc)
            raise DatabaseUnavailable(f"PostgreSQL did not commit in time: {exc!r}") from exc

    async def _reject(self, item: _Pending, exc: BaseException) -> None:
        """An entry PostgreSQL refuses for its content: quarantine it and tell the driver."""
        reason = _refusal(item.entry, exc)
        _log.error("ledger.entry.rejected", entry=_what(item.entry), error=reason)
        with contextlib.suppress(SpoolError):
            await asyncio.to_thread(self.spool.quarantine, [item.entry], reason)
        item.settled = True
        if not item.future.done():
            item.future.set_exception(
                LedgerError(
                    f"PostgreSQL rejected {_what(item.entry)}: {reason}; "
                    f"it was kept in {self.spool.quarantine_path}"
                )
            )

    def _resolve(self, item: _Pending, *, spooled: bool) -> None:
        item.settled = True
        if not item.future.done():
            entry = item.entry
            if isinstance(entry, LedgerFact):
                receipt = StoreReceipt(entry.decision_id or "", spooled, entry.fact_id)
            else:
                receipt = StoreReceipt(entry.decision_id, spooled=spooled)
            item.future.set_result(receipt)

    async def _spool_items(self, batch: list[_Pending]) -> None:
        batch = [i for i in batch if not i.settled]
        if not batch:
            return
        try:
            await asyncio.to_thread(self.spool.append, [i.entry for i in batch])
        except SpoolError as exc:
            _log.error("ledger.spool.failed", error=str(exc), lost_if_not_retried=len(batch))
            for item in batch:
                item.settled = True
                if not item.future.done():
                    item.future.set_exception(
                        LedgerError(
                            f"{_what(item.entry)} could be neither committed nor spooled: {exc}"
                        )
                    )
            return
        self._spool_depth += len(batch)
        for item in batch:
            self._resolve(item, spooled=True)

    async def _lost(self, exc: BaseException) -> None:
        if self._healthy:
            _log.warning("ledger.database.lost", error=repr(exc))
        self._healthy = False
        self._next_retry = time.monotonic() + self._retry_interval
        await self._disconnect()

    async def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.terminate()

    async def _recover(self, *, replay: bool = True) -> None:
        """Reconnect if needed, then replay the spool; new decisions are spooled meanwhile."""
        self._next_retry = time.monotonic() + self._retry_interval
        if self._conn is None:
            try:
                bound = min(self._connect_timeout, max(self._settings.ack_timeout, 0.5))
                self._conn = await connect_app(self._dsn, connect_timeout=bound)
            except DatabaseUnavailable as exc:
                if not self._warned:
                    _log.warning("ledger.database.unreachable", error=str(exc), spooling=True)
                    self._warned = True
                self._healthy = False
                return
            if not await self._schema_ready():
                return
            self._warned = False
            self._healthy = True
            _log.info("ledger.database.connected", spool_depth=self._spool_depth)
        if not replay:
            return
        if self._spool_depth == 0 and not await asyncio.to_thread(self.spool.pending_files):
            return
        try:
            await self._replay()
        except (DatabaseUnavailable, SpoolError) as exc:
            _log.warning("ledger.spool.replay_paused", error=str(exc), waiting=self._spool_depth)

    async def _schema_ready(self) -> bool:
        """False (logged once) when the ledger tables are missing: run ``db migrate``."""
        conn = self._conn
        assert conn is not None
        try:
            ready = await asyncio.wait_for(
                conn.fetchval("SELECT to_regclass('ledger_head') IS NOT NULL"),
                max(self._settings.ack_timeout, 0.5),
            )
        except Exception as exc:
            await self._lost(exc)
            return False
        if not ready:
            if not self._warned:
                _log.error(
                    "ledger.schema.missing",
                    hint="run 'asterisk-recorder db migrate'; decisions are spooled meanwhile",
                )
                self._warned = True
            await self._disconnect()
            self._healthy = False
        return bool(ready)

    async def _replay(self) -> None:
        replayed = 0
        while True:
            files = await asyncio.to_thread(self.spool.take)
            if not files:
                break
            busy = 0
            for path in files:
                if self._closing:
                    break  # what is left replays next time (idempotent)
                claim = await asyncio.to_thread(self.spool.claim, path)
                if claim is None:
                    busy += 1  # another process is replaying this file
                    continue
                try:
                    replayed += await self._replay_file(path)
                finally:
                    await asyncio.to_thread(self.spool.release, claim)
            if self._closing or busy == len(files):
                break
        self._spool_depth = (await asyncio.to_thread(self.spool.status)).pending
        if replayed:
            _log.info("ledger.spool.replayed", count=replayed, waiting=self._spool_depth)

    async def _replay_file(self, path: Path) -> int:
        """Commit one replay file's entries in order; return how many were handed over."""
        batch = await asyncio.to_thread(self.spool.read, path)
        if batch.quarantined:
            _log.error(
                "ledger.spool.torn_lines",
                file=str(path),
                quarantined=batch.quarantined,
                quarantine=str(self.spool.quarantine_path),
            )
        size = max(1, self._settings.batch_max)
        done = 0
        for start in range(0, len(batch.entries), size):
            chunk = batch.entries[start : start + size]
            await self._append_replay(chunk)
            done += len(chunk)
            await self._spool_waiting()
            if self._closing and done < len(batch.entries):
                return done  # keep the file: it replays (idempotently) next time
        await asyncio.to_thread(self.spool.done, path)
        return done

    async def _append_replay(self, entries: list[SpoolEntry]) -> None:
        pairs: list[tuple[SpoolEntry, Record]] = []
        for entry in entries:
            try:
                pairs.append((entry, _build(entry, self._key)))
            except LedgerError as exc:
                await self._quarantine(entry, exc)
        within = max(self._settings.ack_timeout * 4, _REPLAY_TIMEOUT)
        try:
            await self._append([record for _, record in pairs], within=within)
        except asyncpg.PostgresError:
            for entry, record in pairs:  # isolate the poisonous one, keep the rest
                try:
                    await self._append([record], within=within)
                except asyncpg.PostgresError as exc:
                    await self._quarantine(entry, exc)

    async def _quarantine(self, entry: SpoolEntry, exc: BaseException) -> None:
        reason = _refusal(entry, exc)
        _log.error("ledger.spool.rejected", entry=_what(entry), error=reason)
        await asyncio.to_thread(self.spool.quarantine, [entry], reason)

    async def _spool_waiting(self) -> None:
        """During a long replay, acknowledge queued decisions by spooling them (behind the rest)."""
        waiting: list[_Pending] = []
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is None:
                self._queue.put_nowait(None)
                break
            if not item.claimed and not item.settled:
                waiting.append(item)
        if waiting:
            await self._spool_items(waiting)

    # -- for tests and operators -------------------------------------------------------------

    @property
    def spool_dir(self) -> Path:
        """The spool directory in use."""
        return self.spool.directory
