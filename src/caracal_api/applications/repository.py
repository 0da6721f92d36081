"""All SQL of the applications aggregate."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from caracal_api.applications.errors import ApplicationNameTaken
from caracal_api.kit.db import constraint_name
from caracal_api.kit.pagination import Cursor

COLUMNS = (
    "id, zone_id, name, registration_method, traits, expires_at, archived_at, created_by,"
    " created_via_operator, updated_by, updated_via_operator, created_at, updated_at,"
    " client_secret_hash"
)
NAME_INDEX = "applications_zone_managed_name_active_uidx"
LIVE_DCR = (
    "zone_id = :zone AND registration_method = 'dcr' AND archived_at IS NULL"
    " AND (expires_at IS NULL OR expires_at > now())"
)


def _name_conflict(exc: IntegrityError) -> bool:
    return constraint_name(exc) == NAME_INDEX


async def list_applications(
    session: AsyncSession, zone_id: str, archived: bool, limit: int, cursor: Cursor | None
) -> Sequence[Row[Any]]:
    state = "IS NOT NULL" if archived else "IS NULL"
    after = " AND (created_at, id) < (:ts, :cid)" if cursor else ""
    stmt = text(
        f"SELECT {COLUMNS} FROM applications WHERE zone_id = :zone AND archived_at {state}"
        f"{after} ORDER BY created_at DESC, id DESC LIMIT :limit"
    )
    params: dict[str, Any] = {"zone": zone_id, "limit": limit}
    if cursor:
        params.update(ts=cursor.ts, cid=cursor.id)
    return (await session.execute(stmt, params)).all()


async def get_live(
    session: AsyncSession, zone_id: str, app_id: str, *, lock: bool = False
) -> Row[Any] | None:
    suffix = " FOR UPDATE" if lock else ""
    stmt = text(
        f"SELECT {COLUMNS} FROM applications WHERE id = :id AND zone_id = :zone"
        f" AND archived_at IS NULL{suffix}"
    )
    return (await session.execute(stmt, {"id": app_id, "zone": zone_id})).first()


async def name_taken(
    session: AsyncSession, zone_id: str, name: str, exclude_id: str | None = None
) -> bool:
    stmt = text(
        "SELECT 1 FROM applications WHERE zone_id = :zone AND lower(name) = lower(:name)"
        " AND archived_at IS NULL AND registration_method = 'managed'"
        " AND (CAST(:exclude AS text) IS NULL OR id <> :exclude) LIMIT 1"
    )
    params = {"zone": zone_id, "name": name, "exclude": exclude_id}
    return (await session.execute(stmt, params)).first() is not None


async def insert(session: AsyncSession, values: dict[str, Any]) -> Row[Any]:
    """Insert and return the row; 409 application_name_taken on the name index."""
    expires = "now() + make_interval(secs => :expires_in)" if "expires_in" in values else "NULL"
    stmt = text(
        "INSERT INTO applications (id, zone_id, name, registration_method, credential_type,"
        " client_secret_hash, traits, expires_at, created_by, created_via_operator,"
        " created_at, updated_at) VALUES (:id, :zone_id, :name, :registration_method, 'token',"
        f" :client_secret_hash, CAST(:traits AS text[]), {expires}, :created_by,"
        f" :created_via_operator, now(), now()) RETURNING {COLUMNS}"
    )
    try:
        return (await session.execute(stmt, values)).one()
    except IntegrityError as exc:
        if _name_conflict(exc):
            raise ApplicationNameTaken() from None
        raise


async def update(
    session: AsyncSession,
    zone_id: str,
    app_id: str,
    changes: dict[str, Any],
    updated_by: str,
    via: bool,
) -> Row[Any] | None:
    sets = [
        f"{column} = CAST(:{column} AS text[])" if column == "traits" else f"{column} = :{column}"
        for column in changes
    ]
    sets += ["updated_at = now()", "updated_by = :updated_by", "updated_via_operator = :via"]
    stmt = text(
        f"UPDATE applications SET {', '.join(sets)} WHERE id = :id AND zone_id = :zone"
        f" AND archived_at IS NULL RETURNING {COLUMNS}"
    )
    params = {**changes, "id": app_id, "zone": zone_id, "updated_by": updated_by, "via": via}
    try:
        return (await session.execute(stmt, params)).first()
    except IntegrityError as exc:
        if _name_conflict(exc):
            raise ApplicationNameTaken() from None
        raise


async def archive(
    session: AsyncSession, zone_id: str, app_id: str, updated_by: str, via: bool
) -> bool:
    stmt = text(
        "UPDATE applications SET archived_at = now(), updated_at = now(), updated_by = :by,"
        " updated_via_operator = :via WHERE id = :id AND zone_id = :zone"
        " AND archived_at IS NULL RETURNING id"
    )
    params = {"id": app_id, "zone": zone_id, "by": updated_by, "via": via}
    return (await session.execute(stmt, params)).first() is not None


async def lock_zone_dcr(session: AsyncSession, zone_id: str) -> bool | None:
    """dcr_enabled of the live zone, row-locked; None when missing or archived."""
    stmt = text("SELECT dcr_enabled FROM zones WHERE id = :id AND archived_at IS NULL FOR UPDATE")
    row = (await session.execute(stmt, {"id": zone_id})).first()
    return None if row is None else bool(row[0])


async def count_live_dcr(session: AsyncSession, zone_id: str) -> int:
    stmt = text(f"SELECT count(*) FROM applications WHERE {LIVE_DCR}")
    return int((await session.execute(stmt, {"zone": zone_id})).scalar_one())


SWEEP_LOCK_KEY = 7163920485318472

SWEEP = text(
    "UPDATE applications SET archived_at = now(), updated_at = now() WHERE id IN ("
    " SELECT id FROM applications WHERE registration_method = 'dcr' AND archived_at IS NULL"
    " AND expires_at < now() - interval '24 hours' ORDER BY expires_at LIMIT :limit"
    " FOR UPDATE SKIP LOCKED) AND archived_at IS NULL"
)
