"""The policy template catalog, TP1 (policies.md §7)."""

from __future__ import annotations

from fastapi import Depends
from starlette.responses import Response

from caracal_api.kit.call import Call, get_call
from caracal_api.kit.routing import CaracalRouter
from caracal_api.templates.catalog import catalog
from caracal_api.templates.schemas import PolicyTemplateList

router = CaracalRouter(tags=["policy-templates"])


@router.get("/v1/policy-templates", auth="R", response_model=PolicyTemplateList)
async def list_policy_templates(call: Call = Depends(get_call)) -> Response:
    """The built-in data-document templates, as a plain array."""
    return call.respond(catalog())
