"""Provider routes P1–P7 (objects.md §3)."""

from __future__ import annotations

from fastapi import Depends
from starlette.responses import Response

from caracal_api.kit.call import Call, get_call
from caracal_api.kit.egress import egress_of
from caracal_api.kit.pagination import page, page_params
from caracal_api.kit.routing import CaracalRouter
from caracal_api.providers import discovery, limits, oauth, service
from caracal_api.providers.config import OAUTH_KINDS
from caracal_api.providers.errors import (
    INVALID_ISSUER,
    INVALID_PROVIDER,
    InvalidIssuer,
    ProviderCheckFailed,
    ProviderCheckUnsupported,
    ProviderDiscoveryFailed,
    ProviderDiscoveryRateLimited,
    ProviderTestRateLimited,
)
from caracal_api.providers.schemas import (
    CheckOut,
    DiscoveryOut,
    DiscoveryRequest,
    Provider,
    ProviderCreate,
    ProviderList,
    ProviderUpdate,
)
from caracal_api.secret_store.service import secret_store_of
from caracal_api.zones.service import require_zone

router = CaracalRouter(tags=["providers"])

BASE = "/v1/zones/{zoneId}/providers"


@router.get(BASE, auth="R", response_model=ProviderList)
async def list_providers(call: Call = Depends(get_call)) -> Response:
    """List the zone's active (default) or archived providers; secrets never appear."""
    status = call.query.enum("status", ("active", "archived"), "active")
    params = page_params(call.query)
    async with call.read() as session:
        rows = await service.list_providers(
            session, call.path["zoneId"], status == "archived", params.limit, params.cursor
        )
    return call.respond(page([service.provider_out(r) for r in rows], rows, params.limit))


@router.get(BASE + "/{id}", auth="R", response_model=Provider)
async def get_provider(call: Call = Depends(get_call)) -> Response:
    """Read a live provider (public config and secret key names only)."""
    async with call.read() as session:
        row = await service.require_provider(session, call.path["zoneId"], call.path["id"])
    return call.respond(service.provider_out(row))


@router.post(BASE, auth="W", status_code=201, body=ProviderCreate, response_model=Provider)
async def create_provider(call: Call = Depends(get_call)) -> Response:
    """Create a provider; secret config keys are sealed, optionally after a live check."""
    zone_id = call.path["zoneId"]
    async with call.raw_read() as db:
        await require_zone(db, zone_id)
    payload = call.body(ProviderCreate, code=INVALID_PROVIDER)
    plan = service.plan_create(payload)
    oauth_kind = plan.kind in OAUTH_KINDS
    if plan.check:
        if not oauth_kind:
            raise ProviderCheckUnsupported()
        retry = await limits.hit(call.runtime, "providertest", zone_id)
        if retry is not None:
            raise ProviderTestRateLimited(retry)
        result = await oauth.check_connectivity(
            egress_of(call.runtime), plan.kind, plan.config.public, plan.config.secrets
        )
        if result.status != "ok":
            raise ProviderCheckFailed(
                f"The connectivity check failed: {result.detail}",
                details={"check": result.as_dict()},
            )
    service.check_create_reserved(call.actor, plan)
    unverified = oauth_kind and not plan.check
    store = secret_store_of(call.runtime)
    row = await call.run(service.create_provider, store, zone_id, plan, unverified, status_code=201)
    return call.respond(row, 201)


@router.post(BASE + "/discovery", auth="W", body=DiscoveryRequest, response_model=DiscoveryOut)
async def discover_provider(call: Call = Depends(get_call)) -> Response:
    """Fetch an issuer's OIDC / OAuth metadata (nothing is stored)."""
    zone_id = call.path["zoneId"]
    async with call.raw_read() as db:
        await require_zone(db, zone_id)
    payload = call.body(DiscoveryRequest, code=INVALID_ISSUER)
    try:
        discovery.check_issuer(payload.issuer)
    except discovery.IssuerInvalid:
        raise InvalidIssuer() from None
    retry = await limits.hit(call.runtime, "providerdiscovery", zone_id)
    if retry is not None:
        raise ProviderDiscoveryRateLimited(retry)
    try:
        result = await discovery.discover(egress_of(call.runtime), payload.issuer)
    except discovery.DiscoveryFailed as exc:
        raise ProviderDiscoveryFailed(str(exc)) from None
    await call.record_success(200, result)
    return call.respond(result)


@router.patch(BASE + "/{id}", auth="W", body=ProviderUpdate, response_model=Provider)
async def update_provider(call: Call = Depends(get_call)) -> Response:
    """Rename, re-identify, change kind or config; sent secrets replace the sealed document."""
    payload = call.body(ProviderUpdate, code=INVALID_PROVIDER)
    fields = service.plan_update(call.actor, payload)
    store = secret_store_of(call.runtime)
    row = await call.run(
        service.update_provider, store, call.path["zoneId"], call.path["id"], fields
    )
    return call.respond(row)


@router.delete(BASE + "/{id}", auth="W", status_code=204)
async def delete_provider(call: Call = Depends(get_call)) -> Response:
    """Archive a provider and delete its sealed secrets; the identifier becomes reusable."""
    store = secret_store_of(call.runtime)
    await call.run(
        service.delete_provider, store, call.path["zoneId"], call.path["id"], status_code=204
    )
    return call.respond(None, 204)


@router.post(BASE + "/{id}/test", auth="W", response_model=CheckOut)
async def run_provider_check(call: Call = Depends(get_call)) -> Response:
    """Run the OAuth connectivity check against the stored configuration."""
    zone_id, provider_id = call.path["zoneId"], call.path["id"]
    async with call.read() as session:
        row = await service.require_provider(session, zone_id, provider_id)
    if row.provider_kind not in OAUTH_KINDS:
        raise ProviderCheckUnsupported()
    retry = await limits.hit(call.runtime, "providertest", zone_id)
    if retry is not None:
        raise ProviderTestRateLimited(retry)
    store = secret_store_of(call.runtime)
    async with call.read() as session:
        secrets = await service.read_secrets(session, store, zone_id, provider_id)
    result = await oauth.check_connectivity(
        egress_of(call.runtime), row.provider_kind, dict(row.config_json), secrets
    )
    out = await call.run(service.record_check, zone_id, provider_id, result.as_dict())
    return call.respond(out)
