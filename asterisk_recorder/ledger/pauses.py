"""Open pauses in the ledger: what a restarted controller must take up again.

This module owns ``LedgerPauseStore``, the pause driver's ``PauseStore``: the
``recording.paused`` facts of the last ``within`` seconds that no ``recording.resumed`` names
and whose recording has not ended (no ``recording.closed``, ``sealed``, ``absent`` or
``quarantined`` fact), as ``Restored`` events. It reads with the application role and must not
write (facts go through the ``Ledger``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import asyncpg

from asterisk_recorder.errors import DatabaseUnavailable
from asterisk_recorder.flow.pause import Restored
from asterisk_recorder.ledger.database import connect_app

__all__ = ["LedgerPauseStore"]

_QUERY = """
SELECT f.fact_id::text AS fact_id, f.decision_id::text AS decision_id, f.at, f.actor, f.payload
FROM ledger_facts f
WHERE f.kind = 'recording.paused' AND f.at >= $1
  AND NOT EXISTS (SELECT 1 FROM ledger_facts r WHERE r.decision_id = f.decision_id
                  AND r.kind = 'recording.resumed'
                  AND r.payload::jsonb ->> 'pause_fact_id' = f.fact_id::text)
  AND NOT EXISTS (SELECT 1 FROM ledger_facts c WHERE c.decision_id = f.decision_id
                  AND c.kind = ANY($2::text[]))
ORDER BY f.seq
"""
_ENDED = ["recording.closed", "recording.sealed", "recording.absent", "recording.quarantined"]


class LedgerPauseStore:
    """Reads the open pauses (see the module docstring).

    Args:
        dsn: the ledger's PostgreSQL DSN.
        within: how far back a pause can still be open (seconds; a call longer than a day
            is not taken up).
        clock: wall-clock seconds.
    """

    def __init__(self, dsn: str, *, within: float = 86400.0, connect_timeout: float = 5.0,
                 clock: Callable[[], float] = time.time) -> None:
        self._dsn = dsn
        self._within = within
        self._connect_timeout = connect_timeout
        self._clock = clock

    async def open_pauses(self) -> Sequence[Restored]:
        """The open pauses, oldest first.

        Raises:
            DatabaseUnavailable: PostgreSQL does not answer.
        """
        now = self._clock()
        conn = await connect_app(self._dsn, connect_timeout=self._connect_timeout)
        try:
            rows = await conn.fetch(_QUERY, datetime.fromtimestamp(now - self._within, UTC),
                                    _ENDED, timeout=self._connect_timeout)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise DatabaseUnavailable(f"cannot read the open pauses: {exc}") from exc
        finally:
            await conn.close()
        found = []
        for row in rows:
            payload = json.loads(row["payload"])
            paused_at = row["at"].timestamp()
            started = payload.get("recording_started_at")
            offset = payload.get("offset_s")
            if not isinstance(started, int | float) or isinstance(started, bool):
                started = paused_at - (offset if isinstance(offset, int | float) else 0.0)
            found.append(Restored(
                at=now,
                decision_id=row["decision_id"],
                channel=str(payload.get("channel", "")),
                uniqueid=str(payload.get("uniqueid", "")),
                linkedid=str(payload.get("linkedid", "")),
                mixmonitor_id=str(payload.get("mixmonitor_id", "")),
                started_at=float(started),
                paused_at=paused_at,
                source=str(payload.get("source", "api")),
                actor=row["actor"],
                reason=str(payload.get("reason", "")),
                pause_fact_id=row["fact_id"],
            ))
        return found
