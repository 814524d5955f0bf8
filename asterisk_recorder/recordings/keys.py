"""Key-encryption keys (KEKs): the public half that seals, the private half that opens.

This module owns the KEK interface the envelope uses (``KekPublicKey`` wraps a data key,
``KekOpener`` unwraps it), the wrap construction (ECDH P-384 with a fresh ephemeral key, then
HKDF-SHA384 and AES-256-GCM, see docs/recording-format.md), and the file backend ``KeyStore``:
one key pair per {retention class, month}, public keys in one directory (readable by the
sealing host), private keys in another (0700 directory, 0600 files, never needed to seal).
It must not write the ledger (callers record ``recording.key_created`` /
``recording.key_destroyed``) and must never log or print key material.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import time
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
    "KekInfo",
    "KekOpener",
    "KekPublicKey",
    "KeyStore",
    "check_kek_id",
    "unwrap_dek",
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


def unwrap_dek(wrapped: bytes, private: ec.EllipticCurvePrivateKey, kek_id: str) -> bytes:
    """Recover a data key; ``EnvelopeError`` when it does not open with this private key."""
    if len(wrapped) != WRAPPED_BYTES:
        raise EnvelopeError(f"the wrapped data key is {len(wrapped)} bytes, not {WRAPPED_BYTES}")
    eph_point, sealed = wrapped[:_POINT_BYTES], wrapped[_POINT_BYTES:]
    try:
        eph = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP384R1(), eph_point)
    except ValueError as exc:
        raise EnvelopeError("the wrapped data key holds no valid P-384 point") from exc
    key = _wrap_key(
        private.exchange(ec.ECDH(), eph), eph_point, _point(private.public_key()), kek_id
    )
    try:
        return AESGCM(key).decrypt(_WRAP_NONCE, sealed, kek_id.encode("ascii"))
    except InvalidTag as exc:
        raise KeyUnavailable(
            f"the data key does not open with private key {kek_id}: the key file holds a "
            "different key than the one this recording was sealed to, or the header was altered",
            kek_id=kek_id,
        ) from exc


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
        private_present: whether this store's private directory holds the private key.
    """

    kek_id: str
    retention_class: str
    month: str
    state: str
    created_at: float
    fingerprint: str
    destroyed_at: float | None = None
    private_present: bool = False


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


class KeyStore:
    """The file KEK backend: one key pair per {retention class, month}.

    Args:
        public_dir: public keys (``<kek_id>.pub.pem``) and their metadata (``<kek_id>.json``);
            the sealing host needs read access to this directory only.
        private_dir: private keys (``<kek_id>.key.pem``); kept on another host or volume.
            ``None`` on the sealing host: then ``create``, ``rotate``, ``destroy`` and
            ``opener`` refuse.
    """

    def __init__(self, public_dir: Path, private_dir: Path | None = None) -> None:
        self.public_dir = Path(public_dir)
        self.private_dir = None if private_dir is None else Path(private_dir)
        if self.private_dir is not None and self.private_dir.resolve() == self.public_dir.resolve():
            raise RecordingError(
                "the private key directory must not be the public key directory: the sealing "
                "host reads the public one"
            )

    # -- reading -------------------------------------------------------------------------

    def _meta_path(self, kek_id: str) -> Path:
        return self.public_dir / f"{kek_id}.json"

    def _info(self, kek_id: str) -> KekInfo:
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
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise KeyUnavailable(f"metadata of key {kek_id} is malformed", kek_id=kek_id) from exc
        if info.kek_id != kek_id or info.state not in _STATES:
            raise KeyUnavailable(f"metadata of key {kek_id} is malformed", kek_id=kek_id)
        present = (
            self.private_dir is not None and (self.private_dir / f"{kek_id}.key.pem").exists()
        )
        return replace(info, private_present=present)

    def list(self) -> list[KekInfo]:
        """Every key the public directory knows, oldest bucket first."""
        if not self.public_dir.is_dir():
            return []
        infos = [self._info(p.name.removesuffix(".json")) for p in self.public_dir.glob("*.json")]
        return sorted(infos, key=lambda i: (i.retention_class, i.month, i.created_at, i.kek_id))

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
        info = self._info(kek_id)
        if info.fingerprint != public.fingerprint:
            raise KeyUnavailable(
                f"public key {kek_id} does not match its recorded fingerprint", kek_id=kek_id
            )
        return public

    def current(self, retention_class: str, month: str) -> KekPublicKey:
        """The active key of bucket {``retention_class``, ``month``} that seals new recordings.

        Raises:
            KeyUnavailable: the bucket has no active key (create it ahead of the month, on the
                key host, and copy its public directory to the sealing host).
        """
        _check_bucket(retention_class, month)
        active = [
            i for i in self.list()
            if i.retention_class == retention_class and i.month == month and i.state == "active"
        ]
        if not active:
            raise KeyUnavailable(
                f"no active key for retention class {retention_class!r}, month {month} in "
                f"{self.public_dir}: run 'asterisk-recorder recording keys create --class "
                f"{retention_class} --month {month}' where the private keys live"
            )
        return self.public(max(active, key=lambda i: i.created_at).kek_id)

    def opener(self) -> FileKekOpener:
        """The private half, for verify with tags and open."""
        return FileKekOpener(self._private())

    # -- changing ------------------------------------------------------------------------

    def _private(self) -> Path:
        if self.private_dir is None:
            raise KeyUnavailable("no private key directory given (--private-keys DIR)")
        return self.private_dir

    def _write_meta(self, info: KekInfo) -> None:
        data = {k: v for k, v in _asdict(info).items() if k != "private_present"}
        _write_private(
            self._meta_path(info.kek_id), (json.dumps(data, indent=2) + "\n").encode(), 0o644
        )

    def create(self, retention_class: str, month: str, *, now: float | None = None) -> KekInfo:
        """Generate the key pair of a bucket that has no active key yet.

        Raises:
            RecordingError: bad class or month, or the bucket already has an active key
                (use ``rotate``).
        """
        _check_bucket(retention_class, month)
        if any(
            i.retention_class == retention_class and i.month == month and i.state == "active"
            for i in self.list()
        ):
            raise RecordingError(
                f"bucket {retention_class} {month} already has an active key: use rotate"
            )
        return self._generate(retention_class, month, time.time() if now is None else now)

    def rotate(self, retention_class: str, month: str, *, now: float | None = None) -> KekInfo:
        """Retire the bucket's active key (it still opens) and create a new one."""
        _check_bucket(retention_class, month)
        self._private()  # refuse before retiring anything
        stamp = time.time() if now is None else now
        for info in self.list():
            if info.retention_class == retention_class and info.month == month and (
                info.state == "active"
            ):
                self._write_meta(replace(info, state="retired"))
        return self._generate(retention_class, month, stamp)

    def _generate(self, retention_class: str, month: str, now: float) -> KekInfo:
        private_dir = self._private()
        _ensure_dir(private_dir, 0o700)
        self.public_dir.mkdir(parents=True, exist_ok=True)
        kek_id = f"{retention_class}-{month.replace('-', '')}-{secrets.token_hex(4)}"
        key = ec.generate_private_key(ec.SECP384R1())
        public = KekPublicKey(kek_id, key.public_key())
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        _write_private(private_dir / f"{kek_id}.key.pem", pem, 0o600)
        _write_private(self.public_dir / f"{kek_id}.pub.pem", public.pem(), 0o644)
        info = KekInfo(kek_id, retention_class, month, "active", now, public.fingerprint)
        self._write_meta(info)
        return self._info(kek_id)

    def destroy(self, kek_id: str, *, confirm: str, now: float | None = None) -> KekInfo:
        """Destroy the private key ``kek_id``: every recording sealed to it becomes unreadable.

        ``confirm`` must repeat ``kek_id`` exactly (a typo or a script's default cannot do it).
        The file is overwritten, fsynced and unlinked; a ``<kek_id>.destroyed`` tombstone says
        why the key is missing. Record ``recording.key_destroyed`` in the ledger first.

        Raises:
            RecordingError: ``confirm`` differs; KeyUnavailable: no such private key here.
        """
        check_kek_id(kek_id)
        if confirm != kek_id:
            raise RecordingError(
                f"destroying key {kek_id} needs the confirmation {kek_id!r} (got {confirm!r}); "
                "nothing was destroyed"
            )
        info = self._info(kek_id)
        path = self._private() / f"{kek_id}.key.pem"
        if not path.exists():
            raise KeyUnavailable(f"private key {kek_id} is not in {path.parent}", kek_id=kek_id)
        stamp = time.time() if now is None else now
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
        destroyed = replace(info, state="destroyed", destroyed_at=stamp)
        self._write_meta(destroyed)
        return self._info(kek_id)


def _asdict(info: KekInfo) -> dict[str, object]:
    return {name: getattr(info, name) for name in KekInfo.__slots__}
