from caracal_api.errors import BadRequest, Forbidden, NotFound


class ZoneIdRequired(BadRequest):
    code = "zone_id_required"
    description = "A zone-scoped token needs a zone_id."


class ZoneIdNotAllowedForGlobal(BadRequest):
    code = "zone_id_not_allowed_for_global"
    description = "A global token cannot name a zone_id."


class ApproveMintRequiresBootstrap(Forbidden):
    code = "approve_mint_requires_bootstrap"
    description = "Only the bootstrap token may mint tokens with the approve capability."


class AdminTokenNotFound(NotFound):
    code = "admin_token_not_found"
    description = "The admin token does not exist or is already revoked."


INVALID_REQUEST = "invalid_admin_token_request"
