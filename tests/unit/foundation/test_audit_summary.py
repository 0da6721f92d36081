"""Change summaries and entity derivation of admin-audit records (foundation §13.2, §13.3)."""

from __future__ import annotations

from typing import Any

import pytest

from caracal_api.audit.summary import action_verb, change_summary, entity_of, zone_of_path

Z = "/v1/zones/z1"


# foundation §18 item 45: entity derivation (§13.2 rules 1–3)
@pytest.mark.parametrize(
    ("method", "path", "status", "body", "expected"),
    [
        # rule 1: a 201 POST to a collection takes the new id from the response
        ("POST", "/v1/zones", 201, {"id": "new-zone"}, ("zones", "new-zone")),
        ("POST", f"{Z}/applications", 201, {"id": "app-1"}, ("applications", "app-1")),
        ("POST", "/v1/admin-tokens", 201, {"id": "tok"}, ("admin-tokens", "tok")),
        ("POST", f"{Z}/policies", 201, {"id": "p", "version_id": "v"}, ("policies", "p")),
        ("POST", f"{Z}/applications", 201, {"name": "no id"}, ("applications", None)),
        ("POST", f"{Z}/applications", 201, None, ("applications", None)),
        # rule 2: innermost <collection>/<next> pair of the URL
        ("POST", f"{Z}/applications/dcr", 201, {"id": "x"}, ("applications", "dcr")),
        ("POST", f"{Z}/providers/discovery", 200, {}, ("providers", "discovery")),
        ("POST", f"{Z}/provider-connections/revoke", 200, {}, ("provider-connections", "revoke")),
        ("POST", f"{Z}/provider-grants/revoke", 200, {}, ("provider-connections", "revoke")),
        (
            "POST",
            f"{Z}/provider-grants/oauth/authorize",
            200,
            {},
            ("provider-connections", "oauth"),
        ),
        ("POST", "/v1/policies/validate", 200, {}, ("policies", "validate")),
        ("POST", f"{Z}/applications/a1/rotate-secret", 200, {"id": "a1"}, ("applications", "a1")),
        ("PATCH", f"{Z}/applications/a1", 200, {"id": "a1"}, ("applications", "a1")),
        ("DELETE", f"{Z}/applications/a1", 204, None, ("applications", "a1")),
        ("POST", f"{Z}/policy-sets/s1/versions", 201, {"id": "v1"}, ("policy-sets", "s1")),
        ("POST", f"{Z}/policy-sets/s1/activate", 202, {}, ("policy-sets", "s1")),
        ("POST", f"{Z}/step-up-challenges/c1/approve", 200, {}, ("step-up-challenges", "c1")),
        ("PATCH", Z, 200, {"id": "z1"}, ("zones", "z1")),
        ("DELETE", "/v1/admin-tokens/t1", 204, None, ("admin-tokens", "t1")),
        # a failed create is rule 2 (or 3), never rule 1
        ("POST", f"{Z}/applications", 400, None, ("zones", "z1")),
        ("POST", "/v1/zones", 409, None, (None, None)),
        # rule 3
        ("GET", "/v1/definitely-not-a-route", 404, None, (None, None)),
        ("POST", "/v1", 404, None, (None, None)),
    ],
)
def test_entity_of(
    method: str, path: str, status: int, body: Any, expected: tuple[str | None, str | None]
) -> None:
    assert entity_of(method, path, status, body) == expected


# foundation §18 items 45, 72: the zone of a record comes from its path
@pytest.mark.parametrize(
    ("path", "zone"),
    [
        ("/v1/zones/abc", "abc"),
        ("/v1/zones/abc/applications/x", "abc"),
        ("/v1/zones/ok%2Dx/overview", "ok-x"),
        ("/v1/zones/a%2Fb", None),
        ("/v1/zones/" + "x" * 129, None),
        ("/v1/zones", None),
        ("/v1/admin-tokens/t", None),
        ("/v1/policies/validate", None),
        ("/health", None),
    ],
)
def test_zone_of_path(path: str, zone: str | None) -> None:
    assert zone_of_path(path) == zone


# foundation §18 item 45: the action verb (`rotate-secret`, `test`, `activate`, …)
@pytest.mark.parametrize(
    ("path", "verb"),
    [
        (f"{Z}/applications/a/rotate-secret", "rotate-secret"),
        (f"{Z}/policy-sets/s/activate", "activate"),
        (f"{Z}/policy-sets/s/simulate", "simulate"),
        (f"{Z}/policy-sets/s/versions", "versions"),
        (f"{Z}/policies/p/versions", "versions"),
        (f"{Z}/providers/p/test", "test"),
        (f"{Z}/step-up-challenges/c/approve", "approve"),
        (f"{Z}/step-up-challenges/c/reject", "reject"),
        (f"{Z}/applications/a", None),
        (f"{Z}/applications", None),  # the segment after zones/z1 is a collection
        (f"{Z}/applications/dcr", None),
        ("/v1/zones", None),
        (Z, None),
    ],
)
def test_action_verb(path: str, verb: str | None) -> None:
    assert action_verb(path) == verb


def summary(method: str, path: str, body: Any) -> dict[str, Any]:
    return change_summary(method, path, body)


# foundation §18 item 45: change_kind
def test_change_kinds() -> None:
    assert summary("DELETE", f"{Z}/applications/a", None) == {
        "change_kind": "delete",
        "changed_fields": [],
    }
    assert summary("POST", f"{Z}/applications", {"name": "n", "registration_method": "m"}) == {
        "change_kind": "create",
        "changed_fields": ["name", "registration_method"],
    }
    assert summary("POST", f"{Z}/applications/a/rotate-secret", None) == {
        "change_kind": "secret_rotation",
        "changed_fields": [],
        "secret_rotated": True,
    }
    assert summary("POST", f"{Z}/providers/p/test", {"ignored": 1}) == {
        "change_kind": "action",
        "changed_fields": ["ignored"],
    }
    assert summary("POST", f"{Z}/policy-sets/s/activate", {"version_id": "v"}) == {
        "change_kind": "action",
        "changed_fields": ["version_id"],
    }
    assert summary("POST", f"{Z}/step-up-challenges/c/approve", None) == {
        "change_kind": "action",
        "changed_fields": [],
    }
    assert summary("PATCH", Z, {"name": "x"}) == {
        "change_kind": "update",
        "changed_fields": ["name"],
    }
    assert summary("PUT", Z, {"name": "x"}) == {"change_kind": "update", "changed_fields": ["name"]}
    # An update with no recordable field carries no summary at all.
    assert summary("PATCH", Z, {}) == {}
    assert summary("PATCH", Z, None) == {}
    # A create always carries one, even empty.
    assert summary("POST", "/v1/zones", None) == {"change_kind": "create", "changed_fields": []}
    assert summary("POST", "/v1/policies/validate", {"content": "x"}) == {
        "change_kind": "create",
        "changed_fields": ["content"],
    }
    assert summary("POST", f"{Z}/applications/dcr", {"name": "d"})["change_kind"] == "create"


# foundation §18 item 45: secrets are never field names, and mark a rotation
def test_secret_rules() -> None:
    secret = "s" * 40
    assert summary("PATCH", f"{Z}/applications/a", {"client_secret": secret, "name": "n"}) == {
        "change_kind": "secret_rotation",
        "changed_fields": ["name"],
        "secret_rotated": True,
    }
    # Only a secret: still a rotation, with an empty field list.
    assert summary("PATCH", f"{Z}/applications/a", {"client_secret": secret}) == {
        "change_kind": "secret_rotation",
        "changed_fields": [],
        "secret_rotated": True,
    }
    for key in (
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
        "Client_Secret",
        "API_KEY",
    ):
        result = summary("PATCH", f"{Z}/providers/p", {"config_json": {key: "v", "client_id": "c"}})
        assert result == {
            "change_kind": "secret_rotation",
            "changed_fields": ["config_json.client_id"],
            "secret_rotated": True,
        }, key
    # A nested object whose only children are secrets is listed as its own path.
    assert summary("PATCH", f"{Z}/providers/p", {"config_json": {"private_key": "k"}}) == {
        "change_kind": "secret_rotation",
        "changed_fields": ["config_json"],
        "secret_rotated": True,
    }
    # A POST create that carries a secret stays a create, flagged.
    assert summary(
        "POST", f"{Z}/providers", {"kind": "api_key", "config_json": {"api_key": "k"}}
    ) == {
        "change_kind": "create",
        "changed_fields": ["config_json", "kind"],
        "secret_rotated": True,
    }
    # Secrets inside arrays count too; the array itself is a leaf.
    assert summary("PATCH", Z, {"items": [{"password": "p"}]}) == {
        "change_kind": "secret_rotation",
        "changed_fields": ["items"],
        "secret_rotated": True,
    }
    # Lookalikes are ordinary fields.
    assert summary("PATCH", Z, {"token_endpoint": "u", "secrets_note": "n"}) == {
        "change_kind": "update",
        "changed_fields": ["secrets_note", "token_endpoint"],
    }
    # Values never appear.
    result = summary("PATCH", f"{Z}/applications/a", {"client_secret": secret, "name": "visible"})
    assert secret not in repr(result)
    assert "visible" not in repr(result)


# foundation §18 item 45: nested PATCH fields are dotted and sorted
def test_changed_fields_shape() -> None:
    body = {
        "name": "n",
        "config_json": {"token_params": {"b": "2", "a": "1"}, "client_id": "c", "scopes": ["x"]},
        "manifest": [{"policy_version_id": "v"}],
        "deep": {"l2": {"l3": {"l4": {"l5": 1}}, "empty": {}}},
    }
    assert summary("PATCH", f"{Z}/providers/p", body)["changed_fields"] == [
        "config_json.client_id",
        "config_json.scopes",
        "config_json.token_params.a",
        "config_json.token_params.b",
        "deep.l2.empty",
        "deep.l2.l3",
        "manifest",
        "name",
    ]
    many = {f"k{n:03d}": n for n in range(100)}
    fields = summary("PATCH", Z, many)["changed_fields"]
    assert fields == [f"k{n:03d}" for n in range(64)]
    # Keys a lenient route ignores are still listed (names as sent).
    assert summary("POST", f"{Z}/resources", {"id": "x", "name": "r"})["changed_fields"] == [
        "id",
        "name",
    ]
