"""Grant business rules (objects.md §5)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote_to_bytes

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession

from caracal_api.applications.errors import ApplicationNotFound
from caracal_api.errors import InvalidQuery, issue
from caracal_api.events import outbox
from caracal_api.grants import repository as repo
from caracal_api.grants.errors import (
    ControlResourceNotGrantable,
    GrantNotFound,
    GrantScopesExceedResource,
)
from caracal_api.grants.schemas import GrantCreate, is_grant_scope
from caracal_api.kit.call import via_operator
from caracal_api.kit.ids import uuid7
from caracal_api.kit.pagination import Cursor
from caracal_api.kit.query import QueryReader
from caracal_api.kit.timefmt import format_ts
from caracal_api.kit.uow import WriteContext
from caracal_api.resources.errors import ResourceNotFound
from caracal_api.resources.identifiers import is_control

REVOKE_STREAM = "caracal.sessions.revoke"
MAX_FILTER_SCOPES = 64


def created_shape(row: Row[Any]) -> dict[str, Any]:
    return {
        "id": row.id,
        "zone_id": row.zone_id,
        "application_id": row.application_id,
        "user_id": row.user_id,
        "resource_id": row.resource_id,
        "scopes": list(row.scopes or []),
        "status": row.status,
        "created_by": row.created_by,
        "created_via_operator": row.created_via_operator,
        "created_at": format_ts(row.created_at),
    }


def detail_shape(row: Row[Any]) -> dict[str, Any]:
    out = created_shape(row)
    created_at = out.pop("created_at")
    out.update(
        updated_by=row.updated_by,
        updated_via_operator=row.updated_via_operator,
        created_at=created_at,
    )
    return out


def list_item(row: Row[Any]) -> dict[str, Any]:
    return {
        "id": row.id,
        "zone_id": row.zone_id,
        "application_id": row.application_id,
        "user_id": row.user_id,
        "resource_id": row.resource_id,
        "provider_id": row.provider_id,
        "application_name": row.application_name,
        "resource_name": row.resource_name,
        "provider_name": row.provider_name,
        "provider_kind": row.provider_kind,
        "scopes": list(row.scopes or []),
        "status": row.status,
        "created_by": row.created_by,
        "created_via_operator": row.created_via_operator,
        "updated_by": row.updated_by,
        "updated_via_operator": row.updated_via_operator,
        "created_at": format_ts(row.created_at),
    }


def _bad_scopes(message: str) -> InvalidQuery:
    return InvalidQuery(
        f"Query parameter 'scopes' {message}.", details={"issues": [issue(["scopes"], message)]}
    )


def _scope_values(query_string: bytes) -> list[str] | None:
    """Every `scopes` value, repeated and/or comma-separated (G1)."""
    found: list[str] | None = None
    for part in query_string.decode("latin-1").split("&"):
        raw_key, _, raw_value = part.partition("=")
        if raw_key != "scopes":
            continue
        try:
            value = unquote_to_bytes(raw_value.replace("+", " ")).decode("utf-8")
        except UnicodeDecodeError:
            raise _bad_scopes("is not valid UTF-8 text") from None
        found = (found or []) + value.split(",")
    return found


def read_filters(query: QueryReader, query_string: bytes) -> dict[str, Any]:
    """G1 filters (400 invalid_query on the first bad one)."""
    filters: dict[str, Any] = {}
    for name, hi in (("application_id", 128), ("resource_id", 128), ("provider_id", 128),
                     ("status", 32)):  # fmt: skip
        value = query.string(name, 1, hi)
        if value is not None:
            filters[name] = value
    subject = query.string("subject_id", 1, 256)
    user = query.string("user_id", 1, 256)
    if user is not None or subject is not None:
        filters["user_id"] = user if user is not None else subject
    scopes = _scope_values(query_string)
    if scopes is not None:
        if not 1 <= len(scopes) <= MAX_FILTER_SCOPES:
            raise _bad_scopes(f"must list 1..{MAX_FILTER_SCOPES} scopes")
        if not all(is_grant_scope(s) for s in scopes):
            raise _bad_scopes("must hold scopes matching ^[a-z0-9:_./-]+$ (1..200 characters)")
        filters["scopes"] = scopes
    return filters


async def list_grants(
    session: AsyncSession, zone_id: str, filters: dict[str, Any], limit: int, cursor: Cursor | None
) -> Sequence[Row[Any]]:
    return await repo.list_grants(session, zone_id, filters, limit, cursor)


async def require_grant(session: AsyncSession, zone_id: str, grant_id: str) -> Row[Any]:
    row = await repo.get(session, zone_id, grant_id)
    if row is None:
        raise GrantNotFound()
    return row


async def create_grant(
    session: AsyncSession, ctx: WriteContext, zone_id: str, payload: GrantCreate
) -> dict[str, Any]:
    found = await repo.targets(session, zone_id, payload.application_id, payload.resource_id)
    if not found.app_ok:
        raise ApplicationNotFound()
    if found.resource_identifier is None:
        raise ResourceNotFound()
    if is_control(found.resource_identifier):
        raise ControlResourceNotGrantable()
    allowed = set(found.resource_scopes or [])
    if any(scope not in allowed for scope in payload.scopes):
        raise GrantScopesExceedResource()
    row = await repo.insert(
        session,
        {
            "id": uuid7(),
            "zone_id": zone_id,
            "application_id": payload.application_id,
            "user_id": payload.user_id,
            "resource_id": payload.resource_id,
            "scopes": list(payload.scopes),
            "created_by": ctx.actor_label,
            "via": await via_operator(session, ctx, zone_id),
        },
    )
    return created_shape(row)


async def revoke_grant(
    session: AsyncSession, ctx: WriteContext, zone_id: str, grant_id: str
) -> None:
    """G4: the grant (any status) and every active authority record of its subject."""
    via = await via_operator(session, ctx, zone_id)
    grant = await repo.revoke(session, zone_id, grant_id, ctx.actor_label, via)
    if grant is None:
        raise GrantNotFound()
    while True:
        revoked = await repo.revoke_authority_batch(session, zone_id, grant.user_id)
        if revoked:
            rows = [
                (
                    REVOKE_STREAM,
                    {
                        "zone_id": zone_id,
                        "session_id": record_id,
                        "reason": "grant_revoked",
                        "grant_id": grant_id,
                    },
                )
                for record_id in revoked
            ]
            await outbox.record_many(session, rows, request_id=ctx.request_id)
        if len(revoked) < repo.REVOKE_BATCH:
            return
