"""OAuth token-endpoint calls: connectivity check and client authentication (objects.md §3.4).

`client_auth` is shared with the connection routes (C4 revocation, C5 code exchange).
Nothing here touches the database; callers run it outside any transaction.
"""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from caracal_api.kit.egress import Egress, EgressError, EgressResponse, https_url_problem
from caracal_api.kit.timefmt import format_ts, utcnow
from caracal_api.providers import jwt
from caracal_api.providers.config import AUTH_CODE, CLIENT_CREDENTIALS, load_private_key

JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
PLACEHOLDER_CODE = "caracal-connection-test"
PLACEHOLDER_VERIFIER = "caracal-connection-test-code-verifier-0123456789abcdefghijklmn"
_ERROR_CODE_RE = re.compile(r"^[a-z_]{1,64}$")
_AUTH_FAILURES = frozenset(
    {"invalid_client", "unauthorized_client", "incorrect_client_credentials"}
)
_GRANT_FAILURES = frozenset({"invalid_grant", "bad_verification_code"})


@dataclass(frozen=True)
class CheckResult:
    status: str
    detail: str
    checked_at: datetime

    def as_dict(self) -> dict[str, str]:
        return {
            "status": self.status,
            "detail": self.detail,
            "checked_at": format_ts(self.checked_at),
        }


class ClientAuthError(Exception):
    """The client configuration cannot authenticate (missing id, secret or key)."""


def auth_method(public: dict[str, Any]) -> str:
    return str(public.get("client_auth_method") or "client_secret_basic")


def grant_of(kind: str, public: dict[str, Any]) -> str:
    if kind != CLIENT_CREDENTIALS:
        return "authorization_code"
    return str(public.get("grant_type") or "client_credentials")


def client_is_complete(kind: str, public: dict[str, Any], secrets: dict[str, str]) -> bool:
    method = auth_method(public)
    grant = grant_of(kind, public)
    if not public.get("client_id"):
        return False
    needs_key = method == "private_key_jwt" or grant == "jwt_bearer"
    if needs_key and not secrets.get("private_key"):
        return False
    return method in ("none", "private_key_jwt") or bool(secrets.get("client_secret"))


def client_auth(
    public: dict[str, Any], secrets: dict[str, str], token_endpoint: str
) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """Form fields and headers that authenticate the client (§3.4 "Client authentication")."""
    method = auth_method(public)
    client_id = str(public.get("client_id") or "")
    if not client_id:
        raise ClientAuthError("client_id is missing")
    if method == "client_secret_basic":
        secret = secrets.get("client_secret")
        if not secret:
            raise ClientAuthError("client_secret is missing")
        raw = f"{client_id}:{secret}".encode()
        return [], {"Authorization": "Basic " + base64.b64encode(raw).decode("ascii")}
    if method == "client_secret_post":
        secret = secrets.get("client_secret")
        if not secret:
            raise ClientAuthError("client_secret is missing")
        return [("client_id", client_id), ("client_secret", secret)], {}
    if method == "private_key_jwt":
        now = int(time.time())
        claims = {
            "iss": client_id,
            "sub": client_id,
            "aud": token_endpoint,
            "iat": now,
            "exp": now + 60,
            "jti": str(uuid.uuid4()),
        }
        assertion = _signed(public, secrets, claims, with_certificate=True)
        return [
            ("client_id", client_id),
            ("client_assertion_type", CLIENT_ASSERTION_TYPE),
            ("client_assertion", assertion),
        ], {}
    return [("client_id", client_id)], {}


def _signed(
    public: dict[str, Any],
    secrets: dict[str, str],
    claims: dict[str, Any],
    *,
    with_certificate: bool,
) -> str:
    key = load_private_key(secrets.get("private_key", ""))
    if key is None:
        raise ClientAuthError("private_key is missing or unreadable")
    certificate = public.get("certificate") if with_certificate else None
    kid = public.get("key_id")
    return jwt.sign(key, claims, kid=str(kid) if kid else None, certificate_pem=certificate)


def _grant_form(kind: str, public: dict[str, Any], secrets: dict[str, str]) -> dict[str, str]:
    endpoint = str(public["token_endpoint"])
    scopes = " ".join(str(s) for s in public.get("scopes") or [])
    grant = grant_of(kind, public)
    form: dict[str, str] = {}
    if kind == AUTH_CODE:
        form = {
            "grant_type": "authorization_code",
            "code": PLACEHOLDER_CODE,
            "code_verifier": PLACEHOLDER_VERIFIER,
            "redirect_uri": str(public.get("redirect_uri") or ""),
        }
    elif grant == "jwt_bearer":
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": public["client_id"],
            "sub": public.get("assertion_subject") or public["client_id"],
            "aud": public.get("assertion_audience") or endpoint,
            "iat": now,
            "exp": now + 300,
            "jti": str(uuid.uuid4()),
        }
        if scopes:
            claims["scope"] = scopes
        form = {
            "grant_type": JWT_BEARER_GRANT,
            "assertion": _signed(public, secrets, claims, with_certificate=False),
        }
    else:
        form = {"grant_type": "client_credentials"}
        if scopes:
            form["scope"] = scopes
        for key in ("audience", "resource"):
            if public.get(key):
                form[key] = str(public[key])
    for name, value in (public.get("token_params") or {}).items():
        form[name] = str(value)
    return form


def precheck(kind: str, public: dict[str, Any], secrets: dict[str, str]) -> str | None:
    """The `config_error` detail of a configuration that cannot be checked, else None."""
    if not client_is_complete(kind, public, secrets):
        return "The provider client configuration is incomplete."
    endpoint = public.get("token_endpoint")
    if not isinstance(endpoint, str) or https_url_problem(endpoint) is not None:
        return "The token endpoint must be an https URL."
    hosts = public.get("allowed_token_hosts")
    if not isinstance(hosts, list) or not hosts:
        return "allowed_token_hosts must list the token endpoint host."
    if not host_allowed(endpoint, hosts):
        return "The token endpoint host is not in allowed_token_hosts."
    return None


def host_allowed(url: str, hosts: list[Any]) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return host in {str(h).strip().lower() for h in hosts}


def oauth_error_code(response: EgressResponse) -> str | None:
    document = parse_body(response)
    code = document.get("error") if document is not None else None
    return code if isinstance(code, str) and _ERROR_CODE_RE.fullmatch(code) else None


def parse_body(response: EgressResponse) -> dict[str, Any] | None:
    """The body as a JSON object, else as a form-encoded document, else None."""
    try:
        text = response.body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    try:
        document = json.loads(text)
    except ValueError:
        document = None
        if "=" in text:
            try:
                return dict(parse_qsl(text.strip(), strict_parsing=True))
            except ValueError:
                return None
    return document if isinstance(document, dict) else None


async def check_connectivity(
    egress: Egress, kind: str, public: dict[str, Any], secrets: dict[str, str]
) -> CheckResult:
    """Run §3.4 on a configuration (saved or not); never raises for upstream problems."""
    problem = precheck(kind, public, secrets)
    if problem is not None:
        return CheckResult("config_error", problem, utcnow())
    endpoint = str(public["token_endpoint"])
    try:
        form = _grant_form(kind, public, secrets)
        auth_fields, headers = client_auth(public, secrets, endpoint)
    except ClientAuthError:
        return CheckResult(
            "config_error", "The provider client configuration is incomplete.", utcnow()
        )
    fields = list(form.items()) + [(k, v) for k, v in auth_fields if k not in form]
    try:
        response = await egress.post_form(endpoint, fields, headers=headers)
    except EgressError as exc:
        return CheckResult(
            "unreachable", f"The token endpoint could not be reached: {exc}", utcnow()
        )
    return CheckResult(*classify(kind, public, response), utcnow())


def classify(kind: str, public: dict[str, Any], response: EgressResponse) -> tuple[str, str]:
    code = oauth_error_code(response)
    status = response.status
    suffix = f" ({code})" if code else ""
    if kind == AUTH_CODE:
        if code in _GRANT_FAILURES:
            return "ok", "The token endpoint accepted the client and refused the test code."
        if code in _AUTH_FAILURES or status == 401:
            return "auth_failed", f"The token endpoint rejected the client credentials{suffix}."
        return "endpoint_error", f"The token endpoint responded with HTTP {status}{suffix}."
    if status == 200 and code is None:
        document = parse_body(response) or {}
        if isinstance(document.get("access_token"), str):
            return "ok", "The token endpoint issued an access token."
        return "endpoint_error", "The token endpoint responded without an access token."
    if grant_of(kind, public) == "jwt_bearer" and code in _GRANT_FAILURES:
        return "auth_failed", f"The token endpoint rejected the assertion{suffix}."
    if code in _AUTH_FAILURES or status == 401:
        return "auth_failed", f"The token endpoint rejected the client credentials{suffix}."
    if code in ("invalid_scope", "invalid_target"):
        return (
            "config_error",
            f"The token endpoint rejected the requested scope or target ({code}).",
        )
    return "endpoint_error", f"The token endpoint responded with HTTP {status}{suffix}."
