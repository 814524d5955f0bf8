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

__all__ = [
    "COUNTED_EFFECTS",
    "ConsentDecision",
    "KeyEffect",
    "KeyPhase",
    "KeyPress",
    "Outcome",
    "PartyRecord",
]


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


class KeyPhase(enum.Enum):
    """When a key arrived, relative to the disclosure."""

    BEFORE_PROMPT = "before_prompt"
    """No disclosure had started yet (type-ahead, e.g. left over from an IVR menu)."""
    DURING_PROMPT = "during_prompt"
    """While a disclosure prompt was playing (or about to play again, on a replay)."""
    AFTER_PROMPT = "after_prompt"
    """After the prompt ended, in the input window."""


class KeyEffect(enum.Enum):
    """What a key did to the decision."""

    CONSENT = "consent"
    """Opt-in: the accept key, pressed after the prompt named it; it decided (recorded)."""
    DECLINE = "decline"
    """Opt-in: the decline key; it decided (not recorded)."""
    OPT_OUT = "opt_out"
    """Opt-out: the refuse key; it decided (not recorded)."""
    TYPE_AHEAD = "type_ahead"
    """Pressed before any disclosure started: flushed, counts as nothing."""
    TOO_EARLY = "too_early"
    """Opt-in: the accept key before the prompt named it: not consent (press again later)."""
    INVALID = "invalid"
    """After the prompt, not a key of the mode: the prompt plays again (or the flow gives up)."""
    NO_EFFECT = "no_effect"
    """During the prompt, not a key of the mode: kept as evidence only."""


COUNTED_EFFECTS = frozenset({KeyEffect.CONSENT, KeyEffect.DECLINE, KeyEffect.OPT_OUT})
"""Effects of a key that made the decision."""


@dataclass(frozen=True, slots=True)
class KeyPress:
    """One DTMF digit the caller pressed: when, relative to which prompt, and what it did.

    Attributes:
        digit: the key.
        at: when it arrived (epoch seconds).
        prompt_started_at: ``PromptStarted`` of the prompt play the key came during or after
            (None: that play had not started, e.g. type-ahead; or a record older than these
            fields). ``at - prompt_started_at`` is the key's offset into the prompt.
        phase: before / during / after the prompt (None: a record older than these fields).
        effect: what the key did (None: a record older than these fields).
    """

    digit: str
    at: float
    prompt_started_at: float | None = None
    phase: KeyPhase | None = None
    effect: KeyEffect | None = None

    @property
    def counted(self) -> bool:
        """True when this key made the decision (consent, decline or opt-out)."""
        return self.effect in COUNTED_EFFECTS

    @property
    def offset(self) -> float | None:
        """Seconds from the start of its prompt play to the key (None: no play had started)."""
        return None if self.prompt_started_at is None else self.at - self.prompt_started_at


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
