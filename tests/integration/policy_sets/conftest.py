"""Fixtures of the policy-set integration tests: a local STS over plain HTTP."""

from __future__ import annotations

from tests.fixtures.http_servers import _local_http_server, local_http

__all__ = ["_local_http_server", "local_http"]
