"""The flow's storage port: where a driver keeps a decision, and the acknowledgement it gets.

This module owns the ``DecisionSink`` and ``FactSink`` protocols (the ledger implements them;
the driver core and the transports depend on them, never on the ledger) and ``StoreReceipt``.
Pure standard library; no I/O: protocols with no implementation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from asterisk_recorder.flow.decision import ConsentDecision
from asterisk_recorder.flow.facts import LedgerFact

__all__ = ["DecisionSink", "FactSink", "StoreReceipt"]


@dataclass(frozen=True, slots=True)
class StoreReceipt:
    """The ledger's acknowledgement of one decision or fact.

    Attributes:
        decision_id: the decision acknowledged (for a fact: the decision it is about, or "").
        spooled: True when PostgreSQL did not answer in time and the entry was fsynced to
            the local spool instead (it is replayed later, exactly once).
        fact_id: for a fact, its id (the one given, or the one the ledger assigned).
    """

    decision_id: str
    spooled: bool = False
    fact_id: str | None = None


class DecisionSink(Protocol):
    """Anything that durably keeps consent decisions."""

    async def store(self, decision: ConsentDecision) -> StoreReceipt:
        """Keep ``decision``; return once it is durable (committed or spooled).

        Raises:
            LedgerError: when the decision could be neither committed nor spooled.
        """
        ...


class FactSink(Protocol):
    """Anything that durably keeps facts about decisions (same chain, same promise)."""

    async def record_fact(self, fact: LedgerFact) -> StoreReceipt:
        """Keep ``fact``; return once it is durable (committed or spooled), in order.

        Raises:
            LedgerError: the fact breaks a rule of ``flow.facts.check_fact`` (e.g. an unknown
                kind), names a decision the ledger does not hold, or could be neither
                committed nor spooled.
        """
        ...
