"""SQL of the step-up challenge routes. caracal-api only SELECTs and UPDATEs the table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncSession

from caracal_api.kit.pagination import Cursor

# Derived state (§8.1, first match), computed with the database clock.
STATE_SQL: Final = """
  CASE
    WHEN c.consumed_at IS NOT NULL THEN 'consumed'
    WHEN c.rejected_at IS NOT NULL THEN 'rejected'
    WHEN c.expires_at <= now() THEN 'expired'
    WHEN c.satisfied_at IS NOT NULL THEN 'approved'
    ELSE 'pending'
  END"""

# Filter predicates (§8.1 table); S1 and S2 share them.
PREDICATES: Final = {
    "pending": "c.consumed_at IS NULL AND c.rejected_at IS NULL AND c.satisfied_at IS NULL"
    " AND c.expires_at > now()",
    "approved": "c.consumed_at IS NULL AND c.rejected_at IS NULL AND c.satisfied_at IS NOT NULL"
    " AND c.expires_at > now()",
    "rejected": "c.consumed_at IS NULL AND c.rejected_at IS NOT NULL",
    "expired": "c.consumed_at IS NULL AND c.rejected_at IS NULL AND c.expires_at <= now()",
    "consumed": "c.consumed_at IS NOT NULL",
}

_COLUMNS: Final = f"""
  c.id, c.zone_id, c.session_id, c.principal_id, c.application_id, c.challenge_type, c.tier,
  c.approver_class, c.privacy_mode, c.resource_set_hash, c.metadata_json, c.decision_reason,
  c.created_at, c.expires_at, c.satisfied_at, c.rejected_at, c.consumed_at,
  c.approver_subject_id,
  CASE WHEN c.resource_set_hash IS NULL THEN 0 ELSE (
    SELECT count(*) FROM step_up_challenges o
    WHERE o.zone_id = c.zone_id AND o.resource_set_hash = c.resource_set_hash
      AND o.id <> c.id AND o.satisfied_at IS NOT NULL) END AS prior_approved,
  CASE WHEN c.resource_set_hash IS NULL THEN 0 ELSE (
    SELECT count(*) FROM step_up_challenges o
    WHERE o.zone_id = c.zone_id AND o.resource_set_hash = c.resource_set_hash
      AND o.id <> c.id AND o.rejected_at IS NOT NULL) END AS prior_rejected,
  {STATE_SQL} AS state"""

_COUNTS = text(
    "SELECT "
    + ", ".join(f"count(*) FILTER (WHERE {p}) AS {s}" for s, p in PREDICATES.items())
    + " FROM step_up_challenges c WHERE c.zone_id = :zone_id"
)

_GET = text(
    f"SELECT {_COLUMNS} FROM step_up_challenges c WHERE c.id = :id AND c.zone_id = :zone_id"
)

_DECIDE = """
UPDATE step_up_challenges
SET {column} = now(), approver_subject_id = :subject, decision_reason = :reason
WHERE id = :id AND zone_id = :zone_id AND approver_class IN ('operator', 'any')
  AND satisfied_at IS NULL AND rejected_at IS NULL AND consumed_at IS NULL
  AND expires_at > now()
RETURNING id, session_id, application_id, tier, approver_class, privacy_mode,
  resource_set_hash, metadata_json, satisfied_at, rejected_at, approver_subject_id
"""
_APPROVE = text(_DECIDE.format(column="satisfied_at"))
_REJECT = text(_DECIDE.format(column="rejected_at"))

_CLASSIFY = text(
    f"SELECT c.approver_class, {STATE_SQL} AS state FROM step_up_challenges c"
    " WHERE c.id = :id AND c.zone_id = :zone_id"
)


@dataclass(frozen=True)
class ListFilters:
    state: str | None = None
    tier: str | None = None
    principal: str | None = None
    since: datetime | None = None
    until: datetime | None = None


async def list_challenges(
    session: AsyncSession,
    zone_id: str,
    filters: ListFilters,
    limit: int,
    cursor: Cursor | None,
) -> Sequence[Row[Any]]:
    clauses = ["c.zone_id = :zone_id"]
    params: dict[str, Any] = {"zone_id": zone_id, "limit": limit}
    if filters.state is not None:
        clauses.append(f"({PREDICATES[filters.state]})")
    if filters.tier is not None:
        clauses.append("c.tier = :tier")
        params["tier"] = filters.tier
    if filters.principal is not None:
        clauses.append("c.principal_id = :principal")
        params["principal"] = filters.principal
    if filters.since is not None:
        clauses.append("c.created_at >= :since")
        params["since"] = filters.since
    if filters.until is not None:
        clauses.append("c.created_at <= :until")
        params["until"] = filters.until
    if cursor is not None:
        clauses.append("(c.created_at, c.id) < (:cursor_ts, :cursor_id)")
        params["cursor_ts"] = cursor.ts
        params["cursor_id"] = cursor.id
    statement = text(
        f"SELECT {_COLUMNS} FROM step_up_challenges c WHERE {' AND '.join(clauses)}"
        " ORDER BY c.created_at DESC, c.id DESC LIMIT :limit"
    )
    return (await session.execute(statement, params)).all()


async def counts(session: AsyncSession, zone_id: str) -> dict[str, int]:
    row = (await session.execute(_COUNTS, {"zone_id": zone_id})).one()
    return {name: int(value) for name, value in row._mapping.items()}


async def get(session: AsyncSession, zone_id: str, challenge_id: str) -> Row[Any] | None:
    return (await session.execute(_GET, {"id": challenge_id, "zone_id": zone_id})).first()


async def decide(
    session: AsyncSession,
    zone_id: str,
    challenge_id: str,
    *,
    approve: bool,
    subject: str,
    reason: str | None,
) -> Row[Any] | None:
    """The guarded decision UPDATE; None when the challenge was not decidable."""
    params = {"id": challenge_id, "zone_id": zone_id, "subject": subject, "reason": reason}
    result = await session.execute(_APPROVE if approve else _REJECT, params)
    return result.first()


async def classify(session: AsyncSession, zone_id: str, challenge_id: str) -> Row[Any] | None:
    """`(approver_class, state)` of a challenge that the decision UPDATE did not match."""
    return (await session.execute(_CLASSIFY, {"id": challenge_id, "zone_id": zone_id})).first()
