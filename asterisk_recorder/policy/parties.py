"""One party of a call as the policy engine placed it.

This module owns ``PartyRecord``: which number, which jurisdiction, which policy row and mode.
The policy engine produces it; the flow keeps it in the decision and the ledger stores it. It
must stay pure standard library with no I/O, and must not import the flow.
"""

from __future__ import annotations

from dataclasses import dataclass

from asterisk_recorder.policy.modes import Mode

__all__ = ["PartyRecord"]


@dataclass(frozen=True, slots=True)
class PartyRecord:
    """One party's jurisdiction as the policy engine resolved it.

    Attributes:
        party: ``caller``, ``called`` or ``site``.
        number: the number as given (empty for the site or a withheld number).
        jurisdiction: the resolved code, e.g. ``US-CA``, ``GB``, ``DE``, or ``unknown``.
        row_id: the policy table row applied, e.g. ``US-CA``.
        mode: that row's mode.
    """

    party: str
    number: str
    jurisdiction: str
    row_id: str
    mode: Mode
