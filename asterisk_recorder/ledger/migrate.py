"""The schema migration runner: plain SQL files applied once, in order, under an advisory lock.

This module owns applying ``asterisk_recorder/ledger/migrations/NNNN_name.sql`` and the
``ledger_schema_migrations`` table that records each applied version with the SHA-256 of its file.
Everything runs in ONE transaction holding ``pg_advisory_xact_lock``, so two instances starting at
once apply each file exactly once. It must not know what the files contain.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from asterisk_recorder.errors import DatabaseUnavailable, MigrationError

__all__ = ["MIGRATIONS_DIR", "Migration", "applied_versions", "load_migrations", "migrate"]

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
"""Where the shipped migration files live."""

_NAME_RE = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_LOCK_SQL = "SELECT pg_advisory_xact_lock(hashtext('asterisk_recorder.schema_migrations'))"
_TABLE_SQL = """
CREATE TABLE IF NOT EXISTS ledger_schema_migrations (
    version text PRIMARY KEY,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True, slots=True)
class Migration:
    """One migration file: ``version`` is its name without ``.sql``, e.g. ``0001_ledger``."""

    version: str
    sql: str
    checksum: str


def load_migrations(directory: Path | None = None) -> list[Migration]:
    """Read the migration files of ``directory`` (default: the shipped ones), sorted by number.

    Raises:
        MigrationError: a file is not named ``NNNN_name.sql`` or two share a number.
    """
    directory = MIGRATIONS_DIR if directory is None else directory
    migrations: list[Migration] = []
    numbers: set[str] = set()
    for path in sorted(directory.glob("*.sql")):
        match = _NAME_RE.match(path.name)
        if match is None:
            raise MigrationError(f"migration file {path.name!r} is not named NNNN_name.sql")
        if match.group(1) in numbers:
            raise MigrationError(f"two migration files share the number {match.group(1)}")
        numbers.add(match.group(1))
        data = path.read_bytes()
        migrations.append(
            Migration(path.stem, data.decode("utf-8"), hashlib.sha256(data).hexdigest())
        )
    return migrations


async def migrate(
    dsn: str, *, directory: Path | None = None, connect_timeout: float = 30.0
) -> list[str]:
    """Apply every migration not yet applied; return the versions applied now (maybe none).

    Raises:
        DatabaseUnavailable: PostgreSQL could not be reached.
        MigrationError: a migration failed (nothing is applied then), an applied file was edited,
            or the database holds a version this release does not know.
    """
    migrations = load_migrations(directory)
    try:
        conn = await asyncpg.connect(dsn, timeout=connect_timeout)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise DatabaseUnavailable(f"cannot reach PostgreSQL to migrate: {exc}") from exc
    try:
        async with conn.transaction():
            await conn.execute(_LOCK_SQL)
            await conn.execute(_TABLE_SQL)
            rows = await conn.fetch("SELECT version, checksum FROM ledger_schema_migrations")
            applied = {str(r["version"]): str(r["checksum"]) for r in rows}
            known = {m.version for m in migrations}
            unknown = sorted(set(applied) - known)
            if unknown:
                raise MigrationError(
                    f"the database has migrations this release does not know: {unknown} "
                    "(was it migrated by a newer asterisk-recorder?)"
                )
            done: list[str] = []
            for migration in migrations:
                checksum = applied.get(migration.version)
                if checksum is not None:
                    if checksum != migration.checksum:
                        raise MigrationError(
                            f"migration {migration.version} was edited after it was applied "
                            f"(recorded sha256 {checksum}, file sha256 {migration.checksum}); "
                            "add a new migration file instead"
                        )
                    continue
                try:
                    await conn.execute(migration.sql)
                except asyncpg.PostgresError as exc:
                    raise MigrationError(f"migration {migration.version} failed: {exc}") from exc
                await conn.execute(
                    "INSERT INTO ledger_schema_migrations (version, checksum) VALUES ($1, $2)",
                    migration.version,
                    migration.checksum,
                )
                done.append(migration.version)
            return done
    except asyncpg.PostgresError as exc:
        raise MigrationError(f"migrating failed: {exc}") from exc
    except (OSError, asyncpg.InterfaceError) as exc:
        raise DatabaseUnavailable(f"lost PostgreSQL while migrating: {exc}") from exc
    finally:
        await conn.close()


async def applied_versions(conn: asyncpg.Connection) -> list[str]:
    """The versions recorded in ``ledger_schema_migrations`` (empty when it does not exist)."""
    exists = await conn.fetchval("SELECT to_regclass('ledger_schema_migrations') IS NOT NULL")
    if not exists:
        return []
    rows = await conn.fetch("SELECT version FROM ledger_schema_migrations ORDER BY version")
    return [str(r["version"]) for r in rows]
