"""The consent ledger: append-only, hash-chained decisions in PostgreSQL, spooled when it is away.

This package owns keeping consent decisions as evidence (``Ledger``), the schema and its
migrations (``migrate``), verification of the hash chain (``verify``) and the data-subject
duties (``admin``). Drivers depend only on ``sink.DecisionSink``; see docs/ledger.md.
"""

from __future__ import annotations

from asterisk_recorder.ledger.migrate import migrate
from asterisk_recorder.ledger.sink import DecisionSink, MemorySink, StoreReceipt
from asterisk_recorder.ledger.store import Ledger

__all__ = ["DecisionSink", "Ledger", "MemorySink", "StoreReceipt", "migrate"]
