"""Fixtures of the sealer tests: a migrated ledger and the sealer's directories."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sealer_helpers import SealerEnv
from store_helpers import MotoS3, boto3

from asterisk_recorder.ledger import migrate


@pytest.fixture
async def env(pg_dsn: str, tmp_path: Path) -> SealerEnv:
    """A migrated ledger and empty recording, sealed, quarantine and key directories."""
    await migrate(pg_dsn)
    environment = SealerEnv(tmp_path, pg_dsn)
    environment.paths.recordings.mkdir()
    return environment


# -- a real S3-compatible server (moto in server mode) ------------------------------------------


@pytest.fixture(scope="module")
def aws_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Test credentials in the standard AWS environment (never in settings or URLs)."""
    if boto3 is None:
        pytest.skip("moto[server] and boto3 are not installed (pip install -e '.[test]')")
    home = tmp_path_factory.mktemp("aws")
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "credentials"),
        "AWS_CONFIG_FILE": str(home / "config"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        yield env
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture
def moto(aws_env: dict[str, str]) -> Iterator[MotoS3]:
    """A running moto S3 server of this test (stop/start it to take the store away)."""
    server = MotoS3()
    server.start()
    try:
        yield server
    finally:
        server.stop()
