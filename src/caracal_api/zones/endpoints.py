"""Zone routes Z1–Z7 (foundation §16)."""

from __future__ import annotations

from fastapi import Depends
from starlette.responses import Response

from caracal_api.kit.call import Call, get_call
from caracal_api.kit.pagination import page, page_params
from caracal_api.kit.routing import CaracalRouter
from caracal_api.zones import service
from caracal_api.zones.errors import INVALID_ZONE
from caracal_api.zones.schemas import DcrStatus, Zone, ZoneCreate, ZoneList, ZoneUpdate

router = CaracalRouter(tags=["zones"])


@router.get("/v1/zones", auth="R", response_model=ZoneList)
async def list_zones(call: Call = Depends(get_call)) -> Response:
    """List live zones (reserved system zones are hidden)."""
    params = page_params(call.query)
    async with call.read() as session:
        items, rows = await service.list_zones(session, params.limit, params.cursor)
    return call.respond(page(items, rows, params.limit))


@router.post("/v1/zones", auth="W", status_code=201, body=ZoneCreate, response_model=Zone)
async def create_zone(call: Call = Depends(get_call)) -> Response:
    """Create a zone; the slug is generated from the name unless given."""
    payload = call.body(ZoneCreate, code=INVALID_ZONE)
    service.check_create_namespace(call.actor, payload)
    zone = await call.run(
        service.create_zone, payload, status_code=201, audit_zone=lambda z: z["id"]
    )
    return call.respond(zone, 201)


@router.get("/v1/zones/{id}", auth="R", response_model=Zone)
async def get_zone(call: Call = Depends(get_call)) -> Response:
    """Read a live zone (reserved zones included)."""
    async with call.read() as session:
        zone = await service.get_zone(session, call.path["id"])
    return call.respond(zone)


@router.get("/v1/zones/{id}/dcr-status", auth="R", response_model=DcrStatus)
async def get_dcr_status(call: Call = Depends(get_call)) -> Response:
    """Whether DCR is enabled and how many DCR applications are live."""
    async with call.read() as session:
        status = await service.dcr_status(session, call.path["id"])
    return call.respond(status)


@router.patch("/v1/zones/{id}", auth="W", body=ZoneUpdate, response_model=Zone)
async def update_zone(call: Call = Depends(get_call)) -> Response:
    """Rename, re-slug, toggle DCR (with its shutdown modes) or set the operator flags."""
    payload = call.body(ZoneUpdate, code=INVALID_ZONE)
    fields = service.check_update_rules(call.actor, payload)
    zone_id = call.path["id"]
    zone = await call.run(service.update_zone, zone_id, fields)
    call.runtime.reserved_zones.pop(zone_id)
    return call.respond(zone)


@router.delete("/v1/zones/{id}", auth="W", status_code=204)
async def delete_zone(call: Call = Depends(get_call)) -> Response:
    """Archive a zone and revoke its zone-scoped admin tokens."""
    digests = await call.run(service.delete_zone, call.path["id"], status_code=204)
    call.runtime.verifier.evict(digests)
    return call.respond(None, 204)


@router.get("/v1/zones/{zoneId}/overview", auth="R")
async def get_zone_overview(call: Call = Depends(get_call)) -> Response:
    """Counts and recent decisions of one zone (unknown zone: zeros)."""
    async with call.read() as session:
        data = await service.overview(session, call.path["zoneId"])
    return call.respond(data)
