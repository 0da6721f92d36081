"""Zone-event routes E1–E7 (events.md §9): decision audit, admin audit, authority records,
sessions. Read-only; none checks that the zone exists."""

from __future__ import annotations

from fastapi import Depends
from starlette.responses import Response

from caracal_api.kit.call import Call, get_call
from caracal_api.kit.routing import CaracalRouter
from caracal_api.zone_events import export, service, shapes
from caracal_api.zone_events import repository as repo
from caracal_api.zone_events.errors import RequestNotFound
from caracal_api.zone_events.schemas import (
    AdminAuditList,
    AuditEvent,
    AuditEventList,
    AuthorityRecordList,
    Explanation,
    SessionList,
)

router = CaracalRouter(tags=["zone-events"])

ZONE = "/v1/zones/{zoneId}"


@router.get(ZONE + "/audit", auth="R", response_model=AuditEventList)
async def list_audit_events(call: Call = Depends(get_call)) -> Response:
    """Decision audit events, newest first; `fields`, `format=csv`, metadata redacted."""
    req = service.audit_request(call.query, shapes.AUDIT_EXPORT_FIELDS)
    zone_id = call.path["zoneId"]
    async with call.read() as session:
        rows = await repo.list_audit(session, zone_id, req.filters, req.common.limit, req.cursor)
    items = [shapes.audit_item(r._mapping) for r in rows]
    fields = req.fields
    columns = fields or shapes.AUDIT_EXPORT_FIELDS
    body, csv_response = service.respond_page(
        items=items,
        rows=rows,
        limit=req.common.limit,
        ts_attr="occurred_at",
        csv=req.common.csv,
        columns=columns,
        csv_rows=lambda: [shapes.audit_export_row(i) for i in items],
        filename=f"audit-{zone_id}.csv",
        json_items=(
            (lambda: [export.project(shapes.audit_export_row(i), columns) for i in items])
            if fields
            else None
        ),
    )
    return csv_response or call.respond(body)


async def _request_events(call: Call) -> list[dict[str, object]]:
    async with call.read() as session:
        rows = await repo.audit_by_request(session, call.path["zoneId"], call.path["requestId"])
    if not rows:
        raise RequestNotFound()
    return [dict(r._mapping) for r in rows]


@router.get(ZONE + "/audit/by-request/{requestId}", auth="R", response_model=list[AuditEvent])
async def list_audit_events_by_request(call: Call = Depends(get_call)) -> Response:
    """Every event of one request, oldest first (bare array)."""
    rows = await _request_events(call)
    return call.respond([shapes.audit_item(r) for r in rows])


@router.get(ZONE + "/audit/by-request/{requestId}/explain", auth="R", response_model=Explanation)
async def explain_request(call: Call = Depends(get_call)) -> Response:
    """Final decision of a request and, per deny, the policy input rebuilt from metadata."""
    rows = await _request_events(call)
    return call.respond(shapes.explain(call.path["requestId"], call.path["zoneId"], rows))


async def _admin_audit(call: Call, zone_id: str | None, filename: str) -> Response:
    req = service.admin_audit_request(call.query, shapes.ADMIN_AUDIT_EXPORT_FIELDS)
    async with call.read() as session:
        rows = await repo.list_admin_audit(
            session, zone_id, req.filters, req.common.limit, req.cursor
        )
    items = [shapes.admin_audit_item(r._mapping) for r in rows]
    fields = req.fields
    columns = fields or shapes.ADMIN_AUDIT_EXPORT_FIELDS
    body, csv_response = service.respond_page(
        items=items,
        rows=rows,
        limit=req.common.limit,
        ts_attr="occurred_at",
        csv=req.common.csv,
        columns=columns,
        csv_rows=lambda: [shapes.admin_audit_export_row(i) for i in items],
        filename=filename,
        json_items=(
            (lambda: [export.project(shapes.admin_audit_export_row(i), columns) for i in items])
            if fields
            else None
        ),
    )
    return csv_response or call.respond(body)


@router.get(ZONE + "/admin-audit", auth="R", response_model=AdminAuditList)
async def list_zone_admin_audit(call: Call = Depends(get_call)) -> Response:
    """The zone's admin-audit records (successes by default; `outcome=failure|all`)."""
    zone_id = call.path["zoneId"]
    return await _admin_audit(call, zone_id, f"admin-audit-{zone_id}.csv")


@router.get("/v1/admin-audit", auth="MG", response_model=AdminAuditList)
async def list_global_admin_audit(call: Call = Depends(get_call)) -> Response:
    """The global admin-audit chain: token mint/revoke, validate, requests outside zones."""
    return await _admin_audit(call, None, "admin-audit-global.csv")


@router.get(ZONE + "/authority-records", auth="R", response_model=AuthorityRecordList)
async def list_authority_records(call: Call = Depends(get_call)) -> Response:
    """Authority records issued by the STS in this zone, newest first."""
    common = service.list_query(call.query)
    filters = service.authority_filters(call.query)
    zone_id = call.path["zoneId"]
    async with call.read() as session:
        rows = await repo.list_authority_records(
            session, zone_id, filters, common.limit, common.cursor()
        )
    items = [shapes.authority_record_item(r._mapping) for r in rows]
    body, csv_response = service.respond_page(
        items=items,
        rows=rows,
        limit=common.limit,
        ts_attr="created_at",
        csv=common.csv,
        columns=shapes.AUTHORITY_RECORD_COLUMNS,
        csv_rows=lambda: items,
        filename=f"authority-records-{zone_id}.csv",
    )
    return csv_response or call.respond(body)


@router.get(ZONE + "/sessions", auth="R", response_model=SessionList)
async def list_sessions(call: Call = Depends(get_call)) -> Response:
    """Governed agent sessions of this zone, most recently started first."""
    common = service.list_query(call.query)
    filters = service.session_filters(call.query)
    zone_id = call.path["zoneId"]
    async with call.read() as session:
        rows = await repo.list_sessions(session, zone_id, filters, common.limit, common.cursor())
    items = [shapes.session_item(r._mapping) for r in rows]
    body, csv_response = service.respond_page(
        items=items,
        rows=rows,
        limit=common.limit,
        ts_attr="started_at",
        csv=common.csv,
        columns=shapes.SESSION_COLUMNS,
        csv_rows=lambda: items,
        filename=f"sessions-{zone_id}.csv",
    )
    return csv_response or call.respond(body)
