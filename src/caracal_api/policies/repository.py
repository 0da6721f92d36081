"""All SQL of the policies aggregate (policies, policy_versions)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from caracal_api.kit.db import constraint_name
from caracal_api.kit.pagination import Cursor
from caracal_api.policies.errors import PolicyNameConflict

POLICY_COLUMNS = (
    "id, zone_id, name, description, created_by, created_via_operator, updated_by,"
    " updated_via_operator, created_at, updated_at"
)
VERSION_COLUMNS = (
    "id, policy_id, version, content, content_sha256, schema_version, created_by,"
    " created_via_operator, created_at, archived_at"
)
SUMMARY_COLUMNS = "id, policy_id, version, content_sha256, schema_version, created_at"


async def list_policies(
    session: AsyncSession, zone_id: str, limit: int, cursor: Cursor | None
) -> Sequence[Row[Any]]:
    after = " AND (created_at, id) < (:ts, :cid)" if cursor else ""
    stmt = text(
        f"SELECT {POLICY_COLUMNS} FROM policies WHERE zone_id = :zone AND archived_at IS NULL"
        f"{after} ORDER BY created_at DESC, id DESC LIMIT :limit"
    )
    params: dict[str, Any] = {"zone": zone_id, "limit": limit}
    if cursor:
        params.update(ts=cursor.ts, cid=cursor.id)
    return (await session.execute(stmt, params)).all()


async def get_live(session: AsyncSession, zone_id: str, policy_id: str) -> Row[Any] | None:
    stmt = text(
        f"SELECT {POLICY_COLUMNS} FROM policies"
        " WHERE id = :id AND zone_id = :zone AND archived_at IS NULL"
    )
    return (await session.execute(stmt, {"id": policy_id, "zone": zone_id})).first()


async def list_versions(session: AsyncSession, policy_id: str) -> Sequence[Row[Any]]:
    stmt = text(
        f"SELECT {VERSION_COLUMNS} FROM policy_versions WHERE policy_id = :id ORDER BY version DESC"
    )
    return (await session.execute(stmt, {"id": policy_id})).all()


async def insert_policy(session: AsyncSession, values: dict[str, Any]) -> Row[Any]:
    """Raises PolicyNameConflict on `policies_zone_id_name_key`."""
    stmt = text(
        "INSERT INTO policies (id, zone_id, name, description, created_by,"
        " created_via_operator, updated_by, created_at, updated_at)"
        " VALUES (:id, :zone_id, :name, :description, :created_by, :created_via_operator,"
        f" :created_by, now(), now()) RETURNING {POLICY_COLUMNS}"
    )
    try:
        async with session.begin_nested():
            return (await session.execute(stmt, values)).one()
    except IntegrityError as exc:
        if constraint_name(exc) == "policies_zone_id_name_key":
            raise PolicyNameConflict() from None
        raise


async def insert_version(session: AsyncSession, values: dict[str, Any]) -> Row[Any]:
    """Insert the next version of a policy (the caller holds the policy's advisory lock)."""
    stmt = text(
        "INSERT INTO policy_versions (id, policy_id, version, content, content_sha256,"
        " schema_version, created_by, created_via_operator, created_at)"
        " SELECT CAST(:id AS text), CAST(:policy_id AS text), COALESCE(MAX(version), 0) + 1,"
        " CAST(:content AS text), CAST(:content_sha256 AS text), CAST(:schema_version AS text),"
        " CAST(:created_by AS text), CAST(:created_via_operator AS boolean), now()"
        f" FROM policy_versions WHERE policy_id = :policy_id RETURNING {SUMMARY_COLUMNS}"
    )
    return (await session.execute(stmt, values)).one()


async def lock_policy(session: AsyncSession, policy_id: str) -> None:
    await session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:id))"), {"id": policy_id})


async def touch_policy(session: AsyncSession, policy_id: str, updated_by: str, via: bool) -> None:
    await session.execute(
        text(
            "UPDATE policies SET updated_by = :by, updated_via_operator = :via,"
            " updated_at = now() WHERE id = :id"
        ),
        {"id": policy_id, "by": updated_by, "via": via},
    )


async def archive_policy(
    session: AsyncSession, zone_id: str, policy_id: str, updated_by: str, via: bool
) -> bool:
    stmt = text(
        "UPDATE policies SET archived_at = now(), updated_at = now(), updated_by = :by,"
        " updated_via_operator = :via"
        " WHERE id = :id AND zone_id = :zone AND archived_at IS NULL RETURNING id"
    )
    params = {"id": policy_id, "zone": zone_id, "by": updated_by, "via": via}
    return (await session.execute(stmt, params)).first() is not None
