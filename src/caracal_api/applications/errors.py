"""Application errors (objects.md §2)."""

from __future__ import annotations

from caracal_api.errors import BadRequest, Conflict, Forbidden, NotFound, RateLimited

INVALID_APPLICATION = "invalid_application"


class ApplicationNotFound(NotFound):
    code = "application_not_found"
    description = "The application does not exist in this zone or is archived."


class ClientSecretNotStored(NotFound):
    code = "client_secret_not_stored"
    description = "No revealable copy of this application's client secret is stored."


class ApplicationNameTaken(Conflict):
    code = "application_name_taken"
    description = "A live managed application in this zone already has this name."


class ClientSecretNotConfigured(BadRequest):
    code = "client_secret_not_configured"
    description = "This application has no client secret to replace."


class DcrDisabled(Forbidden):
    code = "dcr_disabled"
    description = "Dynamic client registration is disabled in this zone."


class DcrRateLimitExceeded(RateLimited):
    code = "dcr_rate_limit_exceeded"
    description = "Too many dynamic client registrations in a burst; retry shortly."


class DcrLimitExceeded(RateLimited):
    code = "dcr_limit_exceeded"
    description = "The zone has reached its limit of live DCR applications."
