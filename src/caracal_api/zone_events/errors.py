"""Zone-event read errors (events.md §9)."""

from __future__ import annotations

from caracal_api.errors import BadRequest, NotFound


class InvalidFields(BadRequest):
    code = "invalid_fields"
    description = "The fields parameter names no field or an unknown field."


class RequestNotFound(NotFound):
    code = "request_not_found"
    description = "No audit event of this zone carries this request id."
