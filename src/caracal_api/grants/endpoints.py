"""Grant routes G1–G4 (objects.md §5)."""

from __future__ import annotations

from fastapi import Depends
from starlette.responses import Response

from caracal_api.grants import service
from caracal_api.grants.errors import INVALID_BODY
from caracal_api.grants.schemas import Grant, GrantCreate, GrantCreated, GrantList
from caracal_api.kit.call import Call, get_call
from caracal_api.kit.pagination import page, page_params
from caracal_api.kit.routing import CaracalRouter
from caracal_api.zones.service import require_zone

router = CaracalRouter(tags=["grants"])

BASE = "/v1/zones/{zoneId}/grants"


@router.get(BASE, auth="R", response_model=GrantList)
async def list_grants(call: Call = Depends(get_call)) -> Response:
    """List grants with application, resource and provider names; filters combine."""
    params = page_params(call.query)
    filters = service.read_filters(call.query, call.request.scope.get("query_string", b""))
    async with call.read() as session:
        rows = await service.list_grants(
            session, call.path["zoneId"], filters, params.limit, params.cursor
        )
    return call.respond(page([service.list_item(r) for r in rows], rows, params.limit))


@router.get(BASE + "/{id}", auth="R", response_model=Grant)
async def get_grant(call: Call = Depends(get_call)) -> Response:
    """Read a grant in any status."""
    async with call.read() as session:
        row = await service.require_grant(session, call.path["zoneId"], call.path["id"])
    return call.respond(service.detail_shape(row))


@router.post(BASE, auth="W", status_code=201, body=GrantCreate, response_model=GrantCreated)
async def create_grant(call: Call = Depends(get_call)) -> Response:
    """Grant a subject some of a resource's scopes through an application."""
    zone_id = call.path["zoneId"]
    async with call.raw_read() as db:
        await require_zone(db, zone_id)
    payload = call.body(GrantCreate, code=INVALID_BODY)
    row = await call.run(service.create_grant, zone_id, payload, status_code=201)
    return call.respond(row, 201)


@router.delete(BASE + "/{id}", auth="W", status_code=204)
async def revoke_grant(call: Call = Depends(get_call)) -> Response:
    """Revoke a grant and every active authority record of its subject in the zone."""
    await call.run(service.revoke_grant, call.path["zoneId"], call.path["id"], status_code=204)
    return call.respond(None, 204)
