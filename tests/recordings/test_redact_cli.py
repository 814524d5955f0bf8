"""``recording redact`` as a compliance officer runs it, against the suite's PostgreSQL.

A real recording is sealed by the real sealer; the command opens it (access recorded first),
seals a new version with the span silenced, links both in the ledger and disposes of the old
one. The audio is read back with ``recording open``; the facts are read back from the ledger.
"""

from __future__ import annotations

import struct
from pathlib import Path

import asyncpg
import pytest
from retention_helpers import all_facts, cli, config_file, old_recordings
from sealer_helpers import SealerEnv

from asterisk_recorder.commands._redact import parse_offset
from asterisk_recorder.errors import RecordingError
from asterisk_recorder.flow.facts import RECORDING_DISPOSING, LedgerFact
from asterisk_recorder.ledger.store import Ledger
from asterisk_recorder.recordings.redact import redact_recording
from asterisk_recorder.recordings.storage import LocalStore, Stores

A = "+12125550101"
RATE = 8000


def _samples(wav: Path) -> tuple[int, ...]:
    data = wav.read_bytes()
    at = data.index(b"data") + 8
    pcm = data[at:]
    return struct.unpack(f"<{len(pcm) // 2}h", pcm)


def _of(facts: list[dict[str, object]], decision_id: str) -> list[dict[str, object]]:
    return [f for f in facts if f["decision_id"] == decision_id]


async def _open(config: Path, env: SealerEnv, decision_id: str, out: Path) -> int:
    return await cli("recording", "open", decision_id, "--config", str(config), "--out",
                     str(out), "--private-keys", str(env.private_dir), "--reason", "check")


async def _redact(config: Path, env: SealerEnv, decision_id: str, *extra: str) -> int:
    return await cli("recording", "redact", decision_id, "--config", str(config),
                     "--private-keys", str(env.private_dir), "--confirm", decision_id, *extra)


async def test_redact_silences_the_span_keeps_the_length_and_disposes_of_the_old_version(
    env: SealerEnv, capsys: pytest.CaptureFixture[str], tmp_path: Path,
) -> None:
    """1.0-2.5 s become exact zero, the rest is unchanged, the old file is gone, the facts
    say who, why and link both digests, and the recording stays present for retention."""
    [decision_id] = await old_recordings(env, [A], age_days=1, seconds=4.0)
    config = config_file(env)
    before = tmp_path / "before.wav"
    assert await _open(config, env, decision_id, before) == 0
    original = _samples(before)
    old_sealed = [f for f in _of(await all_facts(env.dsn), decision_id)
                  if f["kind"] == "recording.sealed"][-1]["payload"]
    assert isinstance(old_sealed, dict)
    capsys.readouterr()

    code = await _redact(config, env, decision_id, "--from", "1", "--to", "0:02.5",
                         "--reason", "PCI-4711 card number read out")
    captured = capsys.readouterr()
    out = captured.out
    assert code == 0, captured.err
    assert "12000 samples" in out

    facts = _of(await all_facts(env.dsn), decision_id)
    kinds = [f["kind"] for f in facts]
    tail = kinds[kinds.index("recording.redacted") - 1:]
    assert tail == ["recording.accessed", "recording.redacted", "recording.sealed",
                    "recording.disposing", "recording.disposed"]
    by_kind = {str(f["kind"]): f for f in facts}
    redacted, sealed = by_kind["recording.redacted"], facts[kinds.index("recording.redacted") + 1]
    access = facts[kinds.index("recording.redacted") - 1]["payload"]
    assert isinstance(access, dict)
    assert "redaction: PCI-4711" in str(access.get("why") or access.get("reason"))
    payload = redacted["payload"]
    assert isinstance(payload, dict)
    assert str(redacted["actor"]).startswith("cli:")
    assert (payload["from_s"], payload["to_s"]) == (1.0, 2.5)
    assert payload["reason"] == "PCI-4711 card number read out"
    assert payload["old_sealed_sha256"] == old_sealed["sealed_sha256"]
    new = sealed["payload"]
    assert isinstance(new, dict)
    assert new["redacted_from"] == old_sealed["sealed_sha256"]
    assert new["sealed_sha256"] == payload["new_sealed_sha256"] != old_sealed["sealed_sha256"]
    assert new["retain_until"] == old_sealed["retain_until"]
    disposed = by_kind["recording.disposed"]["payload"]
    assert isinstance(disposed, dict)
    assert (disposed["reason"], disposed["outcome"]) == ("redaction", "deleted")
    assert disposed["sealed_sha256"] == old_sealed["sealed_sha256"]
    assert not (env.paths.sealed / str(old_sealed["file"])).exists()
    assert (env.paths.sealed / str(new["file"])).exists()

    after = tmp_path / "after.wav"
    assert await _open(config, env, decision_id, after) == 0
    silenced = _samples(after)
    assert len(silenced) == len(original)
    assert silenced[RATE:int(2.5 * RATE)] == (0,) * int(1.5 * RATE)
    assert silenced[:RATE] == original[:RATE]
    assert silenced[int(2.5 * RATE):] == original[int(2.5 * RATE):]
    assert any(original[RATE:int(2.5 * RATE)])

    capsys.readouterr()
    assert await cli("recording", "verify", decision_id, "--config", str(config),
                     "--private-keys", str(env.private_dir)) == 0
    assert await cli("recording", "retention", "show", "--config", str(config), "--json") == 0
    shown = capsys.readouterr().out
    assert '"present": 1' in shown
    assert '"disposed": 0' in shown


async def test_a_held_recording_or_a_wrong_confirmation_is_refused_and_nothing_is_written(
    env: SealerEnv, capsys: pytest.CaptureFixture[str],
) -> None:
    """Under a legal hold the original is kept as it is; --confirm must repeat the id; a span
    past the end is refused; none of these writes a redaction or deletes a file."""
    [decision_id] = await old_recordings(env, [A], age_days=1, seconds=2.0)
    config = config_file(env)
    before = [f["seq"] for f in await all_facts(env.dsn)]
    other = "00000000-0000-4000-8000-000000000000"
    assert await cli("recording", "redact", decision_id, "--config", str(config),
                     "--private-keys", str(env.private_dir), "--confirm", other,
                     "--from", "0", "--to", "1", "--reason", "x") == 1
    assert "does not repeat" in capsys.readouterr().err
    assert await _redact(config, env, decision_id, "--from", "5", "--to", "6",
                         "--reason", "x") == 1
    assert "past the end" in capsys.readouterr().err
    assert await _redact(config, env, decision_id, "--from", "1:75", "--to", "2",
                         "--reason", "x") == 1
    assert "below 60" in capsys.readouterr().err

    assert await cli("recording", "hold", "set", "--decision", decision_id, "--config",
                     str(config), "--reason", "litigation 12") == 0
    assert await _redact(config, env, decision_id, "--from", "0", "--to", "1",
                         "--reason", "x") == 1
    assert "legal hold" in capsys.readouterr().err
    facts = await all_facts(env.dsn)
    kinds = [f["kind"] for f in facts if f["seq"] not in before]
    assert "recording.redacted" not in kinds
    assert "recording.disposed" not in kinds
    sealed = [f for f in facts if f["kind"] == "recording.sealed"]
    assert len(sealed) == 1
    assert (env.paths.sealed / str(sealed[0]["payload"]["file"])).exists()  # type: ignore[index]


class _Crash(RuntimeError):
    """The process died here (fault injected into the fact writer)."""


async def test_a_redaction_interrupted_before_the_disposal_is_finished_by_the_next_one(
    env: SealerEnv, capsys: pytest.CaptureFixture[str],
) -> None:
    """A crash after the new version is sealed leaves the old one present and not counted as
    the recording; the next redaction disposes of it first, then redacts the new version."""
    [decision_id] = await old_recordings(env, [A], age_days=1, seconds=3.0)
    config = config_file(env)
    keys = env.key_store()
    async with Ledger.open(env.dsn, env.ledger_settings(), instance_id="cli:test") as ledger:
        async def record(fact: LedgerFact) -> None:
            if fact.kind == RECORDING_DISPOSING:
                raise _Crash("killed before the old version's disposal")
            await ledger.record_fact(fact)

        conn = await asyncpg.connect(env.dsn)
        try:
            with pytest.raises(_Crash):
                await redact_recording(
                    conn, decision_id=decision_id, from_s=0.0, to_s=0.5, reason="first",
                    who="cli:test", opener=keys.opener(), public_key=keys.public,
                    sealed_dir=env.paths.sealed,
                    stores=Stores(LocalStore(env.paths.sealed), LocalStore(env.paths.sealed)),
                    record=record)
        finally:
            await conn.close()
    facts = _of(await all_facts(env.dsn), decision_id)
    first, second = [f["payload"] for f in facts if f["kind"] == "recording.sealed"]
    assert isinstance(first, dict)
    assert isinstance(second, dict)
    assert (env.paths.sealed / str(first["file"])).exists()  # the old one is still there
    assert await cli("recording", "verify", decision_id, "--config", str(config),
                     "--private-keys", str(env.private_dir)) == 0  # the new one is current

    capsys.readouterr()
    assert await _redact(config, env, decision_id, "--from", "2", "--to", "2.5",
                         "--reason", "second") == 0
    facts = _of(await all_facts(env.dsn), decision_id)
    disposed = [f["payload"] for f in facts if f["kind"] == "recording.disposed"]
    assert [d["sealed_sha256"] for d in disposed] == [  # type: ignore[index]
        first["sealed_sha256"], second["sealed_sha256"]]
    assert not (env.paths.sealed / str(first["file"])).exists()
    assert not (env.paths.sealed / str(second["file"])).exists()
    third = [f["payload"] for f in facts if f["kind"] == "recording.sealed"][-1]
    assert isinstance(third, dict)
    assert third["redacted_from"] == second["sealed_sha256"]
    assert str(third["file"]).endswith(".r2.arrec")


@pytest.mark.parametrize(("text", "seconds"), [
    ("75", 75.0), ("75.5", 75.5), ("1:15", 75.0), ("0:01:15.25", 75.25), ("2:00:00", 7200.0),
])
def test_offsets_are_seconds_or_minutes_and_seconds(text: str, seconds: float) -> None:
    """--from/--to take plain seconds, M:SS or H:MM:SS with a fraction."""
    assert parse_offset(text) == seconds


@pytest.mark.parametrize("text", ["", "-1", "1:2:3:4", "abc", "1e3", "1:60", "10; rm -rf /"])
def test_anything_else_is_not_an_offset(text: str) -> None:
    """Negative, exponent, too many fields, 60 seconds after a colon or junk are refused."""
    with pytest.raises(RecordingError, match=r"offset|below 60"):
        parse_offset(text)
