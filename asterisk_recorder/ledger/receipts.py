"""Consent receipts: a decision, its inclusion proof and a signed checkpoint, checkable offline.

This module owns the receipt format (JSON, ``format`` = ``RECEIPT_FORMAT``), building one from
the database (``prove_decision``) and checking one with nothing but the signer's verifier key
(``check_receipt``): the entry's canonical body and ``prev_hash`` give its chain hash, whose
RFC 9162 leaf hash, with the inclusion proof, must lead to the root the checkpoint signs. The
body holds personal data only as keyed digests, so a receipt can be handed to a caller or a
regulator. When the checkpoint has an RFC 3161 token (``timestamps``), the receipt carries it
(``timestamp``: the TSA's name and the base64 DER response) and ``check_receipt`` checks it
against the TSA roots it is given. It must not open connections nor read key files.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from cryptography import x509

from asterisk_recorder.errors import LedgerError
from asterisk_recorder.ledger.checkpoints import latest_checkpoint
from asterisk_recorder.ledger.merkle import leaf_hash, verify_inclusion
from asterisk_recorder.ledger.note import VerifierKey, open_checkpoint, open_note
from asterisk_recorder.ledger.records import chain_hash, decision_body_from_row
from asterisk_recorder.ledger.timestamps import verify_token
from asterisk_recorder.ledger.tree import tree_inclusion

__all__ = [
    "MAX_RECEIPT_BYTES",
    "RECEIPT_FORMAT",
    "ReceiptCheck",
    "check_receipt",
    "prove_decision",
]

RECEIPT_FORMAT = "asterisk-recorder/consent-receipt/v1"
MAX_RECEIPT_BYTES = 1 << 20
"""A receipt is a few kilobytes; anything over a megabyte is refused unread."""

_HOW = (
    "hash = SHA-256('asterisk-recorder/ledger/v1' 0x00 || prev_hash || seq as 8-byte big-endian "
    "|| body); leaf = SHA-256(0x00 || hash); check the RFC 9162 inclusion proof of leaf index "
    "seq-1 in a tree of tree_size leaves against the root of the checkpoint, and the "
    "checkpoint's Ed25519 signature (C2SP signed-note) with the ledger's verifier key."
)


async def prove_decision(conn: asyncpg.Connection, decision_id: str) -> dict[str, Any]:
    """The receipt of decision ``decision_id``, against the newest checkpoint covering it.

    Raises:
        LedgerError: no such decision, or no checkpoint covers it yet.
    """
    try:
        wanted = uuid.UUID(decision_id)
    except ValueError as exc:
        raise LedgerError(f"{decision_id!r} is not a decision id (a UUID)") from exc
    row = await conn.fetchrow("SELECT * FROM decisions WHERE decision_id = $1", wanted)
    if row is None:
        raise LedgerError(f"the ledger holds no decision {wanted}")
    seq = int(row["seq"])
    checkpoint = await latest_checkpoint(conn, covering=seq)
    if checkpoint is None:
        raise LedgerError(
            f"decision {wanted} (entry {seq}) is not covered by a checkpoint yet; wait for the "
            "next one or run 'asterisk-recorder ledger checkpoint'"
        )
    proof = await tree_inclusion(conn, seq - 1, checkpoint.size)
    body = decision_body_from_row(row)
    stamp = await conn.fetchrow(
        "SELECT tsa, token FROM ledger_checkpoint_timestamps WHERE tree_size = $1 "
        "ORDER BY tsa LIMIT 1",
        checkpoint.size,
    )
    receipt: dict[str, Any] = {
        "format": RECEIPT_FORMAT,
        "entry": {
            "kind": "decision",
            "id": str(wanted),
            "seq": seq,
            "prev_hash": bytes(row["prev_hash"]).hex(),
            "hash": bytes(row["hash"]).hex(),
            "body": body.decode("ascii"),
        },
        "leaf_index": seq - 1,
        "tree_size": checkpoint.size,
        "inclusion_proof": [base64.b64encode(h).decode("ascii") for h in proof],
        "checkpoint": checkpoint.note,
        "how_to_check": _HOW,
    }
    if stamp is not None:
        receipt["timestamp"] = {
            "tsa": stamp["tsa"],
            "token": base64.b64encode(bytes(stamp["token"])).decode("ascii"),
        }
    return receipt


@dataclass(frozen=True, slots=True)
class ReceiptCheck:
    """What a valid receipt proves: this decision is entry ``seq`` of the signed log."""

    decision_id: str
    seq: int
    tree_size: int
    origin: str
    signed_by: tuple[str, ...]
    outcome: str
    decided_at_us: int | None
    timestamped_at: dt.datetime | None = None
    """When the TSA vouches the checkpoint existed (checked only when TSA roots were given)."""
    timestamped_by: str | None = None


def _field(data: Mapping[str, Any], name: str, kind: type, where: str = "receipt") -> Any:
    value = data.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise LedgerError(f"{where}.{name} is missing or not a {kind.__name__}")
    return value


def _hex32(text: str, where: str) -> bytes:
    try:
        value = bytes.fromhex(text)
    except ValueError as exc:
        raise LedgerError(f"{where} is not hex") from exc
    if len(value) != 32:
        raise LedgerError(f"{where} is not 32 bytes")
    return value


def check_receipt(
    text: str | bytes,
    verifiers: Sequence[VerifierKey],
    *,
    tsa_roots: Sequence[x509.Certificate] | None = None,
) -> ReceiptCheck:
    """Check a receipt with the verifier keys only; return what it proves.

    With ``tsa_roots``, the receipt must carry an RFC 3161 timestamp over its checkpoint
    chained to one of them.

    Raises:
        LedgerError: malformed, or the body, proof, root or signature does not hold (the
            message says which).
    """
    if len(text) > MAX_RECEIPT_BYTES:
        raise LedgerError(f"the receipt is larger than {MAX_RECEIPT_BYTES} bytes")
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise LedgerError(f"the receipt is not JSON: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != RECEIPT_FORMAT:
        raise LedgerError(f"not a consent receipt (format must be {RECEIPT_FORMAT!r})")
    entry = _field(data, "entry", dict)
    seq = _field(entry, "seq", int, "entry")
    if seq < 1:
        raise LedgerError("entry.seq must be 1 or more")
    prev = _hex32(_field(entry, "prev_hash", str, "entry"), "entry.prev_hash")
    body_text = _field(entry, "body", str, "entry")
    if not body_text.isascii():
        raise LedgerError("entry.body is not canonical (ASCII) JSON")
    body = body_text.encode("ascii")
    digest = chain_hash(prev, seq, body)
    if "hash" in entry and _hex32(_field(entry, "hash", str, "entry"), "entry.hash") != digest:
        raise LedgerError("entry.hash is not the hash of entry.body: the body was changed")
    try:
        fields = json.loads(body_text)
    except ValueError as exc:
        raise LedgerError(f"entry.body is not JSON: {exc}") from exc
    if not isinstance(fields, dict) or fields.get("kind") != "decision":
        raise LedgerError("entry.body is not a decision")
    decision_id = str(fields.get("decision_id"))
    if str(entry.get("id")) != decision_id:
        raise LedgerError("entry.id is not the decision id in entry.body")
    if _field(data, "leaf_index", int) != seq - 1:
        raise LedgerError("leaf_index must be entry.seq - 1")
    proof_text = _field(data, "inclusion_proof", list)
    try:
        proof = [base64.b64decode(p, validate=True) for p in proof_text]
    except (TypeError, binascii.Error) as exc:
        raise LedgerError("inclusion_proof holds something that is not base64") from exc
    note = _field(data, "checkpoint", str)
    checkpoint = open_checkpoint(note, verifiers)
    if _field(data, "tree_size", int) != checkpoint.size:
        raise LedgerError("tree_size is not the size the checkpoint signs")
    if seq > checkpoint.size:
        raise LedgerError(f"entry {seq} is beyond the checkpoint's {checkpoint.size} entries")
    verify_inclusion(leaf_hash(digest), seq - 1, checkpoint.size, proof, checkpoint.root)
    opened = open_note(note, verifiers).verified_by
    decided = fields.get("decided_at_us")
    stamped_at: dt.datetime | None = None
    stamped_by: str | None = None
    if tsa_roots is not None:
        stamp = data.get("timestamp")
        if not isinstance(stamp, dict):
            raise LedgerError("the receipt carries no timestamp to check against the TSA roots")
        token_text = _field(stamp, "token", str, "timestamp")
        try:
            token = base64.b64decode(token_text, validate=True)
        except binascii.Error as exc:
            raise LedgerError("timestamp.token is not base64") from exc
        stamped_at = verify_token(token, note, list(tsa_roots))
        stamped_by = str(stamp.get("tsa"))
    return ReceiptCheck(
        decision_id,
        seq,
        checkpoint.size,
        checkpoint.origin,
        opened,
        str(fields.get("outcome")),
        decided if isinstance(decided, int) else None,
        stamped_at,
        stamped_by,
    )
