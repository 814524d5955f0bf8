"""Key timing in the ledger: phase, offset into the prompt and effect are hashed, shown, spooled.

Keys written before these fields existed keep their exact canonical bytes, so chains stored by
earlier versions still verify, and old and new rows verify side by side.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

import asyncpg
import pytest
from ledger_helpers import make_decision

from asterisk_recorder.flow.decision import ConsentDecision, KeyEffect, KeyPhase, KeyPress
from asterisk_recorder.ledger import Ledger
from asterisk_recorder.ledger.admin import show_call
from asterisk_recorder.ledger.database import connect_app
from asterisk_recorder.ledger.keys import DigestKey
from asterisk_recorder.ledger.records import build_decision_record
from asterisk_recorder.ledger.spool import decision_from_dict, decision_to_dict
from asterisk_recorder.ledger.verify import VerifyReport, verify_chain
from asterisk_recorder.settings import LedgerSettings

Factory = Callable[..., ConsentDecision]

STARTED = 1763900000.6
"""The prompt start of the decisions built here (``disclosure_started_at`` of make_decision)."""

TIMED_KEYS = (
    KeyPress("1", 1763900000.4, None, KeyPhase.BEFORE_PROMPT, KeyEffect.TYPE_AHEAD),
    KeyPress("1", 1763900000.611, STARTED, KeyPhase.DURING_PROMPT, KeyEffect.TOO_EARLY),
    KeyPress("1", 1763900003.25, STARTED, KeyPhase.AFTER_PROMPT, KeyEffect.CONSENT),
)
"""Type-ahead, an accept key 11 ms into the prompt (not consent), then consent after it."""

OLD_BODY_SHA256 = "38a8ff8a7d5238a3fb0fbad13f5aee7ba9fa768daff9984d9a4ec926a6fc1ff8"
"""SHA-256 of the canonical body below as built before key timing existed (commit 4588eb1)."""


def timed(**changes: object) -> ConsentDecision:
    """A consented opt-in decision whose keys carry their timing."""
    return make_decision(keys=TIMED_KEYS, **changes)


async def _verify(dsn: str, key: DigestKey) -> VerifyReport:
    conn = await connect_app(dsn)
    try:
        return await verify_chain(conn, key)
    finally:
        await conn.close()


def test_a_key_without_timing_encodes_exactly_as_before(digest_key: DigestKey) -> None:
    """Bytes of a decision whose keys have no timing are those earlier versions hashed."""
    decision = make_decision(decision_id="5b0c0a2e-8f0d-4c8e-9a51-0f1e2d3c4b5a")

    body = build_decision_record(decision, digest_key).body

    assert OLD_BODY_SHA256 == hashlib.sha256(body).hexdigest()
    assert b'"keys":[{"at_us":1763900003250000,"digit":"1"}]' in body


def test_timed_keys_carry_phase_offset_effect_and_counted(digest_key: DigestKey) -> None:
    """Each key's canonical entry says when it came relative to its prompt and if it counted."""
    keys = build_decision_record(timed(), digest_key).fields["keys"]

    assert [
        {"digit": "1", "at_us": 1763900000400000, "phase": "before_prompt",
         "effect": "type_ahead", "counted": False, "offset_us": None},
        {"digit": "1", "at_us": 1763900000611000, "phase": "during_prompt",
         "effect": "too_early", "counted": False, "offset_us": 11000},
        {"digit": "1", "at_us": 1763900003250000, "phase": "after_prompt",
         "effect": "consent", "counted": True, "offset_us": 2650000},
    ] == keys


async def test_timed_keys_are_stored_shown_and_verify_beside_old_rows(
    ledger_dsn: str, ledger_settings: LedgerSettings, digest_key: DigestKey
) -> None:
    """An old-style row and a timed row share a chain that verifies; show gives offset_ms."""
    old, new = make_decision(), timed(uniqueid="1763900000.99")
    async with Ledger.open(ledger_dsn, ledger_settings) as ledger:
        await ledger.store(old)
        await ledger.store(new)

    report = await _verify(ledger_dsn, digest_key)
    conn = await connect_app(ledger_dsn)
    try:
        shown = await show_call(conn, "1763900000.99")
        old_view = await show_call(conn, old.decision_id)
    finally:
        await conn.close()

    assert (True, 2) == (report.ok, report.rows)
    assert [
        {"digit": "1", "at": "2025-11-23T12:13:20.400000Z", "phase": "before_prompt",
         "offset_ms": None, "effect": "type_ahead", "counted": False},
        {"digit": "1", "at": "2025-11-23T12:13:20.611000Z", "phase": "during_prompt",
         "offset_ms": 11.0, "effect": "too_early", "counted": False},
        {"digit": "1", "at": "2025-11-23T12:13:23.250000Z", "phase": "after_prompt",
         "offset_ms": 2650.0, "effect": "consent", "counted": True},
    ] == shown[0]["keys"]
    assert [{"digit": "1", "at": "2025-11-23T12:13:23.250000Z"}] == old_view[0]["keys"]


async def test_editing_whether_a_key_counted_breaks_the_chain(
    ledger_dsn: str, ledger_settings: LedgerSettings, owner: asyncpg.Connection,
    digest_key: DigestKey,
) -> None:
    """The timing members are hashed: flipping a too-early key to counted is reported."""
    decision = timed()
    async with Ledger.open(ledger_dsn, ledger_settings) as ledger:
        await ledger.store(decision)
    async with owner.transaction():
        await owner.execute("SET LOCAL session_replication_role = replica")
        await owner.execute(
            "UPDATE decisions SET keys = jsonb_set(keys, '{1,counted}', 'true') WHERE seq = 1"
        )

    report = await _verify(ledger_dsn, digest_key)

    assert (False, 1, decision.decision_id) == (report.ok, report.position, report.entry_id)
    assert "edited" in (report.reason or "")


def test_spool_keeps_key_timing_and_reads_lines_written_without_it() -> None:
    """A spooled decision round-trips its key timing; an older line's keys load without it."""
    decision = timed()
    data = decision_to_dict(decision)
    old = json.loads(json.dumps(data))
    old["keys"] = [{"digit": "1", "at": 1763900003.25}]

    assert decision == decision_from_dict(json.loads(json.dumps(data)))
    assert (KeyPress("1", 1763900003.25),) == decision_from_dict(old).keys


@pytest.mark.parametrize(("key", "counted"), [(TIMED_KEYS[0], False), (TIMED_KEYS[2], True),
                                              (KeyPress("1", 1.0), False)])
def test_counted_is_true_only_for_a_deciding_key(key: KeyPress, counted: bool) -> None:
    """``KeyPress.counted``: consent, decline and opt-out only; unknown effect is not counted."""
    assert counted is key.counted
