"""M-of-N escrow of a bucket's KEK private key to custodians (dual control, split knowledge).

This module owns Shamir's secret sharing over GF(256) (``split`` / ``combine``: each byte of
the secret is the constant term of its own random polynomial of degree M-1; the field is
GF(2^8) modulo x^8+x^4+x^3+x+1, as AES), the encryption of one share to one custodian (ECIES
on P-384: an ephemeral ECDH key, HKDF-SHA384, AES-256-GCM, the same construction as the KEK
wrap, with its own HKDF label), the share files and the manifest (``Escrow.write``), and
rebuilding the key from M shares and M custodians' private keys (``recover``).

The secret split is the 48-byte private scalar. It must not keep the key anywhere but the
share files (each readable only with its custodian's private key), must not log or print key
material, and must not write the ledger (the CLI records ``recording.key_created``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from asterisk_recorder.errors import KeyUnavailable, RecordingError
from asterisk_recorder.recordings.keys import check_kek_id, public_point

__all__ = [
    "MANIFEST",
    "SHARE_FORMAT",
    "Custodian",
    "Escrow",
    "combine",
    "load_custodian",
    "load_custodian_key",
    "recover",
    "split",
]

SHARE_FORMAT = "asterisk-recorder-kek-share/1"
MANIFEST = "manifest.json"
_MANIFEST_FORMAT = "asterisk-recorder-kek-escrow/1"
_INFO = b"asterisk-recorder kek-escrow v1\x00"
_SCALAR_BYTES = 48

# GF(256) log/exp tables, generator 3, modulus 0x11b
_EXP = [0] * 510
_LOG = [0] * 256
_x = 1
for _i in range(255):
    _EXP[_i] = _x
    _LOG[_x] = _i
    _x ^= (_x << 1) ^ (0x11B if _x & 0x80 else 0)  # multiply by 3 = x*2 xor x
    _x &= 0xFF
for _i in range(255, 510):
    _EXP[_i] = _EXP[_i - 255]


def _mul(a: int, b: int) -> int:
    if a == 0 or b == 0:
        return 0
    return _EXP[_LOG[a] + _LOG[b]]


def _div(a: int, b: int) -> int:
    if b == 0:
        raise ZeroDivisionError("division by zero in GF(256)")
    if a == 0:
        return 0
    return _EXP[_LOG[a] - _LOG[b] + 255]


def split(secret: bytes, threshold: int, shares: int) -> list[tuple[int, bytes]]:
    """Split ``secret`` into ``shares`` shares ``(x, y)``, any ``threshold`` of which rebuild it.

    Raises:
        RecordingError: not 1 <= threshold <= shares <= 255, or an empty secret.
    """
    if not secret:
        raise RecordingError("nothing to split")
    if not 1 <= threshold <= shares <= 255:
        raise RecordingError(
            f"escrow needs 1 <= M <= N <= 255 (got M={threshold}, N={shares})")
    polys = [[byte, *(secrets.randbelow(256) for _ in range(threshold - 1))] for byte in secret]
    out = []
    for x in range(1, shares + 1):
        y = bytearray()
        for coeffs in polys:
            acc = 0
            for c in reversed(coeffs):  # Horner
                acc = _mul(acc, x) ^ c
            y.append(acc)
        out.append((x, bytes(y)))
    return out


def combine(parts: Sequence[tuple[int, bytes]]) -> bytes:
    """Rebuild the secret from shares ``(x, y)`` (Lagrange interpolation at 0).

    Exactly the threshold's worth is needed; fewer give a wrong value, not an error (callers
    check the count first and the result's fingerprint after).

    Raises:
        RecordingError: no shares, a repeated or zero x, or shares of different lengths.
    """
    if not parts:
        raise RecordingError("no shares given")
    xs = [x for x, _ in parts]
    if len(set(xs)) != len(xs) or any(not 1 <= x <= 255 for x in xs):
        raise RecordingError("the shares' indexes must be distinct, 1-255")
    length = len(parts[0][1])
    if any(len(y) != length for _, y in parts):
        raise RecordingError("the shares have different lengths")
    out = bytearray(length)
    for i, (xi, yi) in enumerate(parts):
        basis = 1
        for j, (xj, _) in enumerate(parts):
            if i != j:
                basis = _mul(basis, _div(xj, xj ^ xi))
        for k in range(length):
            out[k] ^= _mul(yi[k], basis)
    return bytes(out)


@dataclass(frozen=True, slots=True)
class Custodian:
    """A custodian's P-384 public key (``fingerprint``: SHA-256 of its point, hex)."""

    name: str
    public_key: ec.EllipticCurvePublicKey

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the uncompressed public point, hex."""
        return hashlib.sha256(public_point(self.public_key)).hexdigest()


def load_custodian(path: Path) -> Custodian:
    """A custodian public key from a PEM file (SubjectPublicKeyInfo, P-384)."""
    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except OSError as exc:
        raise RecordingError(f"cannot read custodian key {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise RecordingError(f"{path} is not a PEM public key") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve,
                                                                        ec.SECP384R1):
        raise RecordingError(f"custodian key {path} is not a P-384 public key")
    return Custodian(Path(path).name, key)


def load_custodian_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """A custodian's private key from a PEM file (PKCS#8 or SEC1, not encrypted, P-384)."""
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except OSError as exc:
        raise RecordingError(f"cannot read custodian private key {path}: {exc.strerror}") \
            from exc
    except TypeError as exc:
        raise RecordingError(
            f"custodian private key {path} is encrypted: decrypt it on the offline machine "
            "first (openssl pkey -in FILE -out PLAIN)") from exc
    except ValueError as exc:
        raise RecordingError(f"{path} is not a PEM private key") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve,
                                                                         ec.SECP384R1):
        raise RecordingError(f"custodian private key {path} is not a P-384 key")
    return key


def _key(shared: bytes, eph: bytes, recipient: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA384(), length=32, salt=None,
                info=_INFO + eph + recipient).derive(shared)


def _seal(public: ec.EllipticCurvePublicKey, plain: bytes, aad: bytes) -> bytes:
    eph = ec.generate_private_key(ec.SECP384R1())
    eph_point = public_point(eph.public_key())
    key = _key(eph.exchange(ec.ECDH(), public), eph_point, public_point(public))
    return eph_point + AESGCM(key).encrypt(bytes(12), plain, aad)


def _open(private: ec.EllipticCurvePrivateKey, sealed: bytes, aad: bytes) -> bytes:
    eph_point, body = sealed[:97], sealed[97:]
    try:
        eph = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP384R1(), eph_point)
        key = _key(private.exchange(ec.ECDH(), eph), eph_point,
                   public_point(private.public_key()))
        return AESGCM(key).decrypt(bytes(12), body, aad)
    except (ValueError, InvalidTag) as exc:
        raise KeyUnavailable("a share does not open with its custodian's key (altered?)") \
            from exc


def _aad(header: dict[str, object]) -> bytes:
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode()


def _write(path: Path, data: dict[str, object]) -> None:
    from asterisk_recorder.recordings.keys import _write_private  # one durable writer

    _write_private(path, (json.dumps(data, indent=2) + "\n").encode(), 0o600)


@dataclass(frozen=True, slots=True)
class Escrow:
    """Where and how a new key is escrowed: ``threshold`` of ``custodians`` into ``directory``.

    ``write`` is the ``escrow`` callback of ``KeyStore.create`` / ``rotate``.
    """

    directory: Path
    threshold: int
    custodians: tuple[Custodian, ...]

    def __post_init__(self) -> None:
        if not 1 <= self.threshold <= len(self.custodians) <= 255:
            raise RecordingError(
                f"--escrow {self.threshold} needs at least {self.threshold} custodians (got "
                f"{len(self.custodians)}); M must be 1 to N")
        prints = [c.fingerprint for c in self.custodians]
        if len(set(prints)) != len(prints):
            raise RecordingError("the same custodian key is given twice")

    def write(self, kek_id: str, private: ec.EllipticCurvePrivateKey) -> Path:
        """Split ``private``, write one encrypted share per custodian and the manifest."""
        check_kek_id(kek_id)
        target = Path(self.directory) / kek_id
        target.mkdir(parents=True, exist_ok=False, mode=0o700)
        kek_print = hashlib.sha256(public_point(private.public_key())).hexdigest()
        scalar = private.private_numbers().private_value.to_bytes(_SCALAR_BYTES, "big")
        parts = split(scalar, self.threshold, len(self.custodians))
        listed = []
        for (x, y), custodian in zip(parts, self.custodians, strict=True):
            header: dict[str, object] = {
                "format": SHARE_FORMAT, "kek_id": kek_id, "kek_fingerprint": kek_print,
                "threshold": self.threshold, "shares": len(self.custodians), "index": x,
                "custodian_fingerprint": custodian.fingerprint,
            }
            name = f"share-{x}-{custodian.fingerprint[:16]}.json"
            _write(target / name, {**header, "sealed": base64.b64encode(
                _seal(custodian.public_key, y, _aad(header))).decode()})
            listed.append({"index": x, "custodian": custodian.name,
                           "fingerprint": custodian.fingerprint, "file": name})
        _write(target / MANIFEST, {
            "format": _MANIFEST_FORMAT, "kek_id": kek_id, "kek_fingerprint": kek_print,
            "threshold": self.threshold, "shares": len(self.custodians),
            "custodians": listed})
        return target


def _read_share(path: Path) -> dict[str, object]:
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise RecordingError(f"cannot read share {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise RecordingError(f"share {path} is not JSON") from exc
    if not isinstance(raw, dict) or raw.get("format") != SHARE_FORMAT:
        raise RecordingError(f"{path} is not an asterisk-recorder key share")
    return raw


def recover(
    kek_id: str, share_files: Sequence[Path], custodian_keys: Sequence[Path]
) -> ec.EllipticCurvePrivateKey:
    """Rebuild key ``kek_id`` from share files and the custodians' private keys.

    Each share is opened with the custodian key whose fingerprint it names. The result's
    public key must match the fingerprint the shares record.

    Raises:
        RecordingError: fewer than M usable shares (names how many are needed), a share of
            another key, mixed escrows; KeyUnavailable: a share does not open, or the result
            does not match.
    """
    check_kek_id(kek_id)
    keys = {hashlib.sha256(public_point(k.public_key())).hexdigest(): k
            for k in (load_custodian_key(p) for p in custodian_keys)}
    shares = [(_read_share(p), p) for p in share_files]
    if not shares:
        raise RecordingError("recovering a key needs its share files (--share FILE ...)")
    for share, path in shares:
        if share.get("kek_id") != kek_id:
            raise RecordingError(f"share {path} is of key {share.get('kek_id')}, not {kek_id}")
    first = shares[0][0]
    threshold, fingerprint = int(str(first["threshold"])), str(first["kek_fingerprint"])
    if any(int(str(s["threshold"])) != threshold or s["kek_fingerprint"] != fingerprint
           for s, _ in shares):
        raise RecordingError("the shares come from different escrows of the key")
    parts: dict[int, bytes] = {}
    for share, _path in shares:
        private = keys.get(str(share["custodian_fingerprint"]))
        if private is None:
            continue  # its custodian's key was not given
        header = {k: v for k, v in share.items() if k != "sealed"}
        sealed = base64.b64decode(str(share["sealed"]), validate=True)
        parts[int(str(share["index"]))] = _open(private, sealed, _aad(header))
    if len(parts) < threshold:
        raise RecordingError(
            f"key {kek_id} needs {threshold} shares opened by their custodians' keys; "
            f"{len(parts)} given (a share counts only with its own custodian's private key)")
    chosen = sorted(parts.items())[:threshold]
    value = int.from_bytes(combine(chosen), "big")
    try:
        key = ec.derive_private_key(value, ec.SECP384R1())
    except ValueError as exc:
        raise KeyUnavailable("the shares do not rebuild a P-384 key", kek_id=kek_id) from exc
    if hashlib.sha256(public_point(key.public_key())).hexdigest() != fingerprint:
        raise KeyUnavailable(f"the shares do not rebuild key {kek_id} (fingerprint differs)",
                             kek_id=kek_id)
    return key
