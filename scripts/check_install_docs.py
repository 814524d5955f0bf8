"""Follow docs/install-vanilla.md's database steps verbatim against a real PostgreSQL.

This script owns one check CI runs (through tests/deploy/test_install_docs.py and
scripts/check-install-docs.sh): the statements of every ``sudo -u postgres psql -c "..."`` line
in the page's "2. The database" section are parsed out of the page (so the check cannot drift
from the docs) and run, in order, as the superuser of a fresh embedded PostgreSQL. The owner's
DSN is taken from the page's ``secrets.env`` (``ASTERISK_RECORDER_DATABASE_DSN=...``), pointed at
that server, and then, as that non-superuser owner: ``asterisk-recorder db migrate``, one decision
appended through the real ``Ledger``, ``asterisk-recorder ledger verify`` and ``ledger show``.
It also checks that the owner has neither SUPERUSER nor CREATEROLE, that the application role
may not UPDATE, and that the append-only triggers stop the owner too.

The embedded server listens on a unix socket with trust authentication, so the password in the
docs' DSN is carried but not checked. It must not change the docs' statements in any way.

Usage: python scripts/check_install_docs.py [--docs docs/install-vanilla.md]
Exit 0 when every step worked, 1 with the failing step on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

import asyncpg

from asterisk_recorder.embedded_pg import EmbeddedPostgres
from asterisk_recorder.flow.decision import ConsentDecision, KeyPress, Outcome, PartyRecord
from asterisk_recorder.ledger import Ledger
from asterisk_recorder.policy.modes import Mode
from asterisk_recorder.settings import LedgerSettings, Secret

__all__ = ["DocsDatabaseSteps", "main", "parse_database_steps"]

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "install-vanilla.md"
_SECTION_RE = re.compile(r"^## 2\. The database$(.*?)^## ", re.MULTILINE | re.DOTALL)
_PSQL_RE = re.compile(r'^sudo -u postgres psql -c "(?P<sql>[^"]+)"\s*$', re.MULTILINE)
_DSN_RE = re.compile(r"^ASTERISK_RECORDER_DATABASE_DSN=(?P<dsn>\S+)$", re.MULTILINE)
_DIGEST_KEY = "check-install-docs-digest-key-0123456789"


class CheckFailed(Exception):
    """One step of the documented install did not work."""


@dataclass(frozen=True, slots=True)
class DocsDatabaseSteps:
    """What the page tells the operator to run: superuser statements and the owner's DSN."""

    statements: tuple[str, ...]
    owner_dsn: str

    @property
    def owner(self) -> str:
        """The role the DSN logs in as (the database owner)."""
        return urlsplit(self.owner_dsn).username or ""

    @property
    def database(self) -> str:
        """The database the DSN names."""
        return urlsplit(self.owner_dsn).path.lstrip("/")


def parse_database_steps(text: str) -> DocsDatabaseSteps:
    """The ``psql -c`` statements of section 2 and the DSN of ``secrets.env``, as written.

    Raises:
        CheckFailed: the page no longer has them in the expected form.
    """
    section = _SECTION_RE.search(text)
    if section is None:
        raise CheckFailed("docs/install-vanilla.md has no '## 2. The database' section")
    statements = tuple(m.group("sql") for m in _PSQL_RE.finditer(section.group(1)))
    if not statements:
        raise CheckFailed("section 2 has no 'sudo -u postgres psql -c \"...\"' line")
    dsn = _DSN_RE.search(text)
    if dsn is None:
        raise CheckFailed("the page has no ASTERISK_RECORDER_DATABASE_DSN=... line")
    return DocsDatabaseSteps(statements, dsn.group("dsn"))


def _on_server(owner_dsn: str, server_dsn: str) -> str:
    """``owner_dsn`` (user, password, database as documented) pointed at ``server_dsn``'s host."""
    owner = urlsplit(owner_dsn)
    server = urlsplit(server_dsn)
    auth = quote(owner.username or "", safe="")
    if owner.password:
        auth += ":" + quote(owner.password, safe="")
    host = f"?{server.query}" if server.query else ""
    netloc = server.hostname or ""
    if server.port:
        netloc += f":{server.port}"
    return f"postgresql://{auth}@{netloc}{owner.path}{host}"


def _with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return parts._replace(path="/" + database).geturl()


def _cli(env: dict[str, str], *args: str) -> str:
    """Run ``asterisk-recorder ARGS`` (this interpreter's copy); return stdout or fail."""
    proc = subprocess.run(
        [sys.executable, "-m", "asterisk_recorder", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        raise CheckFailed(
            f"asterisk-recorder {' '.join(args)} exited {proc.returncode}:\n"
            f"{proc.stdout}{proc.stderr}"
        )
    return proc.stdout


def _decision() -> ConsentDecision:
    decision_id = str(uuid.uuid4())
    return ConsentDecision(
        decision_id=decision_id,
        driver="ari",
        channel_id="1763900000.1",
        channel_name="PJSIP/trunk-00000001",
        uniqueid="1763900000.1",
        linkedid="1763900000.1",
        asterisk_id="08:00:27:aa:bb:cc",
        instance_id="check-install-docs",
        caller_number="+12125550100",
        caller_name="Install Check",
        called_number="+12125550199",
        parties=(
            PartyRecord("caller", "+12125550100", "US-NY", "US-NY", Mode.OPT_OUT),
            PartyRecord("called", "+12125550199", "US-NY", "US-NY", Mode.OPT_OUT),
            PartyRecord("site", "", "US-NY", "US-NY", Mode.OPT_OUT),
        ),
        mode=Mode.OPT_OUT,
        policy_rows=("US-NY",),
        policy_version="check",
        prompt_id="recorder/consent-opt-out",
        language="en",
        keys=(KeyPress("1", 1763900003.0),),
        outcome=Outcome.NOT_RECORDED_OPTED_OUT,
        reason="opt-out key pressed",
        offered_at=1763900000.0,
        answered_at=1763900000.5,
        disclosure_started_at=1763900000.6,
        disclosure_finished_at=None,
        decided_at=1763900003.0,
        recording_path=None,
    )


async def _superuser(server_dsn: str, steps: DocsDatabaseSteps) -> None:
    """``sudo -u postgres psql -c SQL``: each statement in its own session on ``postgres``."""
    for sql in steps.statements:
        conn = await asyncpg.connect(_with_database(server_dsn, "postgres"))
        try:
            await conn.execute(sql)
        except asyncpg.PostgresError as exc:
            raise CheckFailed(f"the documented statement {sql!r} failed: {exc}") from exc
        finally:
            await conn.close()
        print(f"ok  superuser: {sql}")


async def _owner_checks(owner_dsn: str, steps: DocsDatabaseSteps) -> None:
    conn = await asyncpg.connect(owner_dsn)
    try:
        row = await conn.fetchrow(
            "SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = $1",
            steps.owner,
        )
        if row is None or row["rolsuper"] or row["rolcreaterole"] or row["rolcreatedb"]:
            raise CheckFailed(f"{steps.owner} must be a plain LOGIN role, it is {dict(row or {})}")
        print(f"ok  {steps.owner} is not SUPERUSER, CREATEROLE or CREATEDB")
        try:
            await conn.execute("UPDATE decisions SET reason = 'edited'")
        except asyncpg.PostgresError as exc:
            if "append-only" not in str(exc):
                raise CheckFailed(f"UPDATE by the owner failed, not by the trigger: {exc}") from exc
        else:
            raise CheckFailed("the owner could UPDATE decisions: the append-only trigger is gone")
        print("ok  the append-only trigger refuses UPDATE by the owner")
        await conn.execute("SET ROLE asterisk_recorder_app")
        try:
            await conn.execute("DELETE FROM decisions")
        except asyncpg.exceptions.InsufficientPrivilegeError as exc:
            if "permission denied" not in str(exc):
                raise CheckFailed(f"DELETE as the app role failed oddly: {exc}") from exc
        else:
            raise CheckFailed("asterisk_recorder_app could DELETE decisions")
        print("ok  asterisk_recorder_app has no DELETE right")
    finally:
        await conn.close()


async def _append(owner_dsn: str, spool: Path) -> str:
    settings = LedgerSettings(spool_dir=str(spool), digest_key=Secret(_DIGEST_KEY))
    decision = _decision()
    async with Ledger.open(owner_dsn, settings, instance_id="check-install-docs") as ledger:
        receipt = await ledger.store(decision)
    if receipt.spooled:
        raise CheckFailed("the decision was spooled, not committed, as the owner")
    print(f"ok  appended decision {decision.decision_id} as {urlsplit(owner_dsn).username}")
    return decision.decision_id


def check(docs: Path) -> None:
    """Run every step; raise ``CheckFailed`` at the first that does not work."""
    steps = parse_database_steps(docs.read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory(prefix="check-install-docs-") as tmp:
        server = EmbeddedPostgres(Path(tmp) / "pgdata", delete_on_stop=True)
        server_dsn = server.start()
        try:
            asyncio.run(_superuser(server_dsn, steps))
            owner_dsn = _on_server(steps.owner_dsn, server_dsn)
            env = {k: v for k, v in os.environ.items() if not k.startswith("ASTERISK_RECORDER_")}
            env.update(
                ASTERISK_RECORDER_DATABASE_DSN=owner_dsn,
                ASTERISK_RECORDER_LEDGER_DIGEST_KEY=_DIGEST_KEY,
                ASTERISK_RECORDER_LEDGER_SPOOL_DIR=str(Path(tmp) / "spool"),
            )
            out = _cli(env, "db", "migrate")
            print(f"ok  asterisk-recorder db migrate as {steps.owner}: {out.strip()!r}")
            decision_id = asyncio.run(_append(owner_dsn, Path(tmp) / "spool"))
            out = _cli(env, "ledger", "verify")
            if "chain OK: 1 rows verified" not in out:
                raise CheckFailed(f"ledger verify did not verify the one row: {out}")
            print(f"ok  asterisk-recorder ledger verify: {out.strip()!r}")
            out = _cli(env, "ledger", "show", "--call", decision_id)
            if decision_id not in out:
                raise CheckFailed(f"ledger show --call {decision_id} did not show it: {out}")
            print(f"ok  asterisk-recorder ledger show --call {decision_id}")
            asyncio.run(_owner_checks(owner_dsn, steps))
        finally:
            server.stop()


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=Path, default=DOCS, help="the install page to follow")
    args = parser.parse_args(argv)
    try:
        check(args.docs)
    except CheckFailed as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    print(f"the database steps of {args.docs.name} work verbatim")
    return 0


if __name__ == "__main__":
    sys.exit(main())
