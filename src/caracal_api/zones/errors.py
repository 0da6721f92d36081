from caracal_api.errors import BadRequest, Conflict, NotFound


class ZoneNotFound(NotFound):
    code = "zone_not_found"
    description = "The zone does not exist or is archived."


class ZoneSlugConflict(Conflict):
    code = "zone_slug_conflict"
    description = "Another zone already uses this slug."


class DcrShutdownNotApplicable(BadRequest):
    code = "dcr_shutdown_not_applicable"
    description = "dcr_shutdown is only accepted together with dcr_enabled: false."


class DcrShutdownRequired(Conflict):
    code = "dcr_shutdown_required"
    description = (
        "The zone has live DCR applications: send dcr_shutdown (keep_live or revoke_live)."
    )


INVALID_ZONE = "invalid_zone"
