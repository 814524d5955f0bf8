"""A sealed recording checked against the ledger: its ``recording.sealed`` fact and the chain.

This module owns ``check_sealed``: find the ``recording.sealed`` fact of a recording (by its
decision / recording id, or by the id in a file's header), recompute that fact row's hash from
its stored body, walk the whole hash chain as ``ledger verify`` does (the fact is evidence only
if the chain holding it is intact), then ``envelope.verify`` the file against the fact's
``SealInfo`` (header fields, every chunk against the trailer, the chunk root, the sealed digest;
with a key opener also every tag and the plaintext digest). The first bad chunk is named when the
file shows it (a chunk that no longer matches its trailer digest or its tag). It only reads: it
must not write facts (``recording open`` records accesses) nor hold keys of its own.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from asterisk_recorder.errors import EnvelopeError, RecordingError
from asterisk_recorder.flow.recording import DECISION_ID_RE
from asterisk_recorder.ledger.keys import DigestKey
from asterisk_recorder.ledger.records import chain_hash, fact_body_from_row
from asterisk_recorder.ledger.verify import VerifyReport, verify_chain
from asterisk_recorder.recordings.envelope import (
    SealInfo,
    VerifyResult,
    read_header,
    verify,
)
from asterisk_recorder.recordings.keys import KekOpener
from asterisk_recorder.recordings.storage import LocalStore, Stores

__all__ = ["LedgerCheck", "SealedFact", "check_sealed", "sealed_fact"]

_SEALED_FACT = """
SELECT f.*, d.seq AS decision_seq FROM ledger_facts f
LEFT JOIN decisions d ON d.decision_id = f.decision_id
WHERE f.kind = 'recording.sealed' AND f.decision_id = $1
ORDER BY f.seq DESC LIMIT 1
"""
_STORED_FACT = """
SELECT f.*, d.seq AS decision_seq FROM ledger_facts f
LEFT JOIN decisions d ON d.decision_id = f.decision_id
WHERE f.kind = 'recording.stored' AND f.decision_id = $1
AND COALESCE(f.payload::jsonb ->> 'sealed_sha256', $2) = $2
ORDER BY f.seq DESC LIMIT 1
"""


@dataclass(frozen=True, slots=True)
class SealedFact:
    """The ledger's ``recording.sealed`` fact of one recording.

    Attributes:
        decision_id: the decision (the sealer names a recording by it).
        fact_id / seq: the fact's id and chain position.
        file: the sealed file, relative to ``recordings.sealed_dir`` as the sealer wrote it.
        info: what the fact says the file is (digests, lengths, key id, chunk root).
        location: where the recording is now: the latest ``recording.stored`` fact's
            ``location`` (an object store), else ``file`` (the sealed directory).
        stored_fact_id: that ``recording.stored`` fact, when there is one.
    """

    decision_id: str
    fact_id: str
    seq: int
    file: str
    info: SealInfo
    location: str = ""
    stored_fact_id: str | None = None


@dataclass(frozen=True, slots=True)
class LedgerCheck:
    """A sealed file that matched its ``recording.sealed`` fact in an intact chain.

    Attributes:
        fact: the fact it was checked against.
        path: the file checked.
        result: ``envelope.verify``'s result (``ledger_checked`` is true).
        chain: the chain walk (``ok`` is true).
        location: the location read (``s3://...`` for a stored recording, else the path).
    """

    fact: SealedFact
    path: Path
    result: VerifyResult
    chain: VerifyReport
    location: str = ""


def _text(payload: dict[str, Any], name: str) -> str:
    value = payload.get(name)
    if not isinstance(value, str) or not value:
        raise EnvelopeError(f"the ledger's recording.sealed fact has no usable {name!r}")
    return value


def _number(payload: dict[str, Any], name: str) -> int:
    value = payload.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise EnvelopeError(f"the ledger's recording.sealed fact has no usable {name!r}")
    return value


async def sealed_fact(conn: asyncpg.Connection, recording_id: str) -> SealedFact:
    """The latest ``recording.sealed`` fact of ``recording_id``, its row's hash recomputed.

    Raises:
        RecordingError: ``recording_id`` is no decision id, or the ledger has no such fact.
        EnvelopeError: the fact row does not match its own hash, or lacks a field.
    """
    if not DECISION_ID_RE.match(recording_id):
        raise RecordingError(
            f"{recording_id!r} is neither a file nor a decision id (a lowercase UUID)"
        )
    row = await conn.fetchrow(_SEALED_FACT, recording_id)
    if row is None:
        raise RecordingError(f"the ledger has no recording.sealed fact for {recording_id}")
    seq = int(row["seq"])
    if chain_hash(bytes(row["prev_hash"]), seq, fact_body_from_row(row)) != bytes(row["hash"]):
        raise EnvelopeError(
            f"the ledger's recording.sealed fact of {recording_id} (position {seq}) does not "
            "match its hash: edited"
        )
    payload = json.loads(row["payload"])
    if not isinstance(payload, dict):
        raise EnvelopeError("the ledger's recording.sealed payload is not an object")
    info = SealInfo(
        recording_id=_text(payload, "recording_id"),
        plain_bytes=_number(payload, "plain_bytes"),
        plain_sha256=_text(payload, "plain_sha256"),
        sealed_bytes=_number(payload, "sealed_bytes"),
        sealed_sha256=_text(payload, "sealed_sha256"),
        kek_id=_text(payload, "kek_id"),
        chunk_size=_number(payload, "chunk_size"),
        chunks=_number(payload, "chunks"),
        chunk_root=_text(payload, "chunk_root"),
    )
    file = _text(payload, "file")
    stored = await conn.fetchrow(_STORED_FACT, recording_id, info.sealed_sha256)
    if stored is None:
        return SealedFact(recording_id, str(row["fact_id"]), seq, file, info, file)
    stored_seq = int(stored["seq"])
    if chain_hash(bytes(stored["prev_hash"]), stored_seq, fact_body_from_row(stored)) != bytes(
            stored["hash"]):
        raise EnvelopeError(
            f"the ledger's recording.stored fact of {recording_id} (position {stored_seq}) "
            "does not match its hash: edited")
    where = json.loads(stored["payload"])
    if not isinstance(where, dict) or where.get("sealed_sha256") != info.sealed_sha256:
        raise EnvelopeError(
            f"the ledger's recording.stored fact of {recording_id} names another sealed digest "
            "than its recording.sealed fact")
    return SealedFact(recording_id, str(row["fact_id"]), seq, file, info,
                      _text(where, "location"), str(stored["fact_id"]))


def _header_id(path: Path) -> str:
    with open(path, "rb") as src:
        return read_header(src).recording_id


def _verify_file(path: Path, expected: SealInfo, opener: KekOpener | None) -> VerifyResult:
    with open(path, "rb") as src:
        return verify(src, expected=expected, opener=opener)


def _verify_stored(
    stores: Stores, location: str, expected: SealInfo, opener: KekOpener | None
) -> VerifyResult:
    with stores.for_location(location).open(location) as src:
        return verify(src, expected=expected, opener=opener)


async def check_sealed(
    conn: asyncpg.Connection,
    *,
    sealed_dir: Path,
    recording_id: str | None = None,
    path: Path | None = None,
    opener: KekOpener | None = None,
    key: DigestKey | None = None,
    stores: Stores | None = None,
) -> LedgerCheck:
    """Check one sealed recording against the ledger (give ``recording_id`` or ``path``).

    With ``recording_id`` the file is where the ledger says it is: the latest
    ``recording.stored`` fact's location (read through ``stores``), else the
    ``recording.sealed`` fact's file below ``sealed_dir``; with ``path`` the fact is the one
    of the id in the file's header. ``LedgerCheck.path`` is then the location read.

    Raises:
        RecordingError: no such fact, or neither argument.
        EnvelopeError: the chain is broken, the fact row edited, or the file differs from the
            fact (``chunk`` names the first bad chunk when the file shows one).
        OSError: the file cannot be read.
        KeyUnavailable: ``opener`` lacks the recording's key.
    """
    if path is None and recording_id is None:
        raise RecordingError("say which recording: a decision id or a file")
    if recording_id is None:
        assert path is not None
        recording_id = await asyncio.to_thread(_header_id, path)
    fact = await sealed_fact(conn, recording_id)
    chain = await verify_chain(conn, key)
    if not chain.ok:
        raise EnvelopeError(
            f"the ledger's hash chain is broken at position {chain.position} "
            f"({chain.entry_id or 'head'}): {chain.reason}; its recording.sealed fact "
            f"(position {fact.seq}) is no evidence until that is explained"
        )
    if path is None and fact.stored_fact_id is not None:
        stores = stores or Stores(LocalStore(sealed_dir), LocalStore(sealed_dir))
        result = await asyncio.to_thread(_verify_stored, stores, fact.location, fact.info,
                                         opener)
        return LedgerCheck(fact, Path(fact.location), result, chain, fact.location)
    if path is None:
        relative = Path(fact.file)
        if relative.is_absolute() or ".." in relative.parts or not relative.parts:
            raise EnvelopeError(
                f"the ledger's recording.sealed fact of {fact.decision_id} (position "
                f"{fact.seq}) names file {fact.file!r}, which is not below the sealed directory: "
                "refused (give the PATH to check a file elsewhere)"
            )
    target = path if path is not None else sealed_dir / fact.file
    result = await asyncio.to_thread(_verify_file, target, fact.info, opener)
    return LedgerCheck(fact, target, result, chain, str(target))
