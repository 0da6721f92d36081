"""Resource business rules (objects.md §4)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from caracal_api.auth.actor import Actor
from caracal_api.errors import ReservedNamespace, ValidationFailed, issue
from caracal_api.kit import jsonio, wirejson
from caracal_api.kit.call import via_operator
from caracal_api.kit.driver import Tx
from caracal_api.kit.ids import uuid7
from caracal_api.kit.pagination import PageParams
from caracal_api.kit.rawread import RawSQL
from caracal_api.kit.timefmt import format_ts, format_ts_or_none
from caracal_api.kit.uow import WriteContext
from caracal_api.kit.wirejson import VersionedDocuments, document
from caracal_api.providers import repository as provider_repo
from caracal_api.providers.errors import ProviderNotFound
from caracal_api.resources import identifiers as ids
from caracal_api.resources import repository as repo
from caracal_api.resources.errors import (
    CredentialProviderRequired,
    InvalidResourceIdentifier,
    ProtectedResource,
    ResourceIdentifierConflict,
    ResourceNotFound,
    ResourceQuotaExceeded,
    UpstreamUrlRequired,
)
from caracal_api.resources.quota import QuotaGate
from caracal_api.resources.schemas import ResourceCreate
from caracal_api.zones.errors import ZoneNotFound

INVALID_RESOURCE = "invalid_resource"
IDENTIFIER_ATTEMPTS = 3


def resource_out(row: Mapping[Any, Any]) -> dict[str, Any]:
    """The wire form (list and get render the same in SQL: repository._DOCUMENT)."""
    return {
        "id": row["id"],
        "zone_id": row["zone_id"],
        "name": row["name"],
        "identifier": row["identifier"],
        "upstream_url": row["upstream_url"],
        "scopes": list(row["scopes"] or []),
        "credential_provider_id": row["credential_provider_id"],
        "operations": [dict(op) for op in row["operations"] or []],
        "operation_enforcement": row["operation_enforcement"],
        "created_by": row["created_by"],
        "created_via_operator": row["created_via_operator"],
        "updated_by": row["updated_by"],
        "updated_via_operator": row["updated_via_operator"],
        "created_at": format_ts(row["created_at"]),
        "updated_at": format_ts(row["updated_at"]),
        "archived_at": format_ts_or_none(row["archived_at"]),
    }


def check_create_body(payload: ResourceCreate) -> None:
    if payload.name is None and payload.identifier is None:
        raise ValidationFailed(
            INVALID_RESOURCE, [issue(["name"], "name or identifier is required")]
        )


def _check_identifier(actor: Actor, identifier: str) -> None:
    """§4.2 validity, reserved prefix, control identifier (steps 3–4 of R3)."""
    if not ids.is_valid_identifier(identifier):
        raise InvalidResourceIdentifier()
    if ids.is_reserved(identifier) and not actor.is_bootstrap:
        raise ReservedNamespace()
    if ids.is_control(identifier) and not actor.is_global:
        raise ProtectedResource()


async def _require_provider(session: AsyncSession, zone_id: str, provider_id: str) -> None:
    if not await repo.provider_is_live(session, zone_id, provider_id):
        raise ProviderNotFound()


def _routing(provider_id: str | None, upstream_url: str | None) -> None:
    if provider_id is None:
        raise CredentialProviderRequired()
    if upstream_url is None:
        raise UpstreamUrlRequired()


# --- reads ---------------------------------------------------------------------------------


async def list_page(
    db: RawSQL,
    pages: VersionedDocuments,
    actor: Actor,
    zone_id: str,
    archived: bool,
    params: PageParams,
) -> orjson.Fragment:
    """A page's response body: from the cache when it holds the page's current version,
    else rendered by PostgreSQL in one statement (which refills the cache)."""
    query = repo.PageQuery(zone_id, archived, actor.is_global, params.limit, params.cursor)
    rows, digest = await repo.page_version(db, query)
    cursor = (params.cursor.ts, params.cursor.id) if params.cursor else None
    key = (zone_id, archived, actor.is_global, params.limit, cursor, rows, digest)
    cached = pages.get(key)
    if cached is not None:
        return cached
    documents = await repo.list_documents(db, query)
    last = (documents[-1][1], documents[-1][2]) if documents else None
    page = wirejson.page([document(row[0]) for row in documents], last, params.limit)
    # Stored under the version read first: if a write landed in between, this rendering
    # is newer than its key, and that version is never read again.
    return pages.put(key, jsonio.dumps(page).decode())


async def require_document(
    db: RawSQL, actor: Actor, zone_id: str, resource_id: str
) -> orjson.Fragment:
    row = await repo.get_live_document(db, zone_id, resource_id)
    if row is None or (ids.is_control(row[3]) and not actor.is_global):
        raise ResourceNotFound()
    return document(row[0])


# --- writes --------------------------------------------------------------------------------


async def create_resource(
    session: Tx,
    ctx: WriteContext,
    zone_id: str,
    payload: ResourceCreate,
    max_per_zone: int,
    gate: QuotaGate,
) -> dict[str, Any]:
    explicit = payload.identifier
    base = explicit if explicit is not None else ids.generated_base(str(payload.name))
    provider_id = payload.credential_provider_id
    count = gate.must_count(zone_id, max_per_zone)
    facts = await repo.create_facts(session, zone_id, provider_id, base, count=count)
    if not facts.zone_live:
        raise ZoneNotFound()
    if count:
        gate.counted(zone_id, facts.live_resources)
    _check_identifier(ctx.actor, base)
    control = ids.is_control(base)
    if provider_id is None and control:
        provider_id = await provider_repo.ensure_none_provider(session, zone_id)
    elif provider_id is not None and not facts.provider_live:
        raise ProviderNotFound()
    if not control:
        _routing(provider_id, payload.upstream_url)
    operations = ids.normalise_operations(
        [op.model_dump() for op in payload.operations], payload.scopes
    )
    if count and facts.live_resources >= max_per_zone:
        raise ResourceQuotaExceeded()
    values: dict[str, Any] = {
        "id": uuid7(),
        "zone_id": zone_id,
        "upstream_url": payload.upstream_url,
        "scopes": list(payload.scopes),
        "credential_provider_id": provider_id,
        "operations": operations,
        "operation_enforcement": payload.operation_enforcement,
        "created_by": ctx.actor_label,
        "via": await via_operator(session, ctx, zone_id),
    }
    if explicit is not None:
        row = await repo.insert(
            session, {**values, "identifier": explicit, "name": payload.name or explicit}
        )
        return resource_out(row)
    attempt = 1
    while True:
        taken = await repo.taken_identifiers(session, zone_id, base)
        identifier = next(c for c in ids.candidates(base) if c not in taken)
        try:
            row = await repo.insert(
                session, {**values, "identifier": identifier, "name": payload.name or identifier}
            )
            return resource_out(row)
        except ResourceIdentifierConflict:
            if attempt >= IDENTIFIER_ATTEMPTS:
                raise
            attempt += 1


async def check_patch_provider(session: AsyncSession, zone_id: str, fields: dict[str, Any]) -> None:
    """R4 step 3 (before the row lock)."""
    provider_id = fields.get("credential_provider_id")
    if provider_id is not None:
        await _require_provider(session, zone_id, provider_id)


async def update_resource(
    session: AsyncSession,
    ctx: WriteContext,
    zone_id: str,
    resource_id: str,
    fields: dict[str, Any],
) -> dict[str, Any]:
    await check_patch_provider(session, zone_id, fields)
    current = await repo.get_live(session, zone_id, resource_id, lock=True)
    if current is None or (ids.is_control(current.identifier) and not ctx.actor.is_global):
        if current is not None:
            raise ProtectedResource()
        raise ResourceNotFound()
    identifier = fields.get("identifier", current.identifier)
    _check_identifier(ctx.actor, identifier)
    control = ids.is_control(identifier)
    upstream = fields.get("upstream_url", current.upstream_url)
    provider_id = fields.get("credential_provider_id", current.credential_provider_id)
    changes = dict(fields)
    if control and provider_id is None:
        provider_id = await provider_repo.ensure_none_provider(session, zone_id)
        changes["credential_provider_id"] = provider_id
    if not control:
        _routing(provider_id, upstream)
    scopes = fields.get("scopes", current.scopes)
    operations = fields.get("operations")
    if operations is None:
        operations = [dict(op) for op in current.operations or []]
    normalised = ids.normalise_operations(operations, scopes)
    if "operations" in fields:
        changes["operations"] = normalised
    via = await via_operator(session, ctx, zone_id)
    row = await repo.update(session, zone_id, resource_id, changes, ctx.actor_label, via)
    if row is None:
        raise ResourceNotFound()
    return resource_out(row._mapping)


async def delete_resource(
    session: AsyncSession, ctx: WriteContext, zone_id: str, resource_id: str
) -> None:
    current = await repo.get_live(session, zone_id, resource_id, lock=True)
    if current is None:
        raise ResourceNotFound()
    if ids.is_control(current.identifier):
        raise ProtectedResource("The control resource cannot be deleted.")
    via = await via_operator(session, ctx, zone_id)
    await repo.archive(session, zone_id, resource_id, ctx.actor_label, via)
