"""The checkpoint signing key on disk, its origin, and the verifier keys ``ledger verify`` trusts.

This module owns ``ledger.checkpoint_key_file`` (default ``checkpoint.key`` beside the spool,
mode 0600, created on first use or by ``ledger checkpoint-key create``), rotating it (the old
verifier key is appended to ``<key file>.trusted`` so older checkpoints still verify; the old
private key is gone), the origin line (``ledger.checkpoint_origin``, default
``asterisk-recorder/<host name>``) and the list of trusted verifier keys. The signing key never
goes into the database. It must not talk to PostgreSQL.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from asterisk_recorder.errors import LedgerError, NoteError
from asterisk_recorder.ledger.keys import spool_directory
from asterisk_recorder.ledger.note import SigningKey, VerifierKey
from asterisk_recorder.ledger.private import FILE_MODE, ensure_private_dir, make_private
from asterisk_recorder.settings import LedgerSettings

__all__ = [
    "CHECKPOINT_KEY_NAME",
    "checkpoint_key_path",
    "checkpoint_origin",
    "create_signing_key",
    "given_verifiers",
    "load_signing_key",
    "rotate_signing_key",
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


def create_signing_key(settings: LedgerSettings) -> SigningKey:
    """Create the signing key file; refuse when one exists.

    Raises:
        LedgerError: it exists, or cannot be written.
    """
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


def load_signing_key(settings: LedgerSettings, *, create: bool = True) -> SigningKey:
    """The signing key (created on first use when ``create``).

    Raises:
        LedgerError: absent (and not created), unreadable, or not a signing key.
    """
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

    Raises:
        LedgerError: there is no key to rotate, or a file cannot be written.
    """
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


def trusted_verifiers(settings: LedgerSettings, extra: tuple[str, ...] = ()) -> list[VerifierKey]:
    """Every verifier key to accept: the current key's, the retired ones, the configured ones.

    ``extra``: verifier keys given on a command line (text, or a path to a file holding them).

    Raises:
        LedgerError: a configured or given key is not a verifier key.
    """
    keys: list[VerifierKey] = []
    path = checkpoint_key_path(settings)
    if path.exists():
        keys.append(_read_key(path).verifier())
    lines: list[tuple[str, str]] = []
    retired = trusted_path(path)
    if retired.exists():
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
