"""Signed notes and checkpoints: C2SP signed-note and tlog-checkpoint with Ed25519.

This module owns the text formats a third party checks the ledger with, byte-compatible with Go's
golang.org/x/mod/sumdb/note and the C2SP specs (c2sp.org/signed-note, c2sp.org/tlog-checkpoint):

- keys: ``PRIVATE+KEY+<name>+<key id hex>+<base64(0x01 || seed)>`` and the verifier key
  ``<name>+<key id hex>+<base64(0x01 || public key)>``, where the key id is the first four bytes
  of SHA-256(name || 0x0A || 0x01 || public key);
- notes: a text ending in a newline, a blank line, then one line per signature:
  ``— <key name> <base64(key id || Ed25519 signature of the text)>``;
- checkpoints: the note text ``<origin>\\n<tree size>\\n<base64 root>\\n`` plus extension lines.

It must not do I/O (reading key files and pushing notes to witnesses belong to the callers), and
it never puts private key material in a message, a repr or an exception.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from asterisk_recorder.errors import NoteError

__all__ = [
    "ALG_ED25519",
    "MAX_NOTE_SIZE",
    "MAX_SIGNATURES",
    "Checkpoint",
    "OpenedNote",
    "Signer",
    "SigningKey",
    "VerifierKey",
    "open_checkpoint",
    "open_note",
    "parse_checkpoint",
    "sign_checkpoint",
    "sign_note",
    "valid_key_name",
]

ALG_ED25519 = 0x01
"""The signed-note signature type byte of Ed25519."""

MAX_NOTE_SIZE = 64 * 1024
"""Largest note (UTF-8 bytes) ``open_note`` reads."""

MAX_SIGNATURES = 100
"""Most signature lines ``open_note`` reads (the spec requires at least 16; Go allows 100)."""

_SIG_PREFIX = "\u2014 "  # em dash, space
_HEX8 = re.compile(r"[0-9a-f]{8}")
_SIZE = re.compile(r"0|[1-9][0-9]*")
_MAX_TREE_SIZE = (1 << 63) - 1  # Go's int64 trees


def valid_key_name(name: str) -> bool:
    """Whether ``name`` may name a key: non-empty, no '+', Unicode space or control character."""
    return (
        bool(name)
        and "+" not in name
        and not any(c.isspace() or c < " " or "\ud800" <= c <= "\udfff" for c in name)
    )


def _check_name(name: str) -> None:
    if not valid_key_name(name):
        raise NoteError(
            f"key name {name!r} is not valid: it must be non-empty, without '+' or spaces"
        )


def _key_id(name: str, public_key: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([ALG_ED25519]) + public_key).digest()[:4]


def _b64decode(text: str, what: str) -> bytes:
    """Strict standard base64: alphabet, padding, and the canonical encoding only."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError):
        raise NoteError(f"{what} is not valid base64") from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise NoteError(f"{what} is not canonical base64")
    return raw


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


@dataclass(frozen=True, slots=True)
class VerifierKey:
    """The public half of a note key: checks signatures made by the matching ``SigningKey``."""

    name: str
    public_key: bytes
    key_id: bytes = field(init=False)
    _public: Ed25519PublicKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_name(self.name)
        if len(self.public_key) != 32:
            raise NoteError(f"an Ed25519 public key is 32 bytes, got {len(self.public_key)}")
        object.__setattr__(self, "key_id", _key_id(self.name, self.public_key))
        try:
            public = Ed25519PublicKey.from_public_bytes(self.public_key)
        except ValueError:
            raise NoteError("the Ed25519 public key is not valid") from None
        object.__setattr__(self, "_public", public)

    def to_text(self) -> str:
        """The verifier key as published: ``<name>+<key id hex>+<base64(0x01 || public key)>``."""
        return f"{self.name}+{self.key_id.hex()}+{_b64(bytes([ALG_ED25519]) + self.public_key)}"

    @classmethod
    def from_text(cls, text: str) -> VerifierKey:
        """Parse a verifier key; the key id must match the name and the key.

        A trailing newline (as in a key file) is ignored.
        """
        text = text.rstrip("\n")
        name, _, rest = text.partition("+")
        hex_id, _, key64 = rest.partition("+")
        if not _HEX8.fullmatch(hex_id):
            raise NoteError(f"verifier key {text!r}: the key id must be 8 lowercase hex digits")
        _check_name(name)
        key = _b64decode(key64, f"verifier key {text!r}")
        if not key or key[0] != ALG_ED25519:
            raise NoteError(f"verifier key {text!r}: unknown signature type (only Ed25519, 0x01)")
        if len(key) != 33:
            raise NoteError(f"verifier key {text!r}: an Ed25519 public key is 32 bytes")
        verifier = cls(name, key[1:])
        if verifier.key_id.hex() != hex_id:
            raise NoteError(f"verifier key {text!r}: the key id does not match the name and key")
        return verifier

    def verify(self, msg: bytes, sig: bytes) -> bool:
        """Whether ``sig`` is this key's Ed25519 signature of ``msg``."""
        try:
            self._public.verify(sig, msg)
        except InvalidSignature:
            return False
        return True


@runtime_checkable
class Signer(Protocol):
    """What signs notes: a key name, its key id and Ed25519 signatures.

    ``SigningKey`` (a key held in memory, from a key file) and
    ``asterisk_recorder.ledger.pkcs11_key.Pkcs11Signer`` (a key that never leaves a PKCS#11
    token) both satisfy it.
    """

    @property
    def name(self) -> str:
        """The key name (for checkpoints: the origin)."""
        ...

    @property
    def key_id(self) -> bytes:
        """The four-byte key id of ``name`` and the public key."""
        ...

    def sign(self, msg: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``msg``."""
        ...

    def verifier(self) -> VerifierKey:
        """The matching public verifier key."""
        ...


@dataclass(frozen=True, slots=True)
class SigningKey:
    """An Ed25519 note signing key with its name; ``seed`` is secret and left out of the repr."""

    name: str
    seed: bytes = field(repr=False)
    key_id: bytes = field(init=False)
    public_key: bytes = field(init=False)
    _private: Ed25519PrivateKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_name(self.name)
        if len(self.seed) != 32:
            raise NoteError(f"an Ed25519 private key seed is 32 bytes, got {len(self.seed)}")
        private = Ed25519PrivateKey.from_private_bytes(self.seed)
        public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        object.__setattr__(self, "_private", private)
        object.__setattr__(self, "public_key", public)
        object.__setattr__(self, "key_id", _key_id(self.name, public))

    @classmethod
    def generate(cls, name: str) -> SigningKey:
        """A new random key named ``name``."""
        _check_name(name)
        seed = Ed25519PrivateKey.generate().private_bytes(
            Encoding.Raw, PrivateFormat.Raw, NoEncryption()
        )
        return cls(name, seed)

    def to_text(self) -> str:
        """The secret key text: ``PRIVATE+KEY+<name>+<key id hex>+<base64(0x01 || seed)>``."""
        return (
            f"PRIVATE+KEY+{self.name}+{self.key_id.hex()}+{_b64(bytes([ALG_ED25519]) + self.seed)}"
        )

    @classmethod
    def from_text(cls, text: str) -> SigningKey:
        """Parse a secret key text; the key id must match the name and the derived public key.

        A trailing newline (as in a key file) is ignored. Error messages name the key but never
        repeat the secret part.
        """
        text = text.rstrip("\n")
        parts = text.split("+", 4)
        if len(parts) != 5 or parts[0] != "PRIVATE" or parts[1] != "KEY":
            raise NoteError("signing key text must look like PRIVATE+KEY+<name>+<id>+<key>")
        _, _, name, hex_id, key64 = parts
        _check_name(name)
        if not _HEX8.fullmatch(hex_id):
            raise NoteError(f"signing key {name}: the key id must be 8 lowercase hex digits")
        key = _b64decode(key64, f"signing key {name}+{hex_id}")
        if not key or key[0] != ALG_ED25519:
            raise NoteError(f"signing key {name}+{hex_id}: unknown signature type (only Ed25519)")
        if len(key) != 33:
            raise NoteError(f"signing key {name}+{hex_id}: an Ed25519 seed is 32 bytes")
        signer = cls(name, key[1:])
        if signer.key_id.hex() != hex_id:
            raise NoteError(
                f"signing key {name}+{hex_id}: the key id does not match the name and key"
            )
        return signer

    def verifier(self) -> VerifierKey:
        """The matching public verifier key."""
        return VerifierKey(self.name, self.public_key)

    def sign(self, msg: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``msg``."""
        return self._private.sign(msg)


def _check_text_chars(text: str, what: str) -> None:
    for lineno, line in enumerate(text.split("\n"), start=1):
        for c in line:
            if c < " ":
                raise NoteError(f"{what} line {lineno} has the control character {c!r}")
            if "\ud800" <= c <= "\udfff":
                raise NoteError(f"{what} line {lineno} is not valid UTF-8")


def sign_note(text: str, *keys: Signer) -> str:
    """Sign ``text`` (which must end with a newline) with each key, in order."""
    if not keys:
        raise NoteError("a note needs at least one signing key")
    if not text.endswith("\n"):
        raise NoteError("note text must end with a newline")
    _check_text_chars(text, "note text")
    msg = text.encode("utf-8")
    lines = []
    for key in keys:
        sig = key.sign(msg)
        if len(sig) != 64 or len(key.key_id) != 4:
            raise NoteError(f"signer {key.name} returned a malformed Ed25519 signature or key id")
        lines.append(f"{_SIG_PREFIX}{key.name} {_b64(key.key_id + sig)}\n")
    note = text + "\n" + "".join(lines)
    if len(note.encode("utf-8")) > MAX_NOTE_SIZE:
        raise NoteError(f"signed note would be over {MAX_NOTE_SIZE} bytes")
    return note


@dataclass(frozen=True, slots=True)
class OpenedNote:
    """A note whose signatures checked out: its text and the names of the keys that verified it."""

    text: str
    verified_by: tuple[str, ...]


def _decode_note(note: str | bytes) -> str:
    if isinstance(note, bytes):
        if len(note) > MAX_NOTE_SIZE:
            raise NoteError(f"note is {len(note)} bytes, over the {MAX_NOTE_SIZE}-byte limit")
        try:
            return note.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NoteError(f"note is not valid UTF-8 (byte {exc.start})") from None
    try:
        size = len(note.encode("utf-8"))
    except UnicodeEncodeError:
        raise NoteError("note is not valid UTF-8 (it holds a lone surrogate)") from None
    if size > MAX_NOTE_SIZE:
        raise NoteError(f"note is {size} bytes, over the {MAX_NOTE_SIZE}-byte limit")
    return note


def open_note(note: str | bytes, verifiers: Sequence[VerifierKey]) -> OpenedNote:
    """Parse a signed note and check its signatures against ``verifiers``.

    Signatures by keys not in ``verifiers`` are ignored (a key is its name and key id). A known
    key whose signature does not verify is an error, and so is a note no known key signed.
    ``verified_by`` lists the names of the known keys that signed, in note order.
    """
    msg = _decode_note(note)
    _check_text_chars(msg, "note")
    split = msg.rfind("\n\n")
    if split < 0:
        raise NoteError("note has no blank line between its text and its signatures")
    text, block = msg[: split + 1], msg[split + 2 :]
    if not block:
        raise NoteError("note has no signature lines after its blank line")
    if not block.endswith("\n"):
        raise NoteError("note's last signature line does not end with a newline")

    known: dict[tuple[str, bytes], VerifierKey] = {}
    ambiguous: set[tuple[str, bytes]] = set()
    for verifier in verifiers:
        slot = (verifier.name, verifier.key_id)
        if known.setdefault(slot, verifier) != verifier:
            ambiguous.add(slot)

    text_bytes = text.encode("utf-8")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"note has {len(lines)} signature lines, more than {MAX_SIGNATURES}")
    verified: list[str] = []
    seen: set[tuple[str, bytes]] = set()
    unknown: list[str] = []
    first_sig_line = text.count("\n") + 2
    for offset, line in enumerate(lines):
        where = f"note line {first_sig_line + offset}"
        if not line.startswith(_SIG_PREFIX):
            raise NoteError(f"{where} is not a signature line ('\u2014 <key name> <signature>')")
        name, _, sig64 = line[len(_SIG_PREFIX) :].partition(" ")
        if not valid_key_name(name):
            raise NoteError(f"{where}: the key name {name!r} is not valid")
        if not sig64:
            raise NoteError(f"{where}: the signature is missing")
        raw = _b64decode(sig64, f"{where}: the signature")
        if len(raw) < 5:
            raise NoteError(f"{where}: the signature is too short")
        key_id, sig = raw[:4], raw[4:]
        slot = (name, key_id)
        found = known.get(slot)
        if found is None:
            unknown.append(f"{name}+{key_id.hex()}")
            continue
        if slot in ambiguous:
            raise NoteError(f"two different verifier keys are named {name}+{key_id.hex()}")
        if slot in seen:
            continue
        seen.add(slot)
        if not found.verify(text_bytes, sig):
            raise NoteError(f"invalid signature for key {name}+{key_id.hex()}")
        verified.append(name)
    if not verified:
        signers = ", ".join(unknown) if unknown else "nobody"
        raise NoteError(f"note has no signature from a known key (signed by {signers})")
    return OpenedNote(text, tuple(verified))


@dataclass(frozen=True)
class Checkpoint:
    """A tree head in the C2SP tlog-checkpoint format: origin, tree size, root hash."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin:
            raise NoteError("checkpoint origin must be one non-empty line")
        if not 0 <= self.size <= _MAX_TREE_SIZE:
            raise NoteError(f"checkpoint tree size {self.size} is out of range")
        if len(self.root) != 32:
            raise NoteError(f"checkpoint root must be 32 bytes, got {len(self.root)}")
        for ext in self.extensions:
            if not ext or "\n" in ext:
                raise NoteError("checkpoint extension lines must be non-empty single lines")
        _check_text_chars(self.body(), "checkpoint")

    def body(self) -> str:
        """The note text: origin, size and base64 root, then the extension lines."""
        lines = [self.origin, str(self.size), _b64(self.root), *self.extensions]
        return "".join(line + "\n" for line in lines)


def parse_checkpoint(text: str) -> Checkpoint:
    """Parse a checkpoint note text strictly (tlog-checkpoint): no leading zeros, a 32-byte root."""
    if not text.endswith("\n"):
        raise NoteError("checkpoint text must end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise NoteError("checkpoint needs at least three lines: origin, tree size, root hash")
    origin, size_text, root64, *extensions = lines
    if not origin:
        raise NoteError("checkpoint origin line is empty")
    if not _SIZE.fullmatch(size_text):
        raise NoteError(
            f"checkpoint tree size {size_text!r} is not a decimal number without leading zeros"
        )
    size = int(size_text)
    if size > _MAX_TREE_SIZE:
        raise NoteError(f"checkpoint tree size {size_text} is too large")
    root = _b64decode(root64, "checkpoint root hash")
    if len(root) != 32:
        raise NoteError(f"checkpoint root hash is {len(root)} bytes, not 32")
    for i, ext in enumerate(extensions, start=4):
        if not ext:
            raise NoteError(f"checkpoint line {i} is empty (extension lines must be non-empty)")
    return Checkpoint(origin, size, root, tuple(extensions))


def sign_checkpoint(cp: Checkpoint, key: Signer) -> str:
    """The checkpoint as a signed note."""
    return sign_note(cp.body(), key)


def open_checkpoint(
    note: str | bytes, verifiers: Sequence[VerifierKey], origin: str | None = None
) -> Checkpoint:
    """Open a signed checkpoint note; when ``origin`` is given it must match the origin line."""
    opened = open_note(note, verifiers)
    cp = parse_checkpoint(opened.text)
    if origin is not None and cp.origin != origin:
        raise NoteError(f"checkpoint origin is {cp.origin!r}, expected {origin!r}")
    return cp
