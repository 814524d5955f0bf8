"""Consent receipts: a third party checks a decision is in the signed log, with no database."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest

from asterisk_recorder.errors import LedgerError
from asterisk_recorder.flow.decision import ConsentDecision
from asterisk_recorder.ledger import Ledger
from asterisk_recorder.ledger.checkpoints import Checkpointer
from asterisk_recorder.ledger.database import connect_app
from asterisk_recorder.ledger.note import SigningKey
from asterisk_recorder.ledger.receipts import check_receipt, prove_decision
from asterisk_recorder.settings import LedgerSettings

Factory = Callable[..., ConsentDecision]


@pytest.fixture
def signing_key() -> SigningKey:
    """A fresh checkpoint signing key."""
    return SigningKey.generate("recorder.test/ledger")


@pytest.fixture
async def receipts(
    ledger_dsn: str,
    ledger_settings: LedgerSettings,
    decision_factory: Factory,
    signing_key: SigningKey,
) -> list[dict[str, Any]]:
    """Eleven decisions, one checkpoint, and the receipt of each."""
    ids = []
    async with Ledger.open(ledger_dsn, ledger_settings) as ledger:
        for _ in range(11):
            decision = decision_factory()
            await ledger.store(decision)
            ids.append(decision.decision_id)
    checkpointer = Checkpointer(ledger_dsn, signing_key, every=1000, interval=60.0)
    try:
        await checkpointer.cycle(force=True)
    finally:
        await checkpointer.close()
    conn = await connect_app(ledger_dsn)
    try:
        return [await prove_decision(conn, i) for i in ids]
    finally:
        await conn.close()


def test_every_receipt_checks_with_the_verifier_key_only(
    receipts: list[dict[str, Any]], signing_key: SigningKey
) -> None:
    """Each of the eleven receipts verifies offline and names its decision and position."""
    checked = [check_receipt(json.dumps(r), [signing_key.verifier()]) for r in receipts]

    assert [(c.seq, c.tree_size, c.outcome) for c in checked] == [
        (i, 11, "recorded_consented") for i in range(1, 12)
    ]
    assert [c.decision_id for c in checked] == [r["entry"]["id"] for r in receipts]
    body = receipts[0]["entry"]["body"]
    assert ("+12125550100" in body, "Alice" in body) == (False, False)  # only digests leave


def _tampered(receipt: dict[str, Any], change: Callable[[dict[str, Any]], None]) -> str:
    copy = json.loads(json.dumps(receipt))
    change(copy)
    return json.dumps(copy)


def _flip_proof(r: dict[str, Any]) -> None:
    raw = bytearray(base64.b64decode(r["inclusion_proof"][0]))
    raw[0] ^= 1
    r["inclusion_proof"][0] = base64.b64encode(bytes(raw)).decode()


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda r: r["entry"].update(body=r["entry"]["body"].replace(
            "recorded_consented", "not_recorded_opted_out")), "entry.hash"),
        (lambda r: (r["entry"].update(body=r["entry"]["body"].replace(
            "recorded_consented", "not_recorded_opted_out")), r["entry"].pop("hash")),
         "root"),
        (_flip_proof, "root"),
        (lambda r: r["inclusion_proof"].pop(), "proof"),
        (lambda r: r.update(leaf_index=r["leaf_index"] + 1), "leaf_index"),
        (lambda r: r["entry"].update(seq=r["entry"]["seq"] + 1), "entry.hash"),
        (lambda r: r.update(checkpoint=r["checkpoint"].replace("\n11\n", "\n12\n")), "signature"),
        (lambda r: r.update(format="other"), "format"),
        (lambda r: r["entry"].update(id="00000000-0000-0000-0000-000000000000"), "entry.id"),
        (lambda r: r.update(inclusion_proof=["%%%"]), "base64"),
    ],
)
def test_tampered_receipt_is_refused_naming_what_fails(
    receipts: list[dict[str, Any]],
    signing_key: SigningKey,
    change: Callable[[dict[str, Any]], None],
    reason: str,
) -> None:
    """Every edit of a receipt is refused with a message naming the part that fails."""
    with pytest.raises(LedgerError, match=reason):
        check_receipt(_tampered(receipts[4], change), [signing_key.verifier()])


def test_receipt_with_another_key_is_refused(receipts: list[dict[str, Any]]) -> None:
    """A verifier key that did not sign the checkpoint does not accept the receipt."""
    stranger = SigningKey.generate("recorder.test/ledger").verifier()

    with pytest.raises(LedgerError, match="no signature from a known key"):
        check_receipt(json.dumps(receipts[0]), [stranger])


@pytest.mark.parametrize("text", ["", "[]", "{", '{"format": 1}', "x" * (2 << 20)])
def test_malformed_receipt_is_refused(text: str, signing_key: SigningKey) -> None:
    """Garbage is refused with a clear error, never a traceback."""
    with pytest.raises(LedgerError):
        check_receipt(text, [signing_key.verifier()])


async def test_decision_not_yet_covered_says_so(
    ledger_dsn: str, ledger_settings: LedgerSettings, decision_factory: Factory
) -> None:
    """Proving a decision no checkpoint covers yet tells the operator what to run."""
    decision = decision_factory()
    async with Ledger.open(ledger_dsn, ledger_settings) as ledger:
        await ledger.store(decision)
    conn = await connect_app(ledger_dsn)
    try:
        with pytest.raises(LedgerError, match="ledger checkpoint"):
            await prove_decision(conn, decision.decision_id)
        with pytest.raises(LedgerError, match="not a decision id"):
            await prove_decision(conn, "'; DROP TABLE decisions; --")
    finally:
        await conn.close()
