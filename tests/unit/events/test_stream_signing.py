"""events.md §4: `_sig` canonical text, stringification, verification."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from caracal_api.events import signing

KEY = bytes(32)
OTHER_KEY = bytes(range(1, 33))
STREAM = "caracal.policy.invalidate"


def _payload() -> dict[str, str | int | bool | None]:
    return {"zone_id": "z1", "policy_set_id": "ps1", "policy_set_version_id": "psv1"}


def test_spec_example_canonical_text() -> None:
    fields = signing.published_fields("0190a", _payload())
    assert signing.canonical_text(STREAM, fields) == (
        b"caracal.policy.invalidate\noutbox_id=0190a\npolicy_set_id=ps1\n"
        b"policy_set_version_id=psv1\nzone_id=z1\n"
    )
    expected = hmac.new(KEY, signing.canonical_text(STREAM, fields), hashlib.sha256).hexdigest()
    assert signing.sign(KEY, STREAM, fields) == expected
    # Fixed vector, computed independently of this code.
    assert expected == "535c6c3c332d175c4dea6a5d477925b2b5c986f2336580de5875d9567ddf6458"
    assert expected == expected.lower()
    assert len(expected) == 64


def test_publish_order_outbox_id_first_sorted_then_sig_last() -> None:
    fields = signing.message_fields(
        STREAM, "o1", {"zone_id": "z", "b": True, "a": 7, "gone": None, "Z": "up"}, KEY
    )
    names = [n for n, _ in fields]
    assert names == ["outbox_id", "Z", "a", "b", "zone_id", "_sig"]
    values = dict(fields)
    assert values["b"] == "true"
    assert values["a"] == "7"
    assert "gone" not in values


def test_no_key_no_sig() -> None:
    fields = signing.message_fields(STREAM, "o1", _payload(), None)
    assert all(n != "_sig" for n, _ in fields)
    assert not signing.verify([KEY], STREAM, dict(fields))


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("s", "s"),
        ("", ""),
        (True, "true"),
        (False, "false"),
        (0, "0"),
        (42, "42"),
        (-5, "-5"),
        (10**18, "1000000000000000000"),
        (None, None),
    ],
)
def test_stringify(value: str | int | bool | None, text: str | None) -> None:
    assert signing.stringify(value) == text


def test_stringify_rejects_float() -> None:
    with pytest.raises(TypeError):
        signing.stringify(1.0)  # type: ignore[arg-type]


def test_verify_roundtrip_and_tampering() -> None:
    fields = dict(signing.message_fields(STREAM, "o1", _payload(), KEY))
    assert signing.verify([KEY], STREAM, fields)
    assert signing.verify([OTHER_KEY, KEY], STREAM, fields)
    assert not signing.verify([OTHER_KEY], STREAM, fields)
    assert not signing.verify([KEY], "caracal.sessions.revoke", fields)
    tampered = dict(fields, zone_id="z2")
    assert not signing.verify([KEY], STREAM, tampered)
    added = dict(fields, extra="1")
    assert not signing.verify([KEY], STREAM, added)
    removed = {k: v for k, v in fields.items() if k != "policy_set_version_id"}
    assert not signing.verify([KEY], STREAM, removed)
    other_id = dict(fields, outbox_id="o2")
    assert not signing.verify([KEY], STREAM, other_id)


def test_verify_accepts_bytes_from_redis() -> None:
    fields = signing.message_fields(STREAM, "o1", {"zone_id": "ž"}, KEY)
    raw = {n.encode(): v.encode() for n, v in fields}
    assert signing.verify([KEY], STREAM, raw)


def test_sort_is_bytewise() -> None:
    text = signing.canonical_text("s", [("b", "1"), ("B", "2"), ("_a", "3"), ("a", "4")])
    assert text == b"s\nB=2\n_a=3\na=4\nb=1\n"


def test_resp_packing() -> None:
    from caracal_api.events import publish

    assert publish.pack([["XADD", "s", "*", "k", "é"], ["PING"]]) == (
        b"*5\r\n$4\r\nXADD\r\n$1\r\ns\r\n$1\r\n*\r\n$1\r\nk\r\n$2\r\n\xc3\xa9\r\n*1\r\n$4\r\nPING\r\n"
    )
