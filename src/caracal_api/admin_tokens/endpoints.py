"""Admin-token routes T1–T3 (foundation §17)."""

from __future__ import annotations

from fastapi import Depends
from starlette.responses import Response

from caracal_api.admin_tokens import repository as repo
from caracal_api.admin_tokens import service
from caracal_api.admin_tokens.errors import INVALID_REQUEST
from caracal_api.admin_tokens.schemas import AdminTokenCreate, AdminTokenCreated, AdminTokenList
from caracal_api.kit.call import Call, get_call
from caracal_api.kit.pagination import page, page_params
from caracal_api.kit.routing import CaracalRouter

router = CaracalRouter(tags=["admin-tokens"])


@router.post(
    "/v1/admin-tokens",
    auth="MG",
    status_code=201,
    body=AdminTokenCreate,
    response_model=AdminTokenCreated,
)
async def create_admin_token(call: Call = Depends(get_call)) -> Response:
    """Mint an admin token; the plaintext is returned only in this response."""
    payload = call.body(AdminTokenCreate, code=INVALID_REQUEST)
    service.check_mint_rules(payload, call.actor)
    prepared = await service.prepare_token()
    token = await call.run(service.create_token, payload, prepared, status_code=201)
    return call.respond(token, 201)


@router.get("/v1/admin-tokens", auth="MG", response_model=AdminTokenList)
async def list_admin_tokens(call: Call = Depends(get_call)) -> Response:
    """Every admin token, revoked ones included; never the secret parts."""
    params = page_params(call.query)
    async with call.read() as session:
        rows = await repo.list_tokens(session, params.limit, params.cursor)
    return call.respond(page([service.token_out(r) for r in rows], rows, params.limit))


@router.delete("/v1/admin-tokens/{id}", auth="MG", status_code=204)
async def revoke_admin_token(call: Call = Depends(get_call)) -> Response:
    """Revoke an admin token (any, including the caller's own)."""
    digest = await call.run(service.revoke_token, call.path["id"], status_code=204)
    call.runtime.verifier.evict([digest])
    return call.respond(None, 204)
