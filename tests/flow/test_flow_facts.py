"""Ledger facts as the driver builds them: the kinds registry, payload rules, effective outcome."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import pytest

from asterisk_recorder.errors import LedgerError
from asterisk_recorder.flow.facts import (
    CALL_FATE,
    CALL_HAND_BACK_FAILED,
    CALL_HANDED_BACK,
    FACT_KINDS,
    MAX_PAYLOAD_KEYS,
    LedgerFact,
    effective_outcome,
)

DECISION = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
T = 1763900004.5


def fact(kind: str = CALL_HANDED_BACK, **changes: Any) -> LedgerFact:
    """A valid ``call.handed_back`` fact; ``changes`` override fields."""
    base: dict[str, Any] = {
        "kind": kind,
        "decision_id": DECISION,
        "at": T,
        "actor": "ctl-1",
        "payload": {"told": "record", "attempts": 1},
    }
    base.update(changes)
    return LedgerFact(**base)


SEALER_KINDS = ("recording.closed", "recording.absent", "recording.sealed",
                "recording.stored", "recording.quarantined")


def test_registry_holds_the_channel_fate_kinds_and_reserves_recording_kinds() -> None:
    """call.*, recording.key_*, the sealer's, holds' and disposal's kinds are strict; other
    recording.* kinds (paused, resumed, accessed) accept any payload until defined."""
    assert {CALL_HANDED_BACK, CALL_HAND_BACK_FAILED, CALL_FATE} <= set(FACT_KINDS)
    reserved = {
        k for k in FACT_KINDS if k.startswith("recording.") and not k.startswith("recording.key_")
        and k not in SEALER_KINDS and FACT_KINDS[k].fields is None
    }
    assert reserved == {"recording.accessed"}
    assert FACT_KINDS["recording.disposed"].fields is not None
    assert FACT_KINDS["recording.hold_placed"].fields is not None
    assert all(FACT_KINDS[k].fields is None for k in reserved)
    assert all(FACT_KINDS[k].fields is not None for k in SEALER_KINDS)
    assert FACT_KINDS["recording.closed"].decision == "required"
    assert FACT_KINDS["recording.quarantined"].decision == "optional"
    assert FACT_KINDS["recording.key_destroyed"].fields is not None
    assert FACT_KINDS["recording.key_destroyed"].decision == "none"
    assert all(FACT_KINDS[k].fields is not None for k in FACT_KINDS if k.startswith("call."))


def test_recording_closed_needs_its_file_facts_and_refuses_strays() -> None:
    """recording.closed carries file, bytes, sha256 and format; unknown keys are refused."""
    good = {"file": "2026/12/04/x.wav", "bytes": 44, "sha256": "0" * 64, "format": "wav"}
    assert fact("recording.closed", payload=good).payload["bytes"] == 44
    with pytest.raises(LedgerError, match="payload bytes is required"):
        fact("recording.closed", payload={k: v for k, v in good.items() if k != "bytes"})
    with pytest.raises(LedgerError, match="unexpected payload keys"):
        fact("recording.closed", payload={**good, "caller": "+12125550100"})
    with pytest.raises(LedgerError, match="is not one of"):
        fact("recording.quarantined", payload={"file": "x.wav", "reason": "because"})


def test_unknown_kind_is_refused_naming_the_known_kinds() -> None:
    """A kind not in the registry is refused, and the message lists what is known."""
    with pytest.raises(LedgerError, match=r"unknown fact kind 'call\.teleported'.*call\.fate"):
        fact("call.teleported")


@pytest.mark.parametrize("kind", ["Call.fate", "call", "call..fate", "call.fate;drop", ""])
def test_kind_that_is_not_a_dotted_lowercase_name_is_refused(kind: str) -> None:
    """Kinds are dotted lowercase names, never free text."""
    with pytest.raises(LedgerError, match="not a dotted lowercase name"):
        fact(kind)


def test_channel_fate_kinds_require_a_decision() -> None:
    """call.* facts must name the decision they are about."""
    with pytest.raises(LedgerError, match="must name the decision"):
        fact(decision_id=None)


def test_decision_id_and_fact_id_must_be_uuids() -> None:
    """Ids that are not UUIDs are refused on construction."""
    with pytest.raises(LedgerError, match="decision_id 'call-42' is not a UUID"):
        fact(decision_id="call-42")
    with pytest.raises(LedgerError, match="fact_id 'x' is not a UUID"):
        fact(fact_id="x")


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"told": "maybe"}, "told = 'maybe' is not one of record, skip"),
        ({}, "told is required"),
        ({"told": "record", "attempts": "3"}, "attempts must be int, not str"),
        ({"told": "record", "attempts": True}, "attempts must be int, not a bool"),
        ({"told": "record", "colour": "red"}, r"unexpected payload keys \['colour'\]"),
        ({"told": "record", "Bad Key": 1}, "is not a lowercase name"),
        ({"told": "record", "attempts": [1]}, "has type list"),
    ],
)
def test_payload_breaking_the_kind_schema_is_refused(payload: dict[str, Any], message: str) -> None:
    """Strict kinds accept only their declared fields, with the declared types and choices."""
    with pytest.raises(LedgerError, match=message):
        fact(payload=payload)


def test_reserved_recording_kind_still_requires_flat_scalars_within_bounds() -> None:
    """Open payloads are still flat JSON scalars, finite, 64-bit, within MAX_PAYLOAD_KEYS keys."""
    ok = fact("recording.accessed", payload={"file": "a.wav", "bytes": 44, "rate": 8000.0})
    assert 44 == ok.payload["bytes"]
    with pytest.raises(LedgerError, match="not a finite number"):
        fact("recording.accessed", payload={"seconds": math.nan})
    with pytest.raises(LedgerError, match="outside 64-bit range"):
        fact("recording.accessed", payload={"bytes": 2**64})
    with pytest.raises(LedgerError, match=f"at most {MAX_PAYLOAD_KEYS}"):
        fact("recording.accessed", payload={f"k{i}": i for i in range(MAX_PAYLOAD_KEYS + 1)})
    with pytest.raises(LedgerError, match="inner has type dict"):
        fact("recording.accessed", payload={"inner": {"nested": 1}})


def test_time_and_actor_are_checked() -> None:
    """A time that is not finite, or an empty actor, is refused."""
    with pytest.raises(LedgerError, match="not a finite number of epoch seconds"):
        fact(at=math.inf)
    with pytest.raises(LedgerError, match="actor must be a non-empty string"):
        fact(actor="  ")


def test_payload_is_frozen_against_later_changes() -> None:
    """Changing the dict passed in does not change the fact; the fact's payload is read-only."""
    payload: dict[str, Any] = {"told": "record"}
    built = fact(payload=payload)
    payload["told"] = "skip"
    assert "record" == built.payload["told"]
    with pytest.raises(TypeError):
        built.payload["told"] = "skip"  # type: ignore[index]
    assert "skip" == replace(built, payload={"told": "skip"}).payload["told"]


HANDED_RECORD = (CALL_HANDED_BACK, {"told": "record"})
HANDED_SKIP = (CALL_HANDED_BACK, {"told": "skip"})
FAILED = (CALL_HAND_BACK_FAILED, {"reason": "ARI 503", "attempts": 5})
FATE_UNRECORDED = (CALL_FATE, {"fate": "proceeded_unrecorded", "reason": "variables not set"})
FATE_RECORDED = (CALL_FATE, {"fate": "recorded", "reason": "MixMonitor started"})
FATE_HUNG_UP = (CALL_FATE, {"fate": "hung_up", "reason": "caller hung up"})
CLOSED = ("recording.closed", {"bytes": 160044})
ABSENT = ("recording.absent", {"reason": "no file after hangup"})


@pytest.mark.parametrize(
    ("outcome", "facts", "status", "mismatch", "summary"),
    [
        ("recorded_notified", [], "unconfirmed", False, "claimed recorded, not confirmed"),
        ("recorded_notified", [HANDED_RECORD], "recorded", False, "recorded (dialplan told"),
        (
            "recorded_notified",
            [FAILED],
            "not_recorded",
            True,
            "claimed recorded, hand-back failed: not recorded (ARI 503)",
        ),
        ("recorded_notified", [FAILED, HANDED_RECORD], "recorded", False, "recorded"),
        (
            "recorded_consented",
            [FAILED, FATE_UNRECORDED],
            "not_recorded",
            True,
            "claimed recorded, proceeded unrecorded: not recorded (variables not set)",
        ),
        ("recorded_notified", [HANDED_RECORD, FATE_HUNG_UP], "not_recorded", True, "hung up"),
        ("recorded_notified", [FATE_RECORDED], "recorded", False, "call fate recorded"),
        ("recorded_notified", [FATE_RECORDED, ABSENT], "not_recorded", True, "recording absent"),
        ("recorded_notified", [FAILED, CLOSED], "recorded", False, "the recording exists"),
        ("not_recorded_opted_out", [HANDED_SKIP], "not_recorded", False, "dialplan told skip"),
        (
            "recorded_notified",
            [HANDED_SKIP],
            "not_recorded",
            True,
            "claimed recorded, dialplan told skip: not recorded",
        ),
        ("not_recorded_opted_out", [], "not_recorded", False, "not recorded"),
        ("not_recorded_opted_out", [CLOSED], "recorded", True, "but the recording exists"),
    ],
)
def test_effective_outcome_says_recorded_only_when_a_fact_confirms_it(
    outcome: str,
    facts: list[tuple[str, dict[str, Any]]],
    status: str,
    mismatch: bool,
    summary: str,
) -> None:
    """A recorded_* decision is "recorded" only with a confirming fact; denials are flagged."""
    effective = effective_outcome(outcome, facts)
    assert (status, mismatch) == (effective.status, effective.mismatch)
    assert summary in effective.summary
    assert effective.claimed == outcome.startswith("recorded_")
