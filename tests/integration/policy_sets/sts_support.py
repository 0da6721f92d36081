"""Small helpers for the STS tests (kept apart so test modules can share them)."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A port nothing listens on (bound then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
