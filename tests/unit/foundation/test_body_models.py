"""Body models (foundation §4.2, §4.4): strict/lenient keys and JSON typing rules."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

import pytest

from caracal_api.errors import ValidationFailed
from caracal_api.kit import jsonio
from caracal_api.kit.schemas import (
    Length,
    LenientBody,
    StrictBody,
    StrictPatchBody,
    Trim,
    validate_body,
)


class StrictThing(StrictBody):
    name: Annotated[str, Trim, Length(1, 10)]
    count: int = 1
    enabled: bool = False


class LenientThing(LenientBody):
    name: str
    count: int = 1


class ThingPatch(StrictPatchBody):
    nullable: ClassVar[frozenset[str]] = frozenset({"note"})
    name: str | None = None
    note: str | None = None


def issues(model: type[Any], raw: Any, code: str = "invalid_thing") -> list[dict[str, Any]]:
    with pytest.raises(ValidationFailed) as caught:
        validate_body(model, raw, code)
    error = caught.value
    assert (error.status, error.code) == (400, code)
    assert error.details is not None
    return error.details["issues"]  # type: ignore[no-any-return]


# foundation §18 item 14
@pytest.mark.parametrize("bad", [1.5, "600", True, False, 3600.0, None, [1], {"n": 1}])
def test_integer_fields_take_only_integers(bad: Any) -> None:
    found = issues(StrictThing, {"name": "x", "count": bad})
    assert [i["path"] for i in found] == [["count"]]


# foundation §18 item 14 (as decoded from the wire: 36e2 and 3600.0 are floats)
@pytest.mark.parametrize("raw", [b"3600.0", b"36e2", b"1.5", b'"600"', b"true"])
def test_integer_fields_from_json_text(raw: bytes) -> None:
    body = jsonio.decode_body(b'{"name": "x", "count": ' + raw + b"}")
    assert [i["path"] for i in issues(StrictThing, body)] == [["count"]]


def test_integers_and_booleans_accepted() -> None:
    thing = validate_body(StrictThing, {"name": " x ", "count": 3600, "enabled": True}, "c")
    assert (thing.name, thing.count, thing.enabled) == ("x", 3600, True)


@pytest.mark.parametrize("bad", [1, 0, "true", "false", None])
def test_boolean_fields_take_only_booleans(bad: Any) -> None:
    assert [i["path"] for i in issues(StrictThing, {"name": "x", "enabled": bad})] == [["enabled"]]


@pytest.mark.parametrize("bad", [5, None, ["x"], {"x": 1}, True, "", "   ", "x" * 11])
def test_string_fields(bad: Any) -> None:
    assert [i["path"] for i in issues(StrictThing, {"name": bad})] == [["name"]]


# foundation §18 item 13 (strict)
@pytest.mark.parametrize(
    "key", ["__proto__", "constructor", "owner_account_id", "id", "archived_at", "zone_id"]
)
def test_strict_bodies_reject_unknown_keys(key: str) -> None:
    found = issues(StrictThing, {"name": "x", key: "v"})
    assert found == [{"path": [key], "message": "unknown field"}]


# foundation §18 item 13 (lenient)
def test_lenient_bodies_drop_unknown_keys() -> None:
    raw = {"name": "x", "__proto__": {}, "constructor": 1, "id": "mine", "archived_at": "now"}
    thing = validate_body(LenientThing, raw, "c")
    assert thing.model_dump() == {"name": "x", "count": 1}
    # Dropping unknown keys does not relax the typing of known ones.
    assert [i["path"] for i in issues(LenientThing, {"name": "x", "count": "1"})] == [["count"]]


# foundation §18 items 10 and 11
@pytest.mark.parametrize("raw", [jsonio.ABSENT, [], ["x"], "text", 42, 1.5, True, False])
def test_absent_and_non_object_bodies_use_the_route_code(raw: Any) -> None:
    found = issues(StrictThing, raw, "invalid_zone")
    assert len(found) == 1
    assert found[0]["path"] == []


def test_patch_null_only_where_nullable() -> None:
    patch = validate_body(ThingPatch, {"note": None}, "c")
    assert patch.model_fields_set == {"note"}
    assert [i["path"] for i in issues(ThingPatch, {"name": None})] == [["name"]]
