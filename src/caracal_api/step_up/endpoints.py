"""Step-up challenge routes S1–S5 (events.md §8)."""

from __future__ import annotations

from fastapi import Depends
from starlette.responses import Response

from caracal_api.kit.call import Call, get_call
from caracal_api.kit.pagination import page, page_params
from caracal_api.kit.routing import CaracalRouter
from caracal_api.step_up import service
from caracal_api.step_up.schemas import (
    Decision,
    DecisionBody,
    StepUpChallenge,
    StepUpChallengeList,
    StepUpCounts,
)

router = CaracalRouter(tags=["step-up-challenges"])

BASE = "/v1/zones/{zoneId}/step-up-challenges"


@router.get(BASE, auth="R", response_model=StepUpChallengeList)
async def list_step_up_challenges(call: Call = Depends(get_call)) -> Response:
    """List challenges with their derived state; filters combine."""
    filters = service.read_filters(call.query)
    params = page_params(call.query)
    async with call.read() as session:
        rows = await service.list_challenges(
            session, call.path["zoneId"], filters, params.limit, params.cursor
        )
    return call.respond(page([service.challenge_shape(r) for r in rows], rows, params.limit))


@router.get(BASE + "/counts", auth="R", response_model=StepUpCounts)
async def count_step_up_challenges(call: Call = Depends(get_call)) -> Response:
    """Challenges of the zone per derived state."""
    async with call.read() as session:
        counts = await service.counts(session, call.path["zoneId"])
    return call.respond(counts)


@router.get(BASE + "/{id}", auth="R", response_model=StepUpChallenge)
async def get_step_up_challenge(call: Call = Depends(get_call)) -> Response:
    """Read one challenge in any state."""
    async with call.read() as session:
        row = await service.require_challenge(session, call.path["zoneId"], call.path["id"])
    return call.respond(service.challenge_shape(row))


async def _decide(call: Call, approve: bool) -> Response:
    reason = service.decision_reason(call.raw_body)
    result = await call.run(
        service.decide,
        call.path["zoneId"],
        call.path["id"],
        approve,
        reason,
        call.runtime.settings.audit_hmac_key,
    )
    return call.respond(result)


@router.post(
    BASE + "/{id}/approve",
    auth="AP",
    body=DecisionBody,
    body_required=False,
    response_model=Decision,
)
async def approve_step_up_challenge(call: Call = Depends(get_call)) -> Response:
    """Approve a pending operator challenge (optional `reason`)."""
    return await _decide(call, approve=True)


@router.post(
    BASE + "/{id}/reject",
    auth="AP",
    body=DecisionBody,
    body_required=False,
    response_model=Decision,
)
async def reject_step_up_challenge(call: Call = Depends(get_call)) -> Response:
    """Reject a pending operator challenge (optional `reason`)."""
    return await _decide(call, approve=False)
