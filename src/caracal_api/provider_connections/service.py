"""Provider-connection business rules (objects.md §6)."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from redis.asyncio import Redis
from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession

from caracal_api.errors import RedisUnavailable
from caracal_api.kit.egress import Egress, EgressError, https_url_problem
from caracal_api.kit.ids import uuid7
from caracal_api.kit.pagination import Cursor
from caracal_api.kit.timefmt import format_ts, format_ts_or_none, parse_ts, utcnow
from caracal_api.kit.uow import WriteContext
from caracal_api.provider_connections import repository as repo
from caracal_api.provider_connections.errors import (
    AuthorizationCodeRequired,
    OAuthStateExpired,
    OAuthStateInvalid,
    OAuthStateMismatch,
    ProviderAuthorizationEndpointInvalid,
    ProviderConnectionNotFound,
    ProviderConnectionUnsupported,
    ProviderOAuthDenied,
    ProviderTokenEndpointNotAllowed,
    ProviderTokenExchangeFailed,
    ProviderTokenResponseInvalid,
    ProviderTokenTypeUnsupported,
)
from caracal_api.providers import oauth
from caracal_api.providers.config import AUTH_CODE, InvalidProviderConfig
from caracal_api.providers.service import read_secrets, require_provider
from caracal_api.secret_store.refs import ACCESS_TOKEN_AAD, REFRESH_TOKEN_AAD
from caracal_api.secret_store.service import SecretStore

STATE_TTL_S = 600
STATE_PREFIX = "api:provider_oauth_state:"


def connection_shape(row: Row[Any]) -> dict[str, Any]:
    return {
        "id": row.id,
        "zone_id": row.zone_id,
        "subject_id": row.subject_id,
        "provider_id": row.provider_id,
        "status": row.status,
        "expires_at": format_ts_or_none(row.expires_at),
        "created_at": format_ts(row.created_at),
        "updated_at": format_ts(row.updated_at),
    }


def list_item(row: Row[Any]) -> dict[str, Any]:
    out = connection_shape(row)
    out = {
        k: out[k] for k in ("id", "zone_id", "subject_id", "provider_id", "status", "expires_at")
    }
    out.update(
        refreshed_at=format_ts_or_none(row.refreshed_at),
        renewable=bool(row.renewable),
        created_at=format_ts(row.created_at),
        updated_at=format_ts(row.updated_at),
    )
    return out


async def list_connections(
    session: AsyncSession, zone_id: str, filters: dict[str, str], limit: int, cursor: Cursor | None
) -> Sequence[Row[Any]]:
    return await repo.list_connections(session, zone_id, filters, limit, cursor)


async def require_auth_code_provider(
    session: AsyncSession, zone_id: str, provider_id: str
) -> Row[Any]:
    provider = await require_provider(session, zone_id, provider_id)
    if provider.provider_kind != AUTH_CODE:
        raise ProviderConnectionUnsupported()
    return provider


async def store_tokens(
    session: AsyncSession,
    _ctx: WriteContext | None,
    store: SecretStore,
    zone_id: str,
    subject_id: str,
    provider_id: str,
    access_token: str,
    refresh_token: str | None,
    expires_at: datetime | None,
) -> dict[str, Any]:
    """Seal and upsert (C2, C5); the existing id is kept on replacement."""
    access_ct = store.seal_value(access_token.encode("utf-8"), ACCESS_TOKEN_AAD)
    refresh_ct = (
        store.seal_value(refresh_token.encode("utf-8"), REFRESH_TOKEN_AAD)
        if refresh_token is not None
        else None
    )
    row = await repo.upsert(
        session,
        connection_id=uuid7(),
        zone_id=zone_id,
        subject_id=subject_id,
        provider_id=provider_id,
        access_ct=access_ct,
        refresh_ct=refresh_ct,
        expires_at=expires_at,
    )
    return connection_shape(row)


async def import_connection(
    session: AsyncSession,
    ctx: WriteContext,
    store: SecretStore,
    zone_id: str,
    subject_id: str,
    provider_id: str,
    access_token: str,
    refresh_token: str | None,
    expires_at: str | None,
) -> dict[str, Any]:
    await require_auth_code_provider(session, zone_id, provider_id)
    expires = parse_ts(expires_at) if expires_at is not None else None
    return await store_tokens(
        session, ctx, store, zone_id, subject_id, provider_id, access_token, refresh_token, expires
    )


# --- C3 authorize ------------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _set_params(url: str, params: list[tuple[str, str]]) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    for name, value in params:
        query = [(k, v) for k, v in query if k != name]
        query.append((name, value))
    return urlunsplit(parts._replace(query=urlencode(query)))


@dataclass(frozen=True)
class Authorization:
    url: str
    state: str
    state_document: str
    expires_at: datetime


def build_authorization(zone_id: str, subject_id: str, provider: Row[Any]) -> Authorization:
    config = dict(provider.config_json or {})
    endpoint = config.get("authorization_endpoint")
    if not all(config.get(k) for k in ("authorization_endpoint", "redirect_uri", "client_id")):
        raise InvalidProviderConfig(
            "The provider needs authorization_endpoint, redirect_uri and client_id."
        )
    if not isinstance(endpoint, str) or https_url_problem(endpoint) is not None:
        raise ProviderAuthorizationEndpointInvalid()
    state = b64url(secrets.token_bytes(32))
    verifier = b64url(secrets.token_bytes(32))
    params = [(str(k), str(v)) for k, v in (config.get("authorization_params") or {}).items()]
    params += [
        ("response_type", "code"),
        ("client_id", str(config["client_id"])),
        ("redirect_uri", str(config["redirect_uri"])),
        ("state", state),
    ]
    scopes = " ".join(str(s) for s in config.get("scopes") or [])
    if scopes:
        params.append(("scope", scopes))
    params += [
        ("code_challenge", b64url(hashlib.sha256(verifier.encode("ascii")).digest())),
        ("code_challenge_method", "S256"),
    ]
    document = json.dumps(
        {
            "zone_id": zone_id,
            "subject_id": subject_id,
            "provider_id": provider.id,
            "code_verifier": verifier,
        },
        separators=(",", ":"),
    )
    return Authorization(
        _set_params(endpoint, params), state, document, utcnow() + timedelta(seconds=STATE_TTL_S)
    )


async def save_state(redis: Redis, authorization: Authorization) -> None:
    try:
        await redis.set(
            STATE_PREFIX + authorization.state, authorization.state_document, ex=STATE_TTL_S
        )
    except Exception:
        raise RedisUnavailable() from None


# --- C4 revoke ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Revoked:
    shape: dict[str, Any]
    config: dict[str, Any]
    token: bytes | None  # ciphertext of the token to revoke upstream
    aad: str
    hint: str


async def revoke_connection(
    session: AsyncSession, _ctx: WriteContext, zone_id: str, subject_id: str, provider_id: str
) -> Revoked:
    found = await repo.lock_active(session, zone_id, subject_id, provider_id)
    if found is None:
        raise ProviderConnectionNotFound()
    row = await repo.mark_revoked(session, found.id)
    if row is None:
        raise ProviderConnectionNotFound()
    if found.refresh_token_ct is not None:
        token, aad, hint = found.refresh_token_ct, REFRESH_TOKEN_AAD, "refresh_token"
    else:
        token, aad, hint = found.access_token_ct, ACCESS_TOKEN_AAD, "access_token"
    return Revoked(
        connection_shape(row),
        dict(found.config_json or {}),
        bytes(token) if token is not None else None,
        aad,
        hint,
    )


async def revoke_upstream(
    egress: Egress, store: SecretStore, revoked: Revoked, provider_secrets: dict[str, str] | None
) -> str:
    """RFC 7009 revocation, best effort: `revoked`, `unsupported` or `failed`."""
    endpoint = revoked.config.get("revocation_endpoint")
    if not endpoint:
        return "unsupported"
    if provider_secrets is None or revoked.token is None:
        return "failed"
    try:
        token = store.open_value(revoked.token, revoked.aad).decode("utf-8")
        fields, headers = oauth.client_auth(revoked.config, provider_secrets, str(endpoint))
        form = [("token", token), ("token_type_hint", revoked.hint), *fields]
        response = await egress.post_form(str(endpoint), form, headers=headers)
    except (EgressError, oauth.ClientAuthError, UnicodeDecodeError):
        return "failed"
    except Exception:  # includes an envelope that does not open: never fails the revoke
        return "failed"
    return "revoked" if response.status == 200 else "failed"


# --- C5 callback -------------------------------------------------------------------------


@dataclass(frozen=True)
class CallbackState:
    zone_id: str
    subject_id: str
    provider_id: str
    code_verifier: str


async def take_state(redis: Redis, state: str) -> CallbackState:
    try:
        raw = await redis.getdel(STATE_PREFIX + state)
    except Exception:
        raise RedisUnavailable() from None
    if raw is None:
        raise OAuthStateExpired()
    try:
        document = json.loads(raw)
    except (ValueError, TypeError):
        raise OAuthStateInvalid() from None
    if not isinstance(document, dict):
        raise OAuthStateInvalid()
    values = [document.get(k) for k in ("zone_id", "subject_id", "provider_id", "code_verifier")]
    if not all(isinstance(v, str) and v for v in values[:3]):
        raise OAuthStateInvalid()
    verifier = values[3]
    if not isinstance(verifier, str) or not 43 <= len(verifier) <= 128:
        raise OAuthStateInvalid()
    return CallbackState(*values)  # type: ignore[arg-type]


def check_callback(state: CallbackState, zone_id: str, query: dict[str, str | None]) -> str:
    """Steps 4–6; returns the authorization code."""
    if state.zone_id != zone_id:
        raise OAuthStateMismatch()
    if query.get("error"):
        raise ProviderOAuthDenied(query.get("error_description") or query.get("error"))
    code = query.get("code")
    if not code:
        raise AuthorizationCodeRequired()
    return code


@dataclass(frozen=True)
class TokenSet:
    access_token: str
    refresh_token: str | None
    expires_at: datetime | None


async def exchange_code(
    egress: Egress,
    config: dict[str, Any],
    provider_secrets: dict[str, str],
    code: str,
    verifier: str,
) -> TokenSet:
    """Steps 9–12 of C5 (no transaction is open)."""
    method = oauth.auth_method(config)
    if not config.get("client_id") or (
        method != "none" and not provider_secrets.get("client_secret")
    ):
        raise InvalidProviderConfig("The provider client configuration is incomplete.")
    endpoint = config.get("token_endpoint")
    hosts = config.get("allowed_token_hosts") or []
    if (
        not isinstance(endpoint, str)
        or https_url_problem(endpoint) is not None
        or not isinstance(hosts, list)
        or not oauth.host_allowed(endpoint, hosts)
    ):
        raise ProviderTokenEndpointNotAllowed()
    form: dict[str, str] = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": str(config.get("redirect_uri") or ""),
        "code_verifier": verifier,
    }
    for name, value in (config.get("token_params") or {}).items():
        form[str(name)] = str(value)
    try:
        fields, headers = oauth.client_auth(config, provider_secrets, endpoint)
    except oauth.ClientAuthError:
        raise InvalidProviderConfig("The provider client configuration is incomplete.") from None
    items = list(form.items()) + [(k, v) for k, v in fields if k not in form]
    try:
        response = await egress.post_form(endpoint, items, headers=headers)
    except EgressError as exc:
        raise ProviderTokenExchangeFailed(f"The token exchange failed: {exc}") from None
    if response.status != 200:
        raise ProviderTokenExchangeFailed(
            f"The token endpoint responded with HTTP {response.status}."
        )
    try:
        document = json.loads(response.body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ProviderTokenResponseInvalid() from None
    if not isinstance(document, dict) or not isinstance(document.get("access_token"), str):
        raise ProviderTokenResponseInvalid()
    token_type = document.get("token_type")
    if (
        token_type is not None
        and str(token_type).lower() != "bearer"
        and not config.get("auth_scheme")
    ):
        raise ProviderTokenTypeUnsupported()
    refresh = document.get("refresh_token")
    expires_in = document.get("expires_in")
    expires_at = None
    if isinstance(expires_in, int | float) and not isinstance(expires_in, bool) and expires_in > 0:
        expires_at = utcnow() + timedelta(seconds=int(expires_in))
    return TokenSet(
        document["access_token"], refresh if isinstance(refresh, str) else None, expires_at
    )


async def load_exchange_inputs(
    session: AsyncSession, store: SecretStore, state: CallbackState
) -> tuple[dict[str, Any], dict[str, str]]:
    """Steps 7–8: the live authorization-code provider and its secrets."""
    provider = await require_auth_code_provider(session, state.zone_id, state.provider_id)
    provider_secrets = await read_secrets(session, store, state.zone_id, state.provider_id)
    return dict(provider.config_json or {}), provider_secrets
