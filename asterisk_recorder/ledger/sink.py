"""What a driver needs from the ledger: somewhere to store decisions and facts, and an ack.

The ``DecisionSink`` and ``FactSink`` protocols and ``StoreReceipt`` are the flow's ports
(``flow/ports.py``), re-exported here; this module owns ``MemorySink``, a sink for tests and for
integrators who embed the flow without PostgreSQL. It must not import asyncpg.
"""

from __future__ import annotations

import uuid
from dataclasses import replace

from asterisk_recorder.errors import LedgerError
from asterisk_recorder.flow.decision import ConsentDecision
from asterisk_recorder.flow.facts import LedgerFact, check_fact
from asterisk_recorder.flow.ports import DecisionSink, FactSink, StoreReceipt

__all__ = ["DecisionSink", "FactSink", "MemorySink", "StoreReceipt"]


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
