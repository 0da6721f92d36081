"""Step-up challenge rules (events.md §8): derived state, row shape, operator decisions."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession

from caracal_api.errors import ValidationFailed, issue
from caracal_api.events.audit_stream import enqueue_audit_event
from caracal_api.kit import jsonio
from caracal_api.kit.pagination import Cursor
from caracal_api.kit.query import QueryReader
from caracal_api.kit.timefmt import format_ts, format_ts_or_none
from caracal_api.kit.uow import WriteContext
from caracal_api.step_up import repository as repo
from caracal_api.step_up.errors import (
    INVALID_BODY,
    ChallengeNotDecidable,
    ChallengeNotFound,
    SubjectApprovalRequired,
)
from caracal_api.step_up.schemas import REASON_MAX, STATES


def read_filters(query: QueryReader) -> repo.ListFilters:
    """S1 filters; any failure is 400 `invalid_query` (before the cursor is decoded)."""
    since = query.timestamp("since")
    until = query.timestamp("until")
    return repo.ListFilters(
        state=query.enum("state", STATES),
        tier=query.string("tier", 1, 64),
        principal=query.string("principal", 1, 128),
        since=since,
        until=until,
    )


def _binding(value: bytes | None) -> str | None:
    return None if value is None else bytes(value).hex()


def challenge_shape(row: Row[Any]) -> dict[str, Any]:
    """§8.2 row shape (`metadata_json` as stored; `approver_session_id` never returned)."""
    return {
        "id": row.id,
        "zone_id": row.zone_id,
        "session_id": row.session_id,
        "principal_id": row.principal_id,
        "application_id": row.application_id,
        "challenge_type": row.challenge_type,
        "tier": row.tier,
        "approver_class": row.approver_class,
        "privacy_mode": row.privacy_mode,
        "binding": _binding(row.resource_set_hash),
        "metadata_json": row.metadata_json,
        "decision_reason": row.decision_reason,
        "created_at": format_ts(row.created_at),
        "expires_at": format_ts(row.expires_at),
        "satisfied_at": format_ts_or_none(row.satisfied_at),
        "rejected_at": format_ts_or_none(row.rejected_at),
        "consumed_at": format_ts_or_none(row.consumed_at),
        "approver_subject_id": row.approver_subject_id,
        "prior_approved": int(row.prior_approved),
        "prior_rejected": int(row.prior_rejected),
        "state": row.state,
    }


async def list_challenges(
    session: AsyncSession,
    zone_id: str,
    filters: repo.ListFilters,
    limit: int,
    cursor: Cursor | None,
) -> list[Row[Any]]:
    return list(await repo.list_challenges(session, zone_id, filters, limit, cursor))


async def counts(session: AsyncSession, zone_id: str) -> dict[str, int]:
    return await repo.counts(session, zone_id)


async def require_challenge(session: AsyncSession, zone_id: str, challenge_id: str) -> Row[Any]:
    row = await repo.get(session, zone_id, challenge_id)
    if row is None:
        raise ChallengeNotFound()
    return row


def decision_reason(raw_body: Any) -> str | None:
    """The optional `reason` of S4/S5, checked before any lookup.

    No body, `{}` and `null` mean no reason; a reason that is not a string of at most
    500 characters, or a body that is not an object, is 400 `invalid_body`. Other keys
    are ignored (lenient body).
    """
    if jsonio.is_absent(raw_body) or raw_body is None:
        return None
    if not isinstance(raw_body, dict):
        raise ValidationFailed(INVALID_BODY, [issue([], "the body must be a JSON object")])
    reason = raw_body.get("reason")
    if reason is None:
        return None
    if not isinstance(reason, str):
        raise ValidationFailed(INVALID_BODY, [issue(["reason"], "must be a string")])
    if len(reason) > REASON_MAX:
        raise ValidationFailed(
            INVALID_BODY, [issue(["reason"], f"must be at most {REASON_MAX} characters")]
        )
    return reason


def _event_metadata(row: Row[Any], reason: str | None) -> dict[str, Any]:
    """`step_up_decided` metadata (events.md §5), keys in the listed order."""
    metadata: dict[str, Any] = {
        "challenge_id": row.id,
        "tier": row.tier if row.tier is not None else "",
        "approver_class": row.approver_class,
        "privacy_mode": row.privacy_mode,
        "binding": _binding(row.resource_set_hash),
        "session_id": row.session_id,
        "approver_plane": "operator",
        "approver_subject_id": row.approver_subject_id,
    }
    if row.application_id is not None:
        metadata["application_id"] = row.application_id
    if reason is not None:
        metadata["reason"] = reason
    stored = row.metadata_json if isinstance(row.metadata_json, dict) else {}
    labels = stored.get("agent_labels")
    if isinstance(labels, list):
        metadata["agent_labels"] = labels
    return metadata


async def decide(
    session: AsyncSession,
    ctx: WriteContext,
    zone_id: str,
    challenge_id: str,
    approve: bool,
    reason: str | None,
    audit_key: bytes | None,
) -> dict[str, Any]:
    """S4/S5 in the request's transaction: guarded UPDATE, then the audit-stream event.

    Raises ChallengeNotFound, SubjectApprovalRequired or ChallengeNotDecidable (with the
    derived state) when the UPDATE matched nothing.
    """
    row = await repo.decide(
        session,
        zone_id,
        challenge_id,
        approve=approve,
        subject=f"admin:{ctx.actor.id}",
        reason=reason,
    )
    if row is None:
        found = await repo.classify(session, zone_id, challenge_id)
        if found is None:
            raise ChallengeNotFound()
        if found.state == "pending" and found.approver_class == "subject":
            raise SubjectApprovalRequired()
        raise ChallengeNotDecidable(found.state)
    await enqueue_audit_event(
        session,
        zone_id=zone_id,
        event_type="step_up_decided",
        request_id=ctx.request_id,
        decision="approved" if approve else "rejected",
        metadata=_event_metadata(row, reason),
        key=audit_key,
    )
    return {
        "id": row.id,
        "state": "approved" if approve else "rejected",
        "satisfied_at": format_ts_or_none(row.satisfied_at),
        "rejected_at": format_ts_or_none(row.rejected_at),
        "approver_subject_id": row.approver_subject_id,
    }
