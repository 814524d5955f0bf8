"""The checkpoint signing key (a key file or a PKCS#11 token), its origin, the trusted keys.

This module owns choosing the signing key from ``[ledger]``: ``ledger.checkpoint_key_file``
(default ``checkpoint.key`` beside the spool, mode 0600, created on first use or by ``ledger
checkpoint-key create``) or, when ``ledger.checkpoint_pkcs11_module`` is set, the Ed25519 key
pair ``checkpoint_pkcs11_key`` in the token ``checkpoint_pkcs11_token`` (``pkcs11_key``; created
only by ``checkpoint-key create``, never on first use). It also owns rotating the key file (the
old verifier key is appended to ``<key file>.trusted`` so older checkpoints still verify; the
old private key is gone; a token's key is rotated by a new label instead), the origin line
(``ledger.checkpoint_origin``, default ``asterisk-recorder/<host name>``) and the list of
trusted verifier keys. The signing key never goes into the database. It must not talk to
PostgreSQL, and never puts the PIN into a message.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING

from asterisk_recorder.errors import LedgerError, NoteError
from asterisk_recorder.ledger.keys import spool_directory
from asterisk_recorder.ledger.note import Signer, SigningKey, VerifierKey
from asterisk_recorder.ledger.private import FILE_MODE, ensure_private_dir, make_private
from asterisk_recorder.settings import LedgerSettings

if TYPE_CHECKING:
    from asterisk_recorder.ledger.pkcs11_key import Pkcs11Signer

__all__ = [
    "CHECKPOINT_KEY_NAME",
    "checkpoint_key_path",
    "checkpoint_origin",
    "close_signing_key",
    "create_signing_key",
    "given_verifiers",
    "load_signing_key",
    "pkcs11_configured",
    "rotate_signing_key",
    "signing_key_location",
    "trusted_path",
    "trusted_verifiers",
]

CHECKPOINT_KEY_NAME = "checkpoint.key"
"""Name of the signing key file beside the spool when ``checkpoint_key_file`` is empty."""


def checkpoint_origin(settings: LedgerSettings) -> str:
    """The origin line of this ledger's checkpoints (also the signing key's name)."""
    if settings.checkpoint_origin:
        return settings.checkpoint_origin
    host = "".join(c for c in socket.gethostname() if c.isascii() and (c.isalnum() or c in ".-"))
    return f"asterisk-recorder/{host or 'localhost'}"


def checkpoint_key_path(settings: LedgerSettings) -> Path:
    """Where the signing key lives."""
    if settings.checkpoint_key_file:
        return Path(settings.checkpoint_key_file)
    return spool_directory(settings) / CHECKPOINT_KEY_NAME


def pkcs11_configured(settings: LedgerSettings) -> bool:
    """Whether the signing key is in a PKCS#11 token (``checkpoint_pkcs11_module`` is set)."""
    return bool(settings.checkpoint_pkcs11_module)


def signing_key_location(settings: LedgerSettings) -> str:
    """Where the signing key is, for messages: the key file, or the token's key label."""
    if pkcs11_configured(settings):
        return (
            f"key {settings.checkpoint_pkcs11_key!r} in PKCS#11 token "
            f"{settings.checkpoint_pkcs11_token!r} ({settings.checkpoint_pkcs11_module})"
        )
    return str(checkpoint_key_path(settings))


def _pkcs11_signer(settings: LedgerSettings, *, generate: bool = False) -> Pkcs11Signer:
    from asterisk_recorder.ledger.pkcs11_key import Pkcs11Signer

    how = Pkcs11Signer.generate if generate else Pkcs11Signer
    return how(
        settings.checkpoint_pkcs11_module,
        settings.checkpoint_pkcs11_token,
        settings.checkpoint_pkcs11_key,
        settings.checkpoint_pkcs11_pin.value,
        name=checkpoint_origin(settings),
    )


def close_signing_key(key: Signer) -> None:
    """Release what the key holds (a PKCS#11 session); a key file's key holds nothing."""
    close = getattr(key, "close", None)
    if callable(close):
        close()


def trusted_path(key_path: Path) -> Path:
    """The file of verifier keys retired by rotation (one per line)."""
    return key_path.with_name(key_path.name + ".trusted")


def _write_new(path: Path, text: str) -> None:
    """Create ``path`` (0600, never replacing a file) holding ``text``, fsynced."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        make_private(fd)
        os.write(fd, text.encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_key(path: Path) -> SigningKey:
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise LedgerError(f"cannot read the checkpoint signing key {path}: {exc}") from exc
    try:
        return SigningKey.from_text(text)
    except NoteError as exc:
        raise LedgerError(f"the checkpoint signing key {path} is not a signing key: {exc}") from exc


def create_signing_key(settings: LedgerSettings) -> Signer:
    """Create the signing key (the file, or the key pair in the token); refuse when one exists.

    Raises:
        LedgerError: it exists, or cannot be written (``Pkcs11Error`` for a token).
    """
    if pkcs11_configured(settings):
        return _pkcs11_signer(settings, generate=True)
    path = checkpoint_key_path(settings)
    key = SigningKey.generate(checkpoint_origin(settings))
    try:
        ensure_private_dir(path.parent)
        _write_new(path, key.to_text() + "\n")
        _fsync_dir(path.parent)
    except FileExistsError as exc:
        raise LedgerError(
            f"a checkpoint signing key already exists at {path}; use 'rotate' to replace it"
        ) from exc
    except OSError as exc:
        raise LedgerError(f"cannot create the checkpoint signing key {path}: {exc}") from exc
    return key


def load_signing_key(settings: LedgerSettings, *, create: bool = True) -> Signer:
    """The signing key: the key file's (created on first use when ``create``) or, when
    ``checkpoint_pkcs11_module`` is set, the token's (never created here: a key in an HSM is
    made on purpose, by ``ledger checkpoint-key create``). Release it with
    ``close_signing_key``.

    Raises:
        LedgerError: absent (and not created), unreadable, or not a signing key
            (``Pkcs11Error`` for a token: module, token, PIN, key label or key type).
    """
    if pkcs11_configured(settings):
        return _pkcs11_signer(settings)
    path = checkpoint_key_path(settings)
    if not path.exists():
        if not create:
            raise LedgerError(
                f"no checkpoint signing key at {path}; create one with "
                "'asterisk-recorder ledger checkpoint-key create'"
            )
        try:
            return create_signing_key(settings)
        except LedgerError:
            if not path.exists():
                raise  # else another process created it first: read theirs
    return _read_key(path)


def rotate_signing_key(settings: LedgerSettings) -> tuple[VerifierKey, SigningKey]:
    """Replace the signing key; return ``(the old verifier key, the new signing key)``.

    The old verifier key is appended to the ``.trusted`` file first, so checkpoints it signed
    keep verifying; then the new key replaces the old file atomically.

    A key in a PKCS#11 token is not rotated in place: the error says how (a new label).

    Raises:
        LedgerError: the key is in a token, there is no key to rotate, or a file cannot be
            written.
    """
    if pkcs11_configured(settings):
        raise LedgerError(_pkcs11_rotation(settings))
    path = checkpoint_key_path(settings)
    old = load_signing_key(settings, create=False).verifier()
    new = SigningKey.generate(checkpoint_origin(settings))
    temp = path.with_name(path.name + ".new")
    try:
        fd = os.open(trusted_path(path), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, (old.to_text() + "\n").encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
        temp.unlink(missing_ok=True)
        _write_new(temp, new.to_text() + "\n")
        os.replace(temp, path)
        _fsync_dir(path.parent)
    except OSError as exc:
        raise LedgerError(f"cannot rotate the checkpoint signing key {path}: {exc}") from exc
    return old, new


def _pkcs11_rotation(settings: LedgerSettings) -> str:
    old = ""
    try:
        signer = _pkcs11_signer(settings)
    except LedgerError:
        pass  # the advice stands without the old key's text
    else:
        old = f" ({signer.verifier().to_text()})"
        signer.close()
    return (
        "the checkpoint signing key is in a PKCS#11 token and is not rotated in place: set "
        "ledger.checkpoint_pkcs11_key to a new label and run 'asterisk-recorder ledger "
        "checkpoint-key create', then add the old verifier key"
        f"{old} to ledger.checkpoint_keys so the checkpoints it signed still verify; delete "
        "the old key pair from the token only once nobody needs to sign with it"
    )


def trusted_verifiers(settings: LedgerSettings, extra: tuple[str, ...] = ()) -> list[VerifierKey]:
    """Every verifier key to accept: the current key's, the retired ones, the configured ones.

    ``extra``: verifier keys given on a command line (text, or a path to a file holding them).
    With a PKCS#11 token, the current key is the token's (read through a session) and no key
    file nor ``.trusted`` file is trusted: older keys must be in ``ledger.checkpoint_keys``.

    Raises:
        LedgerError: a configured or given key is not a verifier key, or the token's key
            cannot be read.
    """
    keys: list[VerifierKey] = []
    lines: list[tuple[str, str]] = []
    path = checkpoint_key_path(settings)
    retired = trusted_path(path)
    if pkcs11_configured(settings):
        with _pkcs11_signer(settings) as signer:
            keys.append(signer.verifier())
    elif path.exists():
        keys.append(_read_key(path).verifier())
    if not pkcs11_configured(settings) and retired.exists():
        try:
            text = retired.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise LedgerError(f"cannot read the retired checkpoint keys {retired}: {exc}") from exc
        lines += [(str(retired), line.strip()) for line in text.splitlines() if line.strip()]
    lines += [("ledger.checkpoint_keys", k) for k in settings.checkpoint_keys]
    keys += _parse(lines) + given_verifiers(extra)
    unique: dict[str, VerifierKey] = {}
    for key in keys:
        unique.setdefault(key.to_text(), key)
    return list(unique.values())


def _parse(lines: list[tuple[str, str]]) -> list[VerifierKey]:
    keys = []
    for source, line in lines:
        try:
            keys.append(VerifierKey.from_text(line))
        except NoteError as exc:
            raise LedgerError(f"{source}: not a verifier key: {exc}") from exc
    return keys


def given_verifiers(given: tuple[str, ...]) -> list[VerifierKey]:
    """Verifier keys given on a command line: each the key's text, or a file of them.

    Raises:
        LedgerError: a file cannot be read, or a line is not a verifier key.
    """
    lines: list[tuple[str, str]] = []
    for text in given:
        candidate = Path(text)
        if candidate.is_file():
            try:
                content = candidate.read_text(encoding="ascii")
            except (OSError, UnicodeDecodeError) as exc:
                raise LedgerError(f"cannot read the verifier key file {text}: {exc}") from exc
            lines += [(text, line.strip()) for line in content.splitlines() if line.strip()]
        else:
            lines.append(("--key", text.strip()))
    return _parse(lines)
