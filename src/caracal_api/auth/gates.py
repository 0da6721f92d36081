"""Authorization gates of foundation §7.2 and the reserved-namespace rules of §7.5/§7.6."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from caracal_api.auth.actor import Actor
from caracal_api.errors import (
    AdminTokenApproveOnly,
    AdminTokenReadOnly,
    AdminTokenZoneMismatch,
    ApproveCapabilityRequired,
    ReservedNamespace,
    SystemZoneReadOnly,
)

AUTH_CLASSES = ("public", "R", "W", "AP", "MG")
READ_METHODS = ("GET", "HEAD")

# Reached by zone tokens although they name no zone (foundation §7.4).
GLOBAL_READ_PATHS = frozenset({("POST", "/v1/policies/validate"), ("GET", "/v1/policy-templates")})


def zone_is_reserved(name: str, slug: str) -> bool:
    return name.strip().lower().startswith("caracal.sys/") or slug.lower().startswith(
        "caracal-sys-"
    )


async def check_gates(
    actor: Actor,
    auth_class: str,
    method: str,
    template: str,
    zone_param: str | None,
    is_reserved_zone: Callable[[str], Awaitable[bool]],
) -> None:
    """Raise the first failing gate's 403, in the order of §7.2."""
    capability = actor.capability
    mg_write = auth_class == "MG" and method not in READ_METHODS
    if capability == "read" and (auth_class in ("W", "AP") or mg_write):
        raise AdminTokenReadOnly()
    if capability == "approve" and (auth_class == "W" or mg_write):
        raise AdminTokenApproveOnly()
    if auth_class == "AP" and capability == "write" and not actor.is_bootstrap:
        raise ApproveCapabilityRequired()
    if actor.scope == "zone":
        global_read = (method if method != "HEAD" else "GET", template) in GLOBAL_READ_PATHS
        if not global_read and (zone_param is None or zone_param != actor.zone_id):
            raise AdminTokenZoneMismatch()
    if (
        auth_class in ("W", "AP")
        and zone_param is not None
        and not actor.is_bootstrap
        and await is_reserved_zone(zone_param)
    ):
        raise SystemZoneReadOnly()


def reserved_value(value: str, prefix: str) -> bool:
    return value.strip().lower().startswith(prefix)


def check_reserved(actor: Actor, value: str | None, prefix: str) -> None:
    """409 reserved_namespace when a non-bootstrap caller uses a reserved value (§7.6)."""
    if value is not None and reserved_value(value, prefix) and not actor.is_bootstrap:
        raise ReservedNamespace()
