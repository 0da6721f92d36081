from __future__ import annotations

from typing import Any

from caracal_api.errors import Conflict, NotFound, ServiceUnavailable, Unprocessable


class PolicySetNotFound(NotFound):
    code = "policy_set_not_found"
    description = "The policy set does not exist in this zone or is archived."


class PolicySetVersionNotFound(NotFound):
    code = "policy_set_version_not_found"
    description = "The policy set version does not exist in this zone."


class VersionNotFound(NotFound):
    code = "version_not_found"
    description = "The version does not belong to a live policy set of this zone."


class PolicySetBindingNotFound(NotFound):
    code = "policy_set_binding_not_found"
    description = "The policy set has no binding in this zone, or it is archived."


class ActivePolicySetVersionNotFound(NotFound):
    code = "active_policy_set_version_not_found"
    description = "The policy set has no active version; name one with version_id."


class PolicySetNameConflict(Conflict):
    code = "policy_set_name_conflict"
    description = "Another live policy set in this zone already uses this name."


class ReferencedPolicyVersionMissing(Conflict):
    code = "referenced_policy_version_missing"
    description = "A policy version referenced by the manifest no longer exists."


class InvalidPolicyContract(Unprocessable):
    """422 from the manifest contract check (policies.md §5.2); `details.reason`."""

    code = "invalid_policy_contract"
    description = "The manifest does not satisfy the policy contract."

    def __init__(self, reason: str, description: str) -> None:
        super().__init__(description, details={"reason": reason})
        self.reason = reason


class InvalidPolicyBundle(Unprocessable):
    """422 from bundle verification (policies.md §5.3)."""

    code = "invalid_policy_bundle"
    description = "The policy bundle failed verification."

    def __init__(self, description: str | None = None, details: dict[str, Any] | None = None):
        super().__init__(description, details=details)


class PolicyVerificationUnavailable(ServiceUnavailable):
    code = "policy_verification_unavailable"
    description = "The token service could not be reached to verify the policy bundle."


INVALID_BODY = "invalid_body"
