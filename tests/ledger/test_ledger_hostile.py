"""Hostile caller-controlled text is stored safely (reversibly) and never costs a decision."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from asterisk_recorder.flow.decision import ConsentDecision, PartyRecord
from asterisk_recorder.ledger import Ledger, StoreReceipt
from asterisk_recorder.ledger.admin import export_number, show_call
from asterisk_recorder.ledger.database import connect_app
from asterisk_recorder.ledger.keys import DigestKey
from asterisk_recorder.ledger.text import MAX_CHARS, clean, restore
from asterisk_recorder.ledger.verify import verify_chain
from asterisk_recorder.policy.modes import Mode
from asterisk_recorder.settings import LedgerSettings

Factory = Callable[..., ConsentDecision]
INVALID_UTF8 = b"Jos\xe9 \xff\xfe caf\xc3".decode("utf-8", "surrogateescape")

HOSTILE = {
    "quotes": 'O\'Brien "the" `boss`; DROP TABLE decisions; --',
    "nul": "Alice\x00Bob",
    "ten_kb": "A" * 10_240,
    "lone_surrogate": "bad \ud800 half",
    "invalid_utf8": INVALID_UTF8,
    "dialplan": "${SHELL(rm -rf /)},)|&\n\r\tX",
    "backslashes": "C:\\x00\\u0000\\\\",
    "path": "../../etc/passwd",
    "json": '{"a": [1, 2]} \\u0000',
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
async def test_hostile_caller_name_and_number_are_stored_and_exported_intact(
    ledger_dsn: str,
    ledger_settings: LedgerSettings,
    decision_factory: Factory,
    digest_key: DigestKey,
    name: str,
) -> None:
    """Each hostile value is committed (not spooled, not lost), exported, and restorable."""
    value = HOSTILE[name]
    number = "+1" + value
    decision = decision_factory(
        caller_name=value,
        caller_number=number,
        channel_name="PJSIP/" + value,
        parties=(PartyRecord("caller", number, "unknown", "unknown", Mode.OPT_IN),),
    )
    async with Ledger.open(ledger_dsn, ledger_settings) as ledger:
        receipt = await ledger.store(decision)

    assert StoreReceipt(decision.decision_id, spooled=False) == receipt
    conn = await connect_app(ledger_dsn)
    try:
        exported = await export_number(conn, digest_key, number)
        report = await verify_chain(conn, digest_key)
    finally:
        await conn.close()
    assert [decision.decision_id] == [row["decision_id"] for row in exported]
    row = exported[0]
    notes = row["text_notes"]
    assert value == restore(row["caller_name"], notes.get("caller_name"))
    assert number == restore(row["caller_number"], notes.get("caller_number"))
    assert "PJSIP/" + value == restore(row["channel_name"], notes.get("channel_name"))
    assert report.ok


async def test_hostile_text_survives_the_spool_and_replays(
    ledger_dsn: str,
    ledger_settings: LedgerSettings,
    decision_factory: Factory,
    digest_key: DigestKey,
) -> None:
    """Lone surrogates and NUL round-trip through the spool file and replay."""
    decision = decision_factory(caller_name=INVALID_UTF8 + "\x00", caller_number=INVALID_UTF8)
    unreachable = "postgresql://postgres@/postgres?host=/nonexistent-socket-dir"
    async with Ledger.open(unreachable, ledger_settings, retry_interval=10) as ledger:
        assert (await ledger.store(decision)).spooled
    async with Ledger.open(ledger_dsn, ledger_settings) as ledger:
        for _ in range(500):
            if ledger.healthy:
                break
            await asyncio.sleep(0.02)

    conn = await connect_app(ledger_dsn)
    try:
        exported = await export_number(conn, digest_key, INVALID_UTF8)
    finally:
        await conn.close()
    assert 1 == len(exported)
    note = exported[0]["text_notes"]["caller_name"]
    assert INVALID_UTF8 + "\x00" == restore(exported[0]["caller_name"], note)


def test_oversized_text_is_truncated_with_its_original_length_noted() -> None:
    """Beyond MAX_CHARS the value is cut and the note keeps the original size."""
    cleaned = clean("x" * (MAX_CHARS + 10))

    assert MAX_CHARS == len(cleaned.text)
    assert {
        "escaped": False,
        "truncated": True,
        "original_chars": MAX_CHARS + 10,
        "original_bytes": MAX_CHARS + 10,
    } == cleaned.note


def test_invalid_utf8_notes_the_original_byte_length() -> None:
    """The note records how many bytes Asterisk sent, invalid ones included."""
    raw = b"caf\xc3 \xff"
    cleaned = clean(raw.decode("utf-8", "surrogateescape"))

    assert cleaned.note is not None
    assert len(raw) == cleaned.note["original_bytes"]
    assert "\\udcc3" in cleaned.text


def test_clean_text_is_returned_unchanged_without_a_note() -> None:
    """Ordinary text, backslashes included, is stored as is."""
    assert (r"Zoë \d", None) == (clean(r"Zoë \d").text, clean(r"Zoë \d").note)


async def test_show_call_with_hostile_id_finds_nothing_and_does_not_fail(
    ledger_dsn: str, tmp_path: Path
) -> None:
    """A hostile call id is a value, never SQL."""
    conn = await connect_app(ledger_dsn)
    try:
        assert [] == await show_call(conn, "x' OR '1'='1\x00" + "\ud800")
    finally:
        await conn.close()
