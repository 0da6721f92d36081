from __future__ import annotations

from typing import Any

from caracal_api.errors import Conflict, NotFound, ServiceUnavailable, Unprocessable


class RegoEngineBusy(ServiceUnavailable):
    """No Rego worker took the call within REGO_TIMEOUT_MS (policies.md §3.1)."""

    code = "rego_engine_busy"
    description = "Every Rego worker is busy; retry shortly."

    def __init__(self, description: str | None = None) -> None:
        super().__init__(description, headers={"Retry-After": "1"})


class InvalidRego(Unprocessable):
    """422 `invalid_rego`: `error_description` is the validator or engine code (§2)."""

    code = "invalid_rego"
    description = "The policy content is not valid."

    def __init__(
        self,
        reason: str,
        details: dict[str, Any] | None = None,
        *,
        with_valid_flag: bool = False,
    ) -> None:
        super().__init__(
            reason, details=details, extra={"valid": False} if with_valid_flag else None
        )
        self.reason = reason


class PolicyNotFound(NotFound):
    code = "policy_not_found"
    description = "The policy does not exist in this zone or is archived."


class PolicyNameConflict(Conflict):
    code = "policy_name_conflict"
    description = "Another live policy in this zone already uses this name."


INVALID_BODY = "invalid_body"
