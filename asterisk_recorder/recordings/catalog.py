"""What the ledger already knows about a recording: the read side the sealer decides from.

This module owns the sealer's queries: one decision with its ``recording.*`` facts
(``lookup``) and the decisions whose call ended ``recorded`` but that no recording fact
accounts for yet (``absent_candidates``). It reads with the application role (``connect_app``)
and reconnects on the next call after PostgreSQL went away. It must not write: every fact goes
through the ``Ledger`` (hash chain, spool) by the sealer.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from asterisk_recorder.errors import DatabaseUnavailable
from asterisk_recorder.ledger.database import connect_app

__all__ = ["RECORDED_OUTCOMES", "AbsentCandidate", "Catalog", "DecisionFacts"]

RECORDED_OUTCOMES = frozenset({"recorded_consented", "recorded_notified", "recorded_no_notice"})
"""Decision outcomes that told dialplan to record."""

_RECORDING_KINDS = ("recording.closed", "recording.sealed", "recording.quarantined",
                    "recording.absent")
_PAUSE_KINDS = ("recording.paused", "recording.resumed")


@dataclass(frozen=True, slots=True)
class DecisionFacts:
    """One decision as the sealer needs it.

    Attributes:
        decision_id: the decision.
        outcome: its outcome (``recorded_notified``, ``declined``, ...).
        recording_path: the path the controller handed to MixMonitor (``None`` when none).
        closed_sha256: the digest of the last ``recording.closed`` fact (``None``: none yet).
        closed_inode: the file's inode when that digest was taken (``None``: not recorded).
        sealed: a ``recording.sealed`` fact exists.
        absent: a ``recording.absent`` fact exists.
        pauses: the paused spans the ledger holds, ``(start, end)`` in seconds from the
            recording's start (``recording.paused`` / ``recording.resumed`` offsets); ``end``
            None when the pause was still open when the file closed.
    """

    decision_id: str
    outcome: str
    recording_path: str | None
    closed_sha256: str | None
    sealed: bool
    absent: bool
    closed_inode: int | None = None
    jurisdictions: tuple[str, ...] = ()
    called_number: str | None = None
    pauses: tuple[tuple[float, float | None], ...] = ()
    recording_started_at: float | None = None

    @property
    def recorded(self) -> bool:
        """The decision told dialplan to record."""
        return self.outcome in RECORDED_OUTCOMES


@dataclass(frozen=True, slots=True)
class AbsentCandidate:
    """A decision whose call ended ``recorded`` and that no recording fact accounts for."""

    decision_id: str
    recording_path: str | None
    fate_at: float


class Catalog:
    """Read-only queries against the ledger, on one lazily (re)opened connection."""

    def __init__(self, dsn: str, *, connect_timeout: float = 5.0) -> None:
        self._dsn = dsn
        self._connect_timeout = connect_timeout
        self._conn: asyncpg.Connection | None = None

    async def _connection(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            self._conn = await connect_app(self._dsn, connect_timeout=self._connect_timeout)
        return self._conn

    async def _fetch(self, query: str, *args: object) -> Sequence[asyncpg.Record]:
        conn = await self._connection()
        try:
            return list(await conn.fetch(query, *args, timeout=self._connect_timeout))
        except (OSError, TimeoutError, asyncpg.InterfaceError,
                asyncpg.exceptions.PostgresConnectionError) as exc:
            await self.close()
            raise DatabaseUnavailable(f"lost PostgreSQL while reading the ledger: {exc}") from exc

    async def close(self) -> None:
        """Close the connection (the next query opens a new one)."""
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            try:
                await conn.close(timeout=2.0)
            except (OSError, TimeoutError, asyncpg.InterfaceError, asyncpg.PostgresError):
                conn.terminate()

    async def retain_until(self, decision_id: str) -> float | None:
        """The ``retain_until`` (epoch seconds) of the recording's ``recording.sealed`` fact.

        ``None`` when there is none, or the fact predates retention periods.

        Raises:
            DatabaseUnavailable: PostgreSQL does not answer.
        """
        rows = await self._fetch(
            "SELECT payload FROM ledger_facts WHERE decision_id = $1 "
            "AND kind = 'recording.sealed' ORDER BY seq DESC LIMIT 1",
            uuid.UUID(decision_id),
        )
        if not rows:
            return None
        value = json.loads(rows[0]["payload"]).get("retain_until")
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return float(value)

    async def lookup(self, decision_id: str) -> DecisionFacts | None:
        """The decision ``decision_id`` with its recording facts, or ``None`` when unknown.

        Raises:
            DatabaseUnavailable: PostgreSQL does not answer.
        """
        rows = await self._fetch(
            "SELECT d.decision_id::text AS id, d.outcome, d.recording_path, d.parties, "
            "p.called_number FROM decisions d LEFT JOIN decision_personal p "
            "USING (decision_id) WHERE d.decision_id = $1",
            uuid.UUID(decision_id),
        )
        if not rows:
            return None
        facts = await self._fetch(
            "SELECT kind, payload, fact_id::text AS fact_id FROM ledger_facts "
            "WHERE decision_id = $1 "
            "AND kind = ANY($2::text[]) ORDER BY seq",
            uuid.UUID(decision_id),
            list(_RECORDING_KINDS + _PAUSE_KINDS),
        )
        closed: str | None = None
        pauses: dict[str, list[float | None]] = {}
        inode: int | None = None
        started_at: float | None = None
        sealed = absent = False
        for fact in facts:
            kind = fact["kind"]
            if kind == "recording.closed":
                payload = json.loads(fact["payload"])
                value = payload.get("sha256")
                closed = value if isinstance(value, str) else None
                number = payload.get("inode")
                inode = number if isinstance(number, int) and not isinstance(number, bool) else None
            elif kind == "recording.sealed":
                sealed = True
            elif kind == "recording.absent":
                absent = True
            elif kind in _PAUSE_KINDS:
                payload = json.loads(fact["payload"])
                _pause_fact(pauses, kind, fact["fact_id"], payload)
                if started_at is None and kind == "recording.paused":
                    started_at = _number(payload.get("recording_started_at"))
        row = rows[0]
        parties = json.loads(row["parties"]) if isinstance(row["parties"], str) else []
        codes = tuple(
            str(party.get("jurisdiction")) for party in parties
            if isinstance(party, dict) and party.get("jurisdiction")
        )
        return DecisionFacts(
            decision_id=row["id"],
            outcome=row["outcome"],
            recording_path=row["recording_path"],
            closed_sha256=closed,
            sealed=sealed,
            absent=absent,
            closed_inode=inode,
            jurisdictions=codes,
            called_number=row["called_number"],
            pauses=_spans(pauses),
            recording_started_at=started_at,
        )

    async def absent_candidates(
        self,
        *,
        ended_before: float,
        ended_after: float,
        asterisk_ids: Sequence[str] = (),
        limit: int = 500,
    ) -> list[AbsentCandidate]:
        """Decisions with a ``call.fate`` ``recorded`` fact in the window and no recording fact,
        made on one of ``asterisk_ids`` (the decision's ``asterisk_id``; empty: any).

        Raises:
            DatabaseUnavailable: PostgreSQL does not answer.
        """
        rows = await self._fetch(
            "SELECT f.decision_id::text AS id, d.recording_path, max(f.at) AS at "
            "FROM ledger_facts f JOIN decisions d ON d.decision_id = f.decision_id "
            "WHERE f.kind = 'call.fate' AND f.payload::jsonb ->> 'fate' = 'recorded' "
            "AND f.at < $1 AND f.at >= $2 AND NOT EXISTS (SELECT 1 FROM ledger_facts g "
            "WHERE g.decision_id = f.decision_id AND g.kind = ANY($3::text[])) "
            "AND (cardinality($5::text[]) = 0 OR d.asterisk_id = ANY($5::text[])) "
            "GROUP BY f.decision_id, d.recording_path ORDER BY max(f.at) LIMIT $4",
            datetime.fromtimestamp(ended_before, UTC),
            datetime.fromtimestamp(ended_after, UTC),
            list(_RECORDING_KINDS),
            limit,
            list(asterisk_ids),
        )
        return [
            AbsentCandidate(row["id"], row["recording_path"], row["at"].timestamp())
            for row in rows
        ]


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _pause_fact(pauses: dict[str, list[float | None]], kind: str, fact_id: str,
                payload: dict[str, object]) -> None:
    """Pair ``recording.paused`` with the ``recording.resumed`` naming it (by fact id)."""
    offset = _number(payload.get("offset_s"))
    if kind == "recording.paused":
        pauses.setdefault(fact_id, [None, None])[0] = offset
        return
    linked = payload.get("pause_fact_id")
    if isinstance(linked, str) and linked in pauses:
        pauses[linked][1] = offset


def _spans(pauses: dict[str, list[float | None]]) -> tuple[tuple[float, float | None], ...]:
    spans = [(start, end) for start, end in pauses.values() if start is not None]
    return tuple(sorted(spans, key=lambda span: span[0]))
