"""The Merkle tree over the chain, kept in PostgreSQL as tiles: growing it and reading proofs.

This module owns the SQL of ``ledger_tiles`` and ``ledger_tree``: extending the tree with the
rows appended since it last grew (leaf input: each row's 32-byte chain hash, in sequence order),
and reading the tiles an inclusion or consistency proof needs. The tree is derived data: a
tampered tile yields proofs that fail against the signed checkpoints, and ``ledger verify``
recomputes the tree from the rows. The hashing and proof arithmetic are ``merkle``'s; this
module must not sign, push to witnesses or decide when a checkpoint is due (``checkpoints``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import asyncpg

from asterisk_recorder.errors import ChainError
from asterisk_recorder.ledger.merkle import (
    TileBuilder,
    TileId,
    consistency_proof,
    consistency_tiles,
    inclusion_proof,
    inclusion_tiles,
    leaf_hash,
    root_from_tiles,
    root_tiles,
)

__all__ = [
    "GROW_LIMIT",
    "Growth",
    "extend_tree",
    "read_tiles",
    "tree_consistency",
    "tree_inclusion",
    "tree_root",
    "tree_size",
]

GROW_LIMIT = 20_000
"""Most rows one ``extend_tree`` transaction adds (a long backlog is taken in several)."""

_LEAVES = """
SELECT seq, hash FROM decisions WHERE seq > $1 AND seq <= $2
UNION ALL SELECT seq, hash FROM ledger_facts WHERE seq > $1 AND seq <= $2
UNION ALL SELECT seq, hash FROM ledger_events WHERE seq > $1 AND seq <= $2
ORDER BY seq
"""

_UPSERT = """
INSERT INTO ledger_tiles (level, idx, hashes) SELECT * FROM unnest($1::smallint[], $2::bigint[],
    $3::bytea[])
ON CONFLICT (level, idx) DO UPDATE SET hashes = EXCLUDED.hashes
WHERE octet_length(EXCLUDED.hashes) > octet_length(ledger_tiles.hashes)
"""


@dataclass(frozen=True, slots=True)
class Growth:
    """What one ``extend_tree`` did: the size before and after, and the root after."""

    before: int
    after: int
    root: bytes


async def tree_size(conn: asyncpg.Connection) -> int:
    """How many leaves the stored tiles cover."""
    value = await conn.fetchval("SELECT size FROM ledger_tree WHERE id = 1")
    if value is None:
        raise ChainError("ledger_tree has no row; run 'asterisk-recorder db migrate'")
    return int(value)


async def read_tiles(conn: asyncpg.Connection, ids: Iterable[TileId]) -> dict[TileId, bytes]:
    """The stored content of the tiles ``ids`` (absent ones are left out)."""
    wanted = list(ids)
    if not wanted:
        return {}
    rows = await conn.fetch(
        "SELECT t.level, t.idx, t.hashes FROM ledger_tiles t "
        "JOIN unnest($1::smallint[], $2::bigint[]) AS w(level, idx) USING (level, idx)",
        [t.level for t in wanted],
        [t.index for t in wanted],
    )
    return {TileId(int(r["level"]), int(r["idx"])): bytes(r["hashes"]) for r in rows}


async def _builder(conn: asyncpg.Connection, size: int) -> TileBuilder:
    edge = await read_tiles(conn, TileBuilder.edge_tiles(size))
    return TileBuilder(size, edge)


async def extend_tree(
    conn: asyncpg.Connection, builder: TileBuilder | None = None, *, limit: int = GROW_LIMIT
) -> tuple[Growth | None, TileBuilder | None]:
    """Add up to ``limit`` rows appended since the tree last grew; ONE transaction.

    Returns ``(None, builder)`` when another process is growing the tree right now (its row
    lock is held: nothing to do here), else the growth and the builder to pass next time (it
    keeps the right edge in memory; one that no longer matches the stored size is reloaded).

    Raises:
        ChainError: the rows are not contiguous (a row is missing in the chain).
    """
    async with conn.transaction():
        size = await conn.fetchval(
            "SELECT size FROM ledger_tree WHERE id = 1 FOR UPDATE SKIP LOCKED"
        )
        if size is None:
            if not await conn.fetchval("SELECT count(*) FROM ledger_tree"):
                raise ChainError("ledger_tree has no row; run 'asterisk-recorder db migrate'")
            return None, builder
        size = int(size)
        head = int(await conn.fetchval("SELECT seq FROM ledger_head WHERE id = 1"))
        if builder is None or builder.size != size:
            builder = await _builder(conn, size)
        if head <= size:
            return Growth(size, size, builder.root()), builder
        end = min(head, size + limit)
        rows = await conn.fetch(_LEAVES, size, end)
        leaves: list[bytes] = []
        for expected, row in enumerate(rows, start=size + 1):
            if int(row["seq"]) != expected:
                raise ChainError(
                    f"the chain has no row {expected} (next is {row['seq']}): the tree cannot "
                    "grow past a gap; run 'asterisk-recorder ledger verify'"
                )
            leaves.append(leaf_hash(bytes(row["hash"])))
        if len(leaves) != end - size:
            raise ChainError(
                f"the head is at {head} but the chain ends at {size + len(leaves)}: the tree "
                "cannot grow; run 'asterisk-recorder ledger verify'"
            )
        # a failed transaction leaves the builder ahead of the stored size: it is reloaded
        changed = builder.append(leaves)
        await conn.execute(
            _UPSERT,
            [t.level for t in changed],
            [t.index for t in changed],
            list(changed.values()),
        )
        await conn.execute("UPDATE ledger_tree SET size = $1 WHERE id = 1", builder.size)
    return Growth(size, builder.size, builder.root()), builder


async def tree_root(conn: asyncpg.Connection, size: int) -> bytes:
    """The root of the first ``size`` leaves, from the stored tiles."""
    return root_from_tiles(size, await read_tiles(conn, root_tiles(size)))


async def tree_inclusion(conn: asyncpg.Connection, index: int, size: int) -> list[bytes]:
    """RFC 9162 inclusion proof of leaf ``index`` (0-based) in the tree of ``size`` leaves."""
    return inclusion_proof(index, size, await read_tiles(conn, inclusion_tiles(index, size)))


async def tree_consistency(conn: asyncpg.Connection, old: int, new: int) -> list[bytes]:
    """RFC 9162 consistency proof between the trees of ``old`` and ``new`` leaves."""
    return consistency_proof(old, new, await read_tiles(conn, consistency_tiles(old, new)))
