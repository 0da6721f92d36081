"""Policy-set routes PS1–PS10 (policies.md §5)."""

from __future__ import annotations

from fastapi import Depends
from starlette.responses import Response

from caracal_api.errors import InvalidQuery, issue
from caracal_api.kit.call import Call, get_call
from caracal_api.kit.ids import is_valid_id
from caracal_api.kit.pagination import page, page_params
from caracal_api.kit.routing import CaracalRouter
from caracal_api.policies.hook import rego_engine
from caracal_api.policy_sets import service, status, sts
from caracal_api.policy_sets.errors import INVALID_BODY
from caracal_api.policy_sets.manifest import check_manifest
from caracal_api.policy_sets.schemas import (
    ActivateBody,
    Activated,
    ActivationStatus,
    PolicySet,
    PolicySetCreate,
    PolicySetList,
    PolicySetVersionCreate,
    PolicySetVersionCreated,
    PolicySetVersionDetail,
    PolicySetVersionList,
    SimulateBody,
    SimulateResult,
)
from caracal_api.policy_sets.simulate import simulate
from caracal_api.policy_sets.verification import verify_locally, verify_remotely
from caracal_api.zones.service import require_zone

router = CaracalRouter(tags=["policy-sets"])

BASE = "/v1/zones/{zoneId}/policy-sets"


@router.get(BASE, auth="R", response_model=PolicySetList)
async def list_policy_sets(call: Call = Depends(get_call)) -> Response:
    """List the zone's live policy sets with their active version."""
    params = page_params(call.query)
    async with call.read() as session:
        items, rows = await service.list_sets(
            session, call.path["zoneId"], params.limit, params.cursor
        )
    return call.respond(page(items, rows, params.limit))


@router.post(BASE, auth="W", status_code=201, body=PolicySetCreate, response_model=PolicySet)
async def create_policy_set(call: Call = Depends(get_call)) -> Response:
    """Create a policy set and its (inactive) binding."""
    zone_id = call.path["zoneId"]
    async with call.raw_read() as db:
        await require_zone(db, zone_id)
    payload = call.body(PolicySetCreate, code=INVALID_BODY)
    result = await call.run(service.create_set, zone_id, payload, status_code=201)
    return call.respond(result, 201)


@router.get(BASE + "/{id}", auth="R", response_model=PolicySet)
async def get_policy_set(call: Call = Depends(get_call)) -> Response:
    """Read a live policy set."""
    async with call.read() as session:
        result = await service.get_set(session, call.path["zoneId"], call.path["id"])
    return call.respond(result)


@router.post(
    BASE + "/{id}/versions",
    auth="W",
    status_code=201,
    body=PolicySetVersionCreate,
    response_model=PolicySetVersionCreated,
)
async def create_policy_set_version(call: Call = Depends(get_call)) -> Response:
    """Add an immutable manifest version after the contract check and bundle verification."""
    zone_id, set_id = call.path["zoneId"], call.path["id"]
    payload = call.body(PolicySetVersionCreate, code=INVALID_BODY)
    ids = [entry.policy_version_id for entry in payload.manifest]
    async with call.read() as session:
        await service.require_live_set(session, zone_id, set_id)
    async with call.raw_read() as db:
        checked = await check_manifest(db, zone_id, ids)
    await verify_locally(rego_engine(call.runtime), checked.modules)
    await verify_remotely(
        sts.client_of(call.runtime.settings), set_id, checked.modules, tolerate_unreachable=False
    )
    result = await call.run(service.add_version, zone_id, set_id, ids, checked, status_code=201)
    return call.respond(result, 201)


@router.get(BASE + "/{id}/versions", auth="R", response_model=PolicySetVersionList)
async def list_policy_set_versions(call: Call = Depends(get_call)) -> Response:
    """List the versions of a live policy set, newest first."""
    params = page_params(call.query)
    async with call.read() as session:
        items, rows = await service.list_versions(
            session, call.path["zoneId"], call.path["id"], params.limit, params.cursor
        )
    return call.respond(page(items, rows, params.limit))


@router.get(BASE + "/{id}/versions/{versionId}", auth="R", response_model=PolicySetVersionDetail)
async def get_policy_set_version(call: Call = Depends(get_call)) -> Response:
    """Read one version with its manifest (archived sets included)."""
    async with call.read() as session:
        result = await service.get_version(
            session, call.path["zoneId"], call.path["id"], call.path["versionId"]
        )
    return call.respond(result)


@router.post(
    BASE + "/{id}/activate",
    auth="W",
    status_code=202,
    body=ActivateBody,
    response_model=Activated,
)
async def activate_policy_set(call: Call = Depends(get_call)) -> Response:
    """Make a version the zone's active policy and enqueue its invalidation event."""
    zone_id, set_id = call.path["zoneId"], call.path["id"]
    payload = call.body(ActivateBody, code=INVALID_BODY)
    async with call.raw_read() as db:
        _, _, checked = await service.checked_version(db, zone_id, set_id, payload.version_id)
    await verify_locally(rego_engine(call.runtime), checked.modules)
    await verify_remotely(
        sts.client_of(call.runtime.settings), set_id, checked.modules, tolerate_unreachable=True
    )
    result = await call.run(
        service.activate, zone_id, set_id, payload.version_id, status_code=202, on_driver=True
    )
    return call.respond(result, 202)


def _id_query(call: Call, name: str) -> str | None:
    value = call.query.string(name, 1, 128)
    if value is not None and not is_valid_id(value):
        message = "must match ^[A-Za-z0-9_.\\-:]{1,128}$"
        raise InvalidQuery(
            f"Query parameter {name!r} {message}.", details={"issues": [issue([name], message)]}
        )
    return value


@router.get(BASE + "/{id}/activation-status", auth="R", response_model=ActivationStatus)
async def get_activation_status(call: Call = Depends(get_call)) -> Response:
    """Where a version stands: binding, invalidation event and (optionally) the STS."""
    version_id = _id_query(call, "version_id")
    outbox_id = _id_query(call, "outbox_id")
    async with call.read() as session:
        partial, target = await status.read_status(
            session, call.path["zoneId"], call.path["id"], version_id, outbox_id
        )
    result = await status.activation_status(partial, target, sts.client_of(call.runtime.settings))
    return call.respond(result)


@router.post(BASE + "/{id}/simulate", auth="W", body=SimulateBody, response_model=SimulateResult)
async def simulate_policy_set(call: Call = Depends(get_call)) -> Response:
    """Dry-run a version: contract check, bundle build and (with input) a local decision."""
    zone_id, set_id = call.path["zoneId"], call.path["id"]
    payload = call.body(SimulateBody, code=INVALID_BODY)
    async with call.raw_read() as db:
        version, ids, checked = await service.checked_version(
            db, zone_id, set_id, payload.version_id
        )
    engine = rego_engine(call.runtime)
    await verify_locally(engine, checked.modules)
    result = await simulate(
        engine,
        sts.client_of(call.runtime.settings),
        zone_id=zone_id,
        set_id=set_id,
        version=version,
        ids=ids,
        checked=checked,
        document=payload.input,
    )
    await call.record_success(200, result)
    return call.respond(result)


@router.delete(BASE + "/{id}", auth="W", status_code=204)
async def delete_policy_set(call: Call = Depends(get_call)) -> Response:
    """Archive a policy set; an active binding is cleared and invalidated."""
    await call.run(service.delete_set, call.path["zoneId"], call.path["id"], status_code=204)
    return call.respond(None, 204)
