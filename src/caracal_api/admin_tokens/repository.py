"""All SQL of the admin-token aggregate."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from caracal_api.kit.pagination import Cursor

LIST_COLUMNS = (
    "id, name, scope, capability, zone_id, created_by, created_at, last_used_at, revoked_at"
)


async def insert_token(db: AsyncSession | AsyncConnection, values: dict[str, Any]) -> Row[Any]:
    stmt = text(
        "INSERT INTO admin_tokens (id, name, token_sha256, token_hash, scope, zone_id,"
        " capability, created_by) VALUES (:id, :name, :token_sha256, :token_hash, :scope,"
        " :zone_id, :capability, :created_by) RETURNING id, name, scope, capability, zone_id,"
        " created_by, created_at"
    )
    return (await db.execute(stmt, values)).one()


async def list_tokens(
    session: AsyncSession, limit: int, cursor: Cursor | None
) -> Sequence[Row[Any]]:
    after = " WHERE (created_at, id) < (:ts, :cid)" if cursor else ""
    params: dict[str, Any] = {"limit": limit}
    if cursor:
        params.update(ts=cursor.ts, cid=cursor.id)
    stmt = text(
        f"SELECT {LIST_COLUMNS} FROM admin_tokens{after}"
        " ORDER BY created_at DESC, id DESC LIMIT :limit"
    )
    return (await session.execute(stmt, params)).all()


async def revoke(session: AsyncSession, token_id: str) -> bytes | None:
    stmt = text(
        "UPDATE admin_tokens SET revoked_at = now() WHERE id = :id AND revoked_at IS NULL"
        " RETURNING token_sha256"
    )
    row = (await session.execute(stmt, {"id": token_id})).first()
    return bytes(row.token_sha256) if row else None


async def live_bootstrap(db: AsyncConnection, digest: bytes) -> Row[Any] | None:
    stmt = text(
        "SELECT id, token_hash FROM admin_tokens WHERE token_sha256 = :d AND revoked_at IS NULL"
    )
    return (await db.execute(stmt, {"d": digest})).first()


async def any_live_bootstrap(db: AsyncConnection) -> bool:
    stmt = text(
        "SELECT 1 FROM admin_tokens WHERE created_by = 'env-bootstrap' AND revoked_at IS NULL"
        " LIMIT 1"
    )
    return (await db.execute(stmt)).first() is not None


async def set_hash(db: AsyncConnection, token_id: str, token_hash: str) -> None:
    await db.execute(
        text("UPDATE admin_tokens SET token_hash = :h WHERE id = :id"),
        {"h": token_hash, "id": token_id},
    )


async def revoke_other_bootstraps(db: AsyncConnection, keep_id: str) -> None:
    await db.execute(
        text(
            "UPDATE admin_tokens SET revoked_at = now() WHERE created_by = 'env-bootstrap'"
            " AND revoked_at IS NULL AND id <> :id"
        ),
        {"id": keep_id},
    )
