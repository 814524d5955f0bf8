"""Signed checkpoints and witnesses make a rewrite of the database detectable from outside it.

Every attack here is done for real on PostgreSQL, as a superuser with the triggers off, and
recomputes whatever the product's own hashing functions allow (chain, head) - exactly what
`ledger verify` alone could not see before checkpoints.
"""

# ruff: noqa: S608 - the attacks' SQL is built from the tests' own ids and hashes

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from asterisk_recorder.flow.decision import ConsentDecision
from asterisk_recorder.ledger import Ledger
from asterisk_recorder.ledger.admin import erase_number
from asterisk_recorder.ledger.audit import AuditReport, Claim, audit_ledger
from asterisk_recorder.ledger.checkpoints import Checkpointer, stored_checkpoints
from asterisk_recorder.ledger.database import connect_app
from asterisk_recorder.ledger.keys import DigestKey
from asterisk_recorder.ledger.merkle import leaf_hash, tree_root
from asterisk_recorder.ledger.note import SigningKey, open_checkpoint
from asterisk_recorder.ledger.records import GENESIS, chain_hash
from asterisk_recorder.ledger.tree import tree_inclusion
from asterisk_recorder.ledger.witness import DirectoryWitness, WitnessedCheckpoint
from asterisk_recorder.settings import LedgerSettings

Factory = Callable[..., ConsentDecision]
ORIGIN = "recorder.test/ledger"


@pytest.fixture
def signing_key() -> SigningKey:
    """A fresh checkpoint signing key."""
    return SigningKey.generate(ORIGIN)


async def _store(dsn: str, settings: LedgerSettings, factory: Factory, count: int) -> list[str]:
    ids = []
    async with Ledger.open(dsn, settings) as ledger:
        for _ in range(count):
            decision = factory()
            await ledger.store(decision)
            ids.append(decision.decision_id)
    return ids


async def _checkpoint(dsn: str, key: SigningKey, witness: DirectoryWitness | None = None) -> int:
    checkpointer = Checkpointer(dsn, key, every=1000, interval=60.0)
    try:
        signed = await checkpointer.cycle(force=True)
    finally:
        await checkpointer.close()
    assert signed is not None
    if witness is not None:
        await witness.push(WitnessedCheckpoint(signed.size, signed.note))
    return signed.size


async def _audit(
    dsn: str, key: DigestKey, signing: SigningKey, witness: DirectoryWitness | None = None
) -> AuditReport:
    claims = (
        [Claim(witness.name, cp.note) for cp in await witness.fetch()] if witness else []
    )
    conn = await connect_app(dsn)
    try:
        return await audit_ledger(conn, key, [signing.verifier()], origin=ORIGIN, witnessed=claims)
    finally:
        await conn.close()


async def _superuser(dsn: str, *statements: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute("SET LOCAL session_replication_role = replica")
            for sql in statements:
                await conn.execute(sql)
    finally:
        await conn.close()


async def _rechain(dsn: str, key: DigestKey) -> None:
    """What an attacker with the product's code does: recompute every hash and the head."""
    from asterisk_recorder.ledger.verify import _body, _merged  # the product's own functions

    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute("SET LOCAL session_replication_role = replica")
            rows = [(kind, dict(row)) async for kind, row in _merged(conn)]
            prev = GENESIS
            for position, (kind, row) in enumerate(rows, start=1):
                table = {"decision": "decisions", "fact": "ledger_facts"}.get(kind, "ledger_events")
                column = {"decision": "decision_id", "fact": "fact_id"}.get(kind, "event_id")
                digest = chain_hash(prev, position, _body(kind, row))
                await conn.execute(
                    f"UPDATE {table} SET seq = $1, prev_hash = $2, hash = $3 "
                    f"WHERE {column} = $4",
                    position,
                    prev,
                    digest,
                    row[column],
                )
                prev = digest
            await conn.execute(
                "UPDATE ledger_head SET seq = $1, hash = $2 WHERE id = 1", len(rows), prev
            )
    finally:
        await conn.close()


@pytest.fixture
async def seven(
    ledger_dsn: str, ledger_settings: LedgerSettings, decision_factory: Factory
) -> list[str]:
    """Seven decisions in the ledger."""
    return await _store(ledger_dsn, ledger_settings, decision_factory, 7)


async def test_checkpoint_signs_the_root_of_the_rows(
    ledger_dsn: str, seven: list[str], signing_key: SigningKey
) -> None:
    """The checkpoint's root is the RFC 9162 root over the rows' chain hashes, and it verifies."""
    size = await _checkpoint(ledger_dsn, signing_key)
    conn = await connect_app(ledger_dsn)
    try:
        rows = await conn.fetch("SELECT hash FROM decisions ORDER BY seq")
        hashes = [bytes(r["hash"]) for r in rows]
        (stored,) = await stored_checkpoints(conn)
    finally:
        await conn.close()

    checkpoint = open_checkpoint(stored.note, [signing_key.verifier()], ORIGIN)

    assert (7, 7) == (size, checkpoint.size)
    assert tree_root([leaf_hash(h) for h in hashes]) == checkpoint.root


async def test_untouched_ledger_verifies_against_its_checkpoints_and_witness(
    ledger_dsn: str,
    ledger_settings: LedgerSettings,
    decision_factory: Factory,
    digest_key: DigestKey,
    signing_key: SigningKey,
    tmp_path: Path,
) -> None:
    """Honest history: several checkpoints, a witness, all consistent."""
    witness = DirectoryWitness(tmp_path / "witness")
    for count in (3, 1, 5):
        await _store(ledger_dsn, ledger_settings, decision_factory, count)
        await _checkpoint(ledger_dsn, signing_key, witness)

    report = await _audit(ledger_dsn, digest_key, signing_key, witness)

    assert (True, 3, 3, 9, ()) == (
        report.ok, report.checkpoints, report.witnessed, report.covered, report.problems
    )


async def test_edit_with_chain_and_head_recomputed_is_detected(
    ledger_dsn: str, seven: list[str], digest_key: DigestKey, signing_key: SigningKey
) -> None:
    """An opt-out flipped to consented, chain and head recomputed: the checkpoint disagrees."""
    await _checkpoint(ledger_dsn, signing_key)
    await _superuser(
        ledger_dsn, "UPDATE decisions SET outcome = 'not_recorded_opted_out' WHERE seq = 4"
    )
    await _rechain(ledger_dsn, digest_key)

    report = await _audit(ledger_dsn, digest_key, signing_key)

    assert report.chain.ok  # the chain alone is fooled
    assert not report.ok
    assert "entries 1..7 do not match checkpoint 7" in report.problems[0]


async def test_edit_is_located_between_two_checkpoints(
    ledger_dsn: str,
    ledger_settings: LedgerSettings,
    decision_factory: Factory,
    digest_key: DigestKey,
    signing_key: SigningKey,
) -> None:
    """With checkpoints at 4 and 8, an edit of entry 6 is named as within entries 5..8."""
    await _store(ledger_dsn, ledger_settings, decision_factory, 4)
    await _checkpoint(ledger_dsn, signing_key)
    await _store(ledger_dsn, ledger_settings, decision_factory, 4)
    await _checkpoint(ledger_dsn, signing_key)
    await _superuser(ledger_dsn, "UPDATE decisions SET reason = 'forged' WHERE seq = 6")
    await _rechain(ledger_dsn, digest_key)

    report = await _audit(ledger_dsn, digest_key, signing_key)

    assert report.problems[0].startswith("entries 5..8 do not match checkpoint 8")
    assert "the last checkpoint that agrees is 4" in report.problems[0]
    assert "ledger_tiles" in report.problems[-1]  # the stored tree still holds the old rows


async def test_deleted_row_renumbered_is_detected(
    ledger_dsn: str, seven: list[str], digest_key: DigestKey, signing_key: SigningKey
) -> None:
    """A row deleted and the rest renumbered and rechained: the database is short of 7."""
    await _checkpoint(ledger_dsn, signing_key)
    await _superuser(
        ledger_dsn,
        f"DELETE FROM decision_personal WHERE decision_id = '{seven[2]}'",
        f"DELETE FROM decisions WHERE decision_id = '{seven[2]}'",
    )
    await _rechain(ledger_dsn, digest_key)

    report = await _audit(ledger_dsn, digest_key, signing_key)

    assert report.chain.ok
    assert "entries 7..7 are missing" in report.problems[0]


async def test_deleting_the_newest_and_wiping_checkpoints_is_caught_by_the_witness(
    ledger_dsn: str, seven: list[str], digest_key: DigestKey, signing_key: SigningKey,
    tmp_path: Path,
) -> None:
    """Newest rows deleted, head rewound, every stored checkpoint wiped: the witness says so."""
    witness = DirectoryWitness(tmp_path / "witness")
    await _checkpoint(ledger_dsn, signing_key, witness)
    hash5 = await _fetch_hash(ledger_dsn, 5)
    await _superuser(
        ledger_dsn,
        "DELETE FROM decision_personal WHERE decision_id IN "
        "(SELECT decision_id FROM decisions WHERE seq > 5)",
        "DELETE FROM decisions WHERE seq > 5",
        f"UPDATE ledger_head SET seq = 5, hash = '\\x{hash5.hex()}' WHERE id = 1",
        "DELETE FROM ledger_checkpoints",
        "DELETE FROM ledger_tiles",
        "UPDATE ledger_tree SET size = 0",
    )

    alone = await _audit(ledger_dsn, digest_key, signing_key)
    report = await _audit(ledger_dsn, digest_key, signing_key, witness)

    assert alone.ok  # without the witness nothing is left to notice it
    assert not report.ok
    assert any("entries 6..7 are missing" in p for p in report.problems)
    assert any("which the database no longer has" in p for p in report.problems)


async def _fetch_hash(dsn: str, seq: int) -> bytes:
    conn = await asyncpg.connect(dsn)
    try:
        return bytes(await conn.fetchval("SELECT hash FROM decisions WHERE seq = $1", seq))
    finally:
        await conn.close()


def with_database(dsn: str, database: str) -> str:
    """``dsn`` pointing at ``database``."""
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


@pytest.fixture
async def backup_of(pg_server_dsn: str) -> AsyncIterator[Callable[[str], asyncpg.Connection]]:
    """Make a real copy of a database now (CREATE DATABASE ... TEMPLATE): an older backup."""
    made: list[str] = []

    async def copy(dsn: str) -> str:
        source = urlsplit(dsn).path.lstrip("/")
        name = f"b_{uuid.uuid4().hex[:12]}"
        admin = await asyncpg.connect(pg_server_dsn)
        try:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                source,
            )
            await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{source}"')
        finally:
            await admin.close()
        made.append(name)
        return with_database(dsn, name)

    yield copy  # type: ignore[misc]
    admin = await asyncpg.connect(pg_server_dsn)
    try:
        for name in made:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def test_restore_from_an_older_backup_is_detected(
    ledger_dsn: str,
    ledger_settings: LedgerSettings,
    decision_factory: Factory,
    digest_key: DigestKey,
    signing_key: SigningKey,
    tmp_path: Path,
    backup_of: Callable[[str], object],
) -> None:
    """A backup taken at 4 entries, restored after 9 were witnessed: the missing five named."""
    witness = DirectoryWitness(tmp_path / "witness")
    await _store(ledger_dsn, ledger_settings, decision_factory, 4)
    await _checkpoint(ledger_dsn, signing_key, witness)
    backup = await backup_of(ledger_dsn)  # type: ignore[misc]
    await _store(ledger_dsn, ledger_settings, decision_factory, 5)
    await _checkpoint(ledger_dsn, signing_key, witness)
    # the restored database goes on taking decisions, signed by the same key
    await _store(backup, ledger_settings, decision_factory, 6)
    await _checkpoint(backup, signing_key)

    report = await _audit(backup, digest_key, signing_key, witness)

    assert report.chain.ok
    assert any("entries 5..9 do not match checkpoint 9" in p for p in report.problems)
    assert any(f"{witness.name} holds checkpoint 9, which the database no longer has" in p
               for p in report.problems)


async def test_truncated_and_refilled_tables_are_detected(
    ledger_dsn: str,
    ledger_settings: LedgerSettings,
    decision_factory: Factory,
    digest_key: DigestKey,
    signing_key: SigningKey,
    tmp_path: Path,
) -> None:
    """Tables truncated (checkpoints too) and refilled with new decisions: the witness differs."""
    witness = DirectoryWitness(tmp_path / "witness")
    await _store(ledger_dsn, ledger_settings, decision_factory, 5)
    await _checkpoint(ledger_dsn, signing_key, witness)
    await _superuser(
        ledger_dsn,
        "TRUNCATE decision_personal, decisions, ledger_checkpoints, ledger_tiles CASCADE",
        f"UPDATE ledger_head SET seq = 0, hash = '\\x{'00' * 32}' WHERE id = 1",
        "UPDATE ledger_tree SET size = 0",
    )
    await _store(ledger_dsn, ledger_settings, decision_factory, 6)

    report = await _audit(ledger_dsn, digest_key, signing_key, witness)

    assert report.chain.ok
    assert any("entries 1..5 do not match checkpoint 5" in p for p in report.problems)


async def test_personal_data_deleted_without_erasure_is_detected(
    ledger_dsn: str, seven: list[str], digest_key: DigestKey, signing_key: SigningKey
) -> None:
    """A personal row deleted behind the product's back is named; the chain is intact."""
    await _superuser(
        ledger_dsn, f"DELETE FROM decision_personal WHERE decision_id = '{seven[3]}'"
    )

    report = await _audit(ledger_dsn, digest_key, signing_key)

    assert (False, 4, seven[3]) == (report.ok, report.chain.position, report.chain.entry_id)
    assert "no erase or purge event records its erasure" in (report.chain.reason or "")


async def test_erasure_by_the_product_verifies(
    ledger_dsn: str, seven: list[str], digest_key: DigestKey, signing_key: SigningKey,
    tmp_path: Path,
) -> None:
    """`ledger erase` removes personal data with a chained event: verify stays OK."""
    conn = await connect_app(ledger_dsn)
    try:
        result = await erase_number(conn, digest_key, "+12125550100", tmp_path)
    finally:
        await conn.close()
    await _checkpoint(ledger_dsn, signing_key)

    report = await _audit(ledger_dsn, digest_key, signing_key)

    assert (7, True) == (len(result.decisions), report.ok)


async def test_checkpoint_note_edited_in_the_database_is_detected(
    ledger_dsn: str, seven: list[str], digest_key: DigestKey, signing_key: SigningKey
) -> None:
    """A checkpoint re-signed by another key (or edited) does not verify."""
    await _checkpoint(ledger_dsn, signing_key)
    await _superuser(ledger_dsn, "UPDATE ledger_checkpoints SET note = replace(note, '7', '8')")

    report = await _audit(ledger_dsn, digest_key, signing_key)

    assert not report.ok
    assert "does not verify" in report.problems[0]


async def test_damaged_tile_is_reported(
    ledger_dsn: str, seven: list[str], digest_key: DigestKey, signing_key: SigningKey
) -> None:
    """A tile overwritten in the database: the stored tree no longer matches the rows."""
    await _checkpoint(ledger_dsn, signing_key)
    await _superuser(
        ledger_dsn,
        f"UPDATE ledger_tiles SET hashes = '\\x{'ab' * 32}' || substring(hashes from 33) "
        "WHERE level = 0 AND idx = 0",
    )

    report = await _audit(ledger_dsn, digest_key, signing_key)

    assert not report.ok
    assert "ledger_tiles" in report.problems[0]


async def test_tiles_only_grow(ledger_dsn: str, seven: list[str], signing_key: SigningKey) -> None:
    """The application role cannot shorten or rewrite a tile, nor delete checkpoints."""
    await _checkpoint(ledger_dsn, signing_key)
    conn = await connect_app(ledger_dsn)
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="only grow"):
            await conn.execute("UPDATE ledger_tiles SET hashes = substring(hashes from 33)")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("DELETE FROM ledger_checkpoints")
    finally:
        await conn.close()


async def test_two_checkpointers_grow_one_tree(
    ledger_dsn: str,
    ledger_settings: LedgerSettings,
    decision_factory: Factory,
    digest_key: DigestKey,
    signing_key: SigningKey,
) -> None:
    """Two controllers' checkpointers while decisions flow: one consistent tree, all proofs hold."""
    first = Checkpointer(ledger_dsn, signing_key, every=5, interval=60.0)
    second = Checkpointer(ledger_dsn, signing_key, every=7, interval=60.0)

    try:
        for _ in range(6):  # decisions flowing while both grow the tree and sign
            await asyncio.gather(
                _store(ledger_dsn, ledger_settings, decision_factory, 10),
                first.cycle(),
                second.cycle(),
            )
        await asyncio.gather(first.cycle(), second.cycle())
        await first.cycle(force=True)
    finally:
        await first.close()
        await second.close()

    report = await _audit(ledger_dsn, digest_key, signing_key)
    conn = await connect_app(ledger_dsn)
    try:
        proof = await tree_inclusion(conn, 41, 60)
    finally:
        await conn.close()

    assert (True, 60) == (report.ok, report.covered)
    assert report.checkpoints >= 2
    assert len(proof) == 6
