"""Retention per class, legal holds, disposal and crypto-shredding, as an operator runs them.

Real recordings are sealed by the real sealer into the suite's PostgreSQL; their files' close
times are set in the past so their retention has passed (no clock is faked). Every command is
run through ``asterisk_recorder.cli.main``; the facts are read back from the ledger.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from retention_helpers import DAY, all_facts, cli, config_file, old_recordings, private_key_path
from sealer_helpers import SealerEnv

from asterisk_recorder.ledger.store import Ledger
from asterisk_recorder.recordings.disposal import Disposer
from asterisk_recorder.settings.retention import (
    choose_class,
    parse_period,
    parse_retention,
    parse_rule,
    retain_until,
)

A, B, C = "+12125550101", "+12125550102", "+12125550103"


def _sealed(facts: list[dict[str, object]], decision_id: str) -> dict[str, object]:
    found = [f for f in facts
             if f["kind"] == "recording.sealed" and f["decision_id"] == decision_id]
    assert found, f"no recording.sealed for {decision_id}"
    payload = found[-1]["payload"]
    assert isinstance(payload, dict)
    return payload


def _kinds(facts: list[dict[str, object]], decision_id: str) -> list[object]:
    return [f["kind"] for f in facts if f["decision_id"] == decision_id]


def _file(env: SealerEnv, payload: dict[str, object]) -> Path:
    return env.paths.sealed / str(payload["file"])


# -- the class and its period -------------------------------------------------------------------


def test_periods_are_calendar_steps_never_a_day_short() -> None:
    """7y from 29 February is 1 March seven years on; 1m from 31 January is 1 March."""
    leap = datetime(2028, 2, 29, 12, tzinfo=UTC).timestamp()
    jan = datetime(2027, 1, 31, tzinfo=UTC).timestamp()

    assert datetime.fromtimestamp(retain_until(leap, parse_period("7y")), UTC) == datetime(
        2035, 3, 1, 12, tzinfo=UTC)
    assert datetime.fromtimestamp(retain_until(jan, parse_period("1m")), UTC) == datetime(
        2027, 3, 1, tzinfo=UTC)
    assert retain_until(jan, parse_period("90d")) == jan + 90 * DAY


def test_rules_match_a_country_or_one_subdivision_or_a_called_prefix_first_match_wins() -> None:
    """``US`` covers US-CA, ``US-CA`` only California, ``called:`` a prefix; else the default."""
    rules = [parse_rule("jurisdiction:US-CA=complaints"), parse_rule("jurisdiction:GB=uk"),
             parse_rule("called:+1800=financial")]

    assert choose_class(rules, "standard", jurisdictions=["US-CA"]).retention_class == "complaints"
    assert choose_class(rules, "standard", jurisdictions=["US-NY"]).retention_class == "standard"
    assert choose_class([parse_rule("jurisdiction:US=us")], "standard",
                        jurisdictions=["US-TX"]).rule == "jurisdiction:US=us"
    assert choose_class(rules, "standard", called_number="+1 (800) 555-0100").retention_class \
        == "financial"
    assert choose_class(rules, "standard", called_number=None).rule == "default"
    with pytest.raises(ValueError, match="queue"):
        parse_rule("queue:sales=standard")
    with pytest.raises(ValueError, match="twice"):
        parse_retention(["standard=1d", "standard=2d"])


async def test_the_sealer_records_the_class_its_rule_chose_and_the_date_it_may_go(
    env: SealerEnv,
) -> None:
    """A call to a +1415 number gets ``financial`` (7y) by rule, with its period and
    retain_until in recording.sealed; another call gets the default class."""
    retention = ("standard=90d", "financial=7y")
    rules = ("called:+1415=financial",)
    [by_rule] = await old_recordings(env, [A], age_days=10, retention=retention, rules=rules,
                                     classes=("standard", "financial"))
    [default] = await old_recordings(env, [B], age_days=10, retention=retention, rules=rules,
                                     classes=("standard", "financial"),
                                     called_number="+442079460000")
    facts = await all_facts(env.dsn)
    first, second = _sealed(facts, by_rule), _sealed(facts, default)

    assert (first["retention_class"], first["retention_rule"], first["retention_period"]) == (
        "financial", "called:+1415=financial", "7y")
    assert str(first["kek_id"]).startswith("financial-")
    assert (second["retention_class"], second["retention_rule"]) == ("standard", "default")
    assert float(str(first["retain_until"])) - float(str(second["retain_until"])) > 6 * 365 * DAY


# -- disposal and crypto-shredding -----------------------------------------------------------


async def test_dispose_deletes_what_is_past_retention_then_destroys_the_emptied_key(
    env: SealerEnv, capsys: pytest.CaptureFixture[str],
) -> None:
    """Each deletion sits between recording.disposing and recording.disposed (digest,
    location); the emptied bucket's key is destroyed (reason retention) and ``open ID`` then
    says when and by whom; a backup copy is unreadable and says the key was destroyed."""
    ids = await old_recordings(env, [A, B])
    config = config_file(env)
    facts = await all_facts(env.dsn)
    sealed = [_sealed(facts, i) for i in ids]
    backup = env.root / "backup.arrec"
    shutil.copy(_file(env, sealed[0]), backup)
    kek_id = str(sealed[0]["kek_id"])

    code = await cli("recording", "dispose", "--config", str(config),
                     "--private-keys", str(env.private_dir))
    out = capsys.readouterr().out
    after = await all_facts(env.dsn)

    assert code == 0, out
    assert f"key destroyed: {kek_id}" in out
    for decision_id, payload in zip(ids, sealed, strict=True):
        assert not _file(env, payload).exists()
        assert _kinds(after, decision_id)[-2:] == ["recording.disposing", "recording.disposed"]
        [done] = [f for f in after if f["kind"] == "recording.disposed"
                  and f["decision_id"] == decision_id]
        assert done["payload"]["sealed_sha256"] == payload["sealed_sha256"]
        assert done["payload"]["location"] == str(_file(env, payload))
        assert (done["payload"]["outcome"], done["payload"]["reason"]) == ("deleted", "retention")
    [destroyed] = [f for f in after if f["kind"] == "recording.key_destroyed"]
    assert (destroyed["payload"]["kek_id"], destroyed["payload"]["reason"]) == (kek_id, "retention")
    assert max(f["seq"] for f in after if f["kind"] == "recording.disposed") < destroyed["seq"]
    assert not private_key_path(env, kek_id).exists()

    assert await cli("recording", "open", ids[0], "--config", str(config), "--out",
                     str(env.root / "x.wav"), "--private-keys", str(env.private_dir),
                     "--reason", "test") == 1
    err = capsys.readouterr().err
    assert f"recording {ids[0]} was disposed on " in err
    assert " by cli:" in err
    assert await cli("recording", "open", str(backup), "--config", str(config), "--out",
                     str(env.root / "y.wav"), "--private-keys", str(env.private_dir),
                     "--reason", "restore test") == 1
    err = capsys.readouterr().err
    assert f"key {kek_id} destroyed on " in err
    assert "by cli:" in err
    assert "(retention)" in err


async def test_a_dry_run_prints_the_list_and_writes_nothing(
    env: SealerEnv, capsys: pytest.CaptureFixture[str],
) -> None:
    """``dispose --dry-run`` names each recording due and its bucket, deletes nothing and adds
    no row to the ledger; ``retention show`` prints the same buckets."""
    ids = await old_recordings(env, [A, B])
    [recent] = await old_recordings(env, [C], age_days=0)
    config = config_file(env)
    before = await all_facts(env.dsn, "")

    assert await cli("recording", "dispose", "--dry-run", "--config", str(config)) == 0
    dry = capsys.readouterr().out
    assert await cli("recording", "retention", "show", "--config", str(config), "--json") == 0
    shown = json.loads(capsys.readouterr().out)

    assert all(f"dispose: {i}" in dry for i in ids)
    assert f"dispose: {recent}" not in dry
    assert "2 recordings would be disposed of; nothing deleted, no fact written" in dry
    assert await all_facts(env.dsn, "") == before
    facts = await all_facts(env.dsn)
    assert all(_file(env, _sealed(facts, i)).exists() for i in [*ids, recent])
    buckets = {b["month"]: b for b in shown["buckets"]}
    old = next(b for b in buckets.values() if b["due"] == 2)
    assert old["present"] == 2
    assert old["key"] == "destroyed by the next dispose"
    new = next(b for b in buckets.values() if b["due"] == 0)
    assert new["present"] == 1
    assert new["key"].startswith("from ")


# -- holds ---------------------------------------------------------------------------------


async def test_a_hold_on_a_number_keeps_its_recordings_and_its_key_until_released(
    env: SealerEnv, capsys: pytest.CaptureFixture[str],
) -> None:
    """The hold fact carries the number's keyed digest, never the number; dispose keeps the
    number's recording (and so the key); after the release the next run disposes of both."""
    held, free = await old_recordings(env, [A, B])
    config = config_file(env)

    assert await cli("recording", "hold", "set", "--number", A, "--reason", "litigation 42",
                     "--config", str(config)) == 0
    placed = capsys.readouterr().out
    hold_id = re.search(r"hold (\S+) placed on", placed).group(1)  # type: ignore[union-attr]
    [fact] = [f for f in await all_facts(env.dsn) if f["kind"] == "recording.hold_placed"]
    assert A not in json.dumps(fact)
    assert A.lstrip("+") not in json.dumps(fact)
    assert fact["payload"]["scope"] == "number"
    assert len(fact["payload"]["number_digest"]) == 64
    assert fact["actor"].startswith("cli:")
    assert "keeps back 1 sealed recordings" in placed

    assert await cli("recording", "dispose", "--config", str(config),
                     "--private-keys", str(env.private_dir)) == 0
    out = capsys.readouterr().out
    facts = await all_facts(env.dsn)
    assert f"held back: {held} by hold {hold_id}" in out
    assert "recording.disposing" not in _kinds(facts, held)
    assert _file(env, _sealed(facts, held)).exists()
    assert not _file(env, _sealed(facts, free)).exists()
    assert not [f for f in facts if f["kind"] == "recording.key_destroyed"]
    assert await cli("recording", "retention", "show", "--config", str(config)) == 0
    show = capsys.readouterr().out
    assert f"held back: {held}" in show
    assert "litigation 42" in show
    assert "kept: 1 held" in show

    assert await cli("recording", "hold", "release", hold_id, "--reason", "case closed",
                     "--config", str(config)) == 0
    assert await cli("recording", "dispose", "--config", str(config),
                     "--private-keys", str(env.private_dir)) == 0
    facts = await all_facts(env.dsn)
    assert not _file(env, _sealed(facts, held)).exists()
    assert [f["kind"] for f in facts].count("recording.key_destroyed") == 1
    [released] = [f for f in facts if f["kind"] == "recording.hold_released"]
    assert released["payload"] == {"hold_id": hold_id, "reason": "case closed"}


async def test_holds_on_a_decision_and_on_a_date_range_keep_what_they_cover(
    env: SealerEnv, capsys: pytest.CaptureFixture[str],
) -> None:
    """A decision hold keeps that recording; a range covering today's decisions keeps the
    rest; a range in the past keeps nothing; bad ranges are refused."""
    first, second, third = await old_recordings(env, [A, B, C])
    config = config_file(env)
    today = datetime.now(UTC).strftime("%Y-%m-%d")

    assert await cli("recording", "hold", "set", "--decision", first, "--reason", "complaint",
                     "--config", str(config)) == 0
    assert await cli("recording", "hold", "set", "--from", "2001-01-01", "--to", "2001-12-31",
                     "--reason", "old audit", "--config", str(config)) == 0
    assert await cli("recording", "hold", "set", "--from", today, "--to", "2001-01-01",
                     "--reason", "x", "--config", str(config)) == 1
    assert await cli("recording", "hold", "set", "--decision", "nope", "--reason", "x",
                     "--config", str(config)) == 1
    capsys.readouterr()
    assert await cli("recording", "dispose", "--config", str(config), "--batch", "1",
                     "--private-keys", str(env.private_dir)) == 0
    facts = await all_facts(env.dsn)
    assert _file(env, _sealed(facts, first)).exists()
    assert not _file(env, _sealed(facts, second)).exists()

    assert await cli("recording", "hold", "set", "--from", today, "--to", today,
                     "--reason", "regulator inquiry", "--config", str(config)) == 0
    assert "keeps back 1 sealed recordings; 2 it covers were disposed of before it" in \
        capsys.readouterr().out
    assert await cli("recording", "hold", "list", "--config", str(config), "--json") == 0
    holds = json.loads(capsys.readouterr().out)
    assert sorted(h["scope"] for h in holds) == ["dates", "dates", "decision"]
    assert third not in [h["what"] for h in holds]


async def test_a_hold_placed_while_a_run_is_in_progress_waits_for_the_batch_and_is_honoured(
    env: SealerEnv,
) -> None:
    """``hold set`` issued while a batch holds the disposal lock waits for it (its fact comes
    after that batch's facts), and the later batches keep what it covers."""
    ids = await old_recordings(env, [A, B, C])
    number = dict(zip(ids, [A, B, C], strict=True))
    first, second, third = sorted(ids)  # the run's order: by decision id, one per batch
    config = config_file(env)
    started: list[asyncio.Task[int]] = []

    async def watcher() -> asyncpg.Connection:
        return await asyncpg.connect(env.dsn)

    probe = await watcher()

    async def within_lock() -> None:
        if started:
            return
        started.append(asyncio.create_task(cli(
            "recording", "hold", "set", "--number", number[third], "--reason", "in-flight hold",
            "--config", str(config))))
        while not await probe.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        ):
            await asyncio.sleep(0.01)  # the hold command is now waiting on the lock

    async def between() -> None:
        if started and not started[0].done():
            assert await started[0] == 0

    conn = await asyncpg.connect(env.dsn)
    try:
        async with Ledger.open(env.dsn, env.ledger_settings(), instance_id="cli:test") as ledger:
            disposer = Disposer(conn, ledger, sealed_dir=env.paths.sealed,
                                periods=parse_retention(["standard=30d"]), actor="cli:test",
                                keys=env.key_store(), batch=1, within_lock=within_lock,
                                between_batches=between)
            report = await disposer.run()
    finally:
        await conn.close()
        await probe.close()
    facts = await all_facts(env.dsn)
    [hold] = [f for f in facts if f["kind"] == "recording.hold_placed"]
    [first_done] = [f for f in facts if f["kind"] == "recording.disposed"
                    and f["decision_id"] == first]

    assert hold["seq"] > first_done["seq"]
    assert [r.decision_id for r in report.disposed] == [first, second]
    assert third in report.held
    assert _kinds(facts, third) == ["recording.closed", "recording.sealed"]
    assert _file(env, _sealed(facts, third)).exists()
    assert report.keys_destroyed == []


# -- a run killed half-way ---------------------------------------------------------------


async def _killed_dispose(config: Path, env: SealerEnv, step: str) -> None:
    import os
    import sys

    from asterisk_recorder.recordings.disposal import CRASH_ENV

    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "asterisk_recorder", "recording", "dispose", "--config",
        str(config), "--private-keys", str(env.private_dir),
        env={**os.environ, CRASH_ENV: step}, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE)
    _out, err = await process.communicate()
    assert process.returncode == -9, err.decode()


@pytest.mark.parametrize("step", ["disposing", "deleted", "disposed", "key_fact"])
async def test_a_run_killed_at_any_step_is_finished_by_the_next_one(
    env: SealerEnv, step: str,
) -> None:
    """SIGKILL after the disposing facts, after the deletes, after the disposed facts or after
    the key's fact: the next run ends with every recording declared disposed once, the key's
    fact once and the private key gone."""
    ids = await old_recordings(env, [A, B])
    config = config_file(env)
    kek_id = str(_sealed(await all_facts(env.dsn), ids[0])["kek_id"])

    await _killed_dispose(config, env, step)
    assert await cli("recording", "dispose", "--config", str(config),
                     "--private-keys", str(env.private_dir)) == 0
    facts = await all_facts(env.dsn)

    for decision_id in ids:
        assert _kinds(facts, decision_id).count("recording.disposed") == 1
        assert not _file(env, _sealed(facts, decision_id)).exists()
    assert [f["payload"]["kek_id"] for f in facts
            if f["kind"] == "recording.key_destroyed"] == [kek_id]
    assert not private_key_path(env, kek_id).exists()


async def test_a_run_killed_before_its_deletes_never_deletes_a_recording_held_since(
    env: SealerEnv, capsys: pytest.CaptureFixture[str],
) -> None:
    """Killed after ``disposing``: a hold placed before the next run cancels that disposal
    (``recording.disposal_cancelled``), the file stays and the key is kept."""
    held, free = await old_recordings(env, [A, B])
    config = config_file(env)

    await _killed_dispose(config, env, "disposing")
    assert await cli("recording", "hold", "set", "--decision", held, "--reason", "subpoena",
                     "--config", str(config)) == 0
    assert await cli("recording", "dispose", "--config", str(config),
                     "--private-keys", str(env.private_dir)) == 0
    facts = await all_facts(env.dsn)

    kinds = _kinds(facts, held)
    assert kinds[-3:] == ["recording.disposing", "recording.hold_placed",
                          "recording.disposal_cancelled"]
    assert "recording.disposed" not in kinds
    assert _file(env, _sealed(facts, held)).exists()
    assert _kinds(facts, free)[-1] == "recording.disposed"
    assert not [f for f in facts if f["kind"] == "recording.key_destroyed"]
    assert "held back" in capsys.readouterr().out


# -- erasure -------------------------------------------------------------------------------


async def test_erasing_a_number_disposes_of_its_sealed_recordings_unless_held(
    env: SealerEnv, capsys: pytest.CaptureFixture[str],
) -> None:
    """``ledger erase --number`` disposes of the number's sealed recordings (reason erasure,
    before their retention), keeps a held one and says which hold, and erases the personal
    data of all; another number's recording is untouched."""
    kept, gone, other = await old_recordings(env, [A, A, B], age_days=1)
    config = config_file(env)
    assert await cli("recording", "hold", "set", "--decision", kept, "--reason",
                     "complaint 4711", "--config", str(config)) == 0
    capsys.readouterr()

    assert await cli("ledger", "erase", "--number", A, "--yes", "--config", str(config)) == 0
    out = capsys.readouterr().out
    facts = await all_facts(env.dsn)

    assert "sealed recordings disposed of: 1" in out
    assert f"{kept}: hold " in out
    assert "complaint 4711" in out
    [done] = [f for f in facts if f["kind"] == "recording.disposed"]
    assert (done["decision_id"], done["payload"]["reason"]) == (gone, "erasure")
    assert _file(env, _sealed(facts, kept)).exists()
    assert _file(env, _sealed(facts, other)).exists()
    conn = await asyncpg.connect(env.dsn)
    try:
        left = await conn.fetchval(
            "SELECT count(*) FROM decision_personal WHERE decision_id = ANY($1::uuid[])",
            [kept, gone])
    finally:
        await conn.close()
    assert left == 0


async def test_dispose_without_private_keys_or_a_ledger_is_refused(
    env: SealerEnv, capsys: pytest.CaptureFixture[str],
) -> None:
    """A real run needs the private key directory (it destroys emptied keys); nothing is
    deleted when it is missing."""
    [one] = await old_recordings(env, [A])
    config = config_file(env)

    assert await cli("recording", "dispose", "--config", str(config)) == 1
    assert "--private-keys" in capsys.readouterr().err
    assert _file(env, _sealed(await all_facts(env.dsn), one)).exists()
