"""Fixtures of the objects unit tests: the real local HTTP(S) servers."""

from __future__ import annotations

from tests.fixtures.http_servers import (
    _local_http_server,
    _local_https_server,
    local_http,
    local_https,
    tls_ca,
    tls_ca_file,
)

__all__ = [
    "_local_http_server",
    "_local_https_server",
    "local_http",
    "local_https",
    "tls_ca",
    "tls_ca_file",
]
