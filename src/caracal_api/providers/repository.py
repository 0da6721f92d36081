"""All SQL of the providers aggregate."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import asyncpg
from sqlalchemy import Row, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from caracal_api.kit import driver
from caracal_api.kit.db import constraint_name
from caracal_api.kit.driver import Tx
from caracal_api.kit.pagination import Cursor
from caracal_api.providers.errors import ProviderIdentifierConflict

COLUMNS = (
    "id, zone_id, name, identifier, provider_kind, config_json, secret_config_keys,"
    " connectivity_failed_at, created_by, created_via_operator, updated_by,"
    " updated_via_operator, created_at, updated_at, archived_at"
)
IDENTIFIER_INDEX = "providers_zone_identifier_active_uidx"


def _identifier_conflict(exc: IntegrityError | asyncpg.UniqueViolationError) -> bool:
    return constraint_name(exc) == IDENTIFIER_INDEX


async def list_providers(
    session: AsyncSession, zone_id: str, archived: bool, limit: int, cursor: Cursor | None
) -> Sequence[Row[Any]]:
    state = "IS NOT NULL" if archived else "IS NULL"
    after = " AND (created_at, id) < (:ts, :cid)" if cursor else ""
    stmt = text(
        f"SELECT {COLUMNS} FROM providers WHERE zone_id = :zone AND archived_at {state}"
        f"{after} ORDER BY created_at DESC, id DESC LIMIT :limit"
    )
    params: dict[str, Any] = {"zone": zone_id, "limit": limit}
    if cursor:
        params.update(ts=cursor.ts, cid=cursor.id)
    return (await session.execute(stmt, params)).all()


async def get_live(
    session: AsyncSession, zone_id: str, provider_id: str, *, lock: bool = False
) -> Row[Any] | None:
    suffix = " FOR UPDATE" if lock else ""
    stmt = text(
        f"SELECT {COLUMNS} FROM providers WHERE id = :id AND zone_id = :zone"
        f" AND archived_at IS NULL{suffix}"
    )
    return (await session.execute(stmt, {"id": provider_id, "zone": zone_id})).first()


async def lock_identifier_base(session: AsyncSession, zone_id: str, base: str) -> None:
    await session.execute(
        text(
            "SELECT pg_advisory_xact_lock("
            "hashtext('provider-identifier:' || :zone || ':' || :base))"
        ),
        {"zone": zone_id, "base": base},
    )


async def taken_identifiers(session: AsyncSession, zone_id: str, base: str) -> set[str]:
    # Generated bases hold only provider:// + [a-z0-9-], so LIKE needs no escaping.
    stmt = text(
        "SELECT identifier FROM providers WHERE zone_id = :zone AND archived_at IS NULL"
        " AND (identifier = :base OR identifier LIKE :pattern)"
    )
    rows = await session.execute(stmt, {"zone": zone_id, "base": base, "pattern": f"{base}-%"})
    return {row.identifier for row in rows}


async def insert(session: AsyncSession, values: dict[str, Any]) -> Row[Any]:
    """Insert in a savepoint; 409 provider_identifier_conflict on the identifier index."""
    stmt = text(
        "INSERT INTO providers (id, zone_id, name, identifier, provider_kind, config_json,"
        " secret_config_keys, connectivity_failed_at, created_by, created_via_operator,"
        " created_at, updated_at) VALUES (:id, :zone_id, :name, :identifier, :kind,"
        " CAST(:config AS jsonb), CAST(:secret_keys AS text[]),"
        " CASE WHEN :unverified THEN now() ELSE NULL END, :created_by, :via, now(), now())"
        f" RETURNING {COLUMNS}"
    )
    params = {**values, "config": json.dumps(values["config"], ensure_ascii=False)}
    try:
        async with session.begin_nested():
            return (await session.execute(stmt, params)).one()
    except IntegrityError as exc:
        if _identifier_conflict(exc):
            raise ProviderIdentifierConflict() from None
        raise


async def update(
    session: AsyncSession,
    zone_id: str,
    provider_id: str,
    changes: dict[str, Any],
    updated_by: str,
    via: bool,
) -> Row[Any] | None:
    casts = {
        "config_json": "CAST(:config_json AS jsonb)",
        "secret_config_keys": "CAST(:secret_config_keys AS text[])",
    }
    sets = [f"{column} = {casts.get(column, ':' + column)}" for column in changes]
    sets += ["updated_at = now()", "updated_by = :updated_by", "updated_via_operator = :via"]
    params = {**changes, "id": provider_id, "zone": zone_id, "updated_by": updated_by, "via": via}
    if "config_json" in changes:
        params["config_json"] = json.dumps(changes["config_json"], ensure_ascii=False)
    stmt = text(
        f"UPDATE providers SET {', '.join(sets)} WHERE id = :id AND zone_id = :zone"
        f" AND archived_at IS NULL RETURNING {COLUMNS}"
    )
    try:
        async with session.begin_nested():
            return (await session.execute(stmt, params)).first()
    except IntegrityError as exc:
        if _identifier_conflict(exc):
            raise ProviderIdentifierConflict() from None
        raise


async def archive(
    session: AsyncSession, zone_id: str, provider_id: str, updated_by: str, via: bool
) -> bool:
    stmt = text(
        "UPDATE providers SET archived_at = now(), updated_at = now(), updated_by = :by,"
        " updated_via_operator = :via WHERE id = :id AND zone_id = :zone"
        " AND archived_at IS NULL RETURNING id"
    )
    params = {"id": provider_id, "zone": zone_id, "by": updated_by, "via": via}
    return (await session.execute(stmt, params)).first() is not None


async def set_connectivity(session: AsyncSession, zone_id: str, provider_id: str, ok: bool) -> None:
    stmt = text(
        "UPDATE providers SET connectivity_failed_at = CASE WHEN :ok THEN NULL ELSE now() END"
        " WHERE id = :id AND zone_id = :zone"
    )
    await session.execute(stmt, {"ok": ok, "id": provider_id, "zone": zone_id})


_ENSURE_NONE = (
    "INSERT INTO providers (id, zone_id, name, identifier, provider_kind, config_json,"
    " secret_config_keys) VALUES ($1, $2, 'No credential', 'provider://none', 'none',"
    " '{}'::jsonb, '{}') ON CONFLICT (id) DO NOTHING"
)


async def ensure_none_provider(session: Tx, zone_id: str) -> str:
    """The zone's "none" provider for the control resource (objects.md §4.3).

    A live tenant provider already holding `provider://none` fails the insert, and with it
    the whole unit of work (the 409 ends it), so no savepoint is needed.
    """
    provider_id = f"provider-none-{zone_id}"
    try:
        await (await driver.raw(session)).execute(_ENSURE_NONE, provider_id, zone_id)
    except asyncpg.UniqueViolationError as exc:
        if _identifier_conflict(exc):
            raise ProviderIdentifierConflict() from None
        raise
    return provider_id
