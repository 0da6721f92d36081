"""Query rules and responses shared by the zone-event reads (events.md §9.1).

Validation order: path params (pipeline) → query values → `fields` → route-specific list
parsing → cursor.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from starlette.responses import Response

from caracal_api.errors import InvalidQuery, issue
from caracal_api.kit.pagination import Cursor, decode_cursor, page
from caracal_api.kit.query import QueryReader
from caracal_api.zone_events import export
from caracal_api.zone_events import repository as repo
from caracal_api.zone_events.errors import InvalidFields

DEFAULT_LIMIT: Final = 100
MAX_LIMIT: Final = 1000
MAX_EVENT_TYPES: Final = 16
METHODS: Final = ("POST", "PUT", "PATCH", "DELETE")
OUTCOMES: Final = ("success", "failure", "all")
DECISIONS: Final = ("allow", "deny", "partial")
AUTHORITY_STATUSES: Final = ("active", "revoked", "expired")
SESSION_STATUSES: Final = ("active", "suspended", "terminated", "expired")
LIFECYCLES: Final = ("task", "service")


@dataclass(frozen=True)
class ListQuery:
    limit: int
    raw_cursor: str | None
    csv: bool

    def cursor(self) -> Cursor | None:
        """Decoded last, after every other check (400 `invalid_cursor`)."""
        return decode_cursor(self.raw_cursor) if self.raw_cursor is not None else None


def list_query(query: QueryReader) -> ListQuery:
    limit = query.integer("limit", 1, MAX_LIMIT, DEFAULT_LIMIT)
    assert limit is not None
    raw_cursor = query.string("cursor", 1, 512)
    fmt = query.enum("format", ("json", "csv"), "json")
    return ListQuery(limit, raw_cursor, fmt == "csv")


def read_fields(query: QueryReader, allowed: Sequence[str]) -> list[str] | None:
    raw = query.raw("fields")
    if raw is None:
        return None
    try:
        return export.parse_fields(raw, allowed)
    except export.FieldsError as exc:
        raise InvalidFields(f"{exc}.") from None


def _event_types(raw: str | None) -> tuple[str, ...]:
    if raw is None:
        return ()
    entries = tuple(e.strip() for e in raw.split(",") if e.strip())
    if not 1 <= len(entries) <= MAX_EVENT_TYPES:
        raise InvalidQuery(
            f"event_type must list 1..{MAX_EVENT_TYPES} event types.",
            details={"issues": [issue(["event_type"], "must list 1..16 non-blank entries")]},
        )
    return entries


@dataclass(frozen=True)
class AuditRequest:
    common: ListQuery
    filters: repo.AuditFilters
    fields: list[str] | None
    cursor: Cursor | None


def audit_request(query: QueryReader, allowed_fields: Sequence[str]) -> AuditRequest:
    """E1 query: standard values, filters, `fields`, the event-type list, then the cursor."""
    common = list_query(query)
    since = query.timestamp("since")
    until = query.timestamp("until")
    request_id = query.string("request_id", 1, 128)
    decision = query.enum("decision", DECISIONS)
    raw_types = query.string("event_type", 1, 512)
    application_id = query.string("application_id", 1, 128)
    session_id = query.string("session_id", 1, 128)
    authority_record_id = query.string("authority_record_id", 1, 128)
    label = query.string("label", 1, 64)
    fields = read_fields(query, allowed_fields)
    filters = repo.AuditFilters(
        since=since,
        until=until,
        request_id=request_id,
        decision=decision,
        event_types=_event_types(raw_types),
        application_id=application_id,
        session_id=session_id,
        authority_record_id=authority_record_id,
        label=label,
    )
    return AuditRequest(common, filters, fields, common.cursor())


@dataclass(frozen=True)
class AdminAuditRequest:
    common: ListQuery
    filters: repo.AdminAuditFilters
    fields: list[str] | None
    cursor: Cursor | None


def admin_audit_request(query: QueryReader, allowed_fields: Sequence[str]) -> AdminAuditRequest:
    """E4/E7 query."""
    common = list_query(query)
    filters = repo.AdminAuditFilters(
        since=query.timestamp("since"),
        until=query.timestamp("until"),
        actor_id=query.string("actor_id", 1, 128),
        entity_type=query.string("entity_type", 1, 64),
        entity_id=query.string("entity_id", 1, 128),
        method=query.enum("method", METHODS),
        outcome=query.enum("outcome", OUTCOMES, "success") or "success",
    )
    fields = read_fields(query, allowed_fields)
    return AdminAuditRequest(common, filters, fields, common.cursor())


def authority_filters(query: QueryReader) -> repo.AuthorityFilters:
    return repo.AuthorityFilters(
        authority_record_id=query.string("authority_record_id", 1, 128),
        status=query.enum("status", AUTHORITY_STATUSES),
        subject_id=query.string("subject_id", 1, 256),
    )


def session_filters(query: QueryReader) -> repo.SessionFilters:
    return repo.SessionFilters(
        status=query.enum("status", SESSION_STATUSES),
        lifecycle=query.enum("lifecycle", LIFECYCLES),
        application_id=query.string("application_id", 1, 128),
        parent_session_id=query.string("parent_session_id", 1, 128),
        label=query.string("label", 1, 64),
    )


def respond_page(
    *,
    items: list[dict[str, Any]],
    rows: Sequence[Any],
    limit: int,
    ts_attr: str,
    csv: bool,
    columns: Sequence[str],
    csv_rows: Callable[[], Sequence[Mapping[str, Any]]],
    filename: str,
    json_items: Callable[[], list[dict[str, Any]]] | None = None,
) -> tuple[dict[str, Any] | None, Response | None]:
    """The JSON page body, or a ready CSV response (same page, cursor in `x-next-cursor`)."""
    body = page(items, rows, limit, ts_attr=ts_attr)
    if not csv:
        if json_items is not None:
            body["items"] = json_items()
        return body, None
    headers = {"content-disposition": f'attachment; filename="{filename}"'}
    if body["next_cursor"] is not None:
        headers["x-next-cursor"] = body["next_cursor"]
    content = export.render_csv(columns, csv_rows()).encode("utf-8")
    return None, Response(content, media_type="text/csv; charset=utf-8", headers=headers)
