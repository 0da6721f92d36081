"""Provider errors (objects.md §3)."""

from __future__ import annotations

from caracal_api.errors import BadRequest, Conflict, NotFound, RateLimited, Unprocessable

INVALID_PROVIDER = "invalid_provider"
INVALID_ISSUER = "invalid_issuer"


class ProviderNotFound(NotFound):
    code = "provider_not_found"
    description = "The provider does not exist in this zone or is archived."


class InvalidProviderIdentifier(BadRequest):
    code = "invalid_provider_identifier"
    description = (
        "Provider identifiers look like provider://lower-case-words (at most 512 characters)."
    )


class ProviderConfigRequired(BadRequest):
    code = "provider_config_required"
    description = "Changing kind needs a config_json for the new kind."


class ProviderCheckUnsupported(BadRequest):
    code = "provider_check_unsupported"
    description = "Connectivity checks exist only for OAuth providers."


class InvalidIssuer(BadRequest):
    code = INVALID_ISSUER
    description = "The issuer must be an https URL without user information, query or fragment."


class ProviderIdentifierConflict(Conflict):
    code = "provider_identifier_conflict"
    description = "Another live provider in this zone already uses this identifier."


class ProviderCheckFailed(Unprocessable):
    code = "provider_check_failed"
    description = "The provider connectivity check failed; nothing was created."


class ProviderDiscoveryFailed(Unprocessable):
    code = "provider_discovery_failed"
    description = "The issuer's authorization server metadata could not be used."


class ProviderTestRateLimited(RateLimited):
    code = "provider_test_rate_limited"
    description = "Too many provider checks in this zone; retry in a minute."


class ProviderDiscoveryRateLimited(RateLimited):
    code = "provider_discovery_rate_limited"
    description = "Too many discovery requests in this zone; retry in a minute."
