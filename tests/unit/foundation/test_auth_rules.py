"""Bearer parsing (foundation §6.5 step 1) and the authorization gates (§7.2, §7.3)."""

from __future__ import annotations

import pytest

from caracal_api.auth.actor import BOOTSTRAP_CREATED_BY, Actor
from caracal_api.auth.gates import check_gates, check_reserved, reserved_value, zone_is_reserved
from caracal_api.auth.tokens import bearer_of, generate_token
from caracal_api.errors import CaracalError

TOKEN = "cat_" + "A" * 43


# foundation §18 item 17 (the malformed shapes never reach the database)
@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Basic dXNlcjpwYXNz",
        "Token " + TOKEN,
        TOKEN,
        "Bearer",
        "Bearer ",
        "Bearer    ",
        "Bearer \t ",
        "bearer " + TOKEN,
        "BEARER " + TOKEN,
        "Bearer" + TOKEN,
        "Bearer " + "x" * 4097,
        "Bearer " + "x" * 5000,
    ],
)
def test_malformed_bearers(header: str | None) -> None:
    assert bearer_of(header) is None


def test_bearer_is_trimmed_and_bounded() -> None:
    assert bearer_of("Bearer " + TOKEN) == TOKEN
    assert bearer_of("Bearer   " + TOKEN + "  ") == TOKEN
    assert bearer_of("Bearer " + "x" * 4096) == "x" * 4096
    assert bearer_of("Bearer x") == "x"


def test_generated_tokens_have_the_documented_shape() -> None:
    tokens = {generate_token() for _ in range(20)}
    assert len(tokens) == 20
    for token in tokens:
        assert token.startswith("cat_")
        assert len(token) == 47
        assert "=" not in token


def actor(capability: str, *, zone: str | None = None, bootstrap: bool = False) -> Actor:
    return Actor(
        id="tok",
        name="t",
        scope="zone" if zone else "global",
        zone_id=zone,
        capability=capability,
        created_by=BOOTSTRAP_CREATED_BY if bootstrap else "admin:someone",
    )


async def not_reserved(_zone: str) -> bool:
    return False


async def reserved(_zone: str) -> bool:
    return True


async def gate(
    who: Actor,
    auth: str,
    method: str = "POST",
    template: str = "/v1/zones/{zoneId}/things",
    zone: str | None = "z1",
    *,
    system_zone: bool = False,
) -> str | None:
    lookup = reserved if system_zone else not_reserved
    try:
        await check_gates(who, auth, method, template, zone, lookup)
    except CaracalError as exc:
        return f"{exc.status} {exc.code}"
    return None


# foundation §18 items 26–30, 32: the capability / scope matrix of §7.3
@pytest.mark.parametrize(
    ("who", "auth", "method", "expected"),
    [
        (actor("read"), "R", "GET", None),
        (actor("read"), "W", "POST", "403 admin_token_read_only"),
        (actor("read"), "AP", "POST", "403 admin_token_read_only"),
        (actor("read"), "MG", "GET", None),
        (actor("read"), "MG", "HEAD", None),
        (actor("read"), "MG", "POST", "403 admin_token_read_only"),
        (actor("read"), "MG", "DELETE", "403 admin_token_read_only"),
        (actor("read"), "W", "GET", "403 admin_token_read_only"),  # the client-secret reveal
        (actor("write"), "R", "GET", None),
        (actor("write"), "W", "PATCH", None),
        (actor("write"), "AP", "POST", "403 approve_capability_required"),
        (actor("write"), "MG", "POST", None),
        (actor("approve"), "R", "GET", None),
        (actor("approve"), "W", "POST", "403 admin_token_approve_only"),
        (actor("approve"), "W", "GET", "403 admin_token_approve_only"),
        (actor("approve"), "AP", "POST", None),
        (actor("approve"), "MG", "GET", None),
        (actor("approve"), "MG", "DELETE", "403 admin_token_approve_only"),
        (actor("write", bootstrap=True), "AP", "POST", None),
        (actor("write", bootstrap=True), "MG", "POST", None),
    ],
)
async def test_capability_matrix(who: Actor, auth: str, method: str, expected: str | None) -> None:
    assert await gate(who, auth, method) == expected


async def test_zone_tokens_stay_in_their_zone() -> None:
    z = actor("write", zone="z1")
    assert await gate(z, "W", zone="z1") is None
    assert await gate(z, "R", "GET", zone="z1") is None
    assert await gate(z, "W", zone="z2") == "403 admin_token_zone_mismatch"
    assert await gate(z, "R", "GET", "/v1/zones", None) == "403 admin_token_zone_mismatch"
    assert await gate(z, "MG", "POST", "/v1/admin-tokens", None) == "403 admin_token_zone_mismatch"
    assert await gate(z, "MG", "GET", "/v1/admin-audit/verify", None) == (
        "403 admin_token_zone_mismatch"
    )
    # Global read paths (§7.4).
    assert await gate(z, "R", "GET", "/v1/policy-templates", None) is None
    assert await gate(z, "R", "HEAD", "/v1/policy-templates", None) is None
    assert await gate(z, "R", "POST", "/v1/policies/validate", None) is None
    # Read/approve zone tokens get their capability code first (gates 1/2 before 4).
    assert await gate(actor("read", zone="z1"), "W", "POST", "/v1/zones", None) == (
        "403 admin_token_read_only"
    )
    assert await gate(actor("approve", zone="z1"), "W", "POST", "/v1/zones", None) == (
        "403 admin_token_approve_only"
    )
    # A zone id that differs only by case is another zone.
    assert await gate(actor("read", zone="z1"), "R", "GET", zone="Z1") == (
        "403 admin_token_zone_mismatch"
    )


async def test_system_zone_gate() -> None:
    assert await gate(actor("write"), "W", system_zone=True) == "403 system_zone_read_only"
    assert await gate(actor("approve"), "AP", system_zone=True) == "403 system_zone_read_only"
    assert await gate(actor("read"), "R", "GET", system_zone=True) is None
    assert await gate(actor("write", bootstrap=True), "W", system_zone=True) is None
    assert await gate(actor("write", bootstrap=True), "AP", system_zone=True) is None
    z = actor("write", zone="z1")
    assert await gate(z, "W", zone="z1", system_zone=True) == "403 system_zone_read_only"


def test_reserved_zone_and_values() -> None:
    assert zone_is_reserved("  Caracal.SYS/x ", "plain")
    assert zone_is_reserved("plain", "CARACAL-SYS-x")
    assert not zone_is_reserved("caracal-operator", "my-caracal-sys-zone")
    assert reserved_value("  CARACAL.sys/Policy ", "caracal.sys/")
    assert not reserved_value("my caracal.sys/", "caracal.sys/")
    check_reserved(actor("write", bootstrap=True), "caracal.sys/x", "caracal.sys/")
    check_reserved(actor("write"), None, "caracal.sys/")
    with pytest.raises(CaracalError) as caught:
        check_reserved(actor("write"), " Caracal.Sys/x", "caracal.sys/")
    assert (caught.value.status, caught.value.code) == (409, "reserved_namespace")
