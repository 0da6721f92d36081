"""Resource routes R1–R5 (objects.md §4)."""

from __future__ import annotations

from fastapi import Depends
from starlette.responses import Response

from caracal_api.errors import CaracalError
from caracal_api.kit.call import Call, get_call
from caracal_api.kit.pagination import page_params
from caracal_api.kit.patch import changes_of
from caracal_api.kit.routing import CaracalRouter
from caracal_api.kit.wirejson import VersionedDocuments
from caracal_api.resources import service
from caracal_api.resources.quota import QuotaGate
from caracal_api.resources.schemas import Resource, ResourceCreate, ResourceList, ResourceUpdate
from caracal_api.resources.service import INVALID_RESOURCE
from caracal_api.zones.service import require_zone

router = CaracalRouter(tags=["resources"])

BASE = "/v1/zones/{zoneId}/resources"
# Per process: room for ~300 full pages of typical (~1 KB) resources.
PAGE_CACHE_BYTES = 32 * 1024 * 1024


@router.get(BASE, auth="R", response_model=ResourceList)
async def list_resources(call: Call = Depends(get_call)) -> Response:
    """List the zone's active (default) or archived resources."""
    status = call.query.enum("status", ("active", "archived"), "active")
    params = page_params(call.query)
    pages = call.runtime.service("resource_pages", lambda: VersionedDocuments(PAGE_CACHE_BYTES))
    async with call.raw_read() as db:
        result = await service.list_page(
            db, pages, call.actor, call.path["zoneId"], status == "archived", params
        )
    return call.respond(result)


@router.get(BASE + "/{id}", auth="R", response_model=Resource)
async def get_resource(call: Call = Depends(get_call)) -> Response:
    """Read a live resource."""
    async with call.raw_read() as db:
        doc = await service.require_document(db, call.actor, call.path["zoneId"], call.path["id"])
    return call.respond(doc)


@router.post(BASE, auth="W", status_code=201, body=ResourceCreate, response_model=Resource)
async def create_resource(call: Call = Depends(get_call)) -> Response:
    """Create a resource (identifier generated from the name unless given)."""
    zone_id = call.path["zoneId"]
    try:
        payload = call.body(ResourceCreate, code=INVALID_RESOURCE)
        service.check_create_body(payload)
    except CaracalError:
        # A missing zone answers before a bad body; the create itself checks the zone in
        # its transaction, so a valid body costs no separate read.
        async with call.raw_read() as db:
            await require_zone(db, zone_id)
        raise
    quota = call.runtime.settings.api_max_resources_per_zone
    gate = call.runtime.service("resource_quota", QuotaGate)
    row = await call.run(
        service.create_resource, zone_id, payload, quota, gate, status_code=201, on_driver=True
    )
    return call.respond(row, 201)


@router.patch(BASE + "/{id}", auth="W", body=ResourceUpdate, response_model=Resource)
async def update_resource(call: Call = Depends(get_call)) -> Response:
    """Change a resource; `upstream_url` and `credential_provider_id` accept null."""
    payload = call.body(ResourceUpdate, code=INVALID_RESOURCE)
    fields = changes_of(payload)
    if "operations" in fields and fields["operations"] is not None:
        fields["operations"] = [op.model_dump() for op in payload.operations or []]
    row = await call.run(service.update_resource, call.path["zoneId"], call.path["id"], fields)
    return call.respond(row)


@router.delete(BASE + "/{id}", auth="W", status_code=204)
async def delete_resource(call: Call = Depends(get_call)) -> Response:
    """Archive a resource (grants stay as they are); the identifier becomes reusable."""
    await call.run(service.delete_resource, call.path["zoneId"], call.path["id"], status_code=204)
    return call.respond(None, 204)
