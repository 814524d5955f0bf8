"""Helpers of the object-store tests: a moto S3 server a test can stop and start."""

from __future__ import annotations

import socket
from typing import Any

try:
    import boto3
    from moto.server import ThreadedMotoServer
except ImportError:  # the S3 tests skip; everything else still runs
    boto3 = None

__all__ = ["MotoS3", "boto3", "free_port"]

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


