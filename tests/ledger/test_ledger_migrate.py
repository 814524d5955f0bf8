"""The migration runner: applies once, in one transaction, under an advisory lock."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from asterisk_recorder.errors import MigrationError
from asterisk_recorder.ledger import migrate
from asterisk_recorder.ledger.migrate import MIGRATIONS_DIR, load_migrations


async def test_first_migrate_applies_all_and_second_applies_none(pg_dsn: str) -> None:
    """The first run applies every shipped version, a second run none."""
    expected = [m.version for m in load_migrations()]

    assert expected == await migrate(pg_dsn)
    assert [] == await migrate(pg_dsn)


async def test_two_runners_at_once_apply_each_migration_once(pg_dsn: str) -> None:
    """Two instances migrating concurrently: one applies, the other finds nothing to do."""
    first, second = await asyncio.gather(migrate(pg_dsn), migrate(pg_dsn))

    assert sorted([[], [m.version for m in load_migrations()]]) == sorted([first, second])
    conn = await asyncpg.connect(pg_dsn)
    try:
        count = await conn.fetchval("SELECT count(*) FROM ledger_schema_migrations")
    finally:
        await conn.close()
    assert len(load_migrations()) == count


async def test_edited_applied_migration_is_refused(pg_dsn: str, tmp_path: Path) -> None:
    """Changing a file after it was applied raises MigrationError naming it."""
    directory = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, directory)
    await migrate(pg_dsn, directory=directory)
    first = sorted(directory.glob("*.sql"))[0]
    first.write_text(first.read_text() + "\n-- edited\n")

    with pytest.raises(MigrationError, match=first.stem):
        await migrate(pg_dsn, directory=directory)


async def test_failing_migration_applies_nothing(pg_dsn: str, tmp_path: Path) -> None:
    """A broken file rolls back the whole run, earlier files included."""
    directory = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, directory)
    (directory / "9999_broken.sql").write_text("CREATE TABLE x (;\n")

    with pytest.raises(MigrationError, match="9999_broken"):
        await migrate(pg_dsn, directory=directory)
    conn = await asyncpg.connect(pg_dsn)
    try:
        exists = await conn.fetchval("SELECT to_regclass('decisions') IS NOT NULL")
    finally:
        await conn.close()
    assert False is exists


def test_badly_named_migration_file_is_refused(tmp_path: Path) -> None:
    """Files must be named NNNN_name.sql."""
    (tmp_path / "1_x.sql").write_text("SELECT 1;")

    with pytest.raises(MigrationError, match=r"NNNN_name\.sql"):
        load_migrations(tmp_path)


async def test_database_migrated_by_a_newer_release_is_refused(pg_dsn: str) -> None:
    """A version this release does not ship stops the runner instead of being ignored."""
    await migrate(pg_dsn)
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute(
            "INSERT INTO ledger_schema_migrations (version, checksum) VALUES ('9000_future', 'x')"
        )
    finally:
        await conn.close()

    with pytest.raises(MigrationError, match="9000_future"):
        await migrate(pg_dsn)


async def test_owner_without_the_app_role_is_told_the_grant_to_run(
    pg_dsn: str, pg_server_dsn: str
) -> None:
    """A plain owner not granted asterisk_recorder_app: migrate stops, naming the GRANT, at 0000."""
    await migrate(pg_dsn)  # as the superuser: the cluster now has asterisk_recorder_app
    name = f"t_owner_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(pg_server_dsn)
    try:
        await admin.execute(f"CREATE ROLE \"{name}\" LOGIN PASSWORD 'owner-pw'")
        await admin.execute(f'CREATE DATABASE "{name}" OWNER "{name}"')
    finally:
        await admin.close()
    server = urlsplit(pg_server_dsn)
    host = server.netloc.rpartition("@")[2]
    owner_dsn = urlunsplit(server._replace(netloc=f"{name}:owner-pw@{host}", path=f"/{name}"))
    try:
        with pytest.raises(MigrationError, match=rf"GRANT asterisk_recorder_app TO {name}") as err:
            await migrate(owner_dsn)
        assert "0000_roles" in str(err.value)
        conn = await asyncpg.connect(owner_dsn)
        try:
            assert False is await conn.fetchval("SELECT to_regclass('decisions') IS NOT NULL")
        finally:
            await conn.close()
    finally:
        admin = await asyncpg.connect(pg_server_dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.execute(f'DROP ROLE IF EXISTS "{name}"')
        finally:
            await admin.close()
