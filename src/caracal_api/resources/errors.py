"""Resource errors (objects.md §4)."""

from __future__ import annotations

from caracal_api.errors import BadRequest, Conflict, NotFound


class ResourceNotFound(NotFound):
    code = "resource_not_found"
    description = "The resource does not exist in this zone or is archived."


class InvalidResourceIdentifier(BadRequest):
    code = "invalid_resource_identifier"
    description = "The resource identifier must be an absolute URI whose scheme is not provider."


class CredentialProviderRequired(BadRequest):
    code = "credential_provider_required"
    description = "A resource needs a credential_provider_id."


class UpstreamUrlRequired(BadRequest):
    code = "upstream_url_required"
    description = "A resource needs an upstream_url."


class OperationMethodAndPathRequired(BadRequest):
    code = "operation_method_and_path_required"
    description = "Every operation needs a method and a path."


class OperationPathMustBeAbsolute(BadRequest):
    code = "operation_path_must_be_absolute"
    description = "Operation paths must start with '/'."


class OperationScopeNotInResourceScopes(BadRequest):
    code = "operation_scope_not_in_resource_scopes"
    description = "An operation's scope must be one of the resource's scopes."


class OperationDuplicate(BadRequest):
    code = "operation_duplicate"
    description = "An operation (method and path) is listed twice."


class ProtectedResource(Conflict):
    code = "protected_resource"
    description = "The control resource can only be changed by a global admin token."


class ResourceIdentifierConflict(Conflict):
    code = "resource_identifier_conflict"
    description = "Another live resource in this zone already uses this identifier."


class ResourceQuotaExceeded(Conflict):
    code = "resource_quota_exceeded"
    description = "The zone has reached its resource limit."
