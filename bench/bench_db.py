"""The PostgreSQL a benchmark runs against: its own embedded server, or a fresh database.

This module owns ``database(workdir)``: a fresh database on the server named by
``ASTERISK_RECORDER_TEST_DSN`` (dropped afterwards), else an embedded PostgreSQL in
``workdir``. The benchmarks import it as a sibling module (they run as ``python bench/x.py``).
It must not measure anything.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from asterisk_recorder.embedded_pg import EmbeddedPostgres

__all__ = ["database"]


@asynccontextmanager
async def database(workdir: Path) -> AsyncIterator[str]:
    """The DSN of an empty database for one benchmark run."""
    external = os.environ.get("ASTERISK_RECORDER_TEST_DSN")
    if external:
        name = f"bench_{uuid.uuid4().hex[:12]}"
        admin = await asyncpg.connect(external)
        await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.close()
        parts = urlsplit(external)
        try:
            yield urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, ""))
        finally:
            admin = await asyncpg.connect(external)
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()
        return
    server = EmbeddedPostgres(workdir / "pgdata", delete_on_stop=True)
    dsn = await asyncio.to_thread(server.start)
    try:
        yield dsn
    finally:
        await asyncio.to_thread(server.stop)
