"""Facts about decisions in the one hash chain: stored, refused, verified, tampered with, shown."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import hashlib
import io
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from ledger_helpers import FIXED_KEY, pending_spool_ids

from asterisk_recorder.cli import main
from asterisk_recorder.errors import LedgerError
from asterisk_recorder.flow.decision import ConsentDecision, Outcome
from asterisk_recorder.flow.facts import (
    CALL_FATE,
    CALL_HAND_BACK_FAILED,
    CALL_HANDED_BACK,
    LedgerFact,
)
from asterisk_recorder.ledger import Ledger, MemorySink
from asterisk_recorder.ledger.admin import export_number, show_call
from asterisk_recorder.ledger.database import connect_app
from asterisk_recorder.ledger.keys import DigestKey
from asterisk_recorder.ledger.records import build_fact_record, chain_hash
from asterisk_recorder.ledger.spool import Spool
from asterisk_recorder.ledger.text import restore
from asterisk_recorder.ledger.verify import VerifyReport, verify_chain
from asterisk_recorder.settings import LedgerSettings

Factory = Callable[..., ConsentDecision]
AT = 1763900004.0


def handed_back(decision_id: str, told: str = "record", **changes: Any) -> LedgerFact:
    """A ``call.handed_back`` fact for ``decision_id``."""
    fields: dict[str, Any] = {
        "kind": CALL_HANDED_BACK,
        "decision_id": decision_id,
        "at": AT,
        "actor": "ctl-1",
        "payload": {"told": told, "attempts": 1},
    }
    fields.update(changes)
    return LedgerFact(**fields)


def hand_back_failed(decision_id: str, reason: str = "ARI 503 after 5 attempts") -> LedgerFact:
    """A ``call.hand_back_failed`` fact for ``decision_id``."""
    return LedgerFact(
        CALL_HAND_BACK_FAILED, decision_id, AT + 1, "ctl-1", {"reason": reason, "attempts": 5}
    )


def fate(decision_id: str, value: str, reason: str = "final") -> LedgerFact:
    """A ``call.fate`` fact for ``decision_id``."""
    return LedgerFact(CALL_FATE, decision_id, AT + 2, "ctl-1", {"fate": value, "reason": reason})


async def _verify(dsn: str, key: DigestKey) -> VerifyReport:
    conn = await connect_app(dsn)
    try:
        return await verify_chain(conn, key)
    finally:
        await conn.close()


async def _chain(conn: asyncpg.Connection) -> list[tuple[int, str, str]]:
    """(seq, table, id) of every chained row, in chain order."""
    rows = await conn.fetch(
        "SELECT seq, 'decision' AS t, decision_id AS id FROM decisions "
        "UNION ALL SELECT seq, 'fact', fact_id FROM ledger_facts ORDER BY seq"
    )
    return [(int(r["seq"]), str(r["t"]), str(r["id"])) for r in rows]


async def test_facts_are_chained_after_their_decision_and_verify(
    ledger_dsn: str,
    ledger_settings: LedgerSettings,
    decision_factory: Factory,
    digest_key: DigestKey,
    owner: asyncpg.Connection,
) -> None:
    """Decision, then its facts, take consecutive chain positions; ``verify`` walks them all."""
    decision = decision_factory()
    async with Ledger.open(ledger_dsn, ledger_settings) as ledger:
        await ledger.store(decision)
        first = await ledger.record_fact(handed_back(decision.decision_id))
        second = await ledger.record_fact(fate(decision.decision_id, "recorded"))
    report = await _verify(ledger_dsn, digest_key)
    chain = await _chain(owner)

    assert (decision.decision_id, False) == (first.decision_id, first.spooled)
    assert first.fact_id is not None
    assert second.fact_id is not None
    assert [
        (1, "decision", decision.decision_id),
        (2, "fact", first.fact_id),
        (3, "fact", second.fact_id),
    ] == chain
    assert (True, 3) == (report.ok, report.rows)


async def test_same_fact_id_handed_in_twice_is_stored_once(
    ledger_dsn: str,
    ledger_settings: LedgerSettings,
    decision_factory: Factory,
    owner: asyncpg.Connection,
) -> None:
    """A stable ``fact_id`` makes a retried fact idempotent, like a decision id."""
    decision = decision_factory()
    fact = handed_back(decision.decision_id, fact_id=str(uuid.uuid4()))
    async with Ledger.open(ledger_dsn, ledger_settings) as ledger:
        await ledger.store(decision)
        receipts = [await ledger.record_fact(fact), await ledger.record_fact(fact)]
    count = await owner.fetchval("SELECT count(*) FROM ledger_facts")

    assert [fact.fact_id, fact.fact_id] == [r.fact_id for r in receipts]
    assert 1 == count


async def test_unknown_kind_is_refused_before_anything_is_written(
    ledger_dsn: str,
    ledger_settings: LedgerSettings,
    decision_factory: Factory,
    owner: asyncpg.Connection,
) -> None:
    """A fact of an unknown kind raises a clear LedgerError and leaves the chain alone."""
    decision = decision_factory()
    good = handed_back(decision.decision_id)
    forged = object.__new__(LedgerFact)  # bypasses __post_init__, as a buggy driver might
    for name, value in (
        ("kind", "call.teleported"),
        ("decision_id", decision.decision_id),
        ("at", AT),
        ("actor", "ctl-1"),
        ("payload", {}),
        ("fact_id", None),
    ):
        object.__setattr__(forged, name, value)
    async with Ledger.open(ledger_dsn, ledger_settings) as ledger:
        await ledger.store(decision)
        with pytest.raises(LedgerError, match=r"unknown fact kind 'call\.teleported'; known"):
            await ledger.record_fact(forged)
        await ledger.record_fact(good)
    head = await owner.fetchval("SELECT seq FROM ledger_head")

    assert 2 == head


async def test_fact_for_an_unknown_decision_is_refused_and_quarantined(
    ledger_dsn: str,
    ledger_settings: LedgerSettings,
    decision_factory: Factory,
    digest_key: DigestKey,
    owner: asyncpg.Connection,
) -> None:
    """A fact naming a decision the ledger does not hold is refused (kept in quarantine);
    the entries committed with it in the same batch are stored."""
    decision = decision_factory()
    stranger = str(uuid.uuid4())
    async with Ledger.open(ledger_dsn, ledger_settings) as ledger:
        results = await asyncio.gather(
            ledger.store(decision),
            ledger.record_fact(handed_back(stranger)),
            ledger.record_fact(handed_back(decision.decision_id)),
            return_exceptions=True,
        )
        quarantine = ledger.spool.quarantine_path
    report = await _verify(ledger_dsn, digest_key)
    linked = await owner.fetch("SELECT decision_id FROM ledger_facts")
    kept = [json.loads(line) for line in quarantine.read_text().splitlines()]

    refused = results[1]
    assert isinstance(refused, LedgerError)
    assert f"names decision {stranger}, which the ledger does not hold" in str(refused)
    assert [decision.decision_id] == [str(r["decision_id"]) for r in linked]
    assert [stranger] == [json.loads(k["raw"])["f"]["decision_id"] for k in kept]
    assert (True, 2) == (report.ok, report.rows)


HOSTILE = "ARI said: \x00\udcff'; DROP TABLE ledger_facts;-- ${SHELL} \x1b[31m\n" + "x" * 5000


async def test_hostile_payload_text_is_stored_safely_noted_and_restorable(
    ledger_dsn: str,
    ledger_settings: LedgerSettings,
    decision_factory: Factory,
    digest_key: DigestKey,
    owner: asyncpg.Connection,
) -> None:
    """NUL, lone surrogates, SQL, ${...}, escapes and long text are stored as data: escaped,
    truncated to 1,024 characters with a note, and the chain verifies."""
    decision = decision_factory()
    async with Ledger.open(ledger_dsn, ledger_settings) as ledger:
        await ledger.store(decision)
        await ledger.record_fact(hand_back_failed(decision.decision_id, HOSTILE))
    row = await owner.fetchrow("SELECT payload, text_notes FROM ledger_facts")
    tables = await owner.fetchval("SELECT to_regclass('ledger_facts') IS NOT NULL")
    report = await _verify(ledger_dsn, digest_key)
    payload = json.loads(row["payload"])
    note = json.loads(row["text_notes"])["payload.reason"]

    assert "\\x00" in payload["reason"]
    assert "\\udcff" in payload["reason"]
    assert 1024 == len(payload["reason"])
    assert {"escaped": True, "truncated": True, "original_chars": len(HOSTILE)}.items() <= (
        note.items()
    )
    assert HOSTILE[:40] == restore(payload["reason"], note)[:40]
    assert row["payload"].isascii()
    assert (True, True, 2) == (tables, report.ok, report.rows)


async def test_facts_are_spooled_behind_their_decision_and_replay_once(
    ledger_dsn: str,
    ledger_settings: LedgerSettings,
    decision_factory: Factory,
    digest_key: DigestKey,
    owner: asyncpg.Connection,
) -> None:
    """With PostgreSQL unreachable, decision and facts go to the spool in order, then replay
    into the chain in that order, once."""
    decision = decision_factory()
    facts = [handed_back(decision.decision_id), fate(decision.decision_id, "recorded")]
    down = "postgresql://nobody@127.0.0.1:1/none"
    async with Ledger.open(down, ledger_settings, connect_timeout=0.2) as ledger:
        receipts = [await ledger.store(decision)]
        receipts += [await ledger.record_fact(f) for f in facts]
    waiting = await asyncio.to_thread(pending_spool_ids, Path(ledger_settings.spool_dir))
    async with Ledger.open(ledger_dsn, ledger_settings, retry_interval=0.05) as ledger:
        for _ in range(400):
            if ledger.healthy:
                break
            await asyncio.sleep(0.025)
    async with Ledger.open(ledger_dsn, ledger_settings) as ledger:  # a second replay: no-op
        await asyncio.sleep(0.1)
    chain = await _chain(owner)
    report = await _verify(ledger_dsn, digest_key)

    assert [True, True, True] == [r.spooled for r in receipts]
    ids = [decision.decision_id, *(r.fact_id for r in receipts[1:])]
    assert ids == waiting
    assert ids == [entry for _, _, entry in chain]
    assert (True, 3) == (report.ok, report.rows)


def test_spool_keeps_facts_with_hostile_text_and_quarantines_an_unknown_kind(
    tmp_path: Path, decision_factory: Factory
) -> None:
    """A fact survives the spool byte-exactly; a spooled fact of a kind this release does not
    know is quarantined with the reason, not dropped."""
    decision = decision_factory()
    fact = hand_back_failed(decision.decision_id, "caller \udcff \x00 said ${X}")
    fact = LedgerFact(
        fact.kind, fact.decision_id, fact.at, fact.actor, fact.payload, str(uuid.uuid4())
    )
    spool = Spool(tmp_path / "spool")
    spool.append([decision, fact])
    gone = json.loads(spool.path.read_text().splitlines()[1])["f"] | {"kind": "call.gone"}
    text = json.dumps(gone, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    digest = hashlib.sha256(text.encode()).hexdigest()
    with spool.path.open("a") as handle:  # a well-formed line from a newer release
        handle.write(f'{{"v":1,"spooled_at":1.0,"sha256":"{digest}","f":{text}}}\n')
    batch = spool.read(spool.take()[0])

    assert [decision] == batch.decisions
    assert [fact] == batch.facts
    assert 1 == batch.quarantined
    assert "unknown fact kind 'call.gone'" in spool.quarantine_path.read_text()


async def _tamper(conn: asyncpg.Connection, sql: str, *args: object) -> None:
    async with conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")
        await conn.execute(sql, *args)


@pytest.fixture
async def with_facts(
    ledger_dsn: str, ledger_settings: LedgerSettings, decision_factory: Factory
) -> list[str]:
    """Chain: decision, fact, decision, fact, fact; returns the ids by position."""
    ids: list[str] = []
    async with Ledger.open(ledger_dsn, ledger_settings) as ledger:
        for _ in range(2):
            decision = decision_factory()
            await ledger.store(decision)
            ids.append(decision.decision_id)
            receipt = await ledger.record_fact(handed_back(decision.decision_id))
            ids.append(str(receipt.fact_id))
        receipt = await ledger.record_fact(fate(decision.decision_id, "recorded"))
        ids.append(str(receipt.fact_id))
    return ids


async def test_superuser_edit_of_a_fact_payload_breaks_the_chain_there(
    ledger_dsn: str, with_facts: list[str], digest_key: DigestKey, owner: asyncpg.Connection
) -> None:
    """Changing what dialplan was told from skip to record is found at that fact."""
    await _tamper(owner, "UPDATE ledger_facts SET payload = '{\"told\":\"skip\"}' WHERE seq = 4")
    report = await _verify(ledger_dsn, digest_key)

    assert (False, 4, with_facts[3]) == (report.ok, report.position, report.entry_id)
    assert "fact row does not match its hash (edited)" in str(report.reason)


async def test_superuser_delete_of_a_fact_breaks_the_chain_there(
    ledger_dsn: str, with_facts: list[str], digest_key: DigestKey, owner: asyncpg.Connection
) -> None:
    """Deleting the hand-back-failed evidence leaves a gap that verify names."""
    await _tamper(owner, "DELETE FROM ledger_facts WHERE seq = 2")
    report = await _verify(ledger_dsn, digest_key)

    assert (False, 2) == (report.ok, report.position)
    assert "row 2 is missing (deleted)" in str(report.reason)


async def test_superuser_insert_of_a_forged_fact_breaks_the_chain(
    ledger_dsn: str, with_facts: list[str], digest_key: DigestKey, owner: asyncpg.Connection
) -> None:
    """A fact appended by hand, with a correct hash, still breaks the chain at the head; one
    squeezed into a taken position is reported as inserted."""
    forged = build_fact_record(
        LedgerFact(
            CALL_FATE,
            with_facts[0],
            AT,
            "intruder",
            {"fate": "recorded", "reason": "trust me"},
            str(uuid.uuid4()),
        )
    )
    prev = bytes(await owner.fetchval("SELECT hash FROM ledger_facts WHERE seq = 5"))
    columns = "seq, fact_id, kind, decision_id, at, actor, payload, text_notes, prev_hash, hash"
    sql = f"INSERT INTO ledger_facts ({columns}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)"  # noqa: S608  # noqa: S608
    await _tamper(owner, sql, 6, *forged.values, prev, chain_hash(prev, 6, forged.body))
    at_end = await _verify(ledger_dsn, digest_key)
    second = build_fact_record(
        LedgerFact(
            CALL_FATE, with_facts[0], AT, "x", {"fate": "hung_up", "reason": "r"}, str(uuid.uuid4())
        )
    )
    await _tamper(owner, "DELETE FROM ledger_facts WHERE seq = 6")
    await _tamper(owner, sql, 3, *second.values, prev, chain_hash(prev, 3, second.body))
    squeezed = await _verify(ledger_dsn, digest_key)

    assert (False, 5) == (at_end.ok, at_end.position)
    assert "the head records 5 rows but the chain ends at 6" in str(at_end.reason)
    assert (False, 3) == (squeezed.ok, squeezed.position)
    assert "inserted" in str(squeezed.reason)


async def test_app_role_cannot_update_or_delete_facts(
    ledger_dsn: str, with_facts: list[str]
) -> None:
    """ledger_facts is append-only for the application role and refused by trigger for all."""
    conn = await connect_app(ledger_dsn)
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("UPDATE ledger_facts SET actor = 'me'")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("DELETE FROM ledger_facts")
    finally:
        await conn.close()
    owner = await asyncpg.connect(ledger_dsn)
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await owner.execute("DELETE FROM ledger_facts")
    finally:
        await owner.close()


async def test_show_and_export_list_facts_with_the_effective_outcome(
    ledger_dsn: str,
    ledger_settings: LedgerSettings,
    decision_factory: Factory,
    digest_key: DigestKey,
) -> None:
    """A recorded_notified decision whose hand-back failed reads "not recorded" and is flagged;
    one whose hand-back told record reads "recorded"."""
    failed = decision_factory(outcome=Outcome.RECORDED_NOTIFIED, uniqueid="1763900000.50")
    fine = decision_factory(outcome=Outcome.RECORDED_NOTIFIED, uniqueid="1763900000.51")
    async with Ledger.open(ledger_dsn, ledger_settings) as ledger:
        await ledger.store(failed)
        await ledger.store(fine)
        await ledger.record_fact(hand_back_failed(failed.decision_id))
        await ledger.record_fact(handed_back(fine.decision_id))
    conn = await connect_app(ledger_dsn)
    try:
        shown = await show_call(conn, "1763900000.50")
        exported = await export_number(conn, digest_key, "+12125550100")
    finally:
        await conn.close()

    assert [CALL_HAND_BACK_FAILED] == [f["kind"] for f in shown[0]["facts"]]
    assert "claimed recorded, hand-back failed: not recorded" in shown[0]["effective"]["summary"]
    assert (True, "not_recorded") == (
        shown[0]["effective"]["mismatch"],
        shown[0]["effective"]["status"],
    )
    assert ["not_recorded", "recorded"] == [v["effective"]["status"] for v in exported]
    assert [[CALL_HAND_BACK_FAILED], [CALL_HANDED_BACK]] == [
        [f["kind"] for f in v["facts"]] for v in exported
    ]


async def test_memory_sink_refuses_a_fact_for_a_decision_it_does_not_hold(
    decision_factory: Factory,
) -> None:
    """The in-memory sink behaves like the ledger: unknown decision refused, retries kept once."""
    sink = MemorySink()
    decision = decision_factory()
    with pytest.raises(LedgerError, match="not stored"):
        await sink.record_fact(handed_back(decision.decision_id))
    await sink.store(decision)
    fact = handed_back(decision.decision_id, fact_id=str(uuid.uuid4()))
    await sink.record_fact(fact)
    receipt = await sink.record_fact(fact)

    assert [fact] == sink.facts
    assert (decision.decision_id, fact.fact_id) == (receipt.decision_id, receipt.fact_id)


def _config(workdir: Path, dsn: str) -> str:
    path = workdir / "recorder.toml"
    (workdir / "recordings").mkdir(exist_ok=True)
    path.write_text(
        "[ari]\nenabled = false\n"
        f'[database]\ndsn = "{dsn}"\n'
        f'[ledger]\nspool_dir = "{workdir / "cli-spool"}"\ndigest_key = "{FIXED_KEY}"\n'
        f'[recording]\ndirectory = "{workdir / "recordings"}"\n'
    )
    return str(path)


def _store(dsn: str, settings: LedgerSettings, entries: list[ConsentDecision | LedgerFact]) -> None:
    async def run() -> None:
        async with Ledger.open(dsn, settings) as ledger:
            for entry in entries:
                if isinstance(entry, LedgerFact):
                    await ledger.record_fact(entry)
                else:
                    await ledger.store(entry)

    with contextlib.redirect_stdout(io.StringIO()):  # the ledger's own log lines
        asyncio.run(run())


def test_cli_show_lists_facts_under_the_decision_and_flags_a_failed_hand_back(
    ledger_dsn: str,
    ledger_settings: LedgerSettings,
    decision_factory: Factory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``ledger show --call`` prints each fact on its own line (hostile text escaped) and an
    effective line that says the claimed recording did not happen."""
    decision = decision_factory(uniqueid="1763900000.60", outcome=Outcome.RECORDED_NOTIFIED)
    failed = hand_back_failed(decision.decision_id, "timeout \x1b[2J after 5 tries")
    unrecorded = fate(decision.decision_id, "proceeded_unrecorded", "variables not set")
    _store(ledger_dsn, ledger_settings, [decision, failed, unrecorded])
    config = _config(tmp_path, ledger_dsn)

    assert 0 == main(["ledger", "show", "--config", config, "--call", "1763900000.60"])
    out = capsys.readouterr().out
    lines = out.splitlines()
    facts_at = next(i for i, line in enumerate(lines) if line.startswith("facts "))
    assert "2" == lines[facts_at].split()[-1]
    assert "call.hand_back_failed" in lines[facts_at + 1]
    assert "call.fate" in lines[facts_at + 2]
    assert lines[facts_at + 3].startswith("effective")
    assert "claimed recorded, proceeded unrecorded: not recorded" in lines[facts_at + 3]
    assert "!! the facts contradict the decision" in lines[facts_at + 3]
    assert "\x1b" not in out


def test_cli_export_includes_each_decisions_facts(
    ledger_dsn: str,
    ledger_settings: LedgerSettings,
    decision_factory: Factory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``ledger export --number`` (JSON and CSV) carries the facts and the effective outcome."""
    decision = decision_factory(outcome=Outcome.RECORDED_CONSENTED)
    _store(ledger_dsn, ledger_settings, [decision, handed_back(decision.decision_id)])
    config = _config(tmp_path, ledger_dsn)

    assert 0 == main(["ledger", "export", "--config", config, "--number", "+12125550100"])
    exported = json.loads(capsys.readouterr().out)["decisions"][0]
    assert 0 == main(
        ["ledger", "export", "--config", config, "--number", "+12125550100", "--format", "csv"]
    )
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))

    assert [CALL_HANDED_BACK] == [f["kind"] for f in exported["facts"]]
    assert {"told": "record", "attempts": 1} == exported["facts"][0]["payload"]
    assert "recorded" == exported["effective"]["status"]
    assert "recorded (dialplan told record)" == rows[0]["effective"]
    assert CALL_HANDED_BACK == json.loads(rows[0]["facts"])[0]["kind"]
