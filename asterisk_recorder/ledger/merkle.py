"""The ledger's Merkle tree: RFC 9162 hashing, tiles, inclusion and consistency proofs.

This module owns the tree arithmetic of the transparency layer over ledger entries: leaf and node
hashing (RFC 9162 §2.1.1: leaf = SHA-256(0x00 || entry), node = SHA-256(0x01 || left || right)),
the reference tree hash, an incremental root (``CompactRange``), the storage of the tree as
C2SP tlog-tiles of height 8 (``TileBuilder``), proofs computed from those tiles
(RFC 9162 §2.1.3.1 and §2.1.4.1) and their verification (§2.1.3.2 and §2.1.4.2).

Tiles (c2sp.org/tlog-tiles): the tile at level L and index N holds the hashes of the tree nodes
at height 8·L with indices 256·N … 256·N+255, concatenated (32 bytes each). A partial tile at the
right edge holds only the nodes complete so far. A node at height 8·L+r is computed from the
2^r hashes of one level-L tile below it, so a proof in a 10-million-leaf tree reads about three
tiles and hashes a few hundred times.

It must not do I/O, know about PostgreSQL, or cache anything between calls: callers fetch the
tiles a function names (``*_tiles``) and pass them in.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from asterisk_recorder.errors import ProofError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "TILE_HEIGHT",
    "TILE_WIDTH",
    "CompactRange",
    "TileBuilder",
    "TileId",
    "consistency_proof",
    "consistency_tiles",
    "inclusion_proof",
    "inclusion_tiles",
    "leaf_hash",
    "node_hash",
    "root_from_tiles",
    "root_tiles",
    "tile_width",
    "tree_root",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
"""Bytes in one SHA-256 hash."""

TILE_HEIGHT = 8
"""Tree levels one tile spans (C2SP tlog-tiles uses 8)."""

TILE_WIDTH = 1 << TILE_HEIGHT
"""Hashes in a full tile (256)."""

_TILE_BYTES = TILE_WIDTH * HASH_SIZE
_sha256 = hashlib.sha256

EMPTY_ROOT = _sha256(b"").digest()
"""The root of the empty tree: SHA-256 of the empty string (RFC 9162 §2.1.1)."""


def leaf_hash(data: bytes) -> bytes:
    """The hash of one leaf: SHA-256(0x00 || data)."""
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The hash of an interior node: SHA-256(0x01 || left || right)."""
    return _sha256(b"\x01" + left + right).digest()


def _check_hash(value: bytes, what: str) -> None:
    if len(value) != HASH_SIZE:
        raise ProofError(f"{what} is {len(value)} bytes, a hash is {HASH_SIZE}")


def _split(n: int) -> int:
    """The largest power of two strictly below ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def tree_root(leaf_hashes: Sequence[bytes]) -> bytes:
    """The Merkle tree hash MTH of the given leaf hashes (reference recursion of RFC 9162 §2.1.1).

    Meant for tests and small trees; it recurses and holds every leaf hash.
    """
    n = len(leaf_hashes)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return bytes(leaf_hashes[0])
    k = _split(n)
    return node_hash(tree_root(leaf_hashes[:k]), tree_root(leaf_hashes[k:]))


class CompactRange:
    """The root of a growing tree in O(log n) memory: one hash per set bit of the size.

    ``append`` costs one hash amortised (two at most per carried level), so recomputing the root
    of a 10-million-entry ledger while walking it is about 10 million hashes.
    """

    __slots__ = ("_nodes", "_size")

    def __init__(self) -> None:
        self._nodes: list[bytes] = []
        self._size = 0

    @property
    def size(self) -> int:
        """Leaves appended so far."""
        return self._size

    def append(self, leaf_hash: bytes) -> None:
        """Add one leaf hash at the right edge."""
        if len(leaf_hash) != HASH_SIZE:
            raise ProofError(f"leaf hash is {len(leaf_hash)} bytes, a hash is {HASH_SIZE}")
        nodes = self._nodes
        nodes.append(leaf_hash)
        n = self._size
        while n & 1:
            right = nodes.pop()
            nodes[-1] = _sha256(b"\x01" + nodes[-1] + right).digest()
            n >>= 1
        self._size += 1

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        """Append each leaf hash in order."""
        for value in leaf_hashes:
            self.append(value)

    def root(self) -> bytes:
        """The tree hash of the leaves so far (``EMPTY_ROOT`` when there are none)."""
        nodes = self._nodes
        if not nodes:
            return EMPTY_ROOT
        acc = nodes[-1]
        for left in reversed(nodes[:-1]):
            acc = _sha256(b"\x01" + left + acc).digest()
        return acc


@dataclass(frozen=True, slots=True)
class TileId:
    """A tile: ``level`` L holds nodes at height 8·L; ``index`` N holds node indices 256·N…."""

    level: int
    index: int

    def __post_init__(self) -> None:
        if self.level < 0 or self.index < 0:
            raise ProofError(f"tile level and index must be >= 0, got {self.level}/{self.index}")

    def __str__(self) -> str:
        return f"tile {self.level}/{self.index}"


def tile_width(tile: TileId, size: int) -> int:
    """How many hashes ``tile`` holds in a tree of ``size`` leaves (0: not started yet)."""
    nodes = size >> (TILE_HEIGHT * tile.level)
    return max(0, min(TILE_WIDTH, nodes - tile.index * TILE_WIDTH))


# A perfect subtree: (height, index), covering leaves [index << height, (index + 1) << height).
_Node = tuple[int, int]


def _node_tile(node: _Node) -> tuple[TileId, int, int]:
    """The tile holding the hashes a node is computed from, the first position, and how many."""
    height, index = node
    level, r = divmod(height, TILE_HEIGHT)
    start = index << r
    return TileId(level, start >> TILE_HEIGHT), start & (TILE_WIDTH - 1), 1 << r


def _subtree_hash(hashes: bytes) -> bytes:
    """The root of the perfect subtree whose bottom row is ``hashes`` (a power of two of them)."""
    if len(hashes) == HASH_SIZE:
        return hashes
    pair = 2 * HASH_SIZE
    row = [_sha256(b"\x01" + hashes[j : j + pair]).digest() for j in range(0, len(hashes), pair)]
    while len(row) > 1:
        row = [_sha256(b"\x01" + row[j] + row[j + 1]).digest() for j in range(0, len(row), 2)]
    return row[0]


def _tile_data(tiles: Mapping[TileId, bytes], tile: TileId, need: int) -> bytes:
    data = tiles.get(tile)
    if data is None:
        raise ProofError(f"{tile} is missing (needed with at least {need} hashes)")
    if len(data) % HASH_SIZE:
        raise ProofError(f"{tile} is {len(data)} bytes, not a whole number of hashes")
    if len(data) < need * HASH_SIZE:
        raise ProofError(f"{tile} holds {len(data) // HASH_SIZE} hashes, {need} are needed")
    return data


def _hash_node(node: _Node, tiles: Mapping[TileId, bytes]) -> bytes:
    tile, first, count = _node_tile(node)
    data = _tile_data(tiles, tile, first + count)
    return _subtree_hash(data[first * HASH_SIZE : (first + count) * HASH_SIZE])


def _range_nodes(lo: int, hi: int) -> list[_Node]:
    """The perfect subtrees, largest first, whose right fold is MTH(D[lo:hi]).

    ``lo`` must be aligned as the RFC's recursion aligns it (a multiple of the power of two at or
    above ``hi - lo``), which every range the proofs visit is.
    """
    nodes: list[_Node] = []
    pos = lo
    n = hi - lo
    for height in range(n.bit_length() - 1, -1, -1):
        if n >> height & 1:
            nodes.append((height, pos >> height))
            pos += 1 << height
    return nodes


def _fold(nodes: Sequence[_Node], tiles: Mapping[TileId, bytes]) -> bytes:
    acc = _hash_node(nodes[-1], tiles)
    for node in reversed(nodes[:-1]):
        acc = _sha256(b"\x01" + _hash_node(node, tiles) + acc).digest()
    return acc


def _tiles_of(groups: Iterable[Sequence[_Node]]) -> set[TileId]:
    return {_node_tile(node)[0] for group in groups for node in group}


def _root_nodes(size: int) -> list[_Node]:
    if size < 0:
        raise ProofError(f"tree size must be >= 0, got {size}")
    return _range_nodes(0, size)


def root_tiles(size: int) -> set[TileId]:
    """The tiles ``root_from_tiles(size, ...)`` reads."""
    return _tiles_of([_root_nodes(size)])


def root_from_tiles(size: int, tiles: Mapping[TileId, bytes]) -> bytes:
    """The tree hash at ``size`` computed from the tiles named by ``root_tiles(size)``."""
    nodes = _root_nodes(size)
    if not nodes:
        return EMPTY_ROOT
    return _fold(nodes, tiles)


def _inclusion_nodes(index: int, size: int) -> list[list[_Node]]:
    """PATH(index, D[0:size]) of RFC 9162 §2.1.3.1, each element as perfect subtrees to fold."""
    if size <= 0 or not 0 <= index < size:
        raise ProofError(f"no inclusion proof for index {index} in a tree of size {size}")
    path: list[list[_Node]] = []
    lo, hi, m = 0, size, index
    while hi - lo > 1:
        k = _split(hi - lo)
        if m < k:
            path.append(_range_nodes(lo + k, hi))
            hi = lo + k
        else:
            path.append(_range_nodes(lo, lo + k))
            lo += k
            m -= k
    path.reverse()
    return path


def inclusion_tiles(index: int, size: int) -> set[TileId]:
    """The tiles ``inclusion_proof(index, size, ...)`` reads."""
    return _tiles_of(_inclusion_nodes(index, size))


def inclusion_proof(index: int, size: int, tiles: Mapping[TileId, bytes]) -> list[bytes]:
    """The RFC 9162 §2.1.3.1 inclusion proof of leaf ``index`` in the tree of ``size`` leaves."""
    return [_fold(group, tiles) for group in _inclusion_nodes(index, size)]


def _consistency_nodes(old: int, new: int) -> list[list[_Node]]:
    """PROOF(old, D[0:new]) of RFC 9162 §2.1.4.1; empty when old is 0 or equals new."""
    if old < 0 or new < old:
        raise ProofError(f"no consistency proof from size {old} to size {new}")
    if old == 0 or old == new:
        return []
    proof: list[list[_Node]] = []
    lo, hi, m, whole = 0, new, old, True
    while True:
        if m == hi - lo:
            if not whole:
                proof.append(_range_nodes(lo, hi))
            break
        k = _split(hi - lo)
        if m <= k:
            proof.append(_range_nodes(lo + k, hi))
            hi = lo + k
        else:
            proof.append(_range_nodes(lo, lo + k))
            lo += k
            m -= k
            whole = False
    proof.reverse()
    return proof


def consistency_tiles(old: int, new: int) -> set[TileId]:
    """The tiles ``consistency_proof(old, new, ...)`` reads."""
    return _tiles_of(_consistency_nodes(old, new))


def consistency_proof(old: int, new: int, tiles: Mapping[TileId, bytes]) -> list[bytes]:
    """The RFC 9162 §2.1.4.1 proof that the tree of ``old`` leaves is a prefix of ``new``."""
    return [_fold(group, tiles) for group in _consistency_nodes(old, new)]


_NO_TILES: Mapping[TileId, bytes] = MappingProxyType({})


class TileBuilder:
    """Appends leaf hashes to a tiled tree and says which tiles changed.

    Resume it from storage with the tree size and the right-edge tiles ``edge_tiles(size)``
    names (the partial tile of every level; wider, later versions are cut to what ``size``
    implies). ``append`` returns the full new content of every tile it changed, to upsert.
    """

    __slots__ = ("_rows", "_size")

    def __init__(self, size: int = 0, edge: Mapping[TileId, bytes] = _NO_TILES) -> None:
        if size < 0:
            raise ProofError(f"tree size must be >= 0, got {size}")
        self._size = size
        self._rows: list[bytearray] = []
        level = 0
        while size >> (TILE_HEIGHT * level):
            tile = TileId(level, size >> (TILE_HEIGHT * (level + 1)))
            width = tile_width(tile, size)  # < TILE_WIDTH: a full tile is never the edge
            row = bytearray()
            if width:
                row += _tile_data(edge, tile, width)[: width * HASH_SIZE]
            self._rows.append(row)
            level += 1

    @staticmethod
    def edge_tiles(size: int) -> list[TileId]:
        """The tiles a builder needs to resume at ``size``: each level's partial right-edge tile."""
        if size < 0:
            raise ProofError(f"tree size must be >= 0, got {size}")
        tiles: list[TileId] = []
        level = 0
        while nodes := size >> (TILE_HEIGHT * level):
            if nodes % TILE_WIDTH:
                tiles.append(TileId(level, nodes // TILE_WIDTH))
            level += 1
        return tiles

    @property
    def size(self) -> int:
        """Leaves in the tree."""
        return self._size

    def append(self, leaf_hashes: Sequence[bytes]) -> dict[TileId, bytes]:
        """Add the leaf hashes in order; return every changed tile with its full new content."""
        for value in leaf_hashes:
            if len(value) != HASH_SIZE:
                raise ProofError(f"leaf hash is {len(value)} bytes, a hash is {HASH_SIZE}")
        rows = self._rows
        changed: dict[TileId, bytes] = {}
        touched = 0  # levels 0 .. touched-1 have a partial tile that changed
        size = self._size
        for value in leaf_hashes:
            size += 1
            level = 0
            node = value
            while True:
                if level == len(rows):
                    rows.append(bytearray())
                row = rows[level]
                row += node
                if len(row) < _TILE_BYTES:
                    break
                index = (size >> (TILE_HEIGHT * level)) // TILE_WIDTH - 1
                full = bytes(row)
                changed[TileId(level, index)] = full
                node = _subtree_hash(full)
                row.clear()
                level += 1
            touched = max(touched, level + 1)
        self._size = size
        for level in range(touched):
            row = rows[level]
            if row:
                changed[TileId(level, size >> (TILE_HEIGHT * (level + 1)))] = bytes(row)
        return changed

    def tiles(self) -> dict[TileId, bytes]:
        """The current right-edge tiles (what ``edge_tiles(size)`` names), e.g. to resume."""
        out: dict[TileId, bytes] = {}
        for level, row in enumerate(self._rows):
            if row:
                out[TileId(level, self._size >> (TILE_HEIGHT * (level + 1)))] = bytes(row)
        return out

    def root(self) -> bytes:
        """The tree hash of every leaf appended (``EMPTY_ROOT`` when empty)."""
        return root_from_tiles(self._size, self.tiles())


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check an inclusion proof (RFC 9162 §2.1.3.2); raise ``ProofError`` saying why it fails."""
    _check_hash(leaf_hash, "leaf hash")
    _check_hash(root, "root")
    if not 0 <= index < size:
        raise ProofError(f"index {index} is outside a tree of size {size}")
    for i, p in enumerate(proof):
        _check_hash(p, f"proof element {i}")
    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            raise ProofError(
                f"inclusion proof has {len(proof)} hashes, too many for index {index} "
                f"in size {size}"
            )
        if fn & 1 or fn == sn:
            r = _sha256(b"\x01" + p + r).digest()
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = _sha256(b"\x01" + r + p).digest()
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(
            f"inclusion proof has {len(proof)} hashes, too few for index {index} in size {size}"
        )
    if r != root:
        raise ProofError(
            f"inclusion proof of index {index} does not lead to the root of size {size}"
        )


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check a consistency proof (RFC 9162 §2.1.4.2); raise ``ProofError`` saying why it fails.

    Equal sizes need an empty proof and equal roots. The empty tree (size 0, root ``EMPTY_ROOT``)
    is a prefix of every tree, with an empty proof (RFC 9162 leaves size 0 undefined;
    transparency-dev/merkle rejects it, we accept it so a first checkpoint needs no special case).
    """
    _check_hash(old_root, "old root")
    _check_hash(new_root, "new root")
    for i, p in enumerate(proof):
        _check_hash(p, f"proof element {i}")
    if old_size < 0 or new_size < old_size:
        raise ProofError(f"size {old_size} cannot be a prefix of size {new_size}")
    if old_size == 0 and old_root != EMPTY_ROOT:
        raise ProofError("the old root of size 0 is not the empty tree's root")
    if old_size == new_size:
        if proof:
            raise ProofError(f"consistency proof between equal sizes {old_size} must be empty")
        if old_root != new_root:
            raise ProofError(f"two different roots for the same size {old_size}")
        return
    if old_size == 0:
        if proof:
            raise ProofError("consistency proof from the empty tree must be empty")
        return
    if not proof:
        raise ProofError(f"consistency proof from size {old_size} to {new_size} is empty")
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError(
                f"consistency proof has {len(proof)} hashes, too many for {old_size} -> {new_size}"
            )
        if fn & 1 or fn == sn:
            fr = _sha256(b"\x01" + c + fr).digest()
            sr = _sha256(b"\x01" + c + sr).digest()
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = _sha256(b"\x01" + sr + c).digest()
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(
            f"consistency proof has {len(proof)} hashes, too few for {old_size} -> {new_size}"
        )
    if fr != old_root:
        raise ProofError(f"consistency proof does not lead to the old root of size {old_size}")
    if sr != new_root:
        raise ProofError(f"consistency proof does not lead to the new root of size {new_size}")
