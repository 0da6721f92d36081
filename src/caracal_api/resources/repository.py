"""All SQL of the resources aggregate."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from caracal_api.kit.db import constraint_name
from caracal_api.kit.pagination import Cursor
from caracal_api.resources.errors import ResourceIdentifierConflict
from caracal_api.resources.identifiers import CONTROL_IDENTIFIER

COLUMNS = (
    "id, zone_id, name, identifier, upstream_url, scopes, credential_provider_id, operations,"
    " operation_enforcement, created_by, created_via_operator, updated_by,"
    " updated_via_operator, created_at, updated_at, archived_at"
)
IDENTIFIER_INDEX = "resources_zone_id_identifier_key"


def _conflict(exc: IntegrityError) -> bool:
    return constraint_name(exc) == IDENTIFIER_INDEX


async def list_resources(
    session: AsyncSession,
    zone_id: str,
    archived: bool,
    include_control: bool,
    limit: int,
    cursor: Cursor | None,
) -> Sequence[Row[Any]]:
    state = "IS NOT NULL" if archived else "IS NULL"
    after = " AND (created_at, id) < (:ts, :cid)" if cursor else ""
    control = "" if include_control else " AND identifier <> :control"
    stmt = text(
        f"SELECT {COLUMNS} FROM resources WHERE zone_id = :zone AND archived_at {state}"
        f"{control}{after} ORDER BY created_at DESC, id DESC LIMIT :limit"
    )
    params: dict[str, Any] = {"zone": zone_id, "limit": limit, "control": CONTROL_IDENTIFIER}
    if cursor:
        params.update(ts=cursor.ts, cid=cursor.id)
    return (await session.execute(stmt, params)).all()


async def get_live(
    session: AsyncSession, zone_id: str, resource_id: str, *, lock: bool = False
) -> Row[Any] | None:
    suffix = " FOR UPDATE" if lock else ""
    stmt = text(
        f"SELECT {COLUMNS} FROM resources WHERE id = :id AND zone_id = :zone"
        f" AND archived_at IS NULL{suffix}"
    )
    return (await session.execute(stmt, {"id": resource_id, "zone": zone_id})).first()


async def provider_is_live(session: AsyncSession, zone_id: str, provider_id: str) -> bool:
    stmt = text(
        "SELECT 1 FROM providers WHERE id = :id AND zone_id = :zone AND archived_at IS NULL"
    )
    return (await session.execute(stmt, {"id": provider_id, "zone": zone_id})).first() is not None


async def count_live(session: AsyncSession, zone_id: str) -> int:
    stmt = text("SELECT count(*) FROM resources WHERE zone_id = :zone AND archived_at IS NULL")
    return int((await session.execute(stmt, {"zone": zone_id})).scalar_one())


async def lock_identifier_base(session: AsyncSession, zone_id: str, base: str) -> None:
    await session.execute(
        text(
            "SELECT pg_advisory_xact_lock("
            "hashtext('resource-identifier:' || :zone || ':' || :base))"
        ),
        {"zone": zone_id, "base": base},
    )


async def taken_identifiers(session: AsyncSession, zone_id: str, base: str) -> set[str]:
    """Identifiers of every resource of the zone (archived included) starting with base."""
    stmt = text(
        "SELECT identifier FROM resources WHERE zone_id = :zone"
        " AND (identifier = :base OR starts_with(identifier, :prefix))"
    )
    rows = await session.execute(stmt, {"zone": zone_id, "base": base, "prefix": f"{base}-"})
    return {row.identifier for row in rows}


async def insert(session: AsyncSession, values: dict[str, Any]) -> Row[Any]:
    """Insert in a savepoint; 409 resource_identifier_conflict on the identifier index."""
    stmt = text(
        "INSERT INTO resources (id, zone_id, name, identifier, upstream_url, scopes,"
        " credential_provider_id, operations, operation_enforcement, created_by,"
        " created_via_operator, created_at, updated_at) VALUES (:id, :zone_id, :name,"
        " :identifier, :upstream_url, CAST(:scopes AS text[]), :credential_provider_id,"
        " CAST(:operations AS jsonb), :operation_enforcement, :created_by, :via, now(), now())"
        f" RETURNING {COLUMNS}"
    )
    params = {**values, "operations": json.dumps(values["operations"], ensure_ascii=False)}
    try:
        async with session.begin_nested():
            return (await session.execute(stmt, params)).one()
    except IntegrityError as exc:
        if _conflict(exc):
            raise ResourceIdentifierConflict() from None
        raise


async def update(
    session: AsyncSession,
    zone_id: str,
    resource_id: str,
    changes: dict[str, Any],
    updated_by: str,
    via: bool,
) -> Row[Any] | None:
    casts = {"scopes": "CAST(:scopes AS text[])", "operations": "CAST(:operations AS jsonb)"}
    sets = [f"{column} = {casts.get(column, ':' + column)}" for column in changes]
    sets += ["updated_at = now()", "updated_by = :updated_by", "updated_via_operator = :via"]
    params = {**changes, "id": resource_id, "zone": zone_id, "updated_by": updated_by, "via": via}
    if "operations" in changes:
        params["operations"] = json.dumps(changes["operations"], ensure_ascii=False)
    stmt = text(
        f"UPDATE resources SET {', '.join(sets)} WHERE id = :id AND zone_id = :zone"
        f" AND archived_at IS NULL RETURNING {COLUMNS}"
    )
    try:
        async with session.begin_nested():
            return (await session.execute(stmt, params)).first()
    except IntegrityError as exc:
        if _conflict(exc):
            raise ResourceIdentifierConflict() from None
        raise


async def archive(
    session: AsyncSession, zone_id: str, resource_id: str, updated_by: str, via: bool
) -> None:
    stmt = text(
        "UPDATE resources SET archived_at = now(), updated_at = now(), updated_by = :by,"
        " updated_via_operator = :via WHERE id = :id AND zone_id = :zone AND archived_at IS NULL"
    )
    await session.execute(stmt, {"id": resource_id, "zone": zone_id, "by": updated_by, "via": via})
