"""Policy routes PO1–PO6 (policies.md §4)."""

from __future__ import annotations

from fastapi import Depends
from starlette.responses import Response

from caracal_api.auth.gates import check_reserved
from caracal_api.errors import RateLimited
from caracal_api.kit.call import Call, get_call
from caracal_api.kit.pagination import page, page_params
from caracal_api.kit.routing import CaracalRouter
from caracal_api.policies import service
from caracal_api.policies.errors import INVALID_BODY
from caracal_api.policies.hook import rego_engine
from caracal_api.policies.schemas import (
    PolicyCreate,
    PolicyCreated,
    PolicyDetail,
    PolicyList,
    PolicyValidate,
    PolicyVersionCreate,
    PolicyVersionCreated,
    ValidateResult,
)
from caracal_api.zones.service import require_zone

router = CaracalRouter(tags=["policies"])


@router.post("/v1/policies/validate", auth="R", body=PolicyValidate, response_model=ValidateResult)
async def validate_policy(call: Call = Depends(get_call)) -> Response:
    """Validate Rego content: static rules, then a real compile with the decision contract."""
    retry = await call.runtime.limiters.validate.hit(call.actor.id)
    if retry is not None:
        raise RateLimited(retry)
    payload = call.body(PolicyValidate, code=INVALID_BODY)
    result = await service.validate(rego_engine(call.runtime), payload.content)
    await call.record_success(200, result)
    return call.respond(result)


@router.get("/v1/zones/{zoneId}/policies", auth="R", response_model=PolicyList)
async def list_policies(call: Call = Depends(get_call)) -> Response:
    """List the zone's live policies."""
    params = page_params(call.query)
    async with call.read() as session:
        items, rows = await service.list_policies(
            session, call.path["zoneId"], params.limit, params.cursor
        )
    return call.respond(page(items, rows, params.limit))


@router.post(
    "/v1/zones/{zoneId}/policies",
    auth="W",
    status_code=201,
    body=PolicyCreate,
    response_model=PolicyCreated,
)
async def create_policy(call: Call = Depends(get_call)) -> Response:
    """Create a policy with its first version (validated and compiled first)."""
    zone_id = call.path["zoneId"]
    async with call.raw_read() as db:
        await require_zone(db, zone_id)
    payload = call.body(PolicyCreate, code=INVALID_BODY)
    check_reserved(call.actor, payload.name, service.RESERVED_NAME_PREFIX)
    await service.check_content(rego_engine(call.runtime), payload.content)
    result = await call.run(service.create_policy, zone_id, payload, status_code=201)
    return call.respond(result, 201)


@router.get("/v1/zones/{zoneId}/policies/{id}", auth="R", response_model=PolicyDetail)
async def get_policy(call: Call = Depends(get_call)) -> Response:
    """Read a live policy with every version, newest first."""
    async with call.read() as session:
        result = await service.get_policy(session, call.path["zoneId"], call.path["id"])
    return call.respond(result)


@router.post(
    "/v1/zones/{zoneId}/policies/{id}/versions",
    auth="W",
    status_code=201,
    body=PolicyVersionCreate,
    response_model=PolicyVersionCreated,
)
async def create_policy_version(call: Call = Depends(get_call)) -> Response:
    """Add an immutable version to a policy (validated and compiled first)."""
    payload = call.body(PolicyVersionCreate, code=INVALID_BODY)
    await service.check_content(rego_engine(call.runtime), payload.content)
    result = await call.run(
        service.add_version,
        call.path["zoneId"],
        call.path["id"],
        payload.content,
        status_code=201,
    )
    return call.respond(result, 201)


@router.delete("/v1/zones/{zoneId}/policies/{id}", auth="W", status_code=204)
async def delete_policy(call: Call = Depends(get_call)) -> Response:
    """Archive a policy; its versions stay valid in existing manifests."""
    await call.run(service.delete_policy, call.path["zoneId"], call.path["id"], status_code=204)
    return call.respond(None, 204)
