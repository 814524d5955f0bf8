"""``recording keys|verify|open`` through ``cli.main``, with real keys, files and PostgreSQL.

Opening a recording writes ``recording.accessed`` (who, why, when) to the real ledger before
the plaintext; destroying a key writes ``recording.key_destroyed`` first; a tampered file is
refused with the bad chunk named and no output file left behind.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
from pathlib import Path

import asyncpg
import pytest

from asterisk_recorder.cli import main
from asterisk_recorder.ledger import migrate
from asterisk_recorder.recordings import KeyStore, seal


def _config(tmp_path: Path, dsn: str) -> Path:
    path = tmp_path / "recorder.toml"
    (tmp_path / "recordings").mkdir(exist_ok=True)
    path.write_text(
        "[ari]\nenabled = false\n"
        f'[database]\ndsn = "{dsn}"\n'
        f'[ledger]\nspool_dir = "{tmp_path / "spool"}"\n'
        f'[recording]\ndirectory = "{tmp_path / "recordings"}"\n'
    )
    return path


def _facts(dsn: str) -> list[tuple[str, str, dict[str, object]]]:
    async def run() -> list[tuple[str, str, dict[str, object]]]:
        conn = await asyncpg.connect(dsn)
        try:
            rows = await conn.fetch("SELECT kind, actor, payload FROM ledger_facts ORDER BY seq")
        finally:
            await conn.close()
        return [(r["kind"], r["actor"], json.loads(r["payload"])) for r in rows]

    return asyncio.run(run())


def _keys(tmp_path: Path) -> tuple[Path, Path, str]:
    pub, priv = tmp_path / "public", tmp_path / "private"
    assert 0 == main([
        "recording", "keys", "create", "--public-keys", str(pub), "--private-keys", str(priv),
        "--class", "standard", "--month", "2026-12",
    ])
    return pub, priv, KeyStore(pub).list()[0].kek_id


def _sealed(tmp_path: Path, pub: Path, data: bytes) -> Path:
    plain = tmp_path / "call.wav"
    plain.write_bytes(data)
    out = tmp_path / "call.arrec"
    with open(plain, "rb") as src, open(out, "wb") as dst:
        seal(src, dst, recording_id="call-1", kek=KeyStore(pub).current("standard", "2026-12"))
    return out


def test_keys_are_created_with_private_modes_whatever_the_umask(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With umask 000 the private directory is 0700 and the key 0600; list shows the bucket."""
    old = os.umask(0)
    try:
        pub, priv, kek_id = _keys(tmp_path)
    finally:
        os.umask(old)

    assert stat.S_IMODE(priv.stat().st_mode) == 0o700
    assert stat.S_IMODE((priv / f"{kek_id}.key.pem").stat().st_mode) == 0o600
    assert not list(pub.glob("*.key.pem"))
    assert 0 == main(["recording", "keys", "list", "--public-keys", str(pub), "--json"])
    listed = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert [(k["kek_id"], k["month"], k["state"]) for k in listed] == [
        (kek_id, "2026-12", "active")
    ]


def test_rotate_retires_the_old_key_which_still_opens(tmp_path: Path) -> None:
    """After rotate the bucket seals with the new key; a file sealed before still verifies."""
    pub, priv, old = _keys(tmp_path)
    sealed = _sealed(tmp_path, pub, b"before rotation")
    assert 0 == main([
        "recording", "keys", "rotate", "--public-keys", str(pub), "--private-keys", str(priv),
        "--class", "standard", "--month", "2026-12",
    ])

    store = KeyStore(pub, priv)
    assert store.current("standard", "2026-12").kek_id != old
    assert {i.kek_id: i.state for i in store.list()}[old] == "retired"
    assert 0 == main(["recording", "verify", str(sealed), "--private-keys", str(priv)])


def test_open_records_the_access_in_the_ledger_then_writes_the_audio(
    tmp_path: Path, pg_dsn: str
) -> None:
    """``recording open`` writes recording.accessed (actor, reason) and the exact plaintext."""
    asyncio.run(migrate(pg_dsn))
    config = _config(tmp_path, pg_dsn)
    pub, priv, kek_id = _keys(tmp_path)
    data = os.urandom(3 * 65536 + 5)
    sealed = _sealed(tmp_path, pub, data)
    out = tmp_path / "opened.wav"

    assert 0 == main([
        "recording", "open", str(sealed), "--out", str(out), "--private-keys", str(priv),
        "--reason", "complaint 4711", "--config", str(config),
    ])

    assert out.read_bytes() == data
    assert out.stat().st_mode & 0o777 == 0o600  # plaintext audio: never group/world readable
    [(kind, actor, payload)] = _facts(pg_dsn)
    assert kind == "recording.accessed"
    assert actor.startswith("cli:")
    assert payload["reason"] == "complaint 4711"
    assert payload["recording_id"] == "call-1"
    assert payload["kek_id"] == kek_id


def test_open_of_a_tampered_file_names_the_chunk_records_nothing_and_leaves_no_file(
    tmp_path: Path, pg_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A flipped byte in chunk 2: exit 1 naming chunk 2, no ledger entry, no output file."""
    asyncio.run(migrate(pg_dsn))
    config = _config(tmp_path, pg_dsn)
    pub, priv, _ = _keys(tmp_path)
    sealed = _sealed(tmp_path, pub, os.urandom(3 * 65536))
    raw = bytearray(sealed.read_bytes())
    raw[-(8 + 4 * 32 + 100)] ^= 1  # inside chunk 2
    sealed.write_bytes(bytes(raw))
    out = tmp_path / "opened.wav"

    assert 1 == main([
        "recording", "open", str(sealed), "--out", str(out), "--private-keys", str(priv),
        "--reason", "audit", "--config", str(config),
    ])

    assert "chunk 2" in capsys.readouterr().err
    assert not out.exists()
    assert list(tmp_path.glob(".opened.wav*")) == []
    assert _facts(pg_dsn) == []
    assert 1 == main(["recording", "verify", str(sealed)])


def test_open_without_a_ledger_is_refused_unless_said_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No DSN: open refuses (exit 1) and writes nothing; --no-ledger opens with a warning."""
    pub, priv, _ = _keys(tmp_path)
    sealed = _sealed(tmp_path, pub, b"audio")
    out = tmp_path / "o.wav"
    base = ["recording", "open", str(sealed), "--out", str(out), "--private-keys", str(priv),
            "--reason", "test"]

    assert 1 == main(base)
    assert "no DSN is configured" in capsys.readouterr().err
    assert not out.exists()
    assert 0 == main([*base, "--no-ledger"])
    assert "NOT recorded" in capsys.readouterr().err
    assert out.read_bytes() == b"audio"


def test_destroy_needs_the_confirmation_records_the_fact_then_makes_files_unreadable(
    tmp_path: Path, pg_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A wrong --confirm destroys nothing; the right one writes key_destroyed, then opens fail."""
    asyncio.run(migrate(pg_dsn))
    config = _config(tmp_path, pg_dsn)
    pub, priv, kek_id = _keys(tmp_path)
    sealed = _sealed(tmp_path, pub, b"audio")
    base = ["recording", "keys", "destroy", kek_id, "--public-keys", str(pub),
            "--private-keys", str(priv), "--reason", "retention expired", "--config", str(config)]

    assert 1 == main([*base, "--confirm", kek_id[:-1]])
    assert (priv / f"{kek_id}.key.pem").exists()
    assert _facts(pg_dsn) == []
    assert 0 == main([*base, "--confirm", kek_id])

    assert not (priv / f"{kek_id}.key.pem").exists()
    [(kind, _, payload)] = _facts(pg_dsn)
    assert kind == "recording.key_destroyed"
    assert payload["kek_id"] == kek_id
    assert payload["reason"] == "retention expired"
    capsys.readouterr()
    assert 1 == main(["recording", "verify", str(sealed), "--private-keys", str(priv)])
    assert "it was destroyed" in capsys.readouterr().err
    assert 0 == main(["recording", "verify", str(sealed)])  # structure still checks keyless
