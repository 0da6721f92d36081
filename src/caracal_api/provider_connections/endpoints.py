"""Provider-connection routes C1–C5 (objects.md §6), also under the `provider-grants` paths."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Depends
from starlette.responses import Response

from caracal_api.errors import CaracalError, InvalidQuery
from caracal_api.kit.call import Call, get_call
from caracal_api.kit.egress import egress_of
from caracal_api.kit.pagination import page, page_params
from caracal_api.kit.routing import CaracalRouter
from caracal_api.provider_connections import callback_page, service
from caracal_api.provider_connections.errors import (
    INVALID_AUTHORIZE,
    INVALID_CONNECTION,
    INVALID_REVOKE,
    InvalidOAuthCallback,
)
from caracal_api.provider_connections.schemas import (
    AuthorizeOut,
    AuthorizeRequest,
    Connection,
    ConnectionImport,
    ConnectionList,
    RevokeOut,
    RevokeRequest,
)
from caracal_api.providers.service import read_secrets
from caracal_api.secret_store.service import secret_store_of
from caracal_api.zones.service import require_zone

router = CaracalRouter(tags=["provider-connections"])

BASES = ("/v1/zones/{zoneId}/provider-connections", "/v1/zones/{zoneId}/provider-grants")

Handler = Callable[[Call], Awaitable[Response]]


def _both(method: str, suffix: str, **kwargs: Any) -> Callable[[Handler], Handler]:
    """Register a handler under the current and the older (`provider-grants`) path."""

    def decorator(fn: Handler) -> Handler:
        for base in BASES:
            getattr(router, method)(base + suffix, **kwargs)(fn)
        return fn

    return decorator


@_both("get", "", auth="R", response_model=ConnectionList)
async def list_provider_connections(call: Call = Depends(get_call)) -> Response:
    """List connections (tokens are never returned)."""
    filters: dict[str, str] = {}
    for name, hi in (("provider_id", 128), ("subject_id", 256), ("status", 32)):
        value = call.query.string(name, 1, hi)
        if value is not None:
            filters[name] = value
    params = page_params(call.query)
    async with call.read() as session:
        rows = await service.list_connections(
            session, call.path["zoneId"], filters, params.limit, params.cursor
        )
    return call.respond(page([service.list_item(r) for r in rows], rows, params.limit))


@_both("post", "", auth="W", status_code=201, body=ConnectionImport, response_model=Connection)
async def import_provider_connection(call: Call = Depends(get_call)) -> Response:
    """Import an upstream token set; replaces the tokens of the key's active connection."""
    zone_id = call.path["zoneId"]
    async with call.raw_read() as db:
        await require_zone(db, zone_id)
    payload = call.body(ConnectionImport, code=INVALID_CONNECTION)
    store = secret_store_of(call.runtime)
    row = await call.run(
        service.import_connection,
        store,
        zone_id,
        payload.subject_id,
        payload.provider_id,
        payload.access_token,
        payload.refresh_token,
        payload.expires_at,
        status_code=201,
    )
    return call.respond(row, 201)


@_both("post", "/oauth/authorize", auth="W", body=AuthorizeRequest, response_model=AuthorizeOut)
async def authorize_provider_connection(call: Call = Depends(get_call)) -> Response:
    """Start an authorization-code flow with PKCE; the state lives 600 s."""
    zone_id = call.path["zoneId"]
    async with call.raw_read() as db:
        await require_zone(db, zone_id)
    payload = call.body(AuthorizeRequest, code=INVALID_AUTHORIZE)
    async with call.read() as session:
        provider = await service.require_auth_code_provider(session, zone_id, payload.provider_id)
    authorization = service.build_authorization(zone_id, payload.subject_id, provider)
    await service.save_state(call.runtime.redis, authorization)
    result = {
        "authorization_url": authorization.url,
        "state": authorization.state,
        "expires_at": service.format_ts(authorization.expires_at),
    }
    await call.record_success(200, result)
    return call.respond(result)


@_both("post", "/revoke", auth="W", body=RevokeRequest, response_model=RevokeOut)
async def revoke_provider_connection(call: Call = Depends(get_call)) -> Response:
    """Revoke the active connection, then revoke its token upstream (best effort)."""
    zone_id = call.path["zoneId"]
    payload = call.body(RevokeRequest, code=INVALID_REVOKE)
    revoked = await call.run(
        service.revoke_connection, zone_id, payload.subject_id, payload.provider_id
    )
    store = secret_store_of(call.runtime)
    provider_secrets: dict[str, str] | None = None
    if revoked.config.get("revocation_endpoint"):
        try:
            async with call.read() as session:
                provider_secrets = await read_secrets(session, store, zone_id, payload.provider_id)
        except CaracalError:
            provider_secrets = None
    outcome = await service.revoke_upstream(
        egress_of(call.runtime), store, revoked, provider_secrets
    )
    return call.respond({**revoked.shape, "upstream_revocation": outcome})


@_both("get", "/oauth/callback", auth="public", status_code=201, response_model=Connection)
async def complete_provider_oauth(call: Call = Depends(get_call)) -> Response:
    """Public OAuth redirect target: exchanges the code and stores the connection."""
    html = callback_page.wants_html(call.state.headers.get(b"accept"))
    try:
        row = await _callback(call)
    except CaracalError as exc:
        if not html:
            raise
        title = (
            "OAuth authorization denied"
            if exc.code == "provider_oauth_denied"
            else "OAuth callback failed"
        )
        return callback_page.page(exc.status, title, exc.error_description)
    if html:
        return callback_page.page(201, "OAuth provider connected", "You can close this window.")
    return call.respond(row, 201)


def _callback_query(call: Call) -> dict[str, str | None]:
    try:
        query = {
            "state": call.query.string("state", 32, 256),
            "code": call.query.string("code", 1, 2048),
            "error": call.query.string("error", 1, 2048),
            "error_description": call.query.string("error_description", 1, 2048),
        }
    except InvalidQuery as exc:
        raise InvalidOAuthCallback(details=exc.details) from None
    if query["state"] is None:
        raise InvalidOAuthCallback("The callback needs a state parameter.")
    return query


async def _callback(call: Call) -> dict[str, Any]:
    zone_id = call.path["zoneId"]
    query = _callback_query(call)
    state = await service.take_state(call.runtime.redis, str(query["state"]))
    code = service.check_callback(state, zone_id, query)
    store = secret_store_of(call.runtime)
    async with call.read() as session:
        config, provider_secrets = await service.load_exchange_inputs(session, store, state)
    tokens = await service.exchange_code(
        egress_of(call.runtime), config, provider_secrets, code, state.code_verifier
    )
    return await call.run(
        service.store_tokens,
        store,
        zone_id,
        state.subject_id,
        state.provider_id,
        tokens.access_token,
        tokens.refresh_token,
        tokens.expires_at,
        status_code=201,
    )
