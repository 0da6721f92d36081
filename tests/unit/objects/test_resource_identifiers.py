"""Resource identifier, upstream URL and operation rules (objects.md §4.2, §4.4)."""

from __future__ import annotations

import pytest

from caracal_api.errors import CaracalError
from caracal_api.resources.identifiers import (
    candidates,
    generated_base,
    is_reserved,
    is_valid_identifier,
    is_valid_upstream_url,
    normalise_operations,
)


@pytest.mark.parametrize(
    "identifier",
    [
        "caracal-control",
        "resource://api/v2",
        "resource://inventory",
        "urn:x",
        "https://api.example.test/v2",
        "https://api.example.test:8443/v2?q=1#f",
        "http://[::1]:80/x",
        "HTTPS://Api.Example.test",
        "custom+scheme.v1-x:thing",
        "resource://",
        "mailto:ops@example.test",
        "r:" + "x" * 510,
    ],
)
def test_valid_identifiers(identifier: str) -> None:
    assert is_valid_identifier(identifier)


@pytest.mark.parametrize(
    "identifier",
    [
        "pipernet",
        "not a uri",
        "provider://x",
        "PROVIDER://x",
        "https://user:pw@host",
        "resource://user@host/x",
        "https://",
        "https:///path",
        "https://host:80x/",
        "urn:",
        "1abc:x",
        "resource://a\tb",
        "resource://a\x00",
        "r:" + "x" * 511,
        "",
        "caracal-control ",
    ],
)
def test_invalid_identifiers(identifier: str) -> None:
    assert not is_valid_identifier(identifier)


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://api.example.test/v1", True),
        ("http://10.0.0.1:8080", True),
        ("ftp://files.example.test", False),
        ("garbage", False),
        ("https://", False),
        ("https://exa mple.test", False),
        ("https://h:99999999/", False),
        ("https://h/" + "x" * 2040, False),
    ],
)
def test_upstream_url(url: str, ok: bool) -> None:
    assert is_valid_upstream_url(url) is ok


def test_generated() -> None:
    assert generated_base("Inventory API") == "resource://inventory-api"
    assert generated_base("resource://Keep/As-Is ") == "resource://Keep/As-Is"
    assert generated_base("!!!") == "resource://resource"
    assert list(candidates("resource://a"))[:2] == ["resource://a", "resource://a-2"]
    assert is_reserved(" CARACAL-SYS://x")
    assert not is_reserved("my-caracal-sys://x")


def test_operations_normalised() -> None:
    ops = normalise_operations(
        [
            {"method": " get ", "path": " /items ", "scope": "read"},
            {"method": "post", "path": "/items", "scope": "write"},
        ],
        ["read", "write"],
    )
    assert ops == [
        {"method": "GET", "path": "/items", "scope": "read"},
        {"method": "POST", "path": "/items", "scope": "write"},
    ]


@pytest.mark.parametrize(
    ("ops", "code"),
    [
        ([{"method": " ", "path": "/x", "scope": "read"}], "operation_method_and_path_required"),
        ([{"method": "GET", "path": " ", "scope": "read"}], "operation_method_and_path_required"),
        ([{"method": "GET", "path": "x", "scope": "read"}], "operation_path_must_be_absolute"),
        (
            [{"method": "GET", "path": "/x", "scope": "admin"}],
            "operation_scope_not_in_resource_scopes",
        ),
        (
            [
                {"method": "get", "path": "/x", "scope": "read"},
                {"method": "GET", "path": " /x", "scope": "read"},
            ],
            "operation_duplicate",
        ),
    ],
)
def test_operation_failures(ops: list[dict[str, str]], code: str) -> None:
    with pytest.raises(CaracalError) as info:
        normalise_operations(ops, ["read"])
    assert info.value.code == code
    assert info.value.status == 400
