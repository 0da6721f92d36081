"""Application routes A1–A8 (objects.md §2)."""

from __future__ import annotations

from fastapi import Depends
from starlette.responses import Response

from caracal_api.applications import service
from caracal_api.applications.errors import INVALID_APPLICATION, DcrRateLimitExceeded
from caracal_api.applications.schemas import (
    Application,
    ApplicationCreate,
    ApplicationList,
    ApplicationUpdate,
    DcrCreate,
    IssuedApplication,
    RevealedSecret,
)
from caracal_api.applications.secrets import hash_client_secret, new_client_secret
from caracal_api.kit.call import Call, get_call
from caracal_api.kit.pagination import page, page_params
from caracal_api.kit.patch import changes_of
from caracal_api.kit.routing import CaracalRouter
from caracal_api.providers import limits
from caracal_api.secret_store.service import secret_store_of
from caracal_api.zones.service import require_zone

router = CaracalRouter(tags=["applications"])

BASE = "/v1/zones/{zoneId}/applications"


@router.get(BASE, auth="R", response_model=ApplicationList)
async def list_applications(call: Call = Depends(get_call)) -> Response:
    """List the zone's active (default) or archived applications."""
    status = call.query.enum("status", ("active", "archived"), "active")
    params = page_params(call.query)
    async with call.read() as session:
        rows = await service.list_applications(
            session, call.path["zoneId"], status == "archived", params.limit, params.cursor
        )
    with_traits = call.actor.is_global
    items = [service.read_shape(r, with_traits=with_traits) for r in rows]
    return call.respond(page(items, rows, params.limit))


@router.get(BASE + "/{id}", auth="R", response_model=Application)
async def get_application(call: Call = Depends(get_call)) -> Response:
    """Read a live application (no secret; zone tokens do not see traits)."""
    async with call.read() as session:
        row = await service.require_application(session, call.path["zoneId"], call.path["id"])
    return call.respond(service.read_shape(row, with_traits=call.actor.is_global))


@router.post(
    BASE, auth="W", status_code=201, body=ApplicationCreate, response_model=IssuedApplication
)
async def create_application(call: Call = Depends(get_call)) -> Response:
    """Create a managed application; the client secret is returned only here."""
    zone_id = call.path["zoneId"]
    async with call.raw_read() as db:
        await require_zone(db, zone_id)
    payload = call.body(ApplicationCreate, code=INVALID_APPLICATION)
    service.check_name(call.actor, payload.name)
    service.check_traits_of(call.actor, payload.traits)
    async with call.read() as session:
        await service.ensure_name_free(session, zone_id, payload.name)
    secret, secret_hash = await new_client_secret()
    store = secret_store_of(call.runtime)
    result = await call.run(
        service.create_application, store, zone_id, payload, secret, secret_hash, status_code=201
    )
    return call.respond(result, 201)


@router.post(
    BASE + "/dcr", auth="W", status_code=201, body=DcrCreate, response_model=IssuedApplication
)
async def register_dcr_application(call: Call = Depends(get_call)) -> Response:
    """Register a short-lived application by dynamic client registration."""
    zone_id = call.path["zoneId"]
    payload = call.body(DcrCreate, code=INVALID_APPLICATION)
    service.check_name(call.actor, payload.name)
    retry = await limits.hit(call.runtime, "dcr", f"{zone_id}:{call.actor.id}")
    if retry is not None:
        raise DcrRateLimitExceeded(retry)
    secret, secret_hash = await new_client_secret()
    result = await call.run(
        service.register_dcr, zone_id, payload, secret, secret_hash, status_code=201
    )
    return call.respond(result, 201)


@router.post(BASE + "/{id}/rotate-secret", auth="W", response_model=IssuedApplication)
async def rotate_application_secret(call: Call = Depends(get_call)) -> Response:
    """Issue a new client secret; the old one stops verifying."""
    secret, secret_hash = await new_client_secret()
    store = secret_store_of(call.runtime)
    result = await call.run(
        service.rotate_secret,
        store,
        call.path["zoneId"],
        call.path["id"],
        secret,
        secret_hash,
    )
    return call.respond(result)


@router.get(BASE + "/{id}/client-secret", auth="W", head=False, response_model=RevealedSecret)
async def reveal_application_secret(call: Call = Depends(get_call)) -> Response:
    """Reveal the stored client secret; recorded as a credential_revealed audit event."""
    store = secret_store_of(call.runtime)
    ctx = call.write_context()
    async with call.runtime.sessionmaker() as session, session.begin():
        secret = await service.reveal_secret(
            session,
            store,
            call.path["zoneId"],
            call.path["id"],
            request_id=call.request_id,
            actor_label=ctx.actor_label,
            audit_key=call.runtime.settings.audit_hmac_key,
        )
    return call.respond({"client_secret": secret})


@router.patch(BASE + "/{id}", auth="W", body=ApplicationUpdate, response_model=Application)
async def update_application(call: Call = Depends(get_call)) -> Response:
    """Rename, replace traits or set a caller-chosen client secret."""
    payload = call.body(ApplicationUpdate, code=INVALID_APPLICATION)
    service.check_name(call.actor, payload.name)
    service.check_traits_of(call.actor, payload.traits)
    fields = changes_of(payload)
    secret_hash = None
    if "client_secret" in fields:
        secret_hash = await hash_client_secret(fields["client_secret"])
    store = secret_store_of(call.runtime)
    result = await call.run(
        service.update_application,
        store,
        call.path["zoneId"],
        call.path["id"],
        fields,
        secret_hash,
    )
    return call.respond(result)


@router.delete(BASE + "/{id}", auth="W", status_code=204)
async def delete_application(call: Call = Depends(get_call)) -> Response:
    """Archive an application and drop its stored secret; its name becomes reusable."""
    store = secret_store_of(call.runtime)
    await call.run(
        service.delete_application, store, call.path["zoneId"], call.path["id"], status_code=204
    )
    return call.respond(None, 204)
