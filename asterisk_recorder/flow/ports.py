"""The flow's storage port: where a driver keeps a decision, and the acknowledgement it gets.

This module owns the ``DecisionSink`` protocol (the ledger implements it; the driver core and
the transports depend on it, never on the ledger) and ``StoreReceipt``. Pure standard library;
no I/O: a protocol with no implementation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from asterisk_recorder.flow.decision import ConsentDecision

__all__ = ["DecisionSink", "StoreReceipt"]


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
