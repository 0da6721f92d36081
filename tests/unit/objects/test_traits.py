"""Trait rules (objects.md §1.2, §7 item 14)."""

from __future__ import annotations

import pytest

from caracal_api.applications.traits import (
    CONTROL_SCOPES,
    TraitCountExceeded,
    TraitDuplicate,
    TraitForbidden,
    TraitInvalid,
    check_traits,
)
from caracal_api.errors import CaracalError


def fails(traits: list[str], *, global_caller: bool = True) -> str:
    with pytest.raises(CaracalError) as info:
        check_traits(traits, global_caller=global_caller)
    assert info.value.status == 403
    return info.value.code


def test_catalog_has_thirty_entries() -> None:
    assert len(CONTROL_SCOPES) == 30


@pytest.mark.parametrize(
    "traits",
    [
        [],
        ["team:payments", "tier.gold", "a", "A-b_c.d:e"],
        [f"t{i}" for i in range(64)],
        ["x" * 128],
        ["caracal.sys.x"],
        ["caracal.sysx:foo"],
    ],
)
def test_accepted_for_any_caller(traits: list[str]) -> None:
    check_traits(traits, global_caller=False)


@pytest.mark.parametrize(
    "trait",
    ["1team", "has space", "x" * 129, "tëam", "", "-x", "a+b", "a/b", "a@b", "_x"],
)
def test_invalid(trait: str) -> None:
    assert fails([trait]) == "trait_invalid"


def test_duplicate() -> None:
    assert fails(["a", "b", "a"]) == "trait_duplicate"


def test_count() -> None:
    assert fails([f"t{i}" for i in range(65)]) == "trait_count_exceeded"
    # the count is checked before any element rule
    assert fails(["1bad"] * 65) == "trait_count_exceeded"


def test_order_invalid_before_duplicate() -> None:
    assert fails(["a", "a", "1bad"]) == "trait_duplicate"
    assert fails(["1bad", "a", "a"]) == "trait_invalid"


@pytest.mark.parametrize(
    "trait", ["control:invoke", "caracal.sys:x", "control", "caracal.sys", "control:max-ttl:30"]
)
def test_privileged_namespaces_need_global(trait: str) -> None:
    assert fails([trait], global_caller=False) == "trait_forbidden"


@pytest.mark.parametrize(
    "trait",
    [
        "control:max-ttl:30",
        "control:max-ttl:59",
        "control:max-ttl:901",
        "control:max-ttl:99999",
        "control:max-ttl:",
        "control:max-ttl:3e2",
        "control:scope:control:nope",
        "control:scope:app:read",
        "control:expires:soon",
        "control:expires:2026-02-30",
        "control:expires:2026-13-01",
        "control:expires:2026-01-01T25:00",
        "control:expires:2026-01-01T10:00:61Z",
        "control:expires:2026-01-01T10:00-24:00",
        "control:expires:2026-01-01T10",
        "control",
        "control:other",
    ],
)
def test_control_invalid(trait: str) -> None:
    assert fails([trait]) == "trait_invalid"


@pytest.mark.parametrize(
    "traits",
    [
        ["control:invoke"],
        ["control:max-ttl:300"],
        ["control:max-ttl:60", "control:expires:2030-01-01"],
        ["control:max-ttl:900"],
        ["control:expires:2030-06-30T12:00Z"],
        ["control:expires:2030-06-30T12:00:59.123456789Z"],
        ["control:expires:2030-06-30T12:00:00-05:30"],
        ["control:expires:2030-06-30T12:00"],
        ["control:expires:2028-02-29"],
        ["caracal.sys:x"],
        [f"control:scope:{s}" for s in sorted(CONTROL_SCOPES)],
    ],
)
def test_control_accepted_for_global(traits: list[str]) -> None:
    check_traits(traits, global_caller=True)


def test_single_valued_control_traits() -> None:
    assert fails(["control:max-ttl:300", "control:max-ttl:600"]) == "trait_invalid"
    assert fails(["control:expires:2030-01-01", "control:expires:2031-01-01"]) == "trait_invalid"


def test_error_classes() -> None:
    assert TraitInvalid.code == "trait_invalid"
    assert TraitDuplicate.code == "trait_duplicate"
    assert TraitForbidden.code == "trait_forbidden"
    assert TraitCountExceeded.code == "trait_count_exceeded"
