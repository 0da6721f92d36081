"""Grant errors (objects.md §5)."""

from __future__ import annotations

from caracal_api.errors import Forbidden, NotFound

INVALID_BODY = "invalid_body"


class GrantNotFound(NotFound):
    code = "grant_not_found"
    description = "The grant does not exist in this zone."


class GrantScopesExceedResource(Forbidden):
    code = "grant_scopes_exceed_resource"
    description = "Every grant scope must be one of the resource's scopes."


class ControlResourceNotGrantable(Forbidden):
    code = "control_resource_not_grantable"
    description = "Grants on the control resource are not allowed."
