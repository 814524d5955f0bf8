"""Fixtures of the sealer tests: a migrated ledger and the sealer's directories."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


# -- a real S3-compatible server (moto in server mode) ------------------------------------------

try:
    import boto3
    from moto.server import ThreadedMotoServer
except ImportError:  # the S3 tests skip; everything else still runs
    boto3 = None


def free_port() -> int:
    """A TCP port nobody listens on (now)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class MotoS3:
    """A moto S3 server on a fixed 127.0.0.1 port that a test can stop and start again (the
    buckets and objects live in this process, so they survive a restart)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._server: Any = None

    def start(self) -> None:
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def client(self) -> Any:
        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1")

    def bucket(self, name: str, *, lock: bool = True) -> str:
        """Create bucket ``name`` (with Object Lock unless ``lock`` is false)."""
        if lock:
            self.client().create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
        else:
            self.client().create_bucket(Bucket=name)
        return name


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
