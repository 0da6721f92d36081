"""The one error tree of caracal-api.

Every failure a client can see is a `CaracalError`: it carries the HTTP status, the stable
`error` code and a human sentence, and is rendered by exactly one handler into the envelope
of CONTRACT §5 (`kit/http.py`). Domain packages subclass the status classes below in their
own `errors.py`, one class per code, so the code and its default sentence live together.
"""

from __future__ import annotations

from typing import Any, ClassVar


class CaracalError(Exception):
    """Base of every client-visible error."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    description: ClassVar[str] = "The server hit an unexpected error."

    def __init__(
        self,
        description: str | None = None,
        *,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.error_description = description or self.description
        self.details = details
        self.headers = headers or {}
        # Extra top-level envelope keys kept for compatibility (`state`, `valid`, `ok`, ...).
        self.extra = extra or {}
        super().__init__(self.error_description)

    def body(self, request_id: str) -> dict[str, Any]:
        out: dict[str, Any] = {
            "error": self.code,
            "error_description": self.error_description,
            "request_id": request_id,
        }
        if self.details is not None:
            out["details"] = self.details
        out.update(self.extra)
        return out


class BadRequest(CaracalError):
    status = 400
    code = "bad_request"
    description = "The request is malformed."


class Unauthorized(CaracalError):
    status = 401
    code = "unauthorized"
    description = "Authentication is required."


class Forbidden(CaracalError):
    status = 403
    code = "forbidden"
    description = "The credentials do not allow this request."


class NotFound(CaracalError):
    status = 404
    code = "not_found"
    description = "No route matches this path."


class MethodNotAllowed(CaracalError):
    status = 405
    code = "method_not_allowed"
    description = "This method is not allowed on this path."


class Conflict(CaracalError):
    status = 409
    code = "conflict"
    description = "The request conflicts with the current state."


class PayloadTooLarge(CaracalError):
    status = 413
    code = "payload_too_large"
    description = "The request body is larger than the server accepts."


class UnsupportedMediaType(CaracalError):
    status = 415
    code = "unsupported_media_type"
    description = "Request bodies must be JSON (application/json; charset=utf-8)."


class Unprocessable(CaracalError):
    status = 422
    code = "unprocessable"
    description = "The request is well-formed but cannot be processed."


class RateLimited(CaracalError):
    status = 429
    code = "rate_limited"
    description = "Too many requests; retry later."

    def __init__(self, retry_after: int, description: str | None = None) -> None:
        super().__init__(description, headers={"Retry-After": str(max(1, int(retry_after)))})


class BadGateway(CaracalError):
    status = 502
    code = "bad_gateway"
    description = "An upstream dependency failed."


class ServiceUnavailable(CaracalError):
    status = 503
    code = "service_unavailable"
    description = "A dependency is unavailable; retry later."


class InternalError(CaracalError):
    status = 500
    code = "internal_error"
    description = "The server hit an unexpected error."


# --- cross-cutting codes (foundation §5) -------------------------------------------------


class InvalidJson(BadRequest):
    code = "invalid_json"
    description = "The request body is not valid JSON."


class InvalidParams(BadRequest):
    code = "invalid_params"
    description = "A path parameter is not a valid identifier."


class InvalidQuery(BadRequest):
    code = "invalid_query"
    description = "A query parameter is invalid."


class InvalidCursor(BadRequest):
    code = "invalid_cursor"
    description = "The cursor cannot be decoded."


class NoFields(BadRequest):
    code = "no_fields"
    description = "The request changes nothing: send at least one field."


class InvalidAdminToken(Unauthorized):
    code = "invalid_admin_token"
    description = "The admin token is missing, malformed, unknown or revoked."


class AdminTokenReadOnly(Forbidden):
    code = "admin_token_read_only"
    description = "This admin token has read capability only."


class AdminTokenApproveOnly(Forbidden):
    code = "admin_token_approve_only"
    description = "This admin token has approve capability only."


class ApproveCapabilityRequired(Forbidden):
    code = "approve_capability_required"
    description = "This route needs an admin token with approve capability."


class AdminTokenZoneMismatch(Forbidden):
    code = "admin_token_zone_mismatch"
    description = "This zone-scoped admin token does not cover this route."


class SystemZoneReadOnly(Forbidden):
    code = "system_zone_read_only"
    description = "Reserved system zones can only be changed by the bootstrap token."


class ReservedNamespace(Conflict):
    code = "reserved_namespace"
    description = "This value is in a namespace reserved for the platform."


class DatabaseUnavailable(ServiceUnavailable):
    code = "database_unavailable"
    description = "The database is unavailable; retry later."


class RedisUnavailable(ServiceUnavailable):
    code = "redis_unavailable"
    description = "Redis is unavailable; retry later."


class ValidationFailed(BadRequest):
    """A body or query validation failure with `details.issues` (foundation §5).

    The code is per route (`invalid_zone`, `invalid_application`, ...), so it is given at
    raise time instead of by subclassing.
    """

    def __init__(
        self,
        code: str,
        issues: list[dict[str, Any]],
        description: str | None = None,
    ) -> None:
        super().__init__(description or _describe(issues), details={"issues": issues})
        self.code = code  # type: ignore[misc]


def _describe(issues: list[dict[str, Any]]) -> str:
    if not issues:
        return "The request body is invalid."
    first = issues[0]
    where = ".".join(str(p) for p in first.get("path", [])) or "body"
    return f"Invalid value at {where}: {first.get('message', 'invalid')}."


def issue(path: list[str | int], message: str) -> dict[str, Any]:
    """One entry of `details.issues`."""
    return {"path": path, "message": message}
