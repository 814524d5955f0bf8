"""What a driver needs from the ledger: somewhere to store a decision and an acknowledgement.

The ``DecisionSink`` protocol and ``StoreReceipt`` are the flow's port (``flow/ports.py``),
re-exported here; this module owns ``MemorySink``, a sink for tests and for integrators who
embed the flow without PostgreSQL. It must not import asyncpg.
"""

from __future__ import annotations

from asterisk_recorder.flow.decision import ConsentDecision
from asterisk_recorder.flow.ports import DecisionSink, StoreReceipt

__all__ = ["DecisionSink", "MemorySink", "StoreReceipt"]


class MemorySink:
    """A ``DecisionSink`` that keeps decisions in a list (tests, embedding without a database).

    Storing the same ``decision_id`` twice keeps one copy, like the real ledger.
    """

    def __init__(self) -> None:
        self.decisions: list[ConsentDecision] = []
        self._ids: set[str] = set()

    async def store(self, decision: ConsentDecision) -> StoreReceipt:
        """Keep ``decision`` in memory (idempotent by ``decision_id``)."""
        if decision.decision_id not in self._ids:
            self._ids.add(decision.decision_id)
            self.decisions.append(decision)
        return StoreReceipt(decision.decision_id)
