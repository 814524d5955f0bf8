"""``recording verify ID``: a sealed recording checked against its ledger fact and the chain.

A real sealer seals a real WAV into the real PostgreSQL ledger; the command is run as an
operator would (``main([...])``) by decision id and by path, on an intact file, on files with a
flipped byte, a re-sealed chunk with a rewritten trailer, and on an edited ledger row.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sealer_helpers import FIXED_KEY, SealerEnv, facts_of

from asterisk_recorder.cli import main
from asterisk_recorder.ledger.store import Ledger
from asterisk_recorder.recordings.catalog import Catalog
from asterisk_recorder.recordings.envelope import CHUNK_SIZE, TAG_BYTES, read_header
from asterisk_recorder.recordings.sealer import Sealer
from asterisk_recorder.recordings.wav import tone_pcm, write_wav

TRAILER_MAGIC_BYTES = 8


def _config(env: SealerEnv) -> Path:
    path = env.root / "recorder.toml"
    path.write_text(
        "[ari]\nenabled = false\n"
        f'[database]\ndsn = "{env.dsn}"\n'
        f'[ledger]\nspool_dir = "{env.root / "spool"}"\ndigest_key = "{FIXED_KEY}"\n'
        f'[recording]\ndirectory = "{env.paths.recordings}"\n'
        f'[recordings]\nsealed_dir = "{env.paths.sealed}"\n'
        f'quarantine_dir = "{env.paths.quarantine}"\nkey_dir = "{env.paths.keys}"\n'
    )
    return path


async def _sealed_recording(env: SealerEnv, seconds: float = 10.0) -> tuple[str, dict[str, Any]]:
    """A decision whose 10 s WAV (3 chunks) the real sealer sealed; its recording.sealed."""
    env.create_key()
    decision, path = await env.decision()
    write_wav(path, tone_pcm(seconds))
    async with Ledger.open(env.dsn, env.ledger_settings(), instance_id="sealer:test") as ledger:
        catalog = Catalog(env.dsn)
        sealer = Sealer(env.settings(), env.paths, ledger, catalog, actor="sealer:test")
        sealer.prepare()
        try:
            await sealer.scan()
        finally:
            await catalog.close()
    facts = dict(await facts_of(env.dsn, decision.decision_id))
    return decision.decision_id, facts["recording.sealed"]


async def _cli(*args: str) -> int:
    return await asyncio.to_thread(main, list(args))


def _chunk_offset(path: Path, index: int) -> int:
    with open(path, "rb") as src:
        header = read_header(src)
    return len(header.raw) + index * (CHUNK_SIZE + TAG_BYTES)


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


async def test_verify_by_decision_id_finds_the_file_and_checks_it_against_the_ledger(
    env: SealerEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    """``verify ID``: the file the fact names, its digests and chunk root, the chain: OK."""
    decision_id, sealed = await _sealed_recording(env)
    capsys.readouterr()  # the sealer's own log lines
    config = _config(env)

    assert 0 == await _cli("recording", "verify", decision_id, "--config", str(config),
                           "--json")
    report = json.loads(capsys.readouterr().out)
    assert report["ledger_checked"] is True
    assert report["path"] == str(env.paths.sealed / sealed["file"])
    assert report["chunk_root"] == sealed["chunk_root"]
    assert report["sealed_sha256"] == sealed["sealed_sha256"]
    assert report["chain_rows"] >= 3  # the decision, recording.closed, recording.sealed

    assert 0 == await _cli("recording", "verify", decision_id, "--config", str(config),
                           "--private-keys", str(env.private_dir))
    out = capsys.readouterr().out
    assert "every tag and the plaintext digest" in out
    assert "hash chain intact" in out


async def test_verify_of_a_path_with_a_ledger_configured_checks_the_ledger_too(
    env: SealerEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    """``verify PATH`` with a DSN: the fact of the header's id is checked; --no-ledger skips."""
    _decision_id, sealed = await _sealed_recording(env)
    capsys.readouterr()  # the sealer's own log lines
    target = env.paths.sealed / sealed["file"]
    config = _config(env)

    assert 0 == await _cli("recording", "verify", str(target), "--config", str(config),
                           "--json")
    assert json.loads(capsys.readouterr().out)["ledger_checked"] is True
    assert 0 == await _cli("recording", "verify", str(target), "--config", str(config),
                           "--no-ledger", "--json")
    assert json.loads(capsys.readouterr().out)["ledger_checked"] is False


async def test_a_flipped_byte_is_named_by_its_chunk_when_verified_by_id(
    env: SealerEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    """One bit of chunk 1 flipped: ``verify ID`` fails and names chunk 1."""
    decision_id, sealed = await _sealed_recording(env)
    capsys.readouterr()  # the sealer's own log lines
    target = env.paths.sealed / sealed["file"]
    _flip(target, _chunk_offset(target, 1) + 100)

    assert 1 == await _cli("recording", "verify", decision_id, "--config", str(_config(env)))
    assert "chunk 1 does not match its digest" in capsys.readouterr().err


async def test_a_chunk_rewritten_with_its_trailer_digest_fails_the_ledger_and_the_tag(
    env: SealerEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    """Chunk 2 and its trailer digest rewritten together: the ledger's chunk root refuses it
    without a key; with the key the tag names chunk 2."""
    decision_id, sealed = await _sealed_recording(env)
    capsys.readouterr()  # the sealer's own log lines
    target = env.paths.sealed / sealed["file"]
    data = bytearray(target.read_bytes())
    start = _chunk_offset(target, 2)
    end = len(data) - (32 * (sealed["chunks"] + 1) + TRAILER_MAGIC_BYTES)  # the last chunk
    data[start + 5] ^= 0x80
    digest_at = end + 32 * (1 + 2)  # header digest, then chunk digests 0, 1, 2
    data[digest_at:digest_at + 32] = hashlib.sha256(bytes(data[start:end])).digest()
    target.write_bytes(bytes(data))
    config = _config(env)

    assert 0 == await _cli("recording", "verify", str(target), "--no-ledger")
    capsys.readouterr()  # the file alone is consistent: only the ledger can tell
    assert 1 == await _cli("recording", "verify", decision_id, "--config", str(config))
    assert "do not match the ledger's chunk root" in capsys.readouterr().err
    assert 1 == await _cli("recording", "verify", decision_id, "--config", str(config),
                           "--private-keys", str(env.private_dir))
    assert "chunk 2 fails its authentication tag" in capsys.readouterr().err


async def test_an_edited_sealed_fact_in_the_ledger_is_reported_not_trusted(
    env: SealerEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    """Someone rewrites the fact's digest in PostgreSQL to match a forged file: refused."""
    decision_id, _sealed = await _sealed_recording(env)
    capsys.readouterr()  # the sealer's own log lines
    conn = await asyncpg.connect(env.dsn)
    try:
        await conn.execute("ALTER TABLE ledger_facts DISABLE TRIGGER facts_append_only")
        await conn.execute(
            "UPDATE ledger_facts SET payload = replace(payload, '\"lag_s\":', "
            "'\"forged\":1,\"lag_s\":') WHERE kind = 'recording.sealed' AND decision_id = $1",
            uuid.UUID(decision_id),
        )
    finally:
        await conn.close()

    assert 1 == await _cli("recording", "verify", decision_id, "--config", str(_config(env)))
    assert "does not match its hash: edited" in capsys.readouterr().err


async def test_verify_of_an_unknown_id_or_without_a_ledger_says_why(
    env: SealerEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    """A decision id with no recording.sealed fact, or no DSN at all: a clear error."""
    unknown = str(uuid.uuid4())
    assert 1 == await _cli("recording", "verify", unknown, "--config", str(_config(env)))
    assert f"no recording.sealed fact for {unknown}" in capsys.readouterr().err
    assert 1 == await _cli("recording", "verify", unknown)
    assert "needs the ledger" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["../secret.arrec", "/etc/passwd", "2026/../../secret.arrec"])
async def test_verify_by_id_refuses_a_sealed_fact_naming_a_file_outside_the_sealed_directory(
    env: SealerEnv, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    """A (chained, intact) recording.sealed whose ``file`` is absolute or climbs out with ``..``
    is refused by ``verify ID``: no file outside ``recordings.sealed_dir`` is opened."""
    from asterisk_recorder.flow.facts import LedgerFact

    decision, _path = await env.decision()
    (env.root / "secret.arrec").write_bytes(b"outside")
    payload = {"file": name, "recording_id": decision.decision_id, "plain_sha256": "0" * 64,
               "sealed_sha256": "1" * 64, "kek_id": "standard-202612-00000000",
               "plain_bytes": 1, "sealed_bytes": 1, "chunk_size": CHUNK_SIZE, "chunks": 1,
               "chunk_root": "1" * 64}
    await env.fact(LedgerFact("recording.sealed", decision.decision_id, 1.0, "sealer:test",
                              payload))
    capsys.readouterr()
    assert 1 == await _cli("recording", "verify", decision.decision_id, "--config",
                           str(_config(env)))
    assert "not below the sealed directory" in capsys.readouterr().err
