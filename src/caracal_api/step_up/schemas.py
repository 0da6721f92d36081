"""Step-up challenge request and response models (events.md §8)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

ChallengeState = Literal["pending", "approved", "rejected", "expired", "consumed"]
STATES: tuple[str, ...] = ("pending", "approved", "rejected", "expired", "consumed")
REASON_MAX = 500


class DecisionBody(BaseModel):
    """Optional body of S4/S5: `reason` (≤ 500 characters)."""

    reason: str | None = None


class StepUpChallenge(BaseModel):
    id: str
    zone_id: str
    session_id: str | None
    principal_id: str | None
    application_id: str | None
    challenge_type: str
    tier: str | None
    approver_class: str
    privacy_mode: str
    binding: str | None
    metadata_json: dict[str, Any]
    decision_reason: str | None
    created_at: str
    expires_at: str
    satisfied_at: str | None
    rejected_at: str | None
    consumed_at: str | None
    approver_subject_id: str | None
    prior_approved: int
    prior_rejected: int
    state: ChallengeState


class StepUpChallengeList(BaseModel):
    items: list[StepUpChallenge]
    next_cursor: str | None


class StepUpCounts(BaseModel):
    pending: int
    approved: int
    rejected: int
    expired: int
    consumed: int


class Decision(BaseModel):
    id: str
    state: Literal["approved", "rejected"]
    satisfied_at: str | None
    rejected_at: str | None
    approver_subject_id: str
