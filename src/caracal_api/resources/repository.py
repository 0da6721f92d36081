"""All SQL of the resources aggregate."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from caracal_api.kit import driver
from caracal_api.kit.db import constraint_name
from caracal_api.kit.driver import Tx
from caracal_api.kit.pagination import Cursor
from caracal_api.kit.rawread import RawSQL
from caracal_api.kit.wirejson import ts
from caracal_api.resources.errors import ResourceIdentifierConflict
from caracal_api.resources.identifiers import CONTROL_IDENTIFIER

COLUMNS = (
    "id, zone_id, name, identifier, upstream_url, scopes, credential_provider_id, operations,"
    " operation_enforcement, created_by, created_via_operator, updated_by,"
    " updated_via_operator, created_at, updated_at, archived_at"
)
IDENTIFIER_INDEX = "resources_zone_id_identifier_key"

# The wire form of a resource (service.resource_out), rendered by PostgreSQL; selected with
# the rendered created_at and the id for the page cursor, and the identifier.
_DOCUMENT = (
    "SELECT row_to_json(d)::text, d.created_at, d.id, d.identifier"
    " FROM resources t CROSS JOIN LATERAL"
    " (SELECT t.id, t.zone_id, t.name, t.identifier, t.upstream_url,"
    " coalesce(t.scopes, '{}') AS scopes, t.credential_provider_id,"
    " coalesce(t.operations, '[]') AS operations, t.operation_enforcement, t.created_by,"
    " t.created_via_operator, t.updated_by, t.updated_via_operator,"
    f" {ts('t.created_at')} AS created_at, {ts('t.updated_at')} AS updated_at,"
    f" {ts('t.archived_at')} AS archived_at) d"
)


def _conflict(exc: IntegrityError) -> bool:
    return constraint_name(exc) == IDENTIFIER_INDEX


@dataclass(frozen=True)
class PageQuery:
    zone_id: str
    archived: bool
    include_control: bool
    limit: int
    cursor: Cursor | None

    def where(self) -> tuple[str, list[Any]]:
        """WHERE … ORDER BY … LIMIT of a page of resources `t`, with its arguments."""
        state = "IS NOT NULL" if self.archived else "IS NULL"
        args: list[Any] = [self.zone_id, self.limit]
        where = f"t.zone_id = $1 AND t.archived_at {state}"
        if not self.include_control:
            args.append(CONTROL_IDENTIFIER)
            where += f" AND t.identifier <> ${len(args)}"
        if self.cursor:
            args += [self.cursor.ts, self.cursor.id]
            where += f" AND (t.created_at, t.id) < (${len(args) - 1}, ${len(args)})"
        return f" WHERE {where} ORDER BY t.created_at DESC, t.id DESC LIMIT $2", args


async def page_version(db: RawSQL, query: PageQuery) -> tuple[int, str]:
    """(rows, digest) naming the current version of a page without rendering it: the
    digest covers each row's (id, xmin, updated_at) in page order, so any write to a row
    of the page, and any row entering or leaving it, changes it. One row comes back
    however long the page, so a page served from the cache decodes almost nothing."""
    where, args = query.where()
    row = await db.fetchrow(
        "SELECT count(*), coalesce(md5(string_agg(p.id || ' ' || p.xmin::text || ' '"
        " || p.updated_at::text, ',' ORDER BY p.created_at DESC, p.id DESC)), '')"
        f" FROM (SELECT t.id, t.xmin, t.updated_at, t.created_at FROM resources t{where}) p",
        *args,
    )
    assert row is not None
    return int(row[0]), str(row[1])


async def list_documents(db: RawSQL, query: PageQuery) -> list[Any]:
    """The same page as rows of _DOCUMENT's columns."""
    where, args = query.where()
    return await db.fetch(_DOCUMENT + where, *args)


async def get_live_document(db: RawSQL, zone_id: str, resource_id: str) -> Any | None:
    """A live resource as a row of _DOCUMENT's columns (document first, identifier fourth)."""
    sql = f"{_DOCUMENT} WHERE t.id = $1 AND t.zone_id = $2 AND t.archived_at IS NULL"
    return await db.fetchrow(sql, resource_id, zone_id)


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
    sql = "SELECT 1 FROM providers WHERE id = $1 AND zone_id = $2 AND archived_at IS NULL"
    return await (await driver.raw(session)).fetchval(sql, provider_id, zone_id) is not None


@dataclass(frozen=True)
class CreateFacts:
    zone_live: bool
    provider_live: bool
    live_resources: int  # 0 when the quota is off


# One round trip for what R3 checks before choosing the identifier. The advisory lock on the
# identifier base serialises creates that would pick from the same candidates; identifiers
# taken are read by a later statement, whose snapshot follows the lock.
_CREATE_FACTS = (
    "SELECT EXISTS (SELECT 1 FROM zones WHERE id = $1 AND archived_at IS NULL),"
    " EXISTS (SELECT 1 FROM providers WHERE id = $2 AND zone_id = $1 AND archived_at IS NULL),"
    " CASE WHEN $4 THEN (SELECT count(*) FROM resources WHERE zone_id = $1"
    " AND archived_at IS NULL) ELSE 0 END,"
    " pg_advisory_xact_lock(hashtext('resource-identifier:' || $1 || ':' || $3))"
)


async def create_facts(
    session: Tx, zone_id: str, provider_id: str | None, base: str, *, count: bool
) -> CreateFacts:
    """Zone and provider liveness, the live count (when `count`), and the base's lock."""
    row = await (await driver.raw(session)).fetchrow(
        _CREATE_FACTS, zone_id, provider_id, base, count
    )
    assert row is not None
    return CreateFacts(bool(row[0]), bool(row[1]), int(row[2]))


_TAKEN = (
    "SELECT identifier FROM resources WHERE zone_id = $1"
    ' AND identifier COLLATE "C" >= $2 AND identifier COLLATE "C" < $3'
    " AND (identifier = $2 OR starts_with(identifier, $4))"
)


async def taken_identifiers(session: Tx, zone_id: str, base: str) -> set[str]:
    """Identifiers of every resource of the zone (archived included) that are base or
    start with `base-`.

    In byte order every such identifier lies in [base, base + "."): "-" is the byte just
    below ".". That range is what `resources_zone_identifier_probe_idx` scans; the exact
    test then drops the few neighbours (`base!x`, …) the range also holds.
    """
    rows = await (await driver.raw(session)).fetch(_TAKEN, zone_id, base, f"{base}.", f"{base}-")
    return {row[0] for row in rows}


_INSERT_COLUMNS = (
    "id", "zone_id", "name", "identifier", "upstream_url", "scopes", "credential_provider_id",
    "operations", "operation_enforcement", "created_by", "via",
)  # fmt: skip
_INSERT = (
    "INSERT INTO resources (id, zone_id, name, identifier, upstream_url, scopes,"
    " credential_provider_id, operations, operation_enforcement, created_by,"
    " created_via_operator, created_at, updated_at)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, now(), now())"
    # A taken identifier inserts nothing (no error, so no savepoint is needed to go on).
    " ON CONFLICT (zone_id, identifier) WHERE archived_at IS NULL DO NOTHING"
    f" RETURNING {COLUMNS}"
)


async def insert(session: Tx, values: dict[str, Any]) -> Mapping[str, Any]:
    """Insert the resource; 409 resource_identifier_conflict when the identifier is live."""
    params = {**values, "operations": json.dumps(values["operations"], ensure_ascii=False)}
    row = await (await driver.raw(session)).fetchrow(
        _INSERT, *(params[column] for column in _INSERT_COLUMNS)
    )
    if row is None:
        raise ResourceIdentifierConflict()
    return row


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
