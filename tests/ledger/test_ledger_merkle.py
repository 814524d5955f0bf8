"""The ledger's Merkle tree: published RFC 6962 vectors, tiles, proofs and their verification."""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asterisk_recorder.errors import ChainError, ProofError
from asterisk_recorder.ledger.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    TILE_WIDTH,
    CompactRange,
    TileBuilder,
    TileId,
    consistency_proof,
    consistency_tiles,
    inclusion_proof,
    inclusion_tiles,
    leaf_hash,
    node_hash,
    root_from_tiles,
    root_tiles,
    tile_width,
    tree_root,
    verify_consistency,
    verify_inclusion,
)

# RFC 6962 reference inputs, roots and proofs, from github.com/transparency-dev/merkle
# (commit 417fb0c314750d94e53942e9f92e79b6d35915db): testonly/constants.go (LeafInputs,
# RootHashes, as of commit f61febed47b601d71dba4598e991384a4a224f52) and cmd/proofgen/main.go
# (inclusionProofs, consistencyProofs; indices there are 1-based).
LEAF_INPUTS = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
ROOTS = [
    EMPTY_ROOT,
    *(
        bytes.fromhex(h)
        for h in (
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
            "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
            "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
        )
    ),
]


def _hx(*hexes: str) -> list[bytes]:
    return [bytes.fromhex(h) for h in hexes]


# (0-based leaf index, tree size, proof) - cmd/proofgen/main.go inclusionProofs.
INCLUSION_VECTORS = [
    (0, 1, []),
    (
        0,
        8,
        _hx(
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ),
    ),
    (
        5,
        8,
        _hx(
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ),
    ),
    (2, 3, _hx("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")),
    (
        1,
        5,
        _hx(
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ),
    ),
]

# (old size, new size, proof) - cmd/proofgen/main.go consistencyProofs.
CONSISTENCY_VECTORS = [
    (1, 1, []),
    (
        1,
        8,
        _hx(
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ),
    ),
    (
        6,
        8,
        _hx(
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ),
    ),
    (
        2,
        5,
        _hx(
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ),
    ),
    (
        6,
        7,
        _hx(
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ),
    ),
]

PROBES_FILE = (
    Path(__file__).resolve().parent.parent / "data" / "tlog" / "transparency-dev-probes.json"
)
"""transparency-dev/merkle testdata/{inclusion,consistency}/**.json (Apache-2.0), in one file."""

# Probes whose expected outcome we deliberately differ from: we reject any "hash" that is not
# 32 bytes, and this probe passes two equal 12-byte roots ("don't care 2") for equal sizes.
STRICTER_THAN_UPSTREAM = {
    "testdata/consistency/additional/sizes-are-equal-one-and-proof-is-empty.json"
}

SAMPLE_LEAVES = [leaf_hash(LEAF_INPUTS[i % 8] + i.to_bytes(4, "big")) for i in range(4100)]


def _b(value: str) -> bytes:
    return base64.b64decode(value)


def _probes(kind: str) -> list[dict[str, Any]]:
    data: dict[str, Any] = json.loads(PROBES_FILE.read_text())
    probes: list[dict[str, Any]] = data[kind]
    return probes


def _build(leaves: Sequence[bytes]) -> tuple[TileBuilder, dict[TileId, bytes]]:
    builder = TileBuilder()
    tiles = builder.append(leaves)
    return builder, tiles


@functools.cache
def _big_tree() -> tuple[dict[TileId, bytes], dict[int, bytes]]:
    """Tiles of a 65,800-leaf tree (three levels) and CompactRange roots at chosen sizes."""
    sizes = {1, 255, 256, 257, 65535, 65536, 65537, 65800, 511, 512, 513, 40000}
    builder = TileBuilder()
    compact = CompactRange()
    tiles: dict[TileId, bytes] = {}
    roots: dict[int, bytes] = {}
    chunk: list[bytes] = []
    for i in range(65800):
        value = leaf_hash(i.to_bytes(4, "big"))
        compact.append(value)
        chunk.append(value)
        if compact.size in sizes:
            roots[compact.size] = compact.root()
            tiles.update(builder.append(chunk))
            chunk = []
            assert builder.root() == roots[compact.size]
    return tiles, roots


def test_leaf_and_node_hash_follow_rfc_6962_domain_separation() -> None:
    """Leaves hash 0x00||data, nodes 0x01||l||r, the empty tree is SHA-256("")."""
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert leaf_hash(b"") == ROOTS[1]
    assert node_hash(leaf_hash(b""), leaf_hash(b"\x00")) == ROOTS[2]


def test_go_record_hash_vector_matches_leaf_hash() -> None:
    """Go sumdb/tlog note_test.go: RecordHash("hello world") encodes as TszzRg...Bb0=."""
    expected = "TszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0="
    assert base64.b64encode(leaf_hash(b"hello world")).decode() == expected


@pytest.mark.parametrize("size", range(9))
def test_roots_of_the_reference_inputs_match_rfc_6962_vectors(size: int) -> None:
    """tree_root, CompactRange, TileBuilder and root_from_tiles all give the published roots."""
    leaves = [leaf_hash(x) for x in LEAF_INPUTS[:size]]
    compact = CompactRange()
    compact.extend(leaves)
    builder, tiles = _build(leaves)

    assert tree_root(leaves) == ROOTS[size]
    assert compact.root() == ROOTS[size]
    assert compact.size == size
    assert builder.root() == ROOTS[size]
    assert root_from_tiles(size, tiles) == ROOTS[size]


@pytest.mark.parametrize(("index", "size", "expected"), INCLUSION_VECTORS)
def test_inclusion_proofs_match_rfc_6962_vectors(
    index: int, size: int, expected: list[bytes]
) -> None:
    """Proofs from tiles equal the published inclusion proofs, and they verify."""
    leaves = [leaf_hash(x) for x in LEAF_INPUTS[:size]]
    _, tiles = _build(leaves)

    proof = inclusion_proof(index, size, tiles)

    assert proof == expected
    verify_inclusion(leaves[index], index, size, proof, ROOTS[size])


@pytest.mark.parametrize(("old", "new", "expected"), CONSISTENCY_VECTORS)
def test_consistency_proofs_match_rfc_6962_vectors(
    old: int, new: int, expected: list[bytes]
) -> None:
    """Proofs from tiles equal the published consistency proofs, and they verify."""
    _, tiles = _build([leaf_hash(x) for x in LEAF_INPUTS[:new]])

    proof = consistency_proof(old, new, tiles)

    assert proof == expected
    verify_consistency(old, new, ROOTS[old], ROOTS[new], proof)


@pytest.mark.parametrize("probe", _probes("inclusion"), ids=lambda p: p["file"])
def test_transparency_dev_inclusion_probes(probe: dict[str, Any]) -> None:
    """Every transparency-dev inclusion probe (happy path and mutations) gets its verdict."""
    args = (
        _b(probe["leafHash"]),
        probe["leafIdx"],
        probe["treeSize"],
        [_b(p) for p in probe["proof"] or []],
        _b(probe["root"]),
    )
    if probe["wantErr"]:
        with pytest.raises(ProofError):
            verify_inclusion(*args)
    else:
        verify_inclusion(*args)


@pytest.mark.parametrize("probe", _probes("consistency"), ids=lambda p: p["file"])
def test_transparency_dev_consistency_probes(probe: dict[str, Any]) -> None:
    """Every transparency-dev consistency probe gets its verdict (one on purpose stricter)."""
    args = (
        probe["size1"],
        probe["size2"],
        _b(probe["root1"]),
        _b(probe["root2"]),
        [_b(p) for p in probe["proof"] or []],
    )
    if probe["wantErr"] or probe["file"] in STRICTER_THAN_UPSTREAM:
        with pytest.raises(ProofError):
            verify_consistency(*args)
    else:
        verify_consistency(*args)


def test_proof_error_is_a_chain_error() -> None:
    """Callers that catch ChainError (ledger verify) also catch ProofError."""
    assert issubclass(ProofError, ChainError)


def test_tile_layout_is_c2sp_height_8() -> None:
    """Tile 0/N holds leaves 256N.., tile 1/N holds the roots of 256 full level-0 tiles."""
    builder, tiles = _build(SAMPLE_LEAVES[:600])

    assert set(tiles) == {TileId(0, 0), TileId(0, 1), TileId(0, 2), TileId(1, 0)}
    assert tiles[TileId(0, 1)] == b"".join(SAMPLE_LEAVES[256:512])
    assert len(tiles[TileId(0, 2)]) == (600 - 512) * HASH_SIZE
    assert tiles[TileId(1, 0)] == tree_root(SAMPLE_LEAVES[:256]) + tree_root(SAMPLE_LEAVES[256:512])
    assert tile_width(TileId(0, 2), 600) == 88
    assert tile_width(TileId(1, 0), 600) == 2
    assert tile_width(TileId(0, 3), 600) == 0
    assert TileBuilder.edge_tiles(600) == [TileId(0, 2), TileId(1, 0)]
    assert builder.tiles() == {TileId(0, 2): tiles[TileId(0, 2)], TileId(1, 0): tiles[TileId(1, 0)]}


def test_edge_tiles_skip_levels_whose_last_tile_is_full() -> None:
    """At 512 leaves level 0 has no partial tile; at 0 leaves nothing is needed."""
    assert TileBuilder.edge_tiles(512) == [TileId(1, 0)]
    assert TileBuilder.edge_tiles(65536) == [TileId(2, 0)]
    assert TileBuilder.edge_tiles(0) == []


def test_append_returns_only_changed_tiles_with_full_content() -> None:
    """A second batch returns the grown partial tile whole, not the finished ones before it."""
    builder, _ = _build(SAMPLE_LEAVES[:300])

    changed = builder.append(SAMPLE_LEAVES[300:310])

    assert changed == {TileId(0, 1): b"".join(SAMPLE_LEAVES[256:310])}
    assert builder.size == 310


def test_builder_resumes_from_stored_edge_tiles() -> None:
    """A builder resumed from edge tiles continues exactly as the original would."""
    original, tiles = _build(SAMPLE_LEAVES[:1000])
    edge = {t: tiles[t] for t in TileBuilder.edge_tiles(1000)}

    resumed = TileBuilder(1000, edge)
    resumed.append(SAMPLE_LEAVES[1000:1500])
    original.append(SAMPLE_LEAVES[1000:1500])

    assert resumed.root() == original.root() == tree_root(SAMPLE_LEAVES[:1500])
    assert resumed.tiles() == original.tiles()


def test_builder_resume_cuts_wider_tiles_to_the_size() -> None:
    """A later, longer version of an edge tile is accepted and only its prefix is used."""
    _, tiles = _build(SAMPLE_LEAVES[:1000])

    resumed = TileBuilder(900, tiles)

    assert resumed.root() == tree_root(SAMPLE_LEAVES[:900])


def test_builder_resume_names_a_missing_or_short_tile() -> None:
    """Resuming without the edge tile, or with a short one, names that tile."""
    _, tiles = _build(SAMPLE_LEAVES[:1000])

    with pytest.raises(ProofError, match=r"tile 0/3 is missing"):
        TileBuilder(1000, {TileId(1, 0): tiles[TileId(1, 0)]})
    with pytest.raises(ProofError, match=r"tile 0/3 holds 1 hashes, 232 are needed"):
        TileBuilder(1000, {**tiles, TileId(0, 3): SAMPLE_LEAVES[0]})


def test_bad_hash_lengths_are_refused() -> None:
    """Leaf hashes that are not 32 bytes are refused by CompactRange and TileBuilder."""
    with pytest.raises(ProofError, match="31 bytes"):
        CompactRange().append(b"x" * 31)
    with pytest.raises(ProofError, match="33 bytes"):
        TileBuilder().append([b"x" * 33])


def test_proofs_name_a_missing_tile() -> None:
    """A proof whose tile is absent fails with the tile's name, not a KeyError."""
    _, tiles = _build(SAMPLE_LEAVES[:1000])
    del tiles[TileId(1, 0)]

    with pytest.raises(ProofError, match=r"tile 1/0 is missing"):
        inclusion_proof(5, 1000, tiles)
    with pytest.raises(ProofError, match=r"tile 1/0 is missing"):
        root_from_tiles(1000, tiles)


def test_proofs_refuse_a_short_or_ragged_tile() -> None:
    """A tile shorter than the size needs, or not whole hashes, is named in the error."""
    _, tiles = _build(SAMPLE_LEAVES[:300])

    with pytest.raises(ProofError, match=r"tile 0/1 holds 44 hashes, 45 are needed"):
        consistency_proof(10, 301, tiles)
    tiles[TileId(0, 1)] += b"x"
    with pytest.raises(ProofError, match="not a whole number of hashes"):
        inclusion_proof(299, 300, tiles)


def test_proofs_refuse_impossible_positions() -> None:
    """Index outside the tree, or an old size above the new one, is a ProofError."""
    with pytest.raises(ProofError, match="index 5 in a tree of size 5"):
        inclusion_tiles(5, 5)
    with pytest.raises(ProofError, match="size 0"):
        inclusion_proof(0, 0, {})
    with pytest.raises(ProofError, match="from size 9 to size 8"):
        consistency_tiles(9, 8)
    with pytest.raises(ProofError):
        root_tiles(-1)


def test_trivial_consistency_proofs_are_empty() -> None:
    """From size 0 or to the same size the proof is empty and needs no tiles."""
    assert consistency_tiles(0, 100) == set()
    assert consistency_proof(0, 100, {}) == []
    assert consistency_proof(7, 7, {}) == []
    verify_consistency(0, 8, EMPTY_ROOT, ROOTS[8], [])
    verify_consistency(8, 8, ROOTS[8], ROOTS[8], [])
    verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])


def test_trivial_consistency_refuses_wrong_roots() -> None:
    """Size 0 must carry the empty root; equal sizes must carry equal roots and no proof."""
    with pytest.raises(ProofError, match="empty tree's root"):
        verify_consistency(0, 8, ROOTS[1], ROOTS[8], [])
    with pytest.raises(ProofError, match="two different roots for the same size 8"):
        verify_consistency(8, 8, ROOTS[8], ROOTS[7], [])
    with pytest.raises(ProofError, match="must be empty"):
        verify_consistency(8, 8, ROOTS[8], ROOTS[8], [ROOTS[1]])
    with pytest.raises(ProofError, match="from the empty tree must be empty"):
        verify_consistency(0, 8, EMPTY_ROOT, ROOTS[8], [ROOTS[1]])


def test_verify_errors_say_why() -> None:
    """Verification errors say which check failed."""
    leaves = [leaf_hash(x) for x in LEAF_INPUTS]
    _, tiles = _build(leaves)
    proof = inclusion_proof(5, 8, tiles)

    with pytest.raises(ProofError, match="too few"):
        verify_inclusion(leaves[5], 5, 8, proof[:-1], ROOTS[8])
    with pytest.raises(ProofError, match="too many"):
        verify_inclusion(leaves[5], 5, 8, [*proof, ROOTS[1]], ROOTS[8])
    with pytest.raises(ProofError, match="does not lead to the root"):
        verify_inclusion(leaves[4], 5, 8, proof, ROOTS[8])
    with pytest.raises(ProofError, match="outside a tree of size 8"):
        verify_inclusion(leaves[5], 8, 8, proof, ROOTS[8])
    with pytest.raises(ProofError, match="proof element 1 is 3 bytes"):
        verify_inclusion(leaves[5], 5, 8, [proof[0], b"abc", proof[2]], ROOTS[8])
    cons = consistency_proof(6, 8, tiles)
    with pytest.raises(ProofError, match="old root of size 6"):
        verify_consistency(6, 8, ROOTS[5], ROOTS[8], cons)
    with pytest.raises(ProofError, match="new root of size 8"):
        verify_consistency(6, 8, ROOTS[6], ROOTS[7], cons)
    with pytest.raises(ProofError, match="is empty"):
        verify_consistency(6, 8, ROOTS[6], ROOTS[8], [])


@pytest.mark.parametrize("size", [255, 256, 257, 511, 512, 513, 40000, 65535, 65536, 65537, 65800])
def test_tile_boundaries_up_to_three_levels(size: int) -> None:
    """Roots, inclusion and consistency around tile boundaries of levels 0, 1 and 2 verify."""
    tiles, roots = _big_tree()

    assert root_from_tiles(size, tiles) == roots[size]
    for index in {0, 1, 254, 255, 256, size // 2, size - 2, size - 1}:
        if index < size:
            proof = inclusion_proof(index, size, tiles)
            verify_inclusion(leaf_hash(index.to_bytes(4, "big")), index, size, proof, roots[size])
    for old in sorted(s for s in roots if s < size):
        proof = consistency_proof(old, size, tiles)
        verify_consistency(old, size, roots[old], roots[size], proof)


def test_proofs_in_a_ten_million_leaf_tree_read_a_few_tiles() -> None:
    """An inclusion proof at 10^7 leaves names at most 3 tiles per level touched (3 levels)."""
    needed = inclusion_tiles(1_234_567, 10_000_000)

    assert {t.level for t in needed} == {0, 1, 2}
    assert len(needed) <= 7
    assert all(tile_width(t, 10_000_000) > 0 for t in needed)


@settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    size=st.integers(min_value=1, max_value=3000),
    chunks=st.lists(st.integers(min_value=1, max_value=700), min_size=1, max_size=12),
    resume_at=st.integers(min_value=0, max_value=3000),
    data=st.data(),
)
def test_tiles_fed_in_chunks_and_resumed_match_the_reference(
    size: int, chunks: list[int], resume_at: int, data: st.DataObject
) -> None:
    """Chunked, resumed TileBuilder roots equal tree_root; every proof from tiles verifies."""
    leaves = SAMPLE_LEAVES[:size]
    resume_at = min(resume_at, size)
    builder = TileBuilder()
    store: dict[TileId, bytes] = {}
    pos = 0
    i = 0
    resumed = False
    while pos < size:
        if not resumed and pos >= resume_at:
            edge = {t: store[t] for t in TileBuilder.edge_tiles(builder.size)}
            builder = TileBuilder(builder.size, edge)
            resumed = True
        step = chunks[i % len(chunks)]
        i += 1
        store.update(builder.append(leaves[pos : pos + step]))
        pos = min(size, pos + step)
        assert builder.root() == tree_root(leaves[:pos])

    root = tree_root(leaves)
    assert builder.size == size
    assert root_from_tiles(size, store) == root
    assert root_tiles(size) <= store.keys()

    index = data.draw(st.integers(min_value=0, max_value=size - 1), label="index")
    proof = inclusion_proof(index, size, {t: store[t] for t in inclusion_tiles(index, size)})
    verify_inclusion(leaves[index], index, size, proof, root)

    old = data.draw(st.integers(min_value=0, max_value=size), label="old")
    old_root = tree_root(leaves[:old])
    cons = consistency_proof(old, size, {t: store[t] for t in consistency_tiles(old, size)})
    verify_consistency(old, size, old_root, root, cons)
    # The tiles of the full tree are wider than those at `old`; only the prefix matters.
    assert root_from_tiles(old, store) == old_root

    # Tampering: another leaf, another index, a flipped bit, another root all fail.
    with pytest.raises(ProofError):
        verify_inclusion(leaf_hash(b"forged"), index, size, proof, root)
    if size > 1:
        with pytest.raises(ProofError):
            verify_inclusion(leaves[index], (index + 1) % size, size, proof, root)
        bit = data.draw(st.integers(min_value=0, max_value=len(proof) * 256 - 1), label="bit")
        flipped = [bytearray(p) for p in proof]
        flipped[bit // 256][bit % 256 // 8] ^= 1 << (bit % 8)
        with pytest.raises(ProofError):
            verify_inclusion(leaves[index], index, size, [bytes(p) for p in flipped], root)
    with pytest.raises(ProofError):
        verify_inclusion(leaves[index], index, size, proof, node_hash(root, root))
    if 0 < old < size:
        with pytest.raises(ProofError):
            verify_consistency(old, size, old_root, node_hash(root, root), cons)
        with pytest.raises(ProofError):
            verify_consistency(old, size, node_hash(old_root, old_root), root, cons)
        bit = data.draw(st.integers(min_value=0, max_value=len(cons) * 256 - 1), label="cbit")
        flipped = [bytearray(p) for p in cons]
        flipped[bit // 256][bit % 256 // 8] ^= 1 << (bit % 8)
        with pytest.raises(ProofError):
            verify_consistency(old, size, old_root, root, [bytes(p) for p in flipped])
        if old + 1 < size:
            with pytest.raises(ProofError):
                verify_consistency(old + 1, size, old_root, root, cons)


@settings(max_examples=40, deadline=None, database=None)
@given(size=st.integers(min_value=0, max_value=TILE_WIDTH * 4 + 3))
def test_compact_range_matches_reference_at_every_size(size: int) -> None:
    """CompactRange's incremental root equals tree_root at every prefix."""
    compact = CompactRange()
    for value in SAMPLE_LEAVES[:size]:
        compact.append(value)
    assert compact.root() == tree_root(SAMPLE_LEAVES[:size])
