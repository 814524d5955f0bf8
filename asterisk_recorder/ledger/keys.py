"""The ledger's local files: where the spool lives and the key of the personal-field digests.

This module owns ``spool_directory`` and ``load_digest_key``. The digest key is
``LedgerSettings.digest_key`` when set; otherwise ``<spool_dir>/digest.key`` (32 random bytes,
hex, created once with mode 0600 in a spool directory created 0700, whatever the umask). Every
process that writes or searches the same ledger must use the same key. It must not talk to
PostgreSQL.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path

from asterisk_recorder.errors import LedgerError
from asterisk_recorder.ledger.private import FILE_MODE, ensure_private_dir, make_private
from asterisk_recorder.settings import LedgerSettings

__all__ = ["KEY_FILE_NAME", "DigestKey", "default_spool_dir", "load_digest_key", "spool_directory"]

KEY_FILE_NAME = "digest.key"
"""Name of the generated key file inside the spool directory."""


def default_spool_dir() -> Path:
    """``$XDG_DATA_HOME/asterisk-recorder/spool`` (or ``~/.local/share/...``)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "asterisk-recorder" / "spool"


def spool_directory(settings: LedgerSettings) -> Path:
    """The spool directory named by ``settings`` (the user data dir when empty)."""
    return Path(settings.spool_dir) if settings.spool_dir else default_spool_dir()


@dataclass(frozen=True, slots=True)
class DigestKey:
    """The HMAC-SHA256 key of the personal-field digests.

    ``key_id`` (16 hex digits, derived from the key) is stored on every row so a wrong key is
    noticed instead of silently finding nothing.
    """

    secret: bytes = field(repr=False)

    @property
    def key_id(self) -> str:
        """A public fingerprint of the key."""
        return hashlib.sha256(b"asterisk-recorder/key-id\x00" + self.secret).hexdigest()[:16]

    def digest(self, text: str) -> bytes:
        """HMAC-SHA256 of ``text`` (already cleaned, so always valid UTF-8)."""
        return hmac.digest(self.secret, text.encode("utf-8"), "sha256")


def _tighten(path: Path) -> None:
    """Make an existing key file of ours 0600 (one written by an older release may be 0644)."""
    info = path.stat()
    if stat.S_IMODE(info.st_mode) & 0o077 and info.st_uid == os.geteuid():
        os.chmod(path, FILE_MODE)


def load_digest_key(settings: LedgerSettings) -> DigestKey:
    """The configured digest key, or the key file beside the spool (created on first use).

    Raises:
        LedgerError: the key file cannot be created or read, or is empty.
    """
    if settings.digest_key:
        return DigestKey(settings.digest_key.value.encode("utf-8"))
    path = spool_directory(settings) / KEY_FILE_NAME
    try:
        ensure_private_dir(path.parent)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        except FileExistsError:
            _tighten(path)
        else:
            make_private(fd)
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_hex(32) + "\n")
                out.flush()
                os.fsync(out.fileno())
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise LedgerError(f"cannot create or read the ledger digest key {path}: {exc}") from exc
    if not text:
        raise LedgerError(f"the ledger digest key file {path} is empty")
    return DigestKey(text.encode("ascii"))
