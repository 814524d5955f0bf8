"""The digest key: configured, or a 0600 key file created once beside the spool."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from asterisk_recorder.errors import LedgerError
from asterisk_recorder.ledger.keys import KEY_FILE_NAME, DigestKey, load_digest_key
from asterisk_recorder.settings import LedgerSettings, Secret


def test_configured_key_is_used_and_no_file_is_written(tmp_path: Path) -> None:
    """``ledger.digest_key`` wins; nothing is created in the spool directory."""
    settings = LedgerSettings(spool_dir=str(tmp_path / "spool"), digest_key=Secret("k1"))

    assert DigestKey(b"k1") == load_digest_key(settings)
    assert not (tmp_path / "spool").exists()


def test_key_file_is_created_private_and_reused(tmp_path: Path) -> None:
    """Without a configured key, one random key file (mode 0600) serves every later load."""
    settings = LedgerSettings(spool_dir=str(tmp_path / "spool"))

    first = load_digest_key(settings)
    second = load_digest_key(settings)

    path = tmp_path / "spool" / KEY_FILE_NAME
    assert 0o600 == stat.S_IMODE(path.stat().st_mode)
    assert first == second
    assert 64 == len(first.secret)
    assert first.key_id != DigestKey(b"other").key_id


def test_empty_key_file_is_refused(tmp_path: Path) -> None:
    """An empty key file is an error, not an empty key."""
    (tmp_path / KEY_FILE_NAME).write_text("\n")

    with pytest.raises(LedgerError, match="empty"):
        load_digest_key(LedgerSettings(spool_dir=str(tmp_path)))


def test_digests_depend_on_the_key() -> None:
    """The same number under two keys gives two unrelated digests."""
    assert DigestKey(b"a").digest("+12125550100") != DigestKey(b"b").digest("+12125550100")
