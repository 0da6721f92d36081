"""Chain verification routes AA1 and AA2 (foundation §13.6)."""

from __future__ import annotations

from fastapi import Depends
from starlette.responses import Response

from caracal_api.audit.records import GLOBAL_CHAIN
from caracal_api.audit.verify import HTTP_BUDGET, verify_chain
from caracal_api.kit.call import Call, get_call
from caracal_api.kit.routing import CaracalRouter

router = CaracalRouter(tags=["admin-audit"])

MAX_SEQ = 2**63 - 1


async def _verify(call: Call, key: str) -> Response:
    from_seq = call.query.integer("from_seq", 1, MAX_SEQ, 1)
    assert from_seq is not None
    settings = call.runtime.settings
    result = await verify_chain(
        call.runtime.engine,
        key,
        from_seq=from_seq,
        hmac_key=settings.audit_hmac_key,
        previous_keys=settings.audit_hmac_keys_previous,
        budget=HTTP_BUDGET,
    )
    return call.respond(result)


@router.get("/v1/zones/{zoneId}/admin-audit/verify", auth="R")
async def verify_zone_admin_audit(call: Call = Depends(get_call)) -> Response:
    """Recompute the zone's admin-audit chain and report the first break."""
    return await _verify(call, call.path["zoneId"])


@router.get("/v1/admin-audit/verify", auth="MG")
async def verify_global_admin_audit(call: Call = Depends(get_call)) -> Response:
    """Recompute the global admin-audit chain and report the first break."""
    return await _verify(call, GLOBAL_CHAIN)
