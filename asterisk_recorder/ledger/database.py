"""Reaching the ledger's PostgreSQL: which DSN, and connections with the application's rights.

This module owns ``resolve_dsn`` (the configured DSN, or an embedded PostgreSQL started on
demand), ``database_dsn`` (the same as an async context manager that stops what it started) and
``connect_app`` (a connection switched to the INSERT+SELECT role ``asterisk_recorder_app``, so even
a superuser DSN writes with restricted rights). asyncpg errors become ``DatabaseUnavailable``.
It must not create schema (that is ``migrate``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg

from asterisk_recorder.embedded_pg import EmbeddedPostgres, default_data_dir
from asterisk_recorder.errors import DatabaseUnavailable
from asterisk_recorder.ledger.chain import APP_ROLE
from asterisk_recorder.settings import Settings

__all__ = ["CONNECTION_ERRORS", "connect_app", "database_dsn", "resolve_dsn"]

CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,  # admin shutdown, cannot connect now
)
"""Errors that mean "PostgreSQL is not answering" (as opposed to "it refused this")."""
_CONNECT_ERRORS: tuple[type[BaseException], ...] = (*CONNECTION_ERRORS, asyncpg.PostgresError)


def resolve_dsn(settings: Settings) -> tuple[str, EmbeddedPostgres | None]:
    """Return ``(dsn, server)``: ``settings.database.dsn``, or a started embedded PostgreSQL.

    The caller stops ``server`` (when not ``None``) once done.

    Raises:
        DatabaseStartError: no DSN is configured and the embedded server cannot start.
    """
    if settings.database.dsn:
        return settings.database.dsn.value, None
    data_dir = (
        Path(settings.database.embedded_data_dir)
        if settings.database.embedded_data_dir
        else default_data_dir()
    )
    server = EmbeddedPostgres(data_dir)
    return server.start(), server


@asynccontextmanager
async def database_dsn(settings: Settings) -> AsyncIterator[str]:
    """``resolve_dsn`` as an async context manager: yields the DSN, stops an embedded server."""
    dsn, server = await asyncio.to_thread(resolve_dsn, settings)
    try:
        yield dsn
    finally:
        if server is not None:
            await asyncio.to_thread(server.stop)


async def connect_app(dsn: str, *, connect_timeout: float = 5.0) -> asyncpg.Connection:
    """Connect and ``SET ROLE asterisk_recorder_app``.

    Raises:
        DatabaseUnavailable: PostgreSQL cannot be reached, or the role is missing (not migrated)
            or not granted to the DSN's user.
    """
    try:
        conn = await asyncpg.connect(dsn, timeout=connect_timeout)
    except _CONNECT_ERRORS as exc:
        raise DatabaseUnavailable(f"cannot reach PostgreSQL: {exc}") from exc
    try:
        await conn.execute(f"SET ROLE {APP_ROLE}")
    except asyncpg.PostgresError as exc:
        await conn.close()
        raise DatabaseUnavailable(
            f"cannot switch to role {APP_ROLE} (run 'asterisk-recorder db migrate' first, "
            f"or grant the role to the DSN's user): {exc}"
        ) from exc
    except CONNECTION_ERRORS as exc:
        conn.terminate()
        raise DatabaseUnavailable(f"lost PostgreSQL while connecting: {exc}") from exc
    return conn
