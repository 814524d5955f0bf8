"""What a driver needs from the ledger: somewhere to store decisions and facts, and an ack.

This module owns the ``DecisionSink`` protocol the ARI controller and the FastAGI server write
to, the ``FactSink`` protocol for what happened after a decision (``flow.facts.LedgerFact``),
the ``StoreReceipt`` both get back, and ``MemorySink`` for tests and for integrators who embed
the flow without PostgreSQL. It must not import asyncpg.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from typing import Protocol

from asterisk_recorder.errors import LedgerError
from asterisk_recorder.flow.decision import ConsentDecision
from asterisk_recorder.flow.facts import LedgerFact, check_fact

__all__ = ["DecisionSink", "FactSink", "MemorySink", "StoreReceipt"]


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


class MemorySink:
    """A ``DecisionSink`` and ``FactSink`` keeping entries in lists (tests, no database).

    Storing the same ``decision_id`` (or ``fact_id``) twice keeps one copy, and a fact naming
    a decision not stored here is refused, like the real ledger.
    """

    def __init__(self) -> None:
        self.decisions: list[ConsentDecision] = []
        self.facts: list[LedgerFact] = []
        self._ids: set[str] = set()
        self._fact_ids: set[str] = set()

    async def store(self, decision: ConsentDecision) -> StoreReceipt:
        """Keep ``decision`` in memory (idempotent by ``decision_id``)."""
        if decision.decision_id not in self._ids:
            self._ids.add(decision.decision_id)
            self.decisions.append(decision)
        return StoreReceipt(decision.decision_id)

    async def record_fact(self, fact: LedgerFact) -> StoreReceipt:
        """Keep ``fact`` in memory (idempotent by ``fact_id``; one is assigned when missing).

        Raises:
            LedgerError: the fact is malformed or names a decision not stored here.
        """
        check_fact(fact)
        if fact.decision_id is not None and fact.decision_id not in self._ids:
            raise LedgerError(
                f"fact {fact.kind} names decision {fact.decision_id}, which is not stored"
            )
        if fact.fact_id is None:
            fact = replace(fact, fact_id=str(uuid.uuid4()))
        assert fact.fact_id is not None
        if fact.fact_id not in self._fact_ids:
            self._fact_ids.add(fact.fact_id)
            self.facts.append(fact)
        return StoreReceipt(fact.decision_id or "", fact_id=fact.fact_id)
