"""Fixtures of the sealer tests: a migrated ledger and the sealer's directories."""

from __future__ import annotations

from pathlib import Path

import pytest
from sealer_helpers import SealerEnv

from asterisk_recorder.ledger import migrate


@pytest.fixture
async def env(pg_dsn: str, tmp_path: Path) -> SealerEnv:
    """A migrated ledger and empty recording, sealed, quarantine and key directories."""
    await migrate(pg_dsn)
    environment = SealerEnv(tmp_path, pg_dsn)
    environment.paths.recordings.mkdir()
    return environment
