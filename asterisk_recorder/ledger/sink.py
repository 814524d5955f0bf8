"""What a driver needs from the ledger: somewhere to store a decision and an acknowledgement.

This module owns the ``DecisionSink`` protocol the ARI controller and the FastAGI server write
to, the ``StoreReceipt`` they get back, and ``MemorySink`` for tests and for integrators who
embed the flow without PostgreSQL. It must not import asyncpg.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from asterisk_recorder.flow.decision import ConsentDecision

__all__ = ["DecisionSink", "MemorySink", "StoreReceipt"]


@dataclass(frozen=True, slots=True)
class StoreReceipt:
    """The ledger's acknowledgement of one decision.

    Attributes:
        decision_id: the decision acknowledged.
        spooled: True when PostgreSQL did not answer in time and the decision was fsynced to
            the local spool instead (it is replayed later, exactly once).
    """

    decision_id: str
    spooled: bool = False


class DecisionSink(Protocol):
    """Anything that durably keeps consent decisions."""

    async def store(self, decision: ConsentDecision) -> StoreReceipt:
        """Keep ``decision``; return once it is durable (committed or spooled).

        Raises:
            LedgerError: when the decision could be neither committed nor spooled.
        """
        ...


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
