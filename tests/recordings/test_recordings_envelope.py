"""The sealed envelope with real crypto and real files: round trips, every kind of damage, ranges.

Each test seals real bytes with a real P-384 key from a file key store, damages the sealed
file the way a disk, a copy or an attacker would, and checks what ``verify`` / ``open_stream``
/ ``decrypt_range`` say. The test vector is regenerated and compared with the one published in
docs/recording-format.md.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from recording_vectors import VECTOR, documented_vector, regenerate

from asterisk_recorder.errors import EnvelopeError, KeyUnavailable, RecorderError, RecordingError
from asterisk_recorder.recordings import (
    FileKekOpener,
    KekPublicKey,
    KeyStore,
    SealInfo,
    decrypt_range,
    open_stream,
    read_header,
    seal,
    verify,
)
from asterisk_recorder.recordings.envelope import (
    CHUNK_SIZE,
    TAG_BYTES,
    VERSION,
    FileIdentity,
)

C = CHUNK_SIZE


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> KeyStore:
    """A file key store with one active key for standard/2026-12."""
    base = tmp_path_factory.mktemp("keys")
    keys = KeyStore(base / "public", base / "private")
    keys.create("standard", "2026-12")
    return keys


@pytest.fixture(scope="module")
def kek(store: KeyStore) -> KekPublicKey:
    """The active public key."""
    return store.current("standard", "2026-12")


@pytest.fixture(scope="module")
def opener(store: KeyStore) -> FileKekOpener:
    """The private half."""
    return store.opener()


def sealed_file(
    tmp_path: Path, kek: KekPublicKey, data: bytes, name: str = "r1"
) -> tuple[Path, SealInfo]:
    """Seal ``data`` from a real file into ``tmp_path/<name>.arrec``."""
    plain = tmp_path / f"{name}.wav"
    plain.write_bytes(data)
    out = tmp_path / f"{name}.arrec"
    with open(plain, "rb") as src, open(out, "wb") as dst:
        info = seal(src, dst, recording_id=name, kek=kek)
    return out, info


def check(path: Path, **kwargs: Any) -> object:
    """``verify`` an on-disk file."""
    with open(path, "rb") as src:
        return verify(src, **kwargs)


def rewrite(path: Path, edit: Any) -> None:
    """Replace the file's bytes with ``edit(bytes)``."""
    path.write_bytes(edit(path.read_bytes()))


def chunk_at(info_path: Path, index: int) -> int:
    """Offset of chunk ``index`` in a sealed file."""
    with open(info_path, "rb") as src:
        return read_header(src).chunk_offset(index)


THREE = os.urandom(2 * C + 1)  # two full chunks and one byte


@pytest.mark.parametrize("size", [0, 1, 1000, C - 1, C, C + 1, 2 * C + 1, 5 * C])
def test_sealed_recording_round_trips_and_verifies(
    tmp_path: Path, kek: KekPublicKey, opener: FileKekOpener, size: int
) -> None:
    """Empty, 1-byte, chunk-edge and multi-chunk plaintexts come back byte for byte."""
    data = os.urandom(size)
    path, info = sealed_file(tmp_path, kek, data)

    result = check(path, expected=info, opener=opener)
    with open(path, "rb") as src:
        back = b"".join(open_stream(src, opener))

    assert back == data
    assert info.plain_sha256 == hashlib.sha256(data).hexdigest()
    # format v2: the sealed digest is the chunk root (no pass over the whole file)
    assert info.sealed_sha256 == info.chunk_root == result.sealed_sha256  # type: ignore[attr-defined]
    assert info.sealed_bytes == path.stat().st_size
    assert info.chunks == max(1, -(-size // C))
    assert result.seal_info() == info  # type: ignore[attr-defined]


def test_two_chunks_and_one_byte_make_three_chunks_the_last_one_byte(
    tmp_path: Path, kek: KekPublicKey
) -> None:
    """2*65536+1 bytes seal into three chunks; the last holds one byte plus its tag."""
    path, info = sealed_file(tmp_path, kek, THREE)
    with open(path, "rb") as src:
        header = read_header(src)

    assert info.chunks == 3
    assert header.chunk_plain_bytes(2) == 1
    assert header.nonce(2)[-1] == 1
    assert header.nonce(1)[-1] == 0
    assert path.stat().st_size == len(header.raw) + len(THREE) + 3 * TAG_BYTES + 32 + 3 * 32 + 8


def test_sealing_host_cannot_open_what_it_sealed(tmp_path: Path, store: KeyStore) -> None:
    """A key store with only the public directory seals, but has no opener (KeyUnavailable)."""
    sealing_host = KeyStore(store.public_dir)
    kek = sealing_host.current("standard", "2026-12")
    _, info = sealed_file(tmp_path, kek, b"secret audio")

    assert info.kek_id == kek.kek_id
    with pytest.raises(KeyUnavailable, match="no private key directory"):
        sealing_host.opener()


@pytest.mark.parametrize("chunk", [0, 1, 2])
@pytest.mark.parametrize("with_key", [False, True])
def test_flipped_byte_in_any_chunk_names_that_chunk(
    tmp_path: Path, kek: KekPublicKey, opener: FileKekOpener, chunk: int, with_key: bool
) -> None:
    """One bit flipped inside chunk N: verify (with or without the key) names chunk N."""
    path, _ = sealed_file(tmp_path, kek, THREE)
    where = chunk_at(path, chunk) + 0  # first ciphertext byte of the chunk

    def flip(b: bytes) -> bytes:
        return b[:where] + bytes([b[where] ^ 0x01]) + b[where + 1:]

    rewrite(path, flip)

    with pytest.raises(EnvelopeError) as caught:
        check(path, opener=opener if with_key else None)
    assert caught.value.chunk == chunk
    assert f"chunk {chunk}" in str(caught.value)


def test_flipped_byte_with_rewritten_trailer_is_caught_by_the_tag_and_the_ledger(
    tmp_path: Path, kek: KekPublicKey, opener: FileKekOpener
) -> None:
    """An attacker who also fixes the trailer digest is caught by the GCM tag and the chunk root."""
    path, info = sealed_file(tmp_path, kek, THREE)
    data = bytearray(path.read_bytes())
    at = chunk_at(path, 1) + 5
    data[at] ^= 0x80
    with open(path, "rb") as src:
        header = read_header(src)
    need = C + TAG_BYTES
    start = header.chunk_offset(1)
    digest = hashlib.sha256(bytes(data[start:start + need])).digest()
    slot = header.trailer_offset + 32 + 32
    data[slot:slot + 32] = digest
    path.write_bytes(bytes(data))

    check(path)  # keyless, no ledger: self-consistent now
    with pytest.raises(EnvelopeError, match="chunk root"):
        check(path, expected=info)
    with pytest.raises(EnvelopeError, match="authentication tag") as caught:
        check(path, opener=opener)
    assert caught.value.chunk == 1


@pytest.mark.parametrize("cut", [1, 8, 40, 200, C // 2])
def test_cut_tail_is_detected(
    tmp_path: Path, kek: KekPublicKey, opener: FileKekOpener, cut: int
) -> None:
    """Cutting the last bytes (trailer or into the last chunks) fails, with and without a key."""
    path, _ = sealed_file(tmp_path, kek, THREE)
    rewrite(path, lambda b: b[:-cut])

    for use in (None, opener):
        with pytest.raises(EnvelopeError, match=r"truncated|trailer is missing or cut"):
            check(path, opener=use)


def test_cut_inside_a_chunk_names_that_chunk(tmp_path: Path, kek: KekPublicKey) -> None:
    """A file that ends in the middle of chunk 1 says chunk 1."""
    path, _ = sealed_file(tmp_path, kek, THREE)
    rewrite(path, lambda b: b[: chunk_at(path, 1) + 100])

    with pytest.raises(EnvelopeError, match="ends inside chunk 1") as caught:
        check(path)
    assert caught.value.chunk == 1


def test_dropped_chunk_is_named(tmp_path: Path, kek: KekPublicKey, opener: FileKekOpener) -> None:
    """Removing chunk 1 entirely: verify names chunk 1 (the trailer at the end still locates it)."""
    path, _ = sealed_file(tmp_path, kek, THREE)
    a, b = chunk_at(path, 1), chunk_at(path, 2)
    rewrite(path, lambda d: d[:a] + d[b:])

    for use in (None, opener):
        with pytest.raises(EnvelopeError) as caught:
            check(path, opener=use)
        assert caught.value.chunk == 1


def test_swapped_chunks_are_detected(
    tmp_path: Path, kek: KekPublicKey, opener: FileKekOpener
) -> None:
    """Chunks 0 and 1 exchanged: chunk 0 is named, with or without the key."""
    path, _ = sealed_file(tmp_path, kek, THREE)
    a, b, c = chunk_at(path, 0), chunk_at(path, 1), chunk_at(path, 2)
    rewrite(path, lambda d: d[:a] + d[b:c] + d[a:b] + d[c:])

    for use in (None, opener):
        with pytest.raises(EnvelopeError) as caught:
            check(path, opener=use)
        assert caught.value.chunk == 0


def test_swapped_chunks_with_fixed_trailer_fail_their_tags(
    tmp_path: Path, kek: KekPublicKey, opener: FileKekOpener
) -> None:
    """Reordering plus a matching trailer still fails: each nonce carries the chunk's position."""
    path, _ = sealed_file(tmp_path, kek, THREE)
    with open(path, "rb") as src:
        header = read_header(src)
    d = path.read_bytes()
    a, b, c = header.chunk_offset(0), header.chunk_offset(1), header.chunk_offset(2)
    body = d[b:c] + d[a:b]
    t = header.trailer_offset
    digests = d[t + 32:t + 64 + 32]
    fixed = d[:a] + body + d[c:t] + d[t:t + 32] + digests[32:64] + digests[:32] + d[t + 96:]
    path.write_bytes(fixed)

    with pytest.raises(EnvelopeError, match="authentication tag") as caught:
        check(path, opener=opener)
    assert caught.value.chunk == 0


def test_appended_chunk_is_detected(
    tmp_path: Path, kek: KekPublicKey, opener: FileKekOpener
) -> None:
    """A copy of the last chunk appended before or after the trailer is reported as appended."""
    path, _ = sealed_file(tmp_path, kek, THREE)
    with open(path, "rb") as src:
        header = read_header(src)
    d = path.read_bytes()
    last = d[header.chunk_offset(2):header.trailer_offset]
    t = header.trailer_offset
    for damaged in (d[:t] + last + d[t:], d + last):
        path.write_bytes(damaged)
        for use in (None, opener):
            with pytest.raises(EnvelopeError, match="appended") as caught:
                check(path, opener=use)
            assert caught.value.chunk == 3


@pytest.mark.parametrize("field_offset", [16, 24, 40, 64, 70])
def test_header_edit_is_detected(
    tmp_path: Path, kek: KekPublicKey, opener: FileKekOpener, field_offset: int
) -> None:
    """Any changed header byte (prefix, length, digest, ids) fails, keyless and with the key."""
    path, info = sealed_file(tmp_path, kek, THREE)
    at = field_offset
    rewrite(path, lambda b: b[:at] + bytes([b[at] ^ 0x04]) + b[at + 1:])

    for use in (None, opener):
        with pytest.raises(RecordingError):
            check(path, opener=use)
    with pytest.raises(RecordingError):
        check(path, expected=info)


def test_wrong_private_key_is_a_clear_key_error(
    tmp_path: Path, kek: KekPublicKey, store: KeyStore
) -> None:
    """A private key file of another key under this key's name: KeyUnavailable naming the key."""
    path, _ = sealed_file(tmp_path, kek, b"hello")
    other = KeyStore(tmp_path / "other-pub", tmp_path / "other-priv")
    made = other.create("standard", "2026-12")
    (tmp_path / "other-priv" / f"{made.kek_id}.key.pem").rename(
        tmp_path / "other-priv" / f"{kek.kek_id}.key.pem"
    )

    with pytest.raises(KeyUnavailable, match=f"does not open with private key {kek.kek_id}"):
        check(path, opener=FileKekOpener(tmp_path / "other-priv"))
    with pytest.raises(KeyUnavailable, match="not in this directory"):
        check(path, opener=FileKekOpener(tmp_path / "empty"))


def test_a_changed_plaintext_digest_refuses_to_seal(tmp_path: Path, kek: KekPublicKey) -> None:
    """A closure digest that is not the file's (edited between close and seal) is refused."""
    src = io.BytesIO(b"audio" * 1000)
    with pytest.raises(EnvelopeError, match="changed between its closure and sealing"):
        seal(src, io.BytesIO(), recording_id="r1", kek=kek, plain_sha256="0" * 64)


@pytest.mark.parametrize(
    "hostile",
    ["", "../etc/passwd", "a/b", ".hidden", "x" * 129, "rec\n", "rec\x00", "récord", "a b", "-x"],
)
def test_hostile_recording_ids_are_refused(kek: KekPublicKey, hostile: str) -> None:
    """Ids with separators, dots first, control characters, non-ASCII or too long: refused."""
    with pytest.raises(RecordingError, match="recording id"):
        seal(io.BytesIO(b"x"), io.BytesIO(), recording_id=hostile, kek=kek)


def test_not_an_envelope_is_named(tmp_path: Path) -> None:
    """A plain WAV handed to verify: 'not a sealed recording', an error of the one tree."""
    wav = tmp_path / "plain.wav"
    wav.write_bytes(b"RIFF" + bytes(40))
    with pytest.raises(RecorderError, match="not a sealed recording"):
        check(wav)


class CountingReader(io.RawIOBase):
    """A file wrapper that counts the bytes read and remembers the offsets read."""

    def __init__(self, path: Path) -> None:
        self._f = open(path, "rb")  # noqa: SIM115 - closed by close()
        self.reads: list[tuple[int, int]] = []

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._f.fileno()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._f.seek(offset, whence)

    def tell(self) -> int:
        return self._f.tell()

    def read(self, n: int = -1) -> bytes:
        at = self._f.tell()
        data = self._f.read(n)
        self.reads.append((at, len(data)))
        return data

    def close(self) -> None:
        self._f.close()
        super().close()

    def covered(self) -> Iterator[int]:
        for at, n in self.reads:
            yield from (at, at + n - 1) if n else ()


def test_decrypt_range_reads_only_the_chunks_it_covers(
    tmp_path: Path, kek: KekPublicKey, opener: FileKekOpener
) -> None:
    """A range inside chunks 3-4 of 8 reads the header and those two chunks, nothing else."""
    data = os.urandom(8 * C)
    path, _ = sealed_file(tmp_path, kek, data)
    with open(path, "rb") as src:
        header = read_header(src)
    reader = CountingReader(path)
    try:
        got = decrypt_range(reader, opener, 3 * C + 10, 5 * C - 10)  # type: ignore[arg-type]
    finally:
        reader.close()

    assert got == data[3 * C + 10:5 * C - 10]
    read_bytes = sum(n for _, n in reader.reads)
    assert read_bytes == len(header.raw) + 2 * (C + TAG_BYTES)
    body = [(at, n) for at, n in reader.reads if at >= len(header.raw)]
    assert min(at for at, _ in body) == header.chunk_offset(3)
    assert max(at + n for at, n in body) == header.chunk_offset(5)


def test_decrypt_range_edges(tmp_path: Path, kek: KekPublicKey, opener: FileKekOpener) -> None:
    """Ranges at the ends, past the end, empty, and a bad range behave as documented."""
    path, _ = sealed_file(tmp_path, kek, THREE)
    with open(path, "rb") as src:
        assert decrypt_range(src, opener, 0, 1) == THREE[:1]
        assert decrypt_range(src, opener, 2 * C, 10**9) == THREE[2 * C:]
        assert decrypt_range(src, opener, C - 1, C + 1) == THREE[C - 1:C + 1]
        assert decrypt_range(src, opener, 5, 5) == b""
        with pytest.raises(RecordingError, match="not a range"):
            decrypt_range(src, opener, 9, 3)


def test_decrypt_range_refuses_a_damaged_chunk_and_a_cut_file(
    tmp_path: Path, kek: KekPublicKey, opener: FileKekOpener
) -> None:
    """A covered chunk with a bad tag is named; a file shorter than its header says is refused."""
    path, _ = sealed_file(tmp_path, kek, THREE)
    at = chunk_at(path, 1) + 7
    rewrite(path, lambda b: b[:at] + bytes([b[at] ^ 1]) + b[at + 1:])
    with open(path, "rb") as src:
        assert decrypt_range(src, opener, 0, 10) == THREE[:10]  # chunk 0 is intact
        with pytest.raises(EnvelopeError) as caught:
            decrypt_range(src, opener, C, C + 10)
    assert caught.value.chunk == 1
    rewrite(path, lambda b: b[:-1])
    with open(path, "rb") as src, pytest.raises(EnvelopeError, match="truncated or extended"):
        decrypt_range(src, opener, 0, 10)


def test_open_stream_releases_nothing_from_a_damaged_file(
    tmp_path: Path, kek: KekPublicKey, opener: FileKekOpener
) -> None:
    """A bad last chunk stops open_stream before its first chunk is yielded."""
    path, _ = sealed_file(tmp_path, kek, THREE)
    at = chunk_at(path, 2)
    rewrite(path, lambda b: b[:at] + bytes([b[at] ^ 1]) + b[at + 1:])
    released: list[bytes] = []
    with open(path, "rb") as src:
        stream = open_stream(src, opener)
        with pytest.raises(EnvelopeError) as caught:
            released.append(next(stream))

    assert released == []
    assert caught.value.chunk == 2


def test_ledger_mismatch_is_named(tmp_path: Path, kek: KekPublicKey) -> None:
    """A file checked against another recording's ledger entry says which field differs."""
    path, _ = sealed_file(tmp_path, kek, b"one", name="r1")
    _, other = sealed_file(tmp_path, kek, b"two", name="r2")

    with pytest.raises(EnvelopeError, match="recording id is 'r1', the ledger says 'r2'"):
        check(path, expected=other)


def test_test_vector_matches_the_published_one() -> None:
    """Sealing the fixed inputs reproduces docs/recording-format.md's vector byte for byte."""
    envelope, info = regenerate()
    published = documented_vector()

    for name, value in VECTOR.items():
        assert published[name] == value, name
    assert published["envelope"] == envelope.hex()
    assert published["plain_sha256"] == info.plain_sha256
    assert published["sealed_sha256"] == info.sealed_sha256
    assert published["chunk_root"] == info.chunk_root
    assert published["sealed_sha256"] == published["chunk_root"]
    assert published["file_sha256"] == hashlib.sha256(envelope).hexdigest()
    assert published["sealed_bytes"] == str(info.sealed_bytes)
    assert VERSION == 2 == envelope[6]


def _vector_opener() -> Any:
    from cryptography.hazmat.primitives.asymmetric import ec

    from asterisk_recorder.recordings.keys import unwrap_dek

    private = ec.derive_private_key(int(VECTOR["kek_private_scalar"], 16), ec.SECP384R1())

    class Opener:
        def unwrap(self, kek_id: str, wrapped: bytes) -> bytes:
            return unwrap_dek(wrapped, private, kek_id)

    return Opener()


def test_the_kept_v1_vector_still_verifies_against_its_ledger_digest_and_opens() -> None:
    """An old (v1) file: its sealed digest is the file's SHA-256; it verifies and opens."""
    published = documented_vector("test-vector-v1")
    envelope = bytes.fromhex(published["envelope"])
    assert 1 == envelope[6]
    assert published["sealed_sha256"] == hashlib.sha256(envelope).hexdigest()
    expected = SealInfo(
        recording_id=published["recording_id"], plain_bytes=len(bytes.fromhex(VECTOR["plaintext"])),
        plain_sha256=published["plain_sha256"], sealed_bytes=int(published["sealed_bytes"]),
        sealed_sha256=published["sealed_sha256"], kek_id=published["kek_id"],
        chunk_size=CHUNK_SIZE, chunks=1, chunk_root=published["chunk_root"],
    )

    result = verify(io.BytesIO(envelope), expected=expected, opener=_vector_opener())
    opened = b"".join(open_stream(io.BytesIO(envelope), _vector_opener(), expected=expected))

    assert result.sealed_sha256 == published["sealed_sha256"]
    assert result.chunk_root == published["chunk_root"]
    assert opened == bytes.fromhex(VECTOR["plaintext"])
    with pytest.raises(EnvelopeError, match="digest or length differs from the ledger's"):
        verify(io.BytesIO(envelope), expected=replace(expected, sealed_sha256=expected.chunk_root))


def test_seal_given_the_closure_identity_refuses_a_file_written_since(
    tmp_path: Path, kek: KekPublicKey
) -> None:
    """seal(unchanged=...) trusts the closure digest only for that very file: a write between
    the digest and the seal (size, mtime, ctime) is refused."""
    path = tmp_path / "plain.wav"
    path.write_bytes(b"audio" * 30000)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    identity = FileIdentity.of(path.stat())
    with open(path, "r+b") as handle:
        handle.seek(10)
        handle.write(b"edit")  # same size: only mtime/ctime tell

    with open(path, "rb") as src, pytest.raises(EnvelopeError, match="replaced or written"):
        seal(src, io.BytesIO(), recording_id="r1", kek=kek, plain_sha256=digest,
             unchanged=identity)


def test_seal_given_the_closure_identity_refuses_a_file_written_while_it_is_sealed(
    tmp_path: Path, kek: KekPublicKey
) -> None:
    """A write through another descriptor while the chunks are read (over bytes already
    sealed, same size): refused at the end, by the file's identity alone."""
    path = tmp_path / "plain.wav"
    path.write_bytes(os.urandom(20 * CHUNK_SIZE))  # more than one batch of reads
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    identity = FileIdentity.of(path.stat())

    class WrittenMeanwhile(io.FileIO):
        """A real file; after its first plaintext read another writer appends to it."""

        reads = 0

        def _maybe_write(self) -> None:
            WrittenMeanwhile.reads += 1
            if WrittenMeanwhile.reads == 2:
                with open(path, "r+b") as other:
                    other.write(b"edit")

        def read(self, size: int = -1, /) -> bytes:
            self._maybe_write()
            return super().read(size)

        def readinto(self, buffer: Any, /) -> int:
            self._maybe_write()
            return super().readinto(buffer)

    with WrittenMeanwhile(path, "rb") as src, pytest.raises(
        EnvelopeError, match="written to or replaced while it was sealed"
    ):
        seal(src, io.BytesIO(), recording_id="r1", kek=kek, plain_sha256=digest,
             unchanged=identity)


def test_seal_given_the_closure_identity_seals_what_verifies_and_opens(
    tmp_path: Path, kek: KekPublicKey, opener: Any
) -> None:
    """The one-pass seal (closure digest + identity) gives an envelope that opens to the file."""
    path = tmp_path / "plain.wav"
    data = os.urandom(2 * CHUNK_SIZE + 99)
    path.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    out = io.BytesIO()
    with open(path, "rb") as src:
        info = seal(src, out, recording_id="r1", kek=kek, plain_sha256=digest,
                    unchanged=FileIdentity.of(os.fstat(src.fileno())))

    assert verify(io.BytesIO(out.getvalue()), expected=info, opener=opener).tags_checked
    assert b"".join(open_stream(io.BytesIO(out.getvalue()), opener)) == data


def test_test_vector_opens_with_its_private_scalar(tmp_path: Path) -> None:
    """The published envelope decrypts with the published KEK scalar to the published text."""
    from cryptography.hazmat.primitives.asymmetric import ec

    from asterisk_recorder.recordings.keys import unwrap_dek

    envelope, _ = regenerate()
    private = ec.derive_private_key(int(VECTOR["kek_private_scalar"], 16), ec.SECP384R1())

    class Opener:
        def unwrap(self, kek_id: str, wrapped: bytes) -> bytes:
            return unwrap_dek(wrapped, private, kek_id)

    src = io.BytesIO(envelope)
    assert b"".join(open_stream(src, Opener())) == bytes.fromhex(VECTOR["plaintext"])
    src.seek(0)
    header = read_header(src)
    assert Opener().unwrap(header.kek_id, header.wrapped_dek) == bytes.fromhex(VECTOR["dek"])
