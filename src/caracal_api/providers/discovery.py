"""OIDC / OAuth authorization-server metadata discovery (objects.md P7).

Pure apart from the outbound GETs through `Egress`; nothing is stored.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit

from caracal_api.kit.egress import Egress, EgressError, https_url_problem
from caracal_api.providers.config import CLIENT_AUTH_METHODS

MAX_SCOPES = 64
MAX_SCOPE_CHARS = 200


class IssuerInvalid(ValueError):
    pass


class DiscoveryFailed(Exception):
    """Maps to 422 `provider_discovery_failed`; the message is the description."""


def normalise_issuer(issuer: str) -> str:
    return issuer.strip().rstrip("/")


def check_issuer(issuer: str) -> None:
    """Raise IssuerInvalid unless `issuer` is an https URL with a host and no userinfo,
    query or fragment (no network)."""
    if https_url_problem(issuer) is not None:
        raise IssuerInvalid(issuer)
    try:
        parts = urlsplit(issuer)
    except ValueError:
        raise IssuerInvalid(issuer) from None
    if parts.query or parts.fragment or "?" in issuer or "#" in issuer:
        raise IssuerInvalid(issuer)


def metadata_urls(issuer: str) -> list[str]:
    parts = urlsplit(issuer)
    origin = f"{parts.scheme}://{parts.netloc}"
    path = re.sub(r"/+$", "", parts.path)
    return [
        f"{origin}{path}/.well-known/openid-configuration",
        f"{origin}/.well-known/oauth-authorization-server{path}",
    ]


async def discover(egress: Egress, issuer: str) -> dict[str, Any]:
    """Fetch and filter the metadata of `issuer` (already checked)."""
    wanted = normalise_issuer(issuer)
    document: dict[str, Any] | None = None
    reason = "The issuer publishes no authorization server metadata."
    for url in metadata_urls(wanted):
        try:
            response = await egress.get(url)
        except EgressError as exc:
            reason = f"The metadata could not be fetched: {exc}"
            continue
        if response.status != 200:
            continue
        try:
            parsed = json.loads(response.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            reason = "The issuer metadata is not valid JSON."
            continue
        if isinstance(parsed, dict):
            document = parsed
            break
        reason = "The issuer metadata is not a JSON object."
    if document is None:
        raise DiscoveryFailed(reason)
    found = document.get("issuer")
    if not isinstance(found, str) or normalise_issuer(found) != wanted:
        raise DiscoveryFailed("The metadata issuer does not match the requested issuer.")
    token_endpoint = document.get("token_endpoint")
    if not _https(token_endpoint):
        raise DiscoveryFailed("The metadata has no valid https token_endpoint.")
    return _shape(wanted, document)


def _https(value: Any) -> bool:
    return isinstance(value, str) and https_url_problem(value) is None


def _shape(issuer: str, document: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"issuer": issuer, "token_endpoint": document["token_endpoint"]}
    for key in ("authorization_endpoint", "revocation_endpoint"):
        if _https(document.get(key)):
            out[key] = document[key]
    scopes = document.get("scopes_supported")
    if isinstance(scopes, list):
        kept = [
            s for s in scopes if isinstance(s, str) and s.strip() and len(s) <= MAX_SCOPE_CHARS
        ][:MAX_SCOPES]
        if kept:
            out["scopes_supported"] = kept
    methods = document.get("token_endpoint_auth_methods_supported")
    if isinstance(methods, list):
        kept = [m for m in methods if isinstance(m, str) and m in CLIENT_AUTH_METHODS]
        if kept:
            out["token_endpoint_auth_methods_supported"] = kept
    return out
