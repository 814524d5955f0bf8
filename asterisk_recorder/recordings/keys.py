"""Key-encryption keys (KEKs): the public half that seals, the private half that opens.

This module owns the KEK interface the envelope uses (``KekPublicKey`` wraps a data key,
``KekOpener`` unwraps it), the wrap construction (ECDH P-384 with a fresh ephemeral key, then
HKDF-SHA384 and AES-256-GCM, see docs/recording-format.md), and ``KeyStore``: one key pair
per {retention class, month}, public keys and their metadata in one directory (readable by
the sealing host), private keys behind a ``PrivateKeys`` backend: ``FilePrivateKeys`` (another
directory, 0700, 0600 files) or a PKCS#11 token (``pkcs11_kek``). The sealer never needs the
private side. Escrow share files (``escrow``) are deleted with the key they escrow.
It must not write the ledger (callers record ``recording.key_created`` /
``recording.key_destroyed``) and must never log or print key material.
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import json
import os
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol, runtime_checkable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from asterisk_recorder.errors import EnvelopeError, KeyUnavailable, RecordingError

__all__ = [
    "DEK_BYTES",
    "KEK_ID_RE",
    "MONTH_RE",
    "RETENTION_CLASS_RE",
    "WRAPPED_BYTES",
    "WRAP_ALGORITHM",
    "FileKekOpener",
    "FilePrivateKeys",
    "KekInfo",
    "KekOpener",
    "KekPublicKey",
    "KeyStore",
    "PrivateKeys",
    "check_kek_id",
    "public_point",
    "rotation_due",
    "unwrap_dek",
    "unwrap_with",
    "wrap_dek",
]

DEK_BYTES = 32
"""AES-256 data key length."""
WRAP_ALGORITHM = 1
"""Header code of the wrap: ECDH P-384 (ephemeral-static) + HKDF-SHA384 + AES-256-GCM."""
_POINT_BYTES = 97  # uncompressed SEC1 P-384 point
WRAPPED_BYTES = _POINT_BYTES + DEK_BYTES + 16
"""Length of a wrapped data key: ephemeral point || encrypted DEK || GCM tag (145)."""
_WRAP_INFO = b"asterisk-recorder dek-wrap v1\x00"
_WRAP_NONCE = bytes(12)  # the wrap key is fresh per wrap (fresh ephemeral key): one use only

KEK_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
"""A key id: 1-64 ASCII letters, digits, ``.``, ``_``, ``-``; starts with a letter or digit."""
RETENTION_CLASS_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
"""A retention class: lowercase, e.g. ``standard``, ``complaints``, ``pci_7y``."""
MONTH_RE = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
"""A key bucket's month, ``YYYY-MM``."""
_STATES = ("active", "retired", "destroyed")


def check_kek_id(kek_id: str) -> str:
    """Return ``kek_id`` or raise ``RecordingError`` naming what is wrong with it."""
    if not KEK_ID_RE.fullmatch(str(kek_id)):
        raise RecordingError(
            f"key id {kek_id!r} is not 1-64 characters of A-Z a-z 0-9 . _ - "
            "starting with a letter or digit"
        )
    return kek_id


def _point(public: ec.EllipticCurvePublicKey) -> bytes:
    return public.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def _wrap_key(shared: bytes, ephemeral_point: bytes, kek_point: bytes, kek_id: str) -> bytes:
    info = _WRAP_INFO + ephemeral_point + kek_point + kek_id.encode("ascii")
    return HKDF(algorithm=hashes.SHA384(), length=32, salt=None, info=info).derive(shared)


def wrap_dek(
    dek: bytes,
    public: ec.EllipticCurvePublicKey,
    kek_id: str,
    *,
    ephemeral: ec.EllipticCurvePrivateKey | None = None,
) -> bytes:
    """Wrap a 32-byte data key to a P-384 public key; ``ephemeral`` is for test vectors only."""
    if len(dek) != DEK_BYTES:
        raise RecordingError(f"a data key is {DEK_BYTES} bytes, not {len(dek)}")
    if not isinstance(public.curve, ec.SECP384R1):
        raise KeyUnavailable(f"key {kek_id} is not a P-384 key", kek_id=kek_id)
    eph = ephemeral if ephemeral is not None else ec.generate_private_key(ec.SECP384R1())
    eph_point = _point(eph.public_key())
    key = _wrap_key(eph.exchange(ec.ECDH(), public), eph_point, _point(public), kek_id)
    return eph_point + AESGCM(key).encrypt(_WRAP_NONCE, dek, kek_id.encode("ascii"))


def public_point(public: ec.EllipticCurvePublicKey) -> bytes:
    """The uncompressed SEC1 point of a P-384 public key (97 bytes; bound into the wrap)."""
    return _point(public)


def unwrap_with(
    wrapped: bytes,
    kek_point: bytes,
    kek_id: str,
    exchange: Callable[[bytes], bytes],
) -> bytes:
    """Recover a data key, with ``exchange`` doing the ECDH step wherever the private key is.

    ``exchange`` gets the envelope's ephemeral public point (uncompressed, 97 bytes, already
    checked to be on P-384) and returns the 48-byte ECDH shared secret (its x coordinate): in
    software for the file backend, inside the token (``CKM_ECDH1_DERIVE``) for PKCS#11. Only
    that secret is needed here for HKDF and the AES-GCM unwrap, never the private key.

    Raises:
        EnvelopeError: ``wrapped`` is malformed; KeyUnavailable: it does not open.
    """
    if len(wrapped) != WRAPPED_BYTES:
        raise EnvelopeError(f"the wrapped data key is {len(wrapped)} bytes, not {WRAPPED_BYTES}")
    eph_point, sealed = wrapped[:_POINT_BYTES], wrapped[_POINT_BYTES:]
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP384R1(), eph_point)
    except ValueError as exc:
        raise EnvelopeError("the wrapped data key holds no valid P-384 point") from exc
    key = _wrap_key(exchange(eph_point), eph_point, kek_point, kek_id)
    try:
        return AESGCM(key).decrypt(_WRAP_NONCE, sealed, kek_id.encode("ascii"))
    except InvalidTag as exc:
        raise KeyUnavailable(
            f"the data key does not open with private key {kek_id}: the key store holds a "
            "different key than the one this recording was sealed to, or the header was altered",
            kek_id=kek_id,
        ) from exc


def unwrap_dek(wrapped: bytes, private: ec.EllipticCurvePrivateKey, kek_id: str) -> bytes:
    """Recover a data key; ``EnvelopeError`` when it does not open with this private key."""

    def exchange(eph_point: bytes) -> bytes:
        eph = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP384R1(), eph_point)
        return private.exchange(ec.ECDH(), eph)

    return unwrap_with(wrapped, _point(private.public_key()), kek_id, exchange)


@dataclass(frozen=True, slots=True)
class KekPublicKey:
    """The public half of a KEK: enough to seal, never enough to open.

    Attributes:
        kek_id: the key's id (in every envelope sealed with it and in the ledger).
        public_key: the P-384 public key.
    """

    kek_id: str
    public_key: ec.EllipticCurvePublicKey

    def __post_init__(self) -> None:
        check_kek_id(self.kek_id)
        if not isinstance(self.public_key.curve, ec.SECP384R1):
            raise KeyUnavailable(f"key {self.kek_id} is not a P-384 key", kek_id=self.kek_id)

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the uncompressed public point, hex (safe to print and compare)."""
        return hashlib.sha256(_point(self.public_key)).hexdigest()

    def wrap(self, dek: bytes, *, ephemeral: ec.EllipticCurvePrivateKey | None = None) -> bytes:
        """Wrap ``dek`` to this key (``WRAPPED_BYTES`` long)."""
        return wrap_dek(dek, self.public_key, self.kek_id, ephemeral=ephemeral)

    def pem(self) -> bytes:
        """The public key as SubjectPublicKeyInfo PEM."""
        return self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


@runtime_checkable
class KekOpener(Protocol):
    """The private half: turns a wrapped data key back into the data key."""

    def unwrap(self, kek_id: str, wrapped: bytes) -> bytes:
        """Return the 32-byte DEK.

        Raises:
            KeyUnavailable: this opener has no (or a different) private key ``kek_id``.
            EnvelopeError: ``wrapped`` is malformed.
        """
        ...


@dataclass(frozen=True, slots=True)
class KekInfo:
    """What the key store knows about one KEK (no key material).

    Attributes:
        kek_id, retention_class, month: the key and its bucket.
        state: ``active`` (seals new recordings), ``retired`` (rotated out: opens only),
            ``destroyed`` (private key gone: its recordings can never be opened).
        created_at / destroyed_at: epoch seconds.
        fingerprint: SHA-256 of the public point.
        private_present: whether this store's private backend holds the private key.
        custody: where the private key was put at creation: ``file`` or ``pkcs11``.
        escrow: the directory of its escrow share files and manifest (``None``: no escrow);
            deleted when the key is destroyed.
    """

    kek_id: str
    retention_class: str
    month: str
    state: str
    created_at: float
    fingerprint: str
    destroyed_at: float | None = None
    private_present: bool = False
    custody: str = "file"
    escrow: str | None = None


def _check_bucket(retention_class: str, month: str) -> None:
    if not RETENTION_CLASS_RE.fullmatch(str(retention_class)):
        raise RecordingError(
            f"retention class {retention_class!r} is not 1-32 of a-z 0-9 _ starting with a letter"
        )
    if not MONTH_RE.fullmatch(str(month)):
        raise RecordingError(f"month {month!r} is not YYYY-MM")


def _write_private(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to a new file with exactly ``mode`` (whatever the umask), fsynced."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:  # os.write may write less than asked (a full disk, a signal)
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()  # no half-written key file left behind
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _ensure_dir(directory: Path, mode: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, mode)


class FileKekOpener:
    """Private keys read from ``<private_dir>/<kek_id>.key.pem`` (PKCS#8 PEM, 0600)."""

    def __init__(self, private_dir: Path) -> None:
        self.private_dir = Path(private_dir)
        self._cache: dict[str, ec.EllipticCurvePrivateKey] = {}

    def private_key(self, kek_id: str) -> ec.EllipticCurvePrivateKey:
        """Load (once) the private key ``kek_id``; ``KeyUnavailable`` when missing or bad."""
        check_kek_id(kek_id)
        cached = self._cache.get(kek_id)
        if cached is not None:
            return cached
        path = self.private_dir / f"{kek_id}.key.pem"
        try:
            data = path.read_bytes()
        except FileNotFoundError as exc:
            tomb = self.private_dir / f"{kek_id}.destroyed"
            why = "it was destroyed" if tomb.exists() else "it is not in this directory"
            raise KeyUnavailable(
                f"private key {kek_id} is not available in {self.private_dir}: {why}",
                kek_id=kek_id,
            ) from exc
        except OSError as exc:
            raise KeyUnavailable(
                f"private key {kek_id} cannot be read from {self.private_dir}: {exc.strerror}",
                kek_id=kek_id,
            ) from exc
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as exc:
            raise KeyUnavailable(
                f"private key file of {kek_id} is not a PEM key", kek_id=kek_id
            ) from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(
            key.curve, ec.SECP384R1
        ):
            raise KeyUnavailable(f"private key {kek_id} is not a P-384 key", kek_id=kek_id)
        self._cache[kek_id] = key
        return key

    def unwrap(self, kek_id: str, wrapped: bytes) -> bytes:
        """Return the DEK ``wrapped`` holds (see ``KekOpener``)."""
        return unwrap_dek(wrapped, self.private_key(kek_id), kek_id)


@runtime_checkable
class PrivateKeys(Protocol):
    """Where a KeyStore keeps private keys: a directory (``FilePrivateKeys``) or a token.

    ``where`` names it for messages (never a PIN); ``custody`` is ``file`` or ``pkcs11``.
    Every method raises ``KeyUnavailable`` when the backend cannot be reached (a token absent,
    a PIN refused, a directory unreadable), with nothing changed.
    """

    where: str
    custody: str

    def check(self) -> None:
        """Reach the backend (log in to a token); ``KeyUnavailable`` when that fails."""
        ...

    def ids(self) -> frozenset[str]:
        """The key ids whose private key this backend holds."""
        ...

    def generate(self, kek_id: str) -> ec.EllipticCurvePublicKey:
        """Create the private key ``kek_id`` here and return its public key."""
        ...

    def store(self, kek_id: str, private: ec.EllipticCurvePrivateKey) -> None:
        """Keep ``private`` as ``kek_id`` (escrowed or recovered keys; a token: not
        extractable). Refused when ``kek_id`` is held already."""
        ...

    def destroy(self, kek_id: str, stamp: float) -> None:
        """Destroy the private key ``kek_id`` (``KeyUnavailable`` when it is not here)."""
        ...

    def opener(self) -> KekOpener:
        """The opener unwrapping with these keys."""
        ...


class FilePrivateKeys:
    """Private keys as ``<directory>/<kek_id>.key.pem`` (PKCS#8 PEM, 0600; directory 0700)."""

    custody = "file"

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.where = str(self.directory)

    def check(self) -> None:
        """A missing directory is fine (``create`` makes it); an unreadable one is not."""
        if self.directory.exists() and not os.access(self.directory, os.R_OK | os.X_OK):
            raise KeyUnavailable(f"the private key directory {self.directory} is not readable")

    def ids(self) -> frozenset[str]:
        """The ids of the ``*.key.pem`` files."""
        if not self.directory.is_dir():
            return frozenset()
        return frozenset(p.name.removesuffix(".key.pem") for p in self.directory.glob("*.key.pem"))

    def generate(self, kek_id: str) -> ec.EllipticCurvePublicKey:
        """A new P-384 key, written 0600."""
        key = ec.generate_private_key(ec.SECP384R1())
        self.store(kek_id, key)
        return key.public_key()

    def store(self, kek_id: str, private: ec.EllipticCurvePrivateKey) -> None:
        """Write ``private`` as ``<kek_id>.key.pem`` (refused when it exists)."""
        _ensure_dir(self.directory, 0o700)
        path = self.directory / f"{check_kek_id(kek_id)}.key.pem"
        if path.exists():
            raise RecordingError(f"private key {kek_id} exists in {self.directory}: not replaced")
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        _write_private(path, pem, 0o600)

    def destroy(self, kek_id: str, stamp: float) -> None:
        """Overwrite, fsync and unlink the key file; leave a ``<kek_id>.destroyed`` tombstone."""
        path = self.directory / f"{check_kek_id(kek_id)}.key.pem"
        if not path.exists():
            raise KeyUnavailable(f"private key {kek_id} is not in {path.parent}", kek_id=kek_id)
        size = path.stat().st_size
        with open(path, "r+b") as handle:  # best effort on flash/COW: see docs/recordings.md
            handle.write(bytes(size))
            handle.flush()
            os.fsync(handle.fileno())
        path.unlink()
        _fsync_dir(path.parent)  # the removal itself survives a crash
        _write_private(
            path.with_name(f"{kek_id}.destroyed"), f"destroyed at {stamp:.0f}\n".encode(), 0o600
        )

    def opener(self) -> FileKekOpener:
        """A ``FileKekOpener`` on this directory."""
        return FileKekOpener(self.directory)


def rotation_due(info: KekInfo, cryptoperiod_s: float) -> float:
    """When a new key is due for ``info``'s bucket: its creation plus the cryptoperiod.

    The bucket's month ends its use anyway (next month has its own key), so a cryptoperiod
    of a month or more changes nothing inside the month; a shorter one asks for a ``rotate``.
    """
    return info.created_at + cryptoperiod_s


def _destroy_escrow(directory: Path) -> None:
    """Unlink every file of an escrow directory, fsync, remove the directory (gone: fine)."""
    if not directory.is_dir():
        return
    for path in directory.iterdir():
        if path.is_file() and not path.is_symlink():
            path.unlink()
    _fsync_dir(directory)
    with contextlib.suppress(OSError):
        directory.rmdir()
        _fsync_dir(directory.parent)


class KeyStore:
    """The KEK store: one key pair per {retention class, month}.

    Args:
        public_dir: public keys (``<kek_id>.pub.pem``) and their metadata (``<kek_id>.json``);
            the sealing host needs read access to this directory only.
        private_dir: private keys (``<kek_id>.key.pem``); kept on another host or volume.
            ``None`` on the sealing host: then ``create``, ``rotate``, ``destroy`` and
            ``opener`` refuse.
        private: another private backend instead of ``private_dir`` (a PKCS#11 token,
            ``pkcs11_kek.Pkcs11PrivateKeys``); not both.
    """

    def __init__(
        self, public_dir: Path, private_dir: Path | None = None, *,
        private: PrivateKeys | None = None,
    ) -> None:
        self.public_dir = Path(public_dir)
        self.private_dir = None if private_dir is None else Path(private_dir)
        if self.private_dir is not None and private is not None:
            raise RecordingError("give a private key directory or a token, not both")
        if self.private_dir is not None and self.private_dir.resolve() == self.public_dir.resolve():
            raise RecordingError(
                "the private key directory must not be the public key directory: the sealing "
                "host reads the public one"
            )
        self.private: PrivateKeys | None = (
            private if private is not None
            else None if self.private_dir is None else FilePrivateKeys(self.private_dir)
        )

    # -- reading -------------------------------------------------------------------------

    def _meta_path(self, kek_id: str) -> Path:
        return self.public_dir / f"{kek_id}.json"

    def _info(self, kek_id: str, held: frozenset[str] | None = None) -> KekInfo:
        path = self._meta_path(check_kek_id(kek_id))
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise KeyUnavailable(
                f"key {kek_id} is not in {self.public_dir}", kek_id=kek_id
            ) from exc
        except (OSError, ValueError) as exc:
            raise KeyUnavailable(
                f"metadata of key {kek_id} is unreadable: {exc}", kek_id=kek_id
            ) from exc
        try:
            info = KekInfo(
                kek_id=str(raw["kek_id"]),
                retention_class=str(raw["retention_class"]),
                month=str(raw["month"]),
                state=str(raw["state"]),
                created_at=float(raw["created_at"]),
                fingerprint=str(raw["fingerprint"]),
                destroyed_at=(
                    None if raw.get("destroyed_at") is None else float(raw["destroyed_at"])
                ),
                custody=str(raw.get("custody", "file")),
                escrow=None if raw.get("escrow") is None else str(raw["escrow"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise KeyUnavailable(f"metadata of key {kek_id} is malformed", kek_id=kek_id) from exc
        if info.kek_id != kek_id or info.state not in _STATES:
            raise KeyUnavailable(f"metadata of key {kek_id} is malformed", kek_id=kek_id)
        if held is None:
            held = self.private.ids() if self.private is not None else frozenset()
        return replace(info, private_present=kek_id in held)

    def list(self) -> list[KekInfo]:
        """Every key the public directory knows, oldest bucket first.

        Raises:
            KeyUnavailable: a metadata file is bad, or the private backend cannot be reached.
        """
        if not self.public_dir.is_dir():
            return []
        held = self.private.ids() if self.private is not None else frozenset()
        infos = [self._info(p.name.removesuffix(".json"), held)
                 for p in self.public_dir.glob("*.json")]
        return sorted(infos, key=lambda i: (i.retention_class, i.month, i.created_at, i.kek_id))

    def info(self, kek_id: str) -> KekInfo:
        """What the store knows about ``kek_id`` (``KeyUnavailable`` when it knows nothing)."""
        return self._info(kek_id)

    def has_private(self, kek_id: str) -> bool:
        """Whether the private backend holds ``kek_id`` (``False`` without a backend)."""
        return self.private is not None and kek_id in self.private.ids()

    def public(self, kek_id: str) -> KekPublicKey:
        """The public key ``kek_id``; ``KeyUnavailable`` when missing or unreadable."""
        check_kek_id(kek_id)
        path = self.public_dir / f"{kek_id}.pub.pem"
        try:
            key = serialization.load_pem_public_key(path.read_bytes())
        except FileNotFoundError as exc:
            raise KeyUnavailable(
                f"public key {kek_id} is not in {self.public_dir}", kek_id=kek_id
            ) from exc
        except (OSError, ValueError) as exc:
            raise KeyUnavailable(f"public key {kek_id} is unreadable", kek_id=kek_id) from exc
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise KeyUnavailable(f"public key {kek_id} is not a P-384 key", kek_id=kek_id)
        public = KekPublicKey(kek_id, key)
        info = self._info(kek_id, frozenset())
        if info.fingerprint != public.fingerprint:
            raise KeyUnavailable(
                f"public key {kek_id} does not match its recorded fingerprint", kek_id=kek_id
            )
        return public

    def _active(self, retention_class: str, month: str) -> builtins.list[KekInfo]:
        if not self.public_dir.is_dir():
            return []
        infos = [self._info(p.name.removesuffix(".json"), frozenset())
                 for p in self.public_dir.glob("*.json")]
        return [i for i in infos
                if i.retention_class == retention_class and i.month == month
                and i.state == "active"]

    def current_info(self, retention_class: str, month: str) -> KekInfo:
        """The metadata of the bucket's active key (see ``current``); never reads private keys."""
        _check_bucket(retention_class, month)
        active = self._active(retention_class, month)
        if not active:
            raise KeyUnavailable(
                f"no active key for retention class {retention_class!r}, month {month} in "
                f"{self.public_dir}: run 'asterisk-recorder recording keys create --class "
                f"{retention_class} --month {month}' where the private keys live"
            )
        return max(active, key=lambda i: i.created_at)

    def current(self, retention_class: str, month: str) -> KekPublicKey:
        """The active key of bucket {``retention_class``, ``month``} that seals new recordings.

        Reads the public directory only (the sealer has no private backend, and needs none).

        Raises:
            KeyUnavailable: the bucket has no active key (create it ahead of the month, on the
                key host, and copy its public directory to the sealing host).
        """
        return self.public(self.current_info(retention_class, month).kek_id)

    def opener(self) -> KekOpener:
        """The private half, for verify with tags and open."""
        return self._private().opener()

    # -- changing ------------------------------------------------------------------------

    def _private(self) -> PrivateKeys:
        if self.private is None:
            raise KeyUnavailable(
                "no private key directory given (--private-keys DIR), and no PKCS#11 token "
                "(recordings.kek_pkcs11_module)"
            )
        return self.private

    def _write_meta(self, info: KekInfo) -> None:
        data = {k: v for k, v in _asdict(info).items() if k != "private_present"}
        _write_private(
            self._meta_path(info.kek_id), (json.dumps(data, indent=2) + "\n").encode(), 0o644
        )

    def create(
        self, retention_class: str, month: str, *, now: float | None = None,
        escrow: Callable[[str, ec.EllipticCurvePrivateKey], Path] | None = None,
    ) -> KekInfo:
        """Generate the key pair of a bucket that has no active key yet.

        ``escrow`` (``escrow.Escrow.write``) gets the new key id and a private key generated
        in software, writes its shares, and returns their directory; the key is then stored in
        the private backend (a token: imported not extractable) and the software copy dropped.
        Without it the backend generates the key itself (a token: it never leaves it).

        Raises:
            RecordingError: bad class or month, or the bucket already has an active key
                (use ``rotate``).
        """
        _check_bucket(retention_class, month)
        self._private().check()  # a token absent or a PIN refused: nothing written
        if self._active(retention_class, month):
            raise RecordingError(
                f"bucket {retention_class} {month} already has an active key: use rotate"
            )
        return self._generate(retention_class, month, time.time() if now is None else now,
                              escrow)

    def rotate(
        self, retention_class: str, month: str, *, now: float | None = None,
        escrow: Callable[[str, ec.EllipticCurvePrivateKey], Path] | None = None,
    ) -> KekInfo:
        """Retire the bucket's active key (it still opens) and create a new one."""
        _check_bucket(retention_class, month)
        self._private().check()  # refuse before retiring anything
        stamp = time.time() if now is None else now
        for info in self._active(retention_class, month):
            self._write_meta(replace(info, state="retired"))
        return self._generate(retention_class, month, stamp, escrow)

    def _generate(
        self, retention_class: str, month: str, now: float,
        escrow: Callable[[str, ec.EllipticCurvePrivateKey], Path] | None,
    ) -> KekInfo:
        private = self._private()
        self.public_dir.mkdir(parents=True, exist_ok=True)
        kek_id = f"{retention_class}-{month.replace('-', '')}-{secrets.token_hex(4)}"
        shares: Path | None = None
        if escrow is None:
            public_key = private.generate(kek_id)
        else:
            key = ec.generate_private_key(ec.SECP384R1())
            public_key = key.public_key()
            shares = escrow(kek_id, key)
            try:
                private.store(kek_id, key)
            except BaseException:
                _destroy_escrow(shares)  # no shares of a key that was never kept
                raise
            del key  # the software copy: dropped (see docs/recordings.md "Escrow")
        public = KekPublicKey(kek_id, public_key)
        _write_private(self.public_dir / f"{kek_id}.pub.pem", public.pem(), 0o644)
        info = KekInfo(kek_id, retention_class, month, "active", now, public.fingerprint,
                       custody=private.custody,
                       escrow=None if shares is None else str(shares))
        self._write_meta(info)
        return self._info(kek_id)

    def recover(self, kek_id: str, private_key: ec.EllipticCurvePrivateKey) -> KekInfo:
        """Put a private key rebuilt from escrow (``escrow.recover``) back into the backend.

        Raises:
            KeyUnavailable: the key was destroyed, or its public key does not match the
                recorded fingerprint; RecordingError: the backend holds it already.
        """
        info = self._info(kek_id)
        if info.state == "destroyed":
            raise KeyUnavailable(
                f"key {kek_id} was destroyed; it is not recovered (its recordings stay "
                "unreadable)", kek_id=kek_id)
        if KekPublicKey(kek_id, private_key.public_key()).fingerprint != info.fingerprint:
            raise KeyUnavailable(
                f"the rebuilt key does not match key {kek_id}'s fingerprint: wrong shares",
                kek_id=kek_id)
        backend = self._private()
        if kek_id in backend.ids():
            raise RecordingError(f"{backend.where} holds private key {kek_id} already")
        backend.store(kek_id, private_key)
        return self._info(kek_id)

    def destroy(self, kek_id: str, *, confirm: str, now: float | None = None) -> KekInfo:
        """Destroy the private key ``kek_id``: every recording sealed to it becomes unreadable.

        ``confirm`` must repeat ``kek_id`` exactly (a typo or a script's default cannot do it).
        A file is overwritten, fsynced and unlinked (a ``<kek_id>.destroyed`` tombstone says
        why the key is missing); a token's object is destroyed (``C_DestroyObject``). Its
        escrow share files and manifest are deleted too. Record ``recording.key_destroyed`` in
        the ledger first.

        Raises:
            RecordingError: ``confirm`` differs; KeyUnavailable: no such private key here, or
                the backend (a token) cannot be reached: then nothing was destroyed.
        """
        check_kek_id(kek_id)
        if confirm != kek_id:
            raise RecordingError(
                f"destroying key {kek_id} needs the confirmation {kek_id!r} (got {confirm!r}); "
                "nothing was destroyed"
            )
        info = self._info(kek_id)
        backend = self._private()
        if not info.private_present:
            raise KeyUnavailable(f"private key {kek_id} is not in {backend.where}",
                                 kek_id=kek_id)
        stamp = time.time() if now is None else now
        backend.destroy(kek_id, stamp)
        if info.escrow is not None:
            _destroy_escrow(Path(info.escrow))
        destroyed = replace(info, state="destroyed", destroyed_at=stamp)
        self._write_meta(destroyed)
        return self._info(kek_id)


def _asdict(info: KekInfo) -> dict[str, object]:
    return {name: getattr(info, name) for name in KekInfo.__slots__}
