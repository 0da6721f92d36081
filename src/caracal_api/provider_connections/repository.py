"""All SQL of provider connections."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncSession

from caracal_api.kit.pagination import Cursor

SHAPE = "id, zone_id, subject_id, provider_id, status, expires_at, created_at, updated_at"


async def list_connections(
    session: AsyncSession, zone_id: str, filters: dict[str, str], limit: int, cursor: Cursor | None
) -> Sequence[Row[Any]]:
    where = ["zone_id = :zone"]
    params: dict[str, Any] = {"zone": zone_id, "limit": limit}
    for key in ("provider_id", "subject_id", "status"):
        if key in filters:
            where.append(f"{key} = :{key}")
            params[key] = filters[key]
    if cursor:
        where.append("(created_at, id) < (:ts, :cid)")
        params.update(ts=cursor.ts, cid=cursor.id)
    stmt = text(
        f"SELECT {SHAPE}, refreshed_at, refresh_token_ct IS NOT NULL AS renewable"
        f" FROM provider_connections WHERE {' AND '.join(where)}"
        " ORDER BY created_at DESC, id DESC LIMIT :limit"
    )
    return (await session.execute(stmt, params)).all()


async def upsert(
    session: AsyncSession,
    *,
    connection_id: str,
    zone_id: str,
    subject_id: str,
    provider_id: str,
    access_ct: bytes,
    refresh_ct: bytes | None,
    expires_at: datetime | None,
) -> Row[Any]:
    """Insert an active connection or replace the tokens of the key's active one."""
    stmt = text(
        "INSERT INTO provider_connections (id, zone_id, subject_id, provider_id, status,"
        " access_token_ct, refresh_token_ct, expires_at, created_at, updated_at)"
        " VALUES (:id, :zone, :subject, :provider, 'active', :access, :refresh, :expires,"
        " now(), now())"
        " ON CONFLICT (zone_id, subject_id, provider_id) WHERE status = 'active' DO UPDATE SET"
        " access_token_ct = EXCLUDED.access_token_ct,"
        " refresh_token_ct = EXCLUDED.refresh_token_ct, expires_at = EXCLUDED.expires_at,"
        " refreshed_at = NULL,"
        " refresh_token_version = provider_connections.refresh_token_version + 1,"
        f" updated_at = now() RETURNING {SHAPE}"
    )
    params = {
        "id": connection_id,
        "zone": zone_id,
        "subject": subject_id,
        "provider": provider_id,
        "access": access_ct,
        "refresh": refresh_ct,
        "expires": expires_at,
    }
    return (await session.execute(stmt, params)).one()


async def lock_active(
    session: AsyncSession, zone_id: str, subject_id: str, provider_id: str
) -> Row[Any] | None:
    """The active connection with its provider's config (archived providers included)."""
    stmt = text(
        "SELECT c.id, c.access_token_ct, c.refresh_token_ct, p.config_json, p.provider_kind"
        " FROM provider_connections c JOIN providers p"
        " ON p.zone_id = c.zone_id AND p.id = c.provider_id"
        " WHERE c.zone_id = :zone AND c.subject_id = :subject AND c.provider_id = :provider"
        " AND c.status = 'active' FOR UPDATE OF c"
    )
    params = {"zone": zone_id, "subject": subject_id, "provider": provider_id}
    return (await session.execute(stmt, params)).first()


async def mark_revoked(session: AsyncSession, connection_id: str) -> Row[Any] | None:
    stmt = text(
        "UPDATE provider_connections SET status = 'revoked', updated_at = now()"
        f" WHERE id = :id AND status = 'active' RETURNING {SHAPE}"
    )
    return (await session.execute(stmt, {"id": connection_id})).first()
