"""What an admin-audit record says about a request (foundation §13.2, §13.3)."""

from __future__ import annotations

from typing import Any

from caracal_api.kit.ids import is_valid_id

COLLECTIONS = frozenset(
    {
        "zones",
        "applications",
        "workloads",
        "resources",
        "providers",
        "provider-connections",
        "policies",
        "policy-sets",
        "policy-templates",
        "grants",
        "subject-issuers",
        "subjects",
        "step-up-challenges",
        "admin-tokens",
        "operator-conversations",
    }
)
SECRET_KEYS = frozenset(
    {
        "client_secret",
        "secret",
        "password",
        "token",
        "private_key",
        "api_key",
        "assertion",
        "bearer_token",
        "access_token",
        "refresh_token",
    }
)
MAX_CHANGED_FIELDS = 64
MAX_DEPTH = 3


def _segments(path: str) -> list[str]:
    parts = path.split("/")[1:]
    return ["provider-connections" if p == "provider-grants" else p for p in parts]


def zone_of_path(path: str) -> str | None:
    """The zone segment of `/v1/zones/<z>…` when it is a valid id."""
    from urllib.parse import unquote

    parts = path.split("/")
    if len(parts) >= 4 and parts[1] == "v1" and parts[2] == "zones":
        zone = unquote(parts[3])
        return zone if is_valid_id(zone) else None
    return None


def entity_of(method: str, path: str, status: int, body: Any) -> tuple[str | None, str | None]:
    """`(entity_type, entity_id)` by the three rules of §13.2."""
    segments = _segments(path)
    if method == "POST" and status == 201 and segments and segments[-1] in COLLECTIONS:
        new_id = body.get("id") if isinstance(body, dict) else None
        return segments[-1], new_id if isinstance(new_id, str) else None
    for index in range(len(segments) - 2, -1, -1):
        if segments[index] in COLLECTIONS:
            return segments[index], segments[index + 1]
    return None, None


def action_verb(path: str) -> str | None:
    """The segment after the innermost `<collection>/<id>` pair, when not a collection."""
    segments = _segments(path)
    for index in range(len(segments) - 2, -1, -1):
        if segments[index] in COLLECTIONS:
            following = index + 2
            if following < len(segments) and segments[following] not in COLLECTIONS:
                return segments[following]
            return None
    return None


def _field_paths(value: Any, prefix: str, depth: int, out: list[str]) -> bool:
    """Collect dotted key paths; returns whether anything under `value` was recordable."""
    recorded = False
    for key, child in value.items():
        if not isinstance(key, str) or key.lower() in SECRET_KEYS:
            continue
        dotted = f"{prefix}{key}"
        if isinstance(child, dict) and child and depth < MAX_DEPTH:
            if not _field_paths(child, f"{dotted}.", depth + 1, out):
                out.append(dotted)
        else:
            out.append(dotted)
        recorded = True
    return recorded


def _has_secret_key(value: Any) -> bool:
    if isinstance(value, dict):
        return any(
            (isinstance(k, str) and k.lower() in SECRET_KEYS) or _has_secret_key(v)
            for k, v in value.items()
        )
    if isinstance(value, list):
        return any(_has_secret_key(v) for v in value)
    return False


def change_summary(method: str, path: str, body: Any) -> dict[str, Any]:
    """`change_kind`, `changed_fields` and `secret_rotated` for a success record."""
    fields: list[str] = []
    if isinstance(body, dict):
        _field_paths(body, "", 1, fields)
    fields = sorted(set(fields))[:MAX_CHANGED_FIELDS]
    verb = action_verb(path)
    secret_rotated = _has_secret_key(body) or verb == "rotate-secret"
    if method == "DELETE":
        kind = "delete"
    elif verb is not None:
        kind = "secret_rotation" if secret_rotated else "action"
    elif method == "POST":
        kind = "create"
    else:
        kind = "secret_rotation" if secret_rotated else "update"
    if kind == "update" and not fields:
        return {}
    summary: dict[str, Any] = {"change_kind": kind, "changed_fields": fields}
    if secret_rotated:
        summary["secret_rotated"] = True
    return summary
