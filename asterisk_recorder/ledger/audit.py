"""Verifying the ledger against what it signed and what the witnesses hold.

This module owns ``audit_ledger``, the check behind ``ledger verify``: the hash chain
(``verify``), every stored checkpoint's signature, and every stored and witnessed checkpoint
against the Merkle root recomputed from the rows, so that a rewrite which also recomputed the
chain and the head, rows deleted at the end, a restore from an older backup, a truncated and
refilled table, or checkpoints wiped from the database are each named, with the entries
concerned. It also checks that the stored tree (tiles) agrees with the rows and proves
consistency between consecutive checkpoints from it, and, given the TSA roots, every stored
RFC 3161 token against its checkpoint's note (``timestamps``). Read-only. It must not fetch from the
witnesses itself (the caller passes what they hold) nor sign anything.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg
from cryptography import x509

from asterisk_recorder.errors import LedgerError
from asterisk_recorder.ledger.checkpoints import SignedCheckpoint, stored_checkpoints
from asterisk_recorder.ledger.keys import DigestKey
from asterisk_recorder.ledger.merkle import verify_consistency
from asterisk_recorder.ledger.note import Checkpoint, VerifierKey, open_checkpoint
from asterisk_recorder.ledger.timestamps import StoredTimestamp, stored_timestamps, verify_token
from asterisk_recorder.ledger.tree import tree_consistency, tree_root, tree_size
from asterisk_recorder.ledger.verify import VerifyReport, verify_chain

__all__ = ["AuditReport", "Claim", "audit_ledger"]


@dataclass(frozen=True, slots=True)
class Claim:
    """A signed checkpoint note and where it was found (``database`` or a witness's name)."""

    source: str
    note: str


@dataclass(frozen=True, slots=True)
class AuditReport:
    """The chain's report plus what the checkpoints say.

    Attributes:
        chain: the hash chain walk.
        checkpoints: checkpoints stored in the database whose signature verified.
        witnessed: checkpoints read from the witnesses whose signature verified.
        covered: the largest checkpoint size that matches the database (0 when none does).
        problems: what is wrong, each naming the checkpoint and the entries concerned.
        timestamps: RFC 3161 tokens that verified against their checkpoint (0 when no TSA
            root was given).
        newest_timestamp: the verified token of the largest checkpoint, if any.
    """

    chain: VerifyReport
    checkpoints: int
    witnessed: int
    covered: int
    problems: tuple[str, ...]
    timestamps: int = 0
    newest_timestamp: StoredTimestamp | None = None

    @property
    def ok(self) -> bool:
        """Nothing wrong in the chain or against any checkpoint."""
        return self.chain.ok and not self.problems


async def audit_ledger(
    conn: asyncpg.Connection,
    key: DigestKey | None,
    verifiers: Sequence[VerifierKey],
    *,
    origin: str | None = None,
    witnessed: Sequence[Claim] = (),
    tsa_roots: Sequence[x509.Certificate] | None = None,
) -> AuditReport:
    """Walk the chain and hold it against every stored and witnessed checkpoint.

    ``origin``: the origin line checkpoints must carry (``None`` accepts any signed by a
    trusted key). ``tsa_roots``: the TSA root certificates stored RFC 3161 tokens must chain
    to (``None``: tokens are not checked).
    """
    problems: list[str] = []
    opened: list[tuple[Claim, Checkpoint]] = []
    stored = await stored_checkpoints(conn)
    in_database: dict[int, bytes] = {}
    pairs: list[tuple[Claim, SignedCheckpoint | None]] = [
        *((Claim("database", s.note), s) for s in stored),
        *((claim, None) for claim in witnessed),
    ]
    valid_stored = valid_witnessed = 0
    for claim, row in pairs:  # row: the database's columns of a stored checkpoint
        try:
            checkpoint = open_checkpoint(claim.note, verifiers, origin)
        except LedgerError as exc:
            where = (
                f"checkpoint {row.size} in the database"
                if row is not None
                else f"a checkpoint of {claim.source}"
            )
            problems.append(
                f"{where} does not verify: {exc} (forged, or signed by a key not trusted here; "
                "pass the signer's key with --key)"
            )
            continue
        if row is not None:
            if (row.size, row.root) != (checkpoint.size, checkpoint.root):
                problems.append(
                    f"checkpoint {row.size} in the database: its size or root columns differ "
                    "from its signed note (edited)"
                )
                continue
            in_database[checkpoint.size] = checkpoint.root
            valid_stored += 1
        else:
            valid_witnessed += 1
        opened.append((claim, checkpoint))

    by_size: dict[int, tuple[bytes, str]] = {}
    for claim, checkpoint in opened:
        seen = by_size.get(checkpoint.size)
        if seen is not None and seen[0] != checkpoint.root:
            problems.append(
                f"two signed checkpoints of size {checkpoint.size} disagree ({seen[1]} and "
                f"{claim.source}): the log was forked"
            )
        by_size.setdefault(checkpoint.size, (checkpoint.root, claim.source))
        if claim.source != "database" and checkpoint.size not in in_database:
            problems.append(
                f"{claim.source} holds checkpoint {checkpoint.size}, which the database no "
                "longer has (checkpoints were removed from the database)"
            )

    tiles_size = await tree_size(conn)
    chain = await verify_chain(conn, key, sizes=[*by_size, tiles_size])
    rows = chain.rows
    matching: list[int] = []
    for size in sorted(by_size):
        root, source = by_size[size]
        if size > rows:
            if chain.ok:
                problems.append(
                    f"the database holds {rows} entries but {source} signed checkpoint {size}: "
                    f"entries {rows + 1}..{size} are missing (rows deleted at the end and the "
                    "head rewound, a restore from an older backup, or a failover to a replica "
                    "that had not received them)"
                )
            continue
        if chain.roots.get(size) == root:
            matching.append(size)
            continue
        agree = max((m for m in matching if m < size), default=0)
        problems.append(
            f"entries {agree + 1}..{size} do not match checkpoint {size} ({source}): one of them "
            "was changed, removed or inserted and the chain recomputed (or the table was "
            f"truncated and refilled); the last checkpoint that agrees is {agree or 'none'}"
        )
    covered = max(matching, default=0)

    if chain.ok and tiles_size <= rows:
        try:
            if await tree_root(conn, tiles_size) != chain.roots.get(tiles_size):
                raise LedgerError("its root differs from the root of the rows")
            sizes = sorted(s for s in in_database if s in matching)
            for old, new in itertools.pairwise(sizes):
                if new <= tiles_size:
                    proof = await tree_consistency(conn, old, new)
                    verify_consistency(old, new, in_database[old], in_database[new], proof)
        except LedgerError as exc:
            problems.append(
                f"the stored Merkle tree (ledger_tiles, {tiles_size} leaves) is damaged: {exc}; "
                "receipts and proofs from it would fail"
            )
    stamped = 0
    newest: StoredTimestamp | None = None
    if tsa_roots is not None:
        notes = {s.size: s.note for s in stored}
        for stamp in await stored_timestamps(conn):
            note = notes.get(stamp.size)
            if note is None:  # pragma: no cover - the foreign key keeps its checkpoint
                continue
            try:
                when = verify_token(stamp.token, note, list(tsa_roots))
            except LedgerError as exc:
                problems.append(
                    f"the timestamp of checkpoint {stamp.size} by {stamp.tsa} does not verify: "
                    f"{exc}"
                )
                continue
            stamped += 1
            if newest is None or stamp.size >= newest.size:
                newest = StoredTimestamp(stamp.size, stamp.tsa, stamp.token, when)
    return AuditReport(
        chain, valid_stored, valid_witnessed, covered, tuple(problems), stamped, newest
    )
