"""Step-up challenge errors (events.md §8)."""

from __future__ import annotations

from caracal_api.errors import Conflict, Forbidden, NotFound

INVALID_BODY = "invalid_body"


class ChallengeNotFound(NotFound):
    code = "challenge_not_found"
    description = "The step-up challenge does not exist in this zone."


class SubjectApprovalRequired(Forbidden):
    code = "subject_approval_required"
    description = "This challenge must be decided by its subject, not by an operator."


class ChallengeNotDecidable(Conflict):
    code = "challenge_not_decidable"
    description = "The challenge is no longer pending."

    def __init__(self, state: str) -> None:
        super().__init__(
            f"The challenge is {state}; only pending challenges can be decided.",
            extra={"state": state},
        )
