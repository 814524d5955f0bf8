"""The consent decision: what the flow decided for one call, as evidence for the ledger.

This module owns the ``Outcome`` vocabulary and the ``ConsentDecision`` record that the flow emits
in a ``StoreDecision`` action and the ledger persists (``PartyRecord`` comes from the policy, one
layer down, and is re-exported here). Pure standard library; no I/O.
Timestamps are Unix epoch seconds (float, UTC) supplied by the driver.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from asterisk_recorder.policy.modes import Mode
from asterisk_recorder.policy.parties import PartyRecord

__all__ = ["ConsentDecision", "KeyPress", "Outcome", "PartyRecord"]


class Outcome(enum.Enum):
    """The named result of one consent flow."""

    RECORDED_CONSENTED = "recorded_consented"
    """Opt-in: the caller pressed the accept key."""
    RECORDED_NOTIFIED = "recorded_notified"
    """Opt-out or announce: disclosure played, no objection."""
    RECORDED_NO_NOTICE = "recorded_no_notice"
    """Mode ``none``: recorded without a disclosure."""
    NOT_RECORDED_OPTED_OUT = "not_recorded_opted_out"
    """Opt-out: the caller pressed the refuse key."""
    NOT_RECORDED_DECLINED = "not_recorded_declined"
    """Opt-in: the caller pressed the decline key."""
    NOT_RECORDED_NO_CONSENT = "not_recorded_no_consent"
    """Opt-in: timeout or no valid key."""
    NOT_RECORDED_POLICY = "not_recorded_policy"
    """Mode ``never``."""
    ABANDONED = "abandoned"
    """The caller hung up before a decision."""
    FAILED = "failed"
    """Internal error; fail-closed, not recorded."""

    @property
    def records(self) -> bool:
        """True when this outcome means the call is recorded."""
        return self in _RECORDING


_RECORDING = frozenset(
    {Outcome.RECORDED_CONSENTED, Outcome.RECORDED_NOTIFIED, Outcome.RECORDED_NO_NOTICE}
)


@dataclass(frozen=True, slots=True)
class KeyPress:
    """One DTMF digit the caller pressed, with when it arrived (epoch seconds)."""

    digit: str
    at: float


@dataclass(frozen=True, slots=True)
class ConsentDecision:
    """Everything the ledger keeps about one call's consent decision.

    ``decision_id`` (a UUID string chosen by the driver) is the idempotency key.
    """

    decision_id: str
    driver: str
    channel_id: str
    channel_name: str
    uniqueid: str
    linkedid: str
    asterisk_id: str
    instance_id: str
    caller_number: str
    caller_name: str
    called_number: str
    parties: tuple[PartyRecord, ...]
    mode: Mode
    policy_rows: tuple[str, ...]
    policy_version: str
    prompt_id: str | None
    language: str
    keys: tuple[KeyPress, ...]
    outcome: Outcome
    reason: str
    offered_at: float
    answered_at: float | None
    disclosure_started_at: float | None
    disclosure_finished_at: float | None
    decided_at: float
    recording_path: str | None

    @property
    def record(self) -> bool:
        """True when the call is to be recorded."""
        return self.outcome.records
