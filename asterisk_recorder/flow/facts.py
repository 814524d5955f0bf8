"""Ledger facts: what happened to a call after its consent decision, as evidence for the ledger.

This module owns the ``LedgerFact`` record a driver hands to a ``FactSink``, the registry of
known fact kinds with the payload each one allows (``FACT_KINDS``), the structural check every
fact passes (``check_fact``) and the reading of a decision together with its facts
(``effective_outcome``). Pure standard library; no I/O, no clock, no ids generated here: the
driver supplies the time, and the ledger assigns a fact id when the driver gives none.

A fact is linked to the decision it is about by ``decision_id``. The ``call.*`` kinds are the
channel's fate after the decision (``call.handed_back``, ``call.hand_back_failed``,
``call.fate``); the ``recording.*`` kinds belong to the recording lifecycle: ``closed``,
``absent``, ``sealed`` and ``quarantined`` have strict payloads (the sealer writes them), so do
the holds and disposal kinds (``hold_placed``, ``hold_released``, ``disposing``, ``disposed``,
``disposal_cancelled``, ``key_destroyed``), the pause kinds (``paused``, ``resumed``, written by
the controller's pause driver) and ``redacted``; ``accessed`` is reserved and accepts any
well-formed payload until that lifecycle defines its own.
"""

from __future__ import annotations

import math
import re
import types
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from asterisk_recorder.errors import LedgerError
from asterisk_recorder.flow.pause import PAUSE_SOURCES

__all__ = [
    "CALL_FATE",
    "CALL_HANDED_BACK",
    "CALL_HAND_BACK_FAILED",
    "DISPOSAL_REASONS",
    "FACT_KINDS",
    "FATES",
    "HOLD_SCOPES",
    "MAX_ACTOR_CHARS",
    "MAX_PAYLOAD_KEYS",
    "MAX_TEXT_CHARS",
    "QUARANTINE_REASONS",
    "RECORDING_DISPOSAL_CANCELLED",
    "RECORDING_DISPOSED",
    "RECORDING_DISPOSING",
    "RECORDING_HOLD_PLACED",
    "RECORDING_HOLD_RELEASED",
    "RECORDING_KEY_CREATED",
    "RECORDING_KEY_DESTROYED",
    "RECORDING_KEY_RECOVERED",
    "TOLD",
    "Effective",
    "FactField",
    "FactKind",
    "LedgerFact",
    "Scalar",
    "check_fact",
    "effective_outcome",
]

Scalar = str | int | float | bool | None
"""A payload value: JSON scalars only (no nesting)."""

CALL_HANDED_BACK = "call.handed_back"
CALL_HAND_BACK_FAILED = "call.hand_back_failed"
CALL_FATE = "call.fate"
RECORDING_KEY_CREATED = "recording.key_created"
RECORDING_KEY_DESTROYED = "recording.key_destroyed"
RECORDING_KEY_RECOVERED = "recording.key_recovered"
RECORDING_HOLD_PLACED = "recording.hold_placed"
RECORDING_HOLD_RELEASED = "recording.hold_released"
RECORDING_DISPOSING = "recording.disposing"
RECORDING_DISPOSED = "recording.disposed"
RECORDING_DISPOSAL_CANCELLED = "recording.disposal_cancelled"
HOLD_SCOPES = ("decision", "number", "dates")
"""What a legal hold covers (``recording.hold_placed`` ``scope``)."""
DISPOSAL_REASONS = ("retention", "erasure", "redaction")
"""Why a sealed recording is disposed of: its retention passed, its number was erased, or a
redacted version replaced it."""

TOLD = ("record", "skip")
"""What dialplan can have been told (``RECORDER_DECISION``)."""
FATES = ("recorded", "proceeded_unrecorded", "hung_up")
"""What finally happened to the channel (``call.fate``)."""

MAX_PAYLOAD_KEYS = 24
"""Most keys a payload may have."""
MAX_TEXT_CHARS = 1024
"""Longest text value the ledger keeps in a payload; longer ones are truncated (and noted)."""
MAX_ACTOR_CHARS = 256
"""Longest actor the ledger keeps; longer ones are truncated (and noted)."""
_INT_LIMIT = 2**63
_KEY_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_KIND_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")


@dataclass(frozen=True, slots=True)
class FactField:
    """One payload field of a strict fact kind.

    Attributes:
        types: the Python types allowed (``bool`` is never accepted as an ``int``).
        required: the field must be present (and not ``None``).
        choices: when given, the only values allowed.
    """

    types: tuple[type, ...]
    required: bool = False
    choices: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class FactKind:
    """What a fact kind requires.

    Attributes:
        name: the dotted kind, e.g. ``call.fate``.
        decision: ``required`` (must name a decision), ``optional`` or ``none``.
        fields: the payload fields allowed; ``None`` accepts any well-formed payload
            (reserved kinds whose payload is not defined yet).
        meaning: one line for operators (``docs/ledger.md``).
    """

    name: str
    decision: str
    fields: Mapping[str, FactField] | None
    meaning: str


_TEXT = (str,)
_INT = (int,)
_NUMBER = (int, float)


def _kind(
    name: str, decision: str, meaning: str, fields: Mapping[str, FactField] | None = None
) -> FactKind:
    return FactKind(
        name, decision, None if fields is None else types.MappingProxyType(dict(fields)), meaning
    )


QUARANTINE_REASONS = (
    "orphan", "declined", "replaced", "edited", "empty", "duplicate", "misplaced", "pci",
)
"""Why the sealer quarantined a file (``recording.quarantined`` ``reason``): ``edited`` is the
same file written to after its close, ``replaced`` another file renamed onto its name, ``pci``
a recording whose paused spans are not silent or whose unpaused audio holds DTMF tones."""

_RECORDING_FACTS = (
    _kind(
        "recording.closed",
        "required",
        "MixMonitor closed the file (name, bytes, duration, format, rate, digest at close)",
        {
            "file": FactField(_TEXT, required=True),
            "bytes": FactField(_INT, required=True),
            "sha256": FactField(_TEXT, required=True),
            "format": FactField(_TEXT, required=True),
            "duration_s": FactField(_NUMBER),
            "sample_rate": FactField(_INT),
            "channels": FactField(_INT),
            "empty": FactField((bool,)),
            "header_complete": FactField((bool,)),
            "source": FactField(_TEXT, choices=("inotify", "scan")),
            "inode": FactField(_INT),
        },
    ),
    _kind(
        "recording.absent",
        "required",
        "a decision said record but no usable file appeared (reason)",
        {
            "reason": FactField(_TEXT, required=True),
            "file": FactField(_TEXT),
            "waited_s": FactField(_NUMBER),
        },
    ),
    _kind(
        "recording.sealed",
        "required",
        "the file was sealed at rest and its plaintext removed (digests, key id)",
        {
            "file": FactField(_TEXT, required=True),
            "recording_id": FactField(_TEXT),
            "plain_sha256": FactField(_TEXT, required=True),
            "sealed_sha256": FactField(_TEXT, required=True),
            "kek_id": FactField(_TEXT, required=True),
            "plain_bytes": FactField(_INT),
            "sealed_bytes": FactField(_INT),
            "chunk_size": FactField(_INT),
            "chunks": FactField(_INT),
            "chunk_root": FactField(_TEXT),
            "retention_class": FactField(_TEXT),
            "retention_period": FactField(_TEXT),
            "retention_rule": FactField(_TEXT),
            "retain_until": FactField(_NUMBER),
            "lag_s": FactField(_NUMBER),
            "pauses": FactField(_INT),
            "pause_spans": FactField(_TEXT),
            "pci_passed": FactField((bool,)),
            "pci_spans": FactField(_TEXT),
            "pci_silent_spans": FactField(_INT),
            "pci_dtmf_hits": FactField(_INT),
            "pci_dtmf_first_s": FactField(_NUMBER),
            "pci_detector": FactField(_TEXT),
            "pci_reason": FactField(_TEXT),
            "redacted_from": FactField(_TEXT),
        },
    ),
    _kind(
        "recording.paused",
        "required",
        "the recording was paused (MixMonitorMute both, confirmed by Asterisk): offset into the "
        "recording, source (feature, api, context, queue, console), actor, reason",
        {
            "offset_s": FactField(_NUMBER, required=True),
            "source": FactField(_TEXT, required=True, choices=PAUSE_SOURCES),
            "reason": FactField(_TEXT, required=True),
            "channel": FactField(_TEXT),
            "uniqueid": FactField(_TEXT),
            "linkedid": FactField(_TEXT),
            "mixmonitor_id": FactField(_TEXT),
            "recording_started_at": FactField(_NUMBER),
            "pause_no": FactField(_INT),
            "payment": FactField(_TEXT),
        },
    ),
    _kind(
        "recording.resumed",
        "required",
        "the recording was resumed (or ended while paused): offset, source (feature, api, "
        "context, queue, watchdog, close, console), actor, reason, the pause it ends",
        {
            "offset_s": FactField(_NUMBER, required=True),
            "source": FactField(_TEXT, required=True, choices=PAUSE_SOURCES),
            "reason": FactField(_TEXT, required=True),
            "pause_fact_id": FactField(_TEXT, required=True),
            "paused_s": FactField(_NUMBER),
            "channel": FactField(_TEXT),
        },
    ),
    _kind(
        "recording.redacted",
        "required",
        "a new sealed version of the recording replaces a span with silence (who, why, the "
        "span, both versions' digests); the old version is disposed of next",
        {
            "from_s": FactField(_NUMBER, required=True),
            "to_s": FactField(_NUMBER, required=True),
            "reason": FactField(_TEXT, required=True),
            "old_file": FactField(_TEXT, required=True),
            "old_sealed_sha256": FactField(_TEXT, required=True),
            "new_file": FactField(_TEXT, required=True),
            "new_sealed_sha256": FactField(_TEXT, required=True),
            "new_plain_sha256": FactField(_TEXT),
            "kek_id": FactField(_TEXT),
            "version": FactField(_INT),
        },
    ),
    _kind(
        "recording.stored",
        "required",
        "the sealed file was uploaded to the object store, read back and verified there; the "
        "local copy is removed next (location, digests, Object Lock retain-until)",
        {
            "location": FactField(_TEXT, required=True),
            "sealed_sha256": FactField(_TEXT, required=True),
            "sealed_bytes": FactField(_INT, required=True),
            "object_sha256": FactField(_TEXT, required=True),
            "recording_id": FactField(_TEXT),
            "store": FactField(_TEXT),
            "file": FactField(_TEXT),
            "retain_until": FactField(_TEXT),
            "lock_mode": FactField(_TEXT),
        },
    ),
    _kind(
        "recording.quarantined",
        "optional",
        "a file was sealed into quarantine instead of as its decision's recording (orphan, "
        "declined, replaced, edited, ...), or deleted when it held no audio (empty)",
        {
            "file": FactField(_TEXT, required=True),
            "reason": FactField(_TEXT, required=True, choices=QUARANTINE_REASONS),
            "detail": FactField(_TEXT),
            "bytes": FactField(_INT),
            "sha256": FactField(_TEXT),
            "moved_to": FactField(_TEXT),
            "recording_id": FactField(_TEXT),
            "plain_sha256": FactField(_TEXT),
            "sealed_sha256": FactField(_TEXT),
            "kek_id": FactField(_TEXT),
            "sealed_bytes": FactField(_INT),
            "deleted": FactField((bool,)),
        },
    ),
)

_RESERVED_RECORDING = (
    ("recording.accessed", "someone opened the recording (who, why)"),
)

_DISPOSAL_FIELDS = {
    "file": FactField(_TEXT, required=True),
    "location": FactField(_TEXT, required=True),
    "sealed_sha256": FactField(_TEXT, required=True),
    "kek_id": FactField(_TEXT, required=True),
    "retention_class": FactField(_TEXT),
    "reason": FactField(_TEXT, required=True, choices=DISPOSAL_REASONS),
    "run_id": FactField(_TEXT, required=True),
}

_HOLD_FACTS = (
    _kind(
        RECORDING_HOLD_PLACED,
        "optional",
        "a legal hold: nothing it covers is disposed of until it is released (scope: a "
        "decision, a number's keyed digest, or a range of decision times; reason)",
        {
            "scope": FactField(_TEXT, required=True, choices=HOLD_SCOPES),
            "number_digest": FactField(_TEXT),
            "from_at": FactField(_NUMBER),
            "to_at": FactField(_NUMBER),
            "reason": FactField(_TEXT, required=True),
        },
    ),
    _kind(
        RECORDING_HOLD_RELEASED,
        "optional",
        "a legal hold was released (hold id: the fact id of its recording.hold_placed; reason)",
        {
            "hold_id": FactField(_TEXT, required=True),
            "reason": FactField(_TEXT, required=True),
        },
    ),
    _kind(
        RECORDING_DISPOSING,
        "required",
        "disposal of a sealed recording is about to delete its file (written before the "
        "delete; a run that stops here is finished by the next one)",
        _DISPOSAL_FIELDS,
    ),
    _kind(
        RECORDING_DISPOSED,
        "required",
        "the sealed file of a recording was deleted (retention or erasure; outcome deleted, or "
        "already_gone when a resumed run found it deleted)",
        {**_DISPOSAL_FIELDS,
         "outcome": FactField(_TEXT, required=True, choices=("deleted", "already_gone"))},
    ),
    _kind(
        RECORDING_DISPOSAL_CANCELLED,
        "required",
        "an interrupted disposal was not finished: a hold placed since covers the recording",
        {
            "run_id": FactField(_TEXT, required=True),
            "hold_id": FactField(_TEXT, required=True),
            "sealed_sha256": FactField(_TEXT),
        },
    ),
)

_KEY_FIELDS = {
    "kek_id": FactField(_TEXT, required=True),
    "retention_class": FactField(_TEXT, required=True),
    "month": FactField(_TEXT, required=True),
    "fingerprint": FactField(_TEXT, required=True),
    "custody": FactField(_TEXT, choices=("file", "pkcs11")),
    "escrow": FactField(_TEXT),
}

FACT_KINDS: Mapping[str, FactKind] = types.MappingProxyType(
    {
        kind.name: kind
        for kind in (
            _kind(
                CALL_HANDED_BACK,
                "required",
                "variables set and the channel continued in dialplan; told: record or skip",
                {
                    "told": FactField(_TEXT, required=True, choices=TOLD),
                    "attempts": FactField(_INT),
                    "driver": FactField(_TEXT),
                },
            ),
            _kind(
                CALL_HAND_BACK_FAILED,
                "required",
                "setting the variables or continuing failed after every retry (reason)",
                {
                    "reason": FactField(_TEXT, required=True),
                    "attempts": FactField(_INT),
                    "told": FactField(_TEXT, choices=TOLD),
                    "driver": FactField(_TEXT),
                },
            ),
            _kind(
                CALL_FATE,
                "required",
                "what finally happened: recorded, proceeded_unrecorded or hung_up (reason)",
                {
                    "fate": FactField(_TEXT, required=True, choices=FATES),
                    "reason": FactField(_TEXT, required=True),
                    "driver": FactField(_TEXT),
                    "elapsed_s": FactField(_NUMBER),
                    "told": FactField(_TEXT, choices=TOLD),
                    "attempts": FactField(_INT),
                },
            ),
            *_RECORDING_FACTS,
            *(_kind(name, "optional", meaning) for name, meaning in _RESERVED_RECORDING),
            *_HOLD_FACTS,
            _kind(
                RECORDING_KEY_CREATED,
                "none",
                "a key-encryption key pair was created for a {retention class, month} bucket",
                _KEY_FIELDS,
            ),
            _kind(
                RECORDING_KEY_DESTROYED,
                "none",
                "a key-encryption private key was destroyed: its recordings are unreadable",
                {**_KEY_FIELDS, "reason": FactField(_TEXT, required=True)},
            ),
            _kind(
                RECORDING_KEY_RECOVERED,
                "none",
                "a key-encryption private key was rebuilt from M escrow shares and stored again",
                {**_KEY_FIELDS, "custodians": FactField(_TEXT, required=True)},
            ),
        )
    }
)
"""Every fact kind the ledger accepts. Add a kind here (and to docs/ledger.md) to use it."""


@dataclass(frozen=True, slots=True)
class LedgerFact:
    """One fact for the ledger's hash chain.

    Attributes:
        kind: a kind of ``FACT_KINDS``, e.g. ``call.fate``.
        decision_id: the decision (UUID text) this fact is about, or ``None`` when the kind
            allows it; the ledger refuses a fact naming a decision it does not hold.
        at: when it happened (epoch seconds, supplied by the driver).
        actor: who states it: the controller's instance id, or ``cli:user@host``.
        payload: a flat mapping of lowercase names to JSON scalars (see ``FACT_KINDS``);
            frozen on construction. Never personal data: facts are not erasable.
        fact_id: the idempotency key (UUID text); ``None`` lets the ledger assign one. Give a
            stable id when the same fact may be handed in twice.

    Raises:
        LedgerError: on construction, when the fact breaks a rule of ``check_fact``.
    """

    kind: str
    decision_id: str | None
    at: float
    actor: str
    payload: Mapping[str, Scalar] = field(default_factory=dict)
    fact_id: str | None = None

    def __post_init__(self) -> None:
        payload: object = self.payload
        if not isinstance(payload, Mapping):
            raise LedgerError(f"fact {self.kind!r}: payload must be a mapping, not {payload!r}")
        object.__setattr__(self, "payload", types.MappingProxyType(dict(payload)))
        check_fact(self)


def _uuid_text(value: object, what: str) -> None:
    if not isinstance(value, str):
        raise LedgerError(f"{what} {value!r} is not a UUID")
    try:
        uuid.UUID(value)
    except ValueError as exc:
        raise LedgerError(f"{what} {value!r} is not a UUID") from exc


def _check_value(kind: str, key: str, value: object) -> None:
    if value is None or isinstance(value, str | bool):
        return
    if isinstance(value, int):
        if not -_INT_LIMIT <= value < _INT_LIMIT:
            raise LedgerError(f"fact {kind}: payload {key} = {value} is outside 64-bit range")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise LedgerError(f"fact {kind}: payload {key} = {value!r} is not a finite number")
        return
    raise LedgerError(
        f"fact {kind}: payload {key} has type {type(value).__name__}; "
        "allowed: str, int, float, bool, None"
    )


def _check_field(kind: str, key: str, value: object, spec: FactField) -> None:
    if value is None:
        if spec.required:
            raise LedgerError(f"fact {kind}: payload {key} is required")
        return
    if isinstance(value, bool) and bool not in spec.types:
        raise LedgerError(f"fact {kind}: payload {key} must be {_names(spec.types)}, not a bool")
    if not isinstance(value, spec.types):
        raise LedgerError(
            f"fact {kind}: payload {key} must be {_names(spec.types)}, not {type(value).__name__}"
        )
    if spec.choices and value not in spec.choices:
        raise LedgerError(
            f"fact {kind}: payload {key} = {value!r} is not one of {', '.join(spec.choices)}"
        )


def _names(allowed: tuple[type, ...]) -> str:
    return " or ".join(t.__name__ for t in allowed)


def check_fact(fact: LedgerFact) -> None:
    """Check ``fact`` against the registry and the payload rules.

    Raises:
        LedgerError: unknown kind, missing or unexpected decision id, a decision or fact id
            that is not a UUID, a time that is not finite, an empty actor, or a payload that is
            not a flat mapping of at most ``MAX_PAYLOAD_KEYS`` lowercase names to JSON scalars
            of the kind's declared fields.
    """
    kind_value: object = fact.kind
    if not isinstance(kind_value, str) or not _KIND_RE.match(kind_value):
        raise LedgerError(f"fact kind {kind_value!r} is not a dotted lowercase name")
    spec = FACT_KINDS.get(kind_value)
    if spec is None:
        raise LedgerError(
            f"unknown fact kind {kind_value!r}; known kinds: {', '.join(sorted(FACT_KINDS))}"
        )
    kind = spec.name
    if fact.decision_id is None:
        if spec.decision == "required":
            raise LedgerError(f"fact {kind} must name the decision it is about")
    else:
        if spec.decision == "none":
            raise LedgerError(f"fact {kind} is not about a decision; give decision_id=None")
        _uuid_text(fact.decision_id, f"fact {kind}: decision_id")
    if fact.fact_id is not None:
        _uuid_text(fact.fact_id, f"fact {kind}: fact_id")
    at: object = fact.at
    if isinstance(at, bool) or not isinstance(at, int | float) or not math.isfinite(at):
        raise LedgerError(f"fact {kind}: time {at!r} is not a finite number of epoch seconds")
    actor: object = fact.actor
    if not isinstance(actor, str) or not actor.strip():
        raise LedgerError(f"fact {kind}: actor must be a non-empty string, not {actor!r}")
    payload = fact.payload
    if len(payload) > MAX_PAYLOAD_KEYS:
        raise LedgerError(
            f"fact {kind}: payload has {len(payload)} keys; at most {MAX_PAYLOAD_KEYS}"
        )
    for key, value in payload.items():
        key_value: object = key
        if not isinstance(key_value, str) or not _KEY_RE.match(key_value):
            raise LedgerError(
                f"fact {kind}: payload key {key_value!r} is not a lowercase name "
                "(a-z, 0-9, _; at most 40 characters)"
            )
        _check_value(kind, key, value)
    if spec.fields is None:
        return
    unknown = sorted(set(payload) - set(spec.fields))
    if unknown:
        raise LedgerError(
            f"fact {kind}: unexpected payload keys {unknown}; allowed: {', '.join(spec.fields)}"
        )
    for key, field_spec in spec.fields.items():
        _check_field(kind, key, payload.get(key), field_spec)


# -- reading a decision with its facts ---------------------------------------------------------

_RECORDED_OUTCOMES = frozenset({"recorded_consented", "recorded_notified", "recorded_no_notice"})
_EXISTS = frozenset({"recording.closed", "recording.sealed"})


@dataclass(frozen=True, slots=True)
class Effective:
    """What a decision together with its facts says happened.

    Attributes:
        status: ``recorded`` (a fact confirms it), ``not_recorded``, or ``unconfirmed`` (the
            decision says recorded and no fact confirms or denies it yet).
        claimed: the decision's outcome says recorded.
        mismatch: the facts contradict the decision (e.g. claimed recorded, hand-back failed).
        summary: one line for people, e.g. ``claimed recorded, hand-back failed: not recorded``.
    """

    status: str
    claimed: bool
    mismatch: bool
    summary: str


def effective_outcome(outcome: str, facts: Iterable[tuple[str, Mapping[str, object]]]) -> Effective:
    """Read a decision's outcome (its value, e.g. ``recorded_notified``) with its facts.

    ``facts`` are ``(kind, payload)`` pairs in chain order. "recorded" is reported only when a
    fact confirms it: a recording that exists (``recording.closed``/``recording.sealed``),
    dialplan told ``record`` (``call.handed_back``), or ``call.fate`` ``recorded``. A later
    ``call.handed_back`` supersedes an earlier ``call.hand_back_failed``.
    """
    claimed = outcome in _RECORDED_OUTCOMES
    exists = False
    absent: str | None = None
    fate: tuple[str, str] | None = None
    handed: tuple[bool, str] | None = None  # (told record, detail) of the last hand-back fact
    for kind, payload in facts:
        if kind in _EXISTS and payload.get("empty") is not True:
            exists = True  # an empty (header-only) file is no recording
        elif kind == "recording.absent":
            absent = _text(payload.get("reason"))
        elif kind == CALL_HANDED_BACK:
            told = _text(payload.get("told"))
            handed = (told == "record", f"dialplan told {told}")
        elif kind == CALL_HAND_BACK_FAILED:
            handed = (False, f"hand-back failed: {_text(payload.get('reason'))}")
        elif kind == CALL_FATE:
            fate = (_text(payload.get("fate")), _text(payload.get("reason")))
    # the strongest evidence first: the file, its absence, the final fate, the hand-back
    confirmed: bool | None = None
    denial = ""
    if exists:
        confirmed = True
    elif absent is not None:
        confirmed, denial = False, f"recording absent: {absent}"
    elif fate is not None:
        confirmed = fate[0] == "recorded"
        denial = f"{fate[0].replace('_', ' ')}: {fate[1]}"
    elif handed is not None:
        confirmed, denial = handed
    if confirmed is None:
        if claimed:
            return Effective(
                "unconfirmed", True, False, "claimed recorded, not confirmed by any fact"
            )
        return Effective("not_recorded", False, False, "not recorded")
    if confirmed:
        how = (
            "the recording exists"
            if exists
            else "call fate recorded"
            if fate is not None
            else "dialplan told record"
        )
        if claimed:
            return Effective("recorded", True, False, f"recorded ({how})")
        return Effective("recorded", False, True, f"decision says not recorded, but {how}")
    head, _, detail = denial.partition(": ")
    if claimed:
        why = f" ({detail})" if detail else ""
        return Effective(
            "not_recorded", True, True, f"claimed recorded, {head}: not recorded{why}"
        )
    return Effective("not_recorded", False, False, f"not recorded ({denial})")


def _text(value: object) -> str:
    return "not given" if value is None or value == "" else str(value)
