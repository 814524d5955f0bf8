"""The consent ledger: append-only, hash-chained decisions in PostgreSQL, spooled when it is away.

This package owns keeping consent decisions and the facts about them (hand-back, channel fate,
recording lifecycle) as evidence (``Ledger``), the schema and its migrations (``migrate``),
verification of the hash chain (``verify``) and the data-subject duties (``admin``). Drivers
depend only on ``sink.DecisionSink`` and ``sink.FactSink`` (facts are
``flow.facts.LedgerFact``); see docs/ledger.md.
"""

from __future__ import annotations

from asterisk_recorder.flow.facts import LedgerFact
from asterisk_recorder.ledger.migrate import migrate
from asterisk_recorder.ledger.sink import DecisionSink, FactSink, MemorySink, StoreReceipt
from asterisk_recorder.ledger.store import Ledger

__all__ = [
    "DecisionSink",
    "FactSink",
    "Ledger",
    "LedgerFact",
    "MemorySink",
    "StoreReceipt",
    "migrate",
]
