"""Secret-store references (objects.md §1.4) and the fixed AADs of sealed connection tokens."""

from __future__ import annotations

ACCESS_TOKEN_AAD = "caracal/providerConnections/accessToken"  # noqa: S105 - an AAD label, not a secret
REFRESH_TOKEN_AAD = "caracal/providerConnections/refreshToken"  # noqa: S105


def application_secret_ref(zone_id: str, application_id: str) -> str:
    return f"zones/{zone_id}/applications/{application_id}/clientSecret"


def provider_secret_ref(zone_id: str, provider_id: str) -> str:
    return f"zones/{zone_id}/providers/{provider_id}/secretConfig"


def zone_of_ref(ref: str) -> str:
    """The zone id a ref names; a ref without one is a programming error (ValueError)."""
    parts = ref.split("/")
    if len(parts) < 3 or parts[0] != "zones" or not parts[1]:
        raise ValueError(f"secret ref {ref!r} does not start with zones/<zone id>/")
    return parts[1]
