"""All SQL of delegated grants and the revocation of their authority records."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncSession

from caracal_api.kit.pagination import Cursor

GRANT_COLUMNS = (
    "g.id, g.zone_id, g.application_id, g.user_id, g.resource_id, g.scopes, g.status,"
    " g.created_by, g.created_via_operator, g.updated_by, g.updated_via_operator, g.created_at"
)
REVOKE_BATCH = 1000


async def list_grants(
    session: AsyncSession,
    zone_id: str,
    filters: dict[str, Any],
    limit: int,
    cursor: Cursor | None,
) -> Sequence[Row[Any]]:
    where = ["g.zone_id = :zone"]
    params: dict[str, Any] = {"zone": zone_id, "limit": limit}
    for key, column in (
        ("application_id", "g.application_id"),
        ("user_id", "g.user_id"),
        ("resource_id", "g.resource_id"),
        ("provider_id", "r.credential_provider_id"),
        ("status", "g.status"),
    ):
        if key in filters:
            where.append(f"{column} = :{key}")
            params[key] = filters[key]
    if "scopes" in filters:
        where.append("g.scopes @> CAST(:scopes AS text[])")
        params["scopes"] = filters["scopes"]
    if cursor:
        where.append("(g.created_at, g.id) < (:ts, :cid)")
        params.update(ts=cursor.ts, cid=cursor.id)
    stmt = text(
        f"SELECT {GRANT_COLUMNS}, r.credential_provider_id AS provider_id,"
        " a.name AS application_name, r.name AS resource_name, p.name AS provider_name,"
        " p.provider_kind AS provider_kind"
        " FROM delegated_grants g"
        " LEFT JOIN applications a ON a.zone_id = g.zone_id AND a.id = g.application_id"
        " LEFT JOIN resources r ON r.zone_id = g.zone_id AND r.id = g.resource_id"
        " LEFT JOIN providers p ON p.zone_id = g.zone_id AND p.id = r.credential_provider_id"
        f" WHERE {' AND '.join(where)} ORDER BY g.created_at DESC, g.id DESC LIMIT :limit"
    )
    return (await session.execute(stmt, params)).all()


async def get(session: AsyncSession, zone_id: str, grant_id: str) -> Row[Any] | None:
    stmt = text(
        f"SELECT {GRANT_COLUMNS} FROM delegated_grants g WHERE g.id = :id AND g.zone_id = :zone"
    )
    return (await session.execute(stmt, {"id": grant_id, "zone": zone_id})).first()


async def targets(
    session: AsyncSession, zone_id: str, application_id: str, resource_id: str
) -> Row[Any]:
    """One query: is the application usable, and the live resource's identifier and scopes."""
    stmt = text(
        "SELECT EXISTS (SELECT 1 FROM applications WHERE id = :app AND zone_id = :zone"
        " AND archived_at IS NULL AND (expires_at IS NULL OR expires_at > now())) AS app_ok,"
        " r.identifier AS resource_identifier, r.scopes AS resource_scopes"
        " FROM (SELECT 1) AS one LEFT JOIN resources r ON r.id = :res AND r.zone_id = :zone"
        " AND r.archived_at IS NULL"
    )
    params = {"app": application_id, "res": resource_id, "zone": zone_id}
    return (await session.execute(stmt, params)).one()


async def insert(session: AsyncSession, values: dict[str, Any]) -> Row[Any]:
    stmt = text(
        "INSERT INTO delegated_grants AS g (id, zone_id, application_id, user_id, resource_id,"
        " scopes, status, created_by, created_via_operator, created_at, updated_at)"
        " VALUES (:id, :zone_id, :application_id, :user_id, :resource_id,"
        " CAST(:scopes AS text[]), 'active', :created_by, :via, now(), now())"
        f" RETURNING {GRANT_COLUMNS}"
    )
    return (await session.execute(stmt, values)).one()


async def revoke(
    session: AsyncSession, zone_id: str, grant_id: str, updated_by: str, via: bool
) -> Row[Any] | None:
    stmt = text(
        "UPDATE delegated_grants SET status = 'revoked', updated_by = :by,"
        " updated_via_operator = :via, updated_at = now() WHERE id = :id AND zone_id = :zone"
        " RETURNING id, user_id"
    )
    params = {"id": grant_id, "zone": zone_id, "by": updated_by, "via": via}
    return (await session.execute(stmt, params)).first()


async def revoke_authority_batch(
    session: AsyncSession, zone_id: str, subject_id: str, limit: int = REVOKE_BATCH
) -> list[str]:
    """Lock (waiting, never skipping) and revoke the next batch of active records."""
    stmt = text(
        "WITH batch AS (SELECT id FROM authority_records WHERE zone_id = :zone"
        " AND subject_id = :subject AND status = 'active' ORDER BY created_at, id"
        " LIMIT :limit FOR UPDATE)"
        " UPDATE authority_records a SET status = 'revoked', revoked_at = now(),"
        " revoked_reason = 'grant_revoked' FROM batch WHERE a.id = batch.id RETURNING a.id"
    )
    rows = await session.execute(stmt, {"zone": zone_id, "subject": subject_id, "limit": limit})
    return [row.id for row in rows]
