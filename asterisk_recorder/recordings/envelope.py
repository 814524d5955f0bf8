"""The sealed recording envelope, format v2 (docs/recording-format.md): seal, verify, open.

This module owns the byte layout of a sealed recording and the four operations on it:
``seal`` (stream a plaintext into an envelope, constant memory), ``verify`` (the structure and
the per-chunk digests without any key; every GCM tag and the plaintext digest with a
``KekOpener``), ``open_stream`` (verify everything, then release plaintext) and
``decrypt_range`` (read and authenticate only the chunks a byte range covers). AES-256-GCM in
64 KiB chunks, STREAM nonces (prefix || counter || last flag), AAD = SHA-256(header); the
data key is wrapped to a KEK public key (``keys``). Sealing makes one SHA-256 pass (the
per-chunk ciphertext digests); the sealed digest the ledger keeps is the chunk root over them (v2;
v1 files, whose sealed digest is the SHA-256 of the whole file, still verify and open). It must
not touch paths, the ledger or the clock: callers hand in open binary files and record the facts
themselves.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from asterisk_recorder.errors import EnvelopeError, RecordingError
from asterisk_recorder.recordings.keys import (
    DEK_BYTES,
    WRAP_ALGORITHM,
    KekOpener,
    KekPublicKey,
    check_kek_id,
)

__all__ = [
    "AEAD_AES_256_GCM",
    "CHUNK_SIZE",
    "MAGIC",
    "RECORDING_ID_RE",
    "SUPPORTED_VERSIONS",
    "TAG_BYTES",
    "TRAILER_MAGIC",
    "VERSION",
    "FileIdentity",
    "Header",
    "SealInfo",
    "VerifyResult",
    "check_recording_id",
    "decrypt_range",
    "open_stream",
    "read_header",
    "seal",
    "verify",
]

MAGIC = b"ARREC\x00"
"""First six bytes of every sealed recording."""
VERSION = 2
"""The format version ``seal`` writes (v2: the sealed digest is the chunk root)."""
SUPPORTED_VERSIONS = (1, 2)
"""The versions ``verify`` and ``open_stream`` read (v1: sealed digest = SHA-256 of the file)."""
AEAD_AES_256_GCM = 1
CHUNK_SIZE = 65536
"""Plaintext bytes per chunk (the last chunk may be shorter, or empty for an empty file)."""
TAG_BYTES = 16
NONCE_PREFIX_BYTES = 7
TRAILER_MAGIC = b"ARRECEND"
_ROOT_PREFIX = b"ARREC chunk-root v1\x00"
_FIXED = struct.Struct(">6sBBII7sQ32s")  # magic, version, aead, header_len, chunk, prefix, len, sha
_MAX_HEADER = 4096
_DIGEST = 32

RECORDING_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
"""A recording id: 1-128 ASCII letters, digits, ``.``, ``_``, ``-``; starts with a letter or digit
(so it is safe as a file name: no ``/``, no ``..`` alone, no control characters)."""
_HEX64_RE = re.compile(r"^[0-9a-f]{64}$")


def check_recording_id(recording_id: str) -> str:
    """Return ``recording_id`` or raise ``RecordingError`` saying what is allowed."""
    if not RECORDING_ID_RE.fullmatch(str(recording_id)):
        raise RecordingError(
            f"recording id {recording_id!r} refused: use 1-128 characters of A-Z a-z 0-9 . _ - "
            "starting with a letter or digit"
        )
    return recording_id


@dataclass(frozen=True, slots=True)
class SealInfo:
    """What the ledger's ``recording.sealed`` fact records about one sealed file.

    Attributes:
        recording_id: the id in the envelope's header.
        plain_bytes / plain_sha256: length and SHA-256 (hex) of the plaintext.
        sealed_bytes / sealed_sha256: length and digest (hex) of the sealed file: in v2 the
            chunk root (a hash of the per-chunk digests, no extra pass), in v1 the SHA-256 of
            the whole file.
        kek_id: the key-encryption key the data key is wrapped to.
        chunk_size / chunks: plaintext bytes per chunk, number of chunks.
        chunk_root: SHA-256 (hex) over the header digest and every chunk's ciphertext digest;
            lets ``verify`` check a file against the ledger without any key.
    """

    recording_id: str
    plain_bytes: int
    plain_sha256: str
    sealed_bytes: int
    sealed_sha256: str
    kek_id: str
    chunk_size: int
    chunks: int
    chunk_root: str

    def payload(self) -> dict[str, str | int]:
        """The fields as a flat ledger payload (``recording.sealed``)."""
        return {name: getattr(self, name) for name in SealInfo.__slots__}


@dataclass(frozen=True, slots=True)
class Header:
    """A parsed envelope header.

    Attributes:
        raw: the header bytes exactly as stored (its SHA-256 is every chunk's AAD).
        recording_id, kek_id, plain_bytes, plain_sha256, chunk_size, nonce_prefix,
        wrap_algorithm, wrapped_dek: the fields (docs/recording-format.md).
    """

    raw: bytes
    recording_id: str
    kek_id: str
    plain_bytes: int
    plain_sha256: str
    chunk_size: int
    nonce_prefix: bytes
    wrap_algorithm: int
    wrapped_dek: bytes
    version: int = VERSION

    @property
    def digest(self) -> bytes:
        """SHA-256 of the header: the associated data of every chunk."""
        return hashlib.sha256(self.raw).digest()

    @property
    def chunks(self) -> int:
        """Number of chunks (at least one: an empty recording has one empty chunk)."""
        return max(1, -(-self.plain_bytes // self.chunk_size))

    def chunk_plain_bytes(self, index: int) -> int:
        """Plaintext length of chunk ``index``."""
        if index < self.chunks - 1:
            return self.chunk_size
        return self.plain_bytes - (self.chunks - 1) * self.chunk_size

    def chunk_offset(self, index: int) -> int:
        """Where chunk ``index`` starts in the file."""
        return len(self.raw) + index * (self.chunk_size + TAG_BYTES)

    @property
    def trailer_offset(self) -> int:
        """Where the trailer starts."""
        return len(self.raw) + self.plain_bytes + self.chunks * TAG_BYTES

    @property
    def trailer_bytes(self) -> int:
        """Trailer length: header digest, one digest per chunk, end magic."""
        return _DIGEST + self.chunks * _DIGEST + len(TRAILER_MAGIC)

    @property
    def sealed_bytes(self) -> int:
        """Length the whole file must have."""
        return self.trailer_offset + self.trailer_bytes

    def nonce(self, index: int) -> bytes:
        """Chunk nonce: prefix (7) || counter (u32 BE) || last flag (1 on the last chunk)."""
        last = 1 if index == self.chunks - 1 else 0
        return self.nonce_prefix + struct.pack(">IB", index, last)


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """A file that passed ``verify``.

    Attributes:
        recording_id, kek_id, plain_bytes, plain_sha256, sealed_bytes, sealed_sha256, chunks,
        chunk_root: what the file holds (as in ``SealInfo``).
        tags_checked: every GCM tag and the plaintext digest were checked (an opener was given).
        ledger_checked: the file was compared with the ledger's ``SealInfo``.
    """

    recording_id: str
    kek_id: str
    plain_bytes: int
    plain_sha256: str
    sealed_bytes: int
    sealed_sha256: str
    chunks: int
    chunk_root: str
    tags_checked: bool
    ledger_checked: bool

    def seal_info(self) -> SealInfo:
        """The file's ``SealInfo`` (what a ledger entry about it must say)."""
        return SealInfo(
            self.recording_id, self.plain_bytes, self.plain_sha256, self.sealed_bytes,
            self.sealed_sha256, self.kek_id, CHUNK_SIZE, self.chunks, self.chunk_root,
        )


def _build_header(
    recording_id: str, kek_id: str, plain_bytes: int, plain_sha256: bytes, prefix: bytes,
    wrapped: bytes,
) -> bytes:
    rid = recording_id.encode("ascii")
    kid = kek_id.encode("ascii")
    tail = (
        bytes([len(rid)]) + rid + bytes([len(kid)]) + kid + bytes([WRAP_ALGORITHM])
        + struct.pack(">H", len(wrapped)) + wrapped
    )
    length = _FIXED.size + len(tail)
    return _FIXED.pack(
        MAGIC, VERSION, AEAD_AES_256_GCM, length, CHUNK_SIZE, prefix, plain_bytes, plain_sha256
    ) + tail


def _parse_header(raw: bytes) -> Header:
    (magic, version, aead, length, chunk, prefix, plain_bytes, sha) = _FIXED.unpack_from(raw)
    pos = _FIXED.size

    def take(n: int, what: str) -> bytes:
        nonlocal pos
        if pos + n > len(raw):
            raise EnvelopeError(f"the header ends inside the {what}")
        piece = raw[pos:pos + n]
        pos += n
        return piece

    rid_len = take(1, "recording id length")[0]
    rid = take(rid_len, "recording id")
    kid_len = take(1, "key id length")[0]
    kid = take(kid_len, "key id")
    wrap_alg = take(1, "wrap algorithm")[0]
    (wrapped_len,) = struct.unpack(">H", take(2, "wrapped key length"))
    wrapped = take(wrapped_len, "wrapped key")
    if pos != len(raw):
        raise EnvelopeError(f"the header has {len(raw) - pos} unexplained bytes at its end")
    del magic, aead, length
    try:
        recording_id = check_recording_id(rid.decode("ascii"))
        kek_id = check_kek_id(kid.decode("ascii"))
    except (UnicodeDecodeError, RecordingError) as exc:
        raise EnvelopeError(f"the header holds a malformed id: {exc}") from exc
    if chunk != CHUNK_SIZE:
        raise EnvelopeError(f"chunk size {chunk} is not the format's chunk size {CHUNK_SIZE}")
    if wrap_alg != WRAP_ALGORITHM:
        raise EnvelopeError(f"unknown key wrap algorithm {wrap_alg}")
    if plain_bytes > (2**32 - 1) * CHUNK_SIZE:
        raise EnvelopeError(f"plaintext length {plain_bytes} exceeds the format's limit")
    return Header(
        raw, recording_id, kek_id, plain_bytes, sha.hex(), chunk, prefix, wrap_alg, wrapped,
        version,
    )


def _read_exact(src: BinaryIO, n: int) -> bytes:
    """Up to ``n`` bytes (fewer only at end of file)."""
    parts: list[bytes] = []
    left = n
    while left > 0:
        piece = src.read(left)
        if not piece:
            break
        parts.append(piece)
        left -= len(piece)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def read_header(src: BinaryIO) -> Header:
    """Read and parse the header at the start of ``src`` (leaves the position after it).

    Raises:
        EnvelopeError: not a sealed recording, an unknown version, or a malformed header.
    """
    src.seek(0)
    fixed = _read_exact(src, _FIXED.size)
    if len(fixed) < len(MAGIC) or fixed[: len(MAGIC)] != MAGIC:
        raise EnvelopeError("not a sealed recording (no ARREC magic)")
    if len(fixed) < _FIXED.size:
        raise EnvelopeError("the file ends inside the header")
    if fixed[6] not in SUPPORTED_VERSIONS:
        raise EnvelopeError(
            f"envelope version {fixed[6]} is not supported (this reads "
            f"v{', v'.join(str(v) for v in SUPPORTED_VERSIONS)})"
        )
    if fixed[7] != AEAD_AES_256_GCM:
        raise EnvelopeError(f"unknown cipher code {fixed[7]}")
    (length,) = struct.unpack_from(">I", fixed, 8)
    if not _FIXED.size < length <= _MAX_HEADER:
        raise EnvelopeError(f"header length {length} is out of range")
    rest = _read_exact(src, length - _FIXED.size)
    if len(rest) < length - _FIXED.size:
        raise EnvelopeError("the file ends inside the header")
    return _parse_header(fixed + rest)


def _size(src: BinaryIO) -> int:
    try:
        return os.fstat(src.fileno()).st_size
    except (OSError, AttributeError, io.UnsupportedOperation):
        here = src.tell()
        end = src.seek(0, os.SEEK_END)
        src.seek(here)
        return end


def _root(header_digest: bytes, digests: list[bytes]) -> str:
    h = hashlib.sha256(_ROOT_PREFIX)
    h.update(header_digest)
    for d in digests:
        h.update(d)
    return h.hexdigest()


@dataclass(frozen=True, slots=True)
class FileIdentity:
    """What changes when a file is replaced or written to: device, inode, size, mtime, ctime.

    The sealer takes it with the closure digest (``FileIdentity.of`` before and after hashing);
    ``seal`` given the same identity trusts that digest instead of hashing the plaintext again.
    The kernel updates ``ctime`` on every write and rename and no process can set it back.
    """

    device: int
    inode: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileIdentity:
        """The identity in a ``stat`` result."""
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _identity(src: BinaryIO) -> FileIdentity | None:
    try:
        return FileIdentity.of(os.fstat(src.fileno()))
    except (OSError, AttributeError, io.UnsupportedOperation):
        return None


def seal(
    src: BinaryIO,
    dst: BinaryIO,
    *,
    recording_id: str,
    kek: KekPublicKey,
    plain_sha256: str | None = None,
    unchanged: FileIdentity | None = None,
) -> SealInfo:
    """Stream the plaintext ``src`` (seekable, read from its start) into the envelope ``dst``.

    Memory stays constant (one chunk at a time). The header carries the plaintext SHA-256, so
    it must be known first: without ``plain_sha256`` the file is read twice (digest first, then
    hashed again while sealing, so a change between the passes is refused). With
    ``plain_sha256`` (the digest taken at closure) and ``unchanged`` (the file's identity when
    that digest was taken) the file is read once and not hashed at all: ``src`` must keep that
    identity from before the first byte to after the last. With ``plain_sha256`` alone it is
    hashed while sealing and checked at the end. The caller writes ``dst`` to a temporary name
    and renames it only after this returns.

    Raises:
        RecordingError: a hostile recording id or a malformed ``plain_sha256``.
        EnvelopeError: the plaintext changed while it was sealed (identity, length or digest
            differs from the one given or first read); ``dst`` then holds nothing usable.
    """
    return _seal(
        src, dst, recording_id=recording_id, kek=kek, plain_sha256=plain_sha256,
        dek=os.urandom(DEK_BYTES), nonce_prefix=os.urandom(NONCE_PREFIX_BYTES), ephemeral=None,
        unchanged=unchanged,
    )


def _seal(
    src: BinaryIO,
    dst: BinaryIO,
    *,
    recording_id: str,
    kek: KekPublicKey,
    plain_sha256: str | None,
    dek: bytes,
    nonce_prefix: bytes,
    ephemeral: ec.EllipticCurvePrivateKey | None,
    unchanged: FileIdentity | None = None,
) -> SealInfo:
    check_recording_id(recording_id)
    if plain_sha256 is not None and not _HEX64_RE.fullmatch(str(plain_sha256)):
        raise RecordingError(f"plain_sha256 {plain_sha256!r} is not 64 lowercase hex digits")
    if unchanged is not None and plain_sha256 is None:
        raise RecordingError("seal(unchanged=...) needs the plain_sha256 taken with it")
    if unchanged is not None and _identity(src) != unchanged:
        raise EnvelopeError(
            "the plaintext is not the file its digest was taken from (replaced or written "
            "since)"
        )
    src.seek(0)
    plain_bytes = _size(src)
    if plain_sha256 is None:
        first = hashlib.sha256()
        seen = 0
        while piece := src.read(1 << 20):
            first.update(piece)
            seen += len(piece)
        if seen != plain_bytes:
            raise EnvelopeError(f"the plaintext changed size while it was read ({seen} bytes)")
        plain_sha256 = first.hexdigest()
        src.seek(0)
    header_raw = _build_header(
        recording_id, kek.kek_id, plain_bytes, bytes.fromhex(plain_sha256), nonce_prefix,
        kek.wrap(dek, ephemeral=ephemeral),
    )
    header = _parse_header(header_raw)
    aad = header.digest
    aes = AESGCM(dek)
    plain = hashlib.sha256() if unchanged is None else None
    dst.write(header_raw)
    digests = _encrypt_chunks(src, dst, header, aes, plain)
    if src.read(1):
        raise EnvelopeError("the plaintext grew while it was sealed")
    if plain is not None and plain.hexdigest() != plain_sha256:
        raise EnvelopeError(
            "the plaintext's SHA-256 differs from the one given: the file changed between "
            "its closure and sealing"
        )
    if unchanged is not None and _identity(src) != unchanged:
        raise EnvelopeError(
            "the plaintext was written to or replaced while it was sealed (its size, mtime or "
            "ctime changed)"
        )
    dst.write(aad + b"".join(digests) + TRAILER_MAGIC)
    dst.flush()
    root = _root(aad, digests)
    return SealInfo(
        recording_id=recording_id,
        plain_bytes=plain_bytes,
        plain_sha256=plain_sha256,
        sealed_bytes=header.sealed_bytes,
        sealed_sha256=root,
        kek_id=kek.kek_id,
        chunk_size=CHUNK_SIZE,
        chunks=header.chunks,
        chunk_root=root,
    )


_BATCH = 16
"""Chunks read, encrypted and written per system call while sealing (1 MiB of plaintext)."""
_NONCE_TAIL = struct.Struct(">IB")
"""The nonce after its prefix: chunk counter (u32 BE) and last-chunk flag (``Header.nonce``)."""


def _encrypt_chunks(
    src: BinaryIO, dst: BinaryIO, header: Header, aes: AESGCM, plain: Any
) -> list[bytes]:
    """Encrypt every chunk of ``src`` into ``dst``; return the ciphertext digests.

    Reads ``_BATCH`` chunks at a time into one reused buffer and encrypts them into another
    (``encrypt_into`` where the library has it), so the only per-byte work is AES-GCM, one
    SHA-256 over the ciphertext (and ``plain``, the plaintext digest, when given) and the
    copies into and out of the page cache. Sizes and nonces are computed once per chunk with no
    property lookups (the loop runs 16 times per MiB).
    """
    chunk = header.chunk_size
    sealed_size = chunk + TAG_BYTES
    total = header.chunks
    last_index = total - 1
    last_size = header.plain_bytes - last_index * chunk
    inbuf = bytearray(_BATCH * chunk)
    outbuf = bytearray(_BATCH * sealed_size)
    inview, outview = memoryview(inbuf), memoryview(outbuf)
    encrypt_into = getattr(aes, "encrypt_into", None)
    aad = header.digest
    prefix = header.nonce_prefix
    pack = _NONCE_TAIL.pack
    sha256 = hashlib.sha256
    digests: list[bytes] = []
    append = digests.append
    readinto = src.readinto  # type: ignore[attr-defined]
    for first in range(0, total, _BATCH):
        count = min(_BATCH, total - first)
        stop = first + count
        want = count * chunk if stop <= last_index else (count - 1) * chunk + last_size
        got = 0
        while got < want:
            n = readinto(inview[got:want])
            if not n:
                index = first + got // chunk
                raise EnvelopeError(
                    f"the plaintext shrank while it was sealed (chunk {index})", chunk=index
                )
            got += n
        offset = out = 0
        for index in range(first, stop):
            last = index == last_index
            size = last_size if last else chunk
            data = inview[offset:offset + size]
            if plain is not None:
                plain.update(data)
            target = outview[out:out + size + TAG_BYTES]
            nonce = prefix + pack(index, last)
            if encrypt_into is not None:
                encrypt_into(nonce, data, aad, target)
            else:  # cryptography without encrypt_into
                target[:] = aes.encrypt(nonce, bytes(data), aad)
            append(sha256(target).digest())
            offset += size
            out += size + TAG_BYTES
        dst.write(outview[:out])
    return digests


def _trailer_digests(src: BinaryIO, header: Header, size: int) -> tuple[bytes, list[bytes]] | None:
    """The trailer's header digest and chunk digests, if an intact trailer can be found."""
    tlen = header.trailer_bytes
    places = [header.trailer_offset] if size == header.sealed_bytes else [
        size - tlen, header.trailer_offset,
    ]
    for offset in places:
        if offset < len(header.raw) or offset + tlen > size:
            continue
        src.seek(offset)
        raw = _read_exact(src, tlen)
        if len(raw) == tlen and raw.endswith(TRAILER_MAGIC):
            body = raw[: -len(TRAILER_MAGIC)]
            return body[:_DIGEST], [
                body[i:i + _DIGEST] for i in range(_DIGEST, len(body), _DIGEST)
            ]
    return None


def _unwrap(header: Header, opener: KekOpener) -> bytes:
    dek = opener.unwrap(header.kek_id, header.wrapped_dek)
    if len(dek) != DEK_BYTES:
        raise EnvelopeError(f"the key opener returned a {len(dek)}-byte data key")
    return dek


def _compare_expected(header: Header, expected: SealInfo) -> None:
    pairs = (
        ("recording id", header.recording_id, expected.recording_id),
        ("plaintext length", header.plain_bytes, expected.plain_bytes),
        ("plaintext SHA-256", header.plain_sha256, expected.plain_sha256),
        ("key id", header.kek_id, expected.kek_id),
        ("chunk size", header.chunk_size, expected.chunk_size),
        ("chunk count", header.chunks, expected.chunks),
    )
    for what, got, want in pairs:
        if got != want:
            raise EnvelopeError(f"the header's {what} is {got!r}, the ledger says {want!r}")


def verify(
    src: BinaryIO, *, expected: SealInfo | None = None, opener: KekOpener | None = None
) -> VerifyResult:
    """Check a sealed file (seekable) and name the first thing wrong with it.

    Without ``opener``: the header, the file length, each chunk's ciphertext digest against
    the trailer, and (with ``expected``, the ledger's ``SealInfo``) the header fields, the
    chunk root and the file digest. With ``opener``: also every chunk's GCM tag and the
    plaintext length and SHA-256. Truncation, a dropped, reordered, appended or altered chunk
    and an edited header are all detected.

    Raises:
        EnvelopeError: what is wrong; ``chunk`` is the first bad chunk when there is one.
        KeyUnavailable: ``opener`` lacks the key, or holds a different one.
    """
    header = read_header(src)
    if expected is not None:
        _compare_expected(header, expected)
    size = _size(src)
    want = header.sealed_bytes
    trailer = _trailer_digests(src, header, size)
    if trailer is not None and trailer[0] != header.digest:
        raise EnvelopeError("the header does not match the digest in the trailer: header altered")
    aes = AESGCM(_unwrap(header, opener)) if opener is not None else None
    aad = header.digest
    # v1's sealed digest is the SHA-256 of the whole file (one more pass); v2's is the root.
    whole = hashlib.sha256(header.raw) if header.version == 1 else None
    plain = hashlib.sha256()
    digests: list[bytes] = []
    src.seek(len(header.raw))
    for index in range(header.chunks):
        need = header.chunk_plain_bytes(index) + TAG_BYTES
        sealed = _read_exact(src, need)
        if len(sealed) < need:
            raise EnvelopeError(
                f"the file ends inside chunk {index}: truncated ({size} bytes, the header "
                f"promises {want})",
                chunk=index,
            )
        digest = hashlib.sha256(sealed).digest()
        if trailer is not None and (index >= len(trailer[1]) or digest != trailer[1][index]):
            raise EnvelopeError(
                f"chunk {index} does not match its digest in the trailer: altered, dropped "
                "or reordered",
                chunk=index,
            )
        if aes is not None:
            try:
                plain.update(aes.decrypt(header.nonce(index), sealed, aad))
            except InvalidTag as exc:
                raise EnvelopeError(
                    f"chunk {index} fails its authentication tag: altered, moved or from "
                    "another recording",
                    chunk=index,
                ) from exc
        if whole is not None:
            whole.update(sealed)
        digests.append(digest)
    if size > want:
        raise EnvelopeError(
            f"{size - want} bytes more than the header promises: data or a chunk was appended "
            f"after chunk {header.chunks - 1}",
            chunk=header.chunks,
        )
    if trailer is None or size < want:
        raise EnvelopeError(f"the trailer is missing or cut ({size} bytes, expected {want})")
    root = _root(aad, digests)
    if whole is not None:
        whole.update(header.digest + b"".join(digests) + TRAILER_MAGIC)
    sealed_digest = whole.hexdigest() if whole is not None else root
    if expected is not None:
        if root != expected.chunk_root:
            raise EnvelopeError(
                "the chunk digests do not match the ledger's chunk root: the file was "
                "re-sealed or its trailer rewritten"
            )
        if sealed_digest != expected.sealed_sha256 or size != expected.sealed_bytes:
            raise EnvelopeError("the sealed file's digest or length differs from the ledger's")
    if aes is not None and plain.hexdigest() != header.plain_sha256:
        raise EnvelopeError("the decrypted plaintext's SHA-256 differs from the header's")
    return VerifyResult(
        recording_id=header.recording_id,
        kek_id=header.kek_id,
        plain_bytes=header.plain_bytes,
        plain_sha256=header.plain_sha256,
        sealed_bytes=size,
        sealed_sha256=sealed_digest,
        chunks=header.chunks,
        chunk_root=root,
        tags_checked=aes is not None,
        ledger_checked=expected is not None,
    )


def open_stream(
    src: BinaryIO, opener: KekOpener, *, expected: SealInfo | None = None
) -> Iterator[bytes]:
    """Yield the plaintext chunk by chunk, only after the whole file passed ``verify``.

    The first ``next()`` verifies every tag and the plaintext digest (raising as ``verify``
    does) before a byte is released; the second pass checks each tag again, so a file changed
    between the passes stops with ``EnvelopeError`` at the changed chunk.
    """
    verify(src, expected=expected, opener=opener)
    header = read_header(src)
    aes = AESGCM(_unwrap(header, opener))
    aad = header.digest
    for index in range(header.chunks):
        need = header.chunk_plain_bytes(index) + TAG_BYTES
        sealed = _read_exact(src, need)
        try:
            data = aes.decrypt(header.nonce(index), sealed, aad)
        except InvalidTag as exc:
            raise EnvelopeError(
                f"chunk {index} changed after verification", chunk=index
            ) from exc
        yield data


def decrypt_range(src: BinaryIO, opener: KekOpener, start: int, end: int) -> bytes:
    """Plaintext bytes ``[start, end)`` (``end`` is clamped to the length), authenticated.

    Reads the header and only the chunks the range covers, and checks the file's length
    against the header (fstat, no read); every covered chunk's tag is checked, so no
    unverified byte is returned.

    Raises:
        RecordingError: a range with ``start < 0`` or ``end < start``.
        EnvelopeError / KeyUnavailable: as ``verify``.
    """
    if start < 0 or end < start:
        raise RecordingError(f"byte range [{start}, {end}) is not a range")
    header = read_header(src)
    size = _size(src)
    if size != header.sealed_bytes:
        raise EnvelopeError(
            f"the file is {size} bytes, the header promises {header.sealed_bytes}: truncated "
            "or extended"
        )
    end = min(end, header.plain_bytes)
    if start >= end:
        return b""
    aes = AESGCM(_unwrap(header, opener))
    aad = header.digest
    first, last = start // header.chunk_size, (end - 1) // header.chunk_size
    src.seek(header.chunk_offset(first))
    parts: list[bytes] = []
    for index in range(first, last + 1):
        need = header.chunk_plain_bytes(index) + TAG_BYTES
        sealed = _read_exact(src, need)
        try:
            parts.append(aes.decrypt(header.nonce(index), sealed, aad))
        except InvalidTag as exc:
            raise EnvelopeError(f"chunk {index} fails its authentication tag", chunk=index) from exc
    joined = b"".join(parts)
    base = first * header.chunk_size
    return joined[start - base:end - base]
