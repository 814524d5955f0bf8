"""Signed checkpoints: grow the tree, sign when due, store, and hand the note to the witnesses.

This module owns the ``Checkpointer``, the background task of ``serve`` (and the one-shot
``ledger checkpoint``) that grows the Merkle tree behind the chain (``tree``), signs a C2SP
checkpoint (``note``) once ``checkpoint_every`` entries or ``checkpoint_interval`` seconds are
not covered, stores it in ``ledger_checkpoints``, offers it to the witnesses and, when a
time-stamping authority is named, asks it for an RFC 3161 token in the background
(``timestamps``) and stores that too. It runs on its
own connection and never on a call's path: a decision is acknowledged without waiting for it,
and PostgreSQL away only delays the next checkpoint. Several controllers may run one each: the
tree's row lock lets one grow it at a time. It must not verify (``audit``) or deliver to a
witness itself (``witness``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import structlog

from asterisk_recorder.errors import ChainError, LedgerError, TimestampError, WitnessError
from asterisk_recorder.ledger.database import connect_app
from asterisk_recorder.ledger.merkle import TileBuilder
from asterisk_recorder.ledger.note import Checkpoint, Signer, sign_checkpoint
from asterisk_recorder.ledger.timestamps import request_token, store_timestamp, tsa_name
from asterisk_recorder.ledger.tree import GROW_LIMIT, extend_tree
from asterisk_recorder.ledger.witness import (
    DirectoryWitness,
    HttpWitness,
    S3Witness,
    Witness,
    WitnessedCheckpoint,
    WitnessPusher,
)
from asterisk_recorder.settings import LedgerSettings

__all__ = [
    "Checkpointer",
    "SignedCheckpoint",
    "latest_checkpoint",
    "stored_checkpoints",
    "witness_from_target",
]

_log = structlog.get_logger("asterisk_recorder.ledger.checkpoints")

_STORE = """
INSERT INTO ledger_checkpoints (tree_size, root, key_name, key_id, note)
VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tree_size) DO NOTHING
"""


@dataclass(frozen=True, slots=True)
class SignedCheckpoint:
    """One checkpoint as stored: its size, root and the signed note text."""

    size: int
    root: bytes
    note: str


async def stored_checkpoints(conn: asyncpg.Connection) -> list[SignedCheckpoint]:
    """Every checkpoint in the database, by size."""
    rows = await conn.fetch("SELECT tree_size, root, note FROM ledger_checkpoints ORDER BY 1")
    return [SignedCheckpoint(int(r["tree_size"]), bytes(r["root"]), r["note"]) for r in rows]


async def latest_checkpoint(
    conn: asyncpg.Connection, *, covering: int = 0
) -> SignedCheckpoint | None:
    """The newest checkpoint (``None`` when none covers entry position ``covering``)."""
    row = await conn.fetchrow(
        "SELECT tree_size, root, note FROM ledger_checkpoints WHERE tree_size >= $1 "
        "ORDER BY tree_size DESC LIMIT 1",
        covering,
    )
    if row is None:
        return None
    return SignedCheckpoint(int(row["tree_size"]), bytes(row["root"]), row["note"])


def witness_from_target(target: str, settings: LedgerSettings) -> Witness:
    """The witness a ``ledger.witnesses`` entry (or a ``--witness`` argument) names.

    An absolute directory, an ``http(s)://`` URL (sent ``witness_http_token`` as a bearer
    token) or ``s3://bucket/prefix`` (``witness_s3_*``).

    Raises:
        WitnessError: the target is not one of those.
    """
    if target.startswith(("http://", "https://")):
        token = settings.witness_http_token.value
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return HttpWitness(target, headers=headers)
    if target.startswith("s3://"):
        bucket, _, prefix = target[len("s3://") :].partition("/")
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        return S3Witness(
            bucket,
            prefix=prefix,
            endpoint_url=settings.witness_s3_endpoint or None,
            region=settings.witness_s3_region or None,
            object_lock_days=settings.witness_object_lock_days,
        )
    if target.startswith("/"):
        return DirectoryWitness(Path(target))
    raise WitnessError(
        f"{target!r} is not a witness: an absolute directory, an http(s):// URL or "
        "s3://bucket/prefix"
    )


class Checkpointer:
    """Grows the tree and signs checkpoints; start ``run()`` as a task, or call ``cycle()``.

    Args:
        dsn: the ledger's database.
        key: the signing key, a key file's or a PKCS#11 token's (its name is the origin).
        every / interval: a checkpoint is due once ``every`` entries, or entries older than
            ``interval`` seconds, are not covered.
        pusher: hands each new checkpoint to the witnesses (never blocks).
        poll: seconds between two cycles (default: a quarter of ``interval``, 0.2-2 s).
        timestamp_url: an RFC 3161 TSA asked, in the background, for a token over each new
            checkpoint (empty: none); a failure is logged and counted, and the next checkpoint
            asks again.
        timestamp_timeout: seconds one request to the TSA may take.
    """

    def __init__(
        self,
        dsn: str,
        key: Signer,
        *,
        every: int,
        interval: float,
        pusher: WitnessPusher | None = None,
        poll: float | None = None,
        connect_timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        timestamp_url: str = "",
        timestamp_timeout: float = 10.0,
    ) -> None:
        self.dsn = dsn
        self.key = key
        self.origin = key.name
        self.every = every
        self.interval = interval
        self.pusher = pusher
        self.poll = poll if poll is not None else min(2.0, max(0.2, interval / 4))
        self._connect_timeout = connect_timeout
        self._clock = clock
        self._conn: asyncpg.Connection | None = None
        self._builder: TileBuilder | None = None
        self._uncovered_since: float | None = None
        self._latest: int | None = None
        self._lock = asyncio.Lock()
        self.tree_size = 0
        """Leaves the tree covers (as this process last saw it)."""
        self.checkpoint_size = 0
        """Size of the newest checkpoint this process saw."""
        self.failures = 0
        """Cycles that failed (PostgreSQL away, a broken chain)."""
        self.last_error: str | None = None
        """Why the last cycle failed (``None`` after a good one)."""
        self.timestamp_url = timestamp_url
        self._timestamp_timeout = timestamp_timeout
        self._stamping: set[asyncio.Task[None]] = set()
        self.timestamped_size = 0
        """Size of the newest checkpoint this process got a TSA token for."""
        self.timestamp_failures = 0
        """Tokens the TSA did not give (unreachable, refused, wrong) or that were not stored."""
        self.timestamp_error: str | None = None
        """Why the last token failed (``None`` after a good one)."""

    @property
    def healthy(self) -> bool:
        """The last cycle worked."""
        return self.last_error is None

    def uncovered_for(self) -> float:
        """Seconds the oldest entry not covered by a checkpoint has waited (0 when none)."""
        if self._uncovered_since is None:
            return 0.0
        return max(0.0, self._clock() - self._uncovered_since)

    async def _connection(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            self._conn = await connect_app(self.dsn, connect_timeout=self._connect_timeout)
            self._builder = None
        return self._conn

    async def timestamps_settled(self) -> None:
        """Wait for the TSA requests under way (each ends within its timeout)."""
        while self._stamping:
            await asyncio.gather(*self._stamping, return_exceptions=True)

    async def close(self) -> None:
        """Close the connection (``run`` must be cancelled first); abandons TSA requests."""
        for task in list(self._stamping):
            task.cancel()
        await asyncio.gather(*self._stamping, return_exceptions=True)
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            with contextlib.suppress(OSError, asyncpg.PostgresError):
                await asyncio.wait_for(conn.close(), 2.0)

    async def run(self) -> None:
        """Cycle until cancelled; failures are logged and retried, never raised."""
        with contextlib.suppress(LedgerError, OSError, asyncpg.PostgresError):
            await self._offer_latest()  # a witness may have missed the last one before a restart
        while True:
            await self.cycle_safely()
            await asyncio.sleep(self.poll)

    async def cycle_safely(self) -> SignedCheckpoint | None:
        """``cycle()``, with its failure counted and logged instead of raised."""
        try:
            signed = await self.cycle()
        except (TimeoutError, LedgerError, OSError, asyncpg.PostgresError) as exc:
            self.failures += 1
            error = f"{type(exc).__name__}: {exc}"
            if error != self.last_error:  # once per distinct problem, not every poll
                (_log.error if isinstance(exc, ChainError) else _log.warning)(
                    "checkpoint.failed", error=error, failures=self.failures
                )
            self.last_error = error
            self._drop_connection()
            return None
        if self.last_error is not None:
            _log.info("checkpoint.recovered", after=self.last_error)
        self.last_error = None
        return signed

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.terminate()

    async def cycle(self, *, force: bool = False) -> SignedCheckpoint | None:
        """Grow the tree to the head; sign a checkpoint when due (or when ``force``d and the
        tree has grown since the last one). Returns the new checkpoint, if any.

        Raises:
            ChainError: the chain has a gap (the tree cannot grow).
            DatabaseUnavailable / OSError / asyncpg.PostgresError: PostgreSQL is away.
        """
        async with self._lock:
            try:
                return await self._cycle(force)
            except asyncio.CancelledError:
                self._drop_connection()  # cancelled mid-statement: the connection is unusable
                raise

    async def _cycle(self, force: bool) -> SignedCheckpoint | None:
        conn = await self._connection()
        while True:
            growth, self._builder = await extend_tree(conn, self._builder)
            if growth is None:  # another controller is growing it right now
                return None
            self.tree_size = growth.after
            if growth.after - growth.before < GROW_LIMIT:  # caught up with the head
                break
        assert self._builder is not None
        if self._latest is None:
            latest = await latest_checkpoint(conn)
            self._latest = latest.size if latest is not None else 0
        uncovered = self.tree_size - self._latest
        now = self._clock()
        if uncovered <= 0:
            self._uncovered_since = None
            return None
        if self._uncovered_since is None:
            self._uncovered_since = now
        due = force or uncovered >= self.every or now - self._uncovered_since >= self.interval
        if not due:
            return None
        latest = await latest_checkpoint(conn)  # another controller may have signed meanwhile
        if latest is not None and latest.size >= self.tree_size:
            self._latest = self.checkpoint_size = latest.size
            self._uncovered_since = None
            return None
        checkpoint = Checkpoint(self.origin, self.tree_size, self._builder.root())
        note = sign_checkpoint(checkpoint, self.key)
        await conn.execute(
            _STORE,
            checkpoint.size,
            checkpoint.root,
            self.key.name,
            self.key.key_id.hex(),
            note,
        )
        self._latest = checkpoint.size
        self.checkpoint_size = checkpoint.size
        self._uncovered_since = None
        signed = SignedCheckpoint(checkpoint.size, checkpoint.root, note)
        _log.info("checkpoint.signed", size=signed.size, root=signed.root.hex())
        self._offer(signed)
        self._stamp(signed)
        return signed

    def _stamp(self, signed: SignedCheckpoint) -> None:
        if not self.timestamp_url:
            return
        task = asyncio.create_task(self._timestamp(signed), name=f"timestamp-{signed.size}")
        self._stamping.add(task)
        task.add_done_callback(self._stamping.discard)

    async def _timestamp(self, signed: SignedCheckpoint) -> None:
        tsa = tsa_name(self.timestamp_url)
        try:
            token = await request_token(
                signed.note, self.timestamp_url, timeout=self._timestamp_timeout
            )
            async with self._lock:  # the connection serves one statement at a time
                await store_timestamp(await self._connection(), signed.size, tsa, token)
        except (TimestampError, LedgerError, OSError, asyncpg.PostgresError) as exc:
            self.timestamp_failures += 1
            error = f"{type(exc).__name__}: {exc}"
            if error != self.timestamp_error:  # once per distinct problem
                _log.warning(
                    "checkpoint.timestamp_failed",
                    size=signed.size,
                    tsa=tsa,
                    error=error,
                    failures=self.timestamp_failures,
                )
            self.timestamp_error = error
            return
        if self.timestamp_error is not None:
            _log.info("checkpoint.timestamp_recovered", after=self.timestamp_error)
        self.timestamp_error = None
        self.timestamped_size = max(self.timestamped_size, signed.size)
        _log.info("checkpoint.timestamped", size=signed.size, tsa=tsa)

    def _offer(self, signed: SignedCheckpoint) -> None:
        if self.pusher is not None:
            self.pusher.offer(WitnessedCheckpoint(signed.size, signed.note))

    async def latest(self) -> SignedCheckpoint | None:
        """The newest stored checkpoint."""
        return await latest_checkpoint(await self._connection())

    async def _offer_latest(self) -> None:
        conn = await self._connection()
        latest = await latest_checkpoint(conn)
        if latest is not None:
            self._latest = self.checkpoint_size = latest.size
            self._offer(latest)
