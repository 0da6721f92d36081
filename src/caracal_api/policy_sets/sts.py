"""Optional coordination with the token service (policies.md §6).

Configured when both `STS_URL` and `GATEWAY_STS_HMAC_KEY` are set. Calls never run inside
a transaction, time out after 10 s and skip the egress rules of provider calls (`STS_URL`
is operator configuration). Every request is signed:

    X-Caracal-Gateway-Signature = hex HMAC-SHA256(key,
        "<timestamp>\\n<request id>\\n<METHOD>\\n<path>\\n<hex SHA-256 of the body>")
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from caracal_api.config import Settings
from caracal_api.kit.ids import uuid7
from caracal_api.policies.contract import BundleModule

TIMEOUT_S = 10.0
SIMULATE_PATH = "/internal/policy/simulate"
STATUS_PATH = "/internal/policy/status/"


@dataclass(frozen=True)
class StsReply:
    """One STS answer: `status` 0 and `network_error` set when no response arrived."""

    status: int
    body: bytes
    network_error: str | None = None

    @property
    def ok(self) -> bool:
        return self.network_error is None and 200 <= self.status < 300

    def json(self) -> Any:
        """The decoded body; raises ValueError when it is not JSON."""
        return json.loads(self.body.decode("utf-8"))

    def _first_text(self, *keys: str) -> str:
        try:
            data = self.json()
        except ValueError:
            data = None
        if isinstance(data, dict):
            for key in keys:
                value = data.get(key)
                if isinstance(value, str) and value:
                    return value
        return str(self.status)

    def error_text(self) -> str:
        """`error_description`, else `error`, else the HTTP status."""
        return self._first_text("error_description", "error")

    def error_code(self) -> str:
        """`error`, else the HTTP status."""
        return self._first_text("error")


def signature_headers(key: bytes, method: str, path: str, body: bytes) -> dict[str, str]:
    timestamp = str(int(time.time()))
    request_id = uuid7()
    digest = hashlib.sha256(body).hexdigest()
    message = f"{timestamp}\n{request_id}\n{method}\n{path}\n{digest}".encode()
    return {
        "X-Caracal-Gateway-Timestamp": timestamp,
        "X-Caracal-Gateway-Request": request_id,
        "X-Caracal-Gateway-Signature": hmac.new(key, message, hashlib.sha256).hexdigest(),
    }


class StsClient:
    def __init__(self, base_url: str, key: bytes, *, timeout: float = TIMEOUT_S) -> None:
        self._base = base_url.rstrip("/")
        self._key = key
        self._timeout = timeout

    async def _call(self, method: str, suffix: str, payload: Any = None) -> StsReply:
        url = self._base + suffix
        body = b"" if payload is None else json.dumps(payload, ensure_ascii=False).encode()
        headers = signature_headers(self._key, method, urlsplit(url).path, body)
        if payload is not None:
            headers["content-type"] = "application/json"
        try:
            async with httpx.AsyncClient(
                timeout=self._timeout, follow_redirects=False, trust_env=False
            ) as client:
                response = await client.request(method, url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return StsReply(0, b"", _network_message(exc))
        return StsReply(response.status_code, response.content)

    async def simulate(
        self,
        policy_set_id: str,
        version_id: str,
        manifest_sha256: str,
        modules: Sequence[BundleModule],
        input_document: dict[str, Any],
    ) -> StsReply:
        return await self._call(
            "POST",
            SIMULATE_PATH,
            {
                "policy_set_id": policy_set_id,
                "version_id": version_id,
                "manifest_sha256": manifest_sha256,
                "policies": [{"id": m.id, "content": m.content} for m in modules],
                "input": input_document,
            },
        )

    async def status(self, zone_id: str) -> StsReply:
        return await self._call("GET", STATUS_PATH + quote(zone_id, safe=""))


def _network_message(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    return type(exc).__name__


def client_of(settings: Settings) -> StsClient | None:
    if settings.sts_url and settings.gateway_sts_hmac_key:
        return StsClient(settings.sts_url, settings.gateway_sts_hmac_key)
    return None
