"""Hypothesis properties of the shared building blocks.

(a) cursors (foundation §9.2): round trip, total decoding, keyset paging over colliding
    timestamps through the API; input timestamps (§1.2);
(b) PATCH (§10) on zones: exactly the sent fields change, `{}` is `no_fields`;
(c) CSV export (events.md §9.1): the csv module reads back the cells, CRLF lines, formula
    guard;
(d) stream signing (events.md §4): verifies, and breaks on any single-field change or
    another stream;
(e) strict JSON body decoding (§4.3): every byte string decodes or fails with a listed
    reason.

Bounded by default (`HOSTILE_EXAMPLES` raises every budget), derandomized, no example
database.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import re
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import pytest_asyncio
from hypothesis import HealthCheck, assume, example, given, note, settings
from hypothesis import strategies as st

from caracal_api.errors import InvalidCursor, InvalidJson
from caracal_api.events import signing
from caracal_api.kit import jsonio
from caracal_api.kit.pagination import Cursor, decode_cursor, encode_cursor
from caracal_api.kit.timefmt import format_ts, parse_ts
from caracal_api.zone_events import export
from tests.conftest import Api, assert_envelope
from tests.hostile.support import examples, hexname, hostile_app, sql

PURE = settings(
    max_examples=examples(300),
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
THROUGH_API = settings(
    max_examples=examples(20),
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)

OUTPUT_TS = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z")
INPUT_TS = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?Z")
BASE64URL = re.compile(r"[A-Za-z0-9_-]*")
# Text a JSON body may carry (§1.3): no NUL, no surrogates.
SAFE_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"))


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def api(database_dsn: str, redis_url: str) -> AsyncIterator[Api]:
    async with hostile_app(database_dsn, redis_url) as built:
        yield built


# --- (a) cursors ------------------------------------------------------------------------------


@PURE
@given(
    ts=st.datetimes(timezones=st.just(UTC)) | st.datetimes(),
    row_id=st.text(min_size=1),
)
@example(ts=datetime(5, 1, 1, tzinfo=UTC), row_id="early")
def test_cursor_round_trip(ts: datetime, row_id: str) -> None:
    cursor = encode_cursor(ts, row_id)
    assert BASE64URL.fullmatch(cursor), cursor  # base64url, no padding
    decoded = decode_cursor(cursor)
    assert decoded == Cursor(ts.replace(tzinfo=UTC), row_id)
    payload = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    assert OUTPUT_TS.fullmatch(payload["ts"]), payload  # §1.2 output form


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)
TS_LIKE = st.from_regex(INPUT_TS.pattern.replace("[0-9]", r"\d"), fullmatch=True) | st.text(
    max_size=40
)
CURSOR_OBJECTS = st.fixed_dictionaries(
    {}, optional={"ts": TS_LIKE | JSON_VALUES, "id": st.text(max_size=8) | JSON_VALUES}
) | st.dictionaries(st.text(max_size=4), JSON_VALUES, max_size=3)
CURSOR_TEXT = (
    st.text()
    | st.from_regex(BASE64URL.pattern, fullmatch=True)
    | st.builds(lambda v: _b64(json.dumps(v).encode()), CURSOR_OBJECTS | JSON_VALUES)
    | st.builds(_b64, st.binary())
    | st.builds(lambda t: _b64(t.encode("utf-8", "surrogatepass")), st.text())
)


@PURE
@given(text=CURSOR_TEXT)
@example(text=_b64(b"[" * 5000))
@example(text=_b64(json.dumps({"ts": "٢٠٢٤-٠١-٠١T٠٠:٠٠:٠٠Z", "id": "x"}).encode()))
def test_any_text_decodes_or_is_invalid_cursor(text: str) -> None:
    try:
        cursor = decode_cursor(text)
    except InvalidCursor as exc:
        refused: InvalidCursor | None = exc
    else:
        refused = None
    if refused is not None:
        assert (refused.status, refused.code) == (400, "invalid_cursor")
        return
    assert isinstance(cursor.id, str)
    assert cursor.id
    assert cursor.ts.tzinfo is not None
    assert cursor.ts.utcoffset() == timedelta(0)


@PURE
@given(text=TS_LIKE | st.from_regex(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", fullmatch=True))
@example(text="٢٠٢٤-٠١-٠١T٠٠:٠٠:٠٠Z")
@example(text="2024-13-45T00:00:00Z")
def test_input_timestamps_follow_the_1_2_rule(text: str) -> None:
    parsed = parse_ts(text)
    if parsed is None:
        return
    assert INPUT_TS.fullmatch(text), text  # ASCII digits only
    assert parsed.tzinfo is not None
    digits = (text[20:-1] + "000000")[:6] if "." in text else "000000"
    assert format_ts(parsed) == f"{text[:19]}.{digits}Z"


ROWS = 9


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def paged_zone(api: Api) -> tuple[str, list[str]]:
    """A zone holding ROWS live resources (created through the API)."""
    zone = (await api.zone(hexname("paging")))["id"]
    base = f"/v1/zones/{zone}"
    provider = await api.post(
        f"{base}/providers",
        json={"name": "p", "kind": "bearer_token", "config_json": {"bearer_token": "t"}},
    )
    assert provider.status_code == 201, provider.text
    ids = []
    for n in range(ROWS):
        body = {
            "name": f"row {n}",
            "scopes": ["docs:read"],
            "credential_provider_id": provider.json()["id"],
            "upstream_url": "https://docs.example.test",
        }
        created = await api.post(f"{base}/resources", json=body)
        assert created.status_code == 201, created.text
        ids.append(created.json()["id"])
    return zone, ids


@THROUGH_API
@given(
    buckets=st.lists(st.integers(0, 3), min_size=ROWS, max_size=ROWS),
    limit=st.integers(1, ROWS + 1),
)
async def test_paging_over_colliding_timestamps_sees_every_row_once(
    api: Api, paged_zone: tuple[str, list[str]], buckets: list[int], limit: int
) -> None:
    zone, ids = paged_zone
    base = datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    stamps = {row: base + timedelta(microseconds=b) for row, b in zip(ids, buckets, strict=True)}
    await sql(
        api,
        "UPDATE resources SET created_at = s.ts FROM unnest(CAST(:ids AS text[]),"
        " CAST(:stamps AS timestamptz[])) AS s(id, ts) WHERE resources.id = s.id",
        ids=list(stamps),
        stamps=list(stamps.values()),
    )
    want = sorted(ids, key=lambda row: (stamps[row], row), reverse=True)
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(ROWS + 2):
        query: dict[str, Any] = {"limit": limit}
        if cursor is not None:
            query["cursor"] = cursor
        response = await api.get(f"/v1/zones/{zone}/resources", params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        seen.extend(item["id"] for item in page["items"])
        assert (page["next_cursor"] is not None) == (len(page["items"]) == limit), page
        cursor = page["next_cursor"]
        if cursor is None:
            break
    note(f"limit={limit} buckets={buckets} seen={seen}")
    assert seen == want


# --- (b) PATCH ------------------------------------------------------------------------------

ZONE_FIELDS = ("name", "slug", "dcr_enabled", "operator_coauthor_badge", "operator_governed")
RUN = secrets.token_hex(3)
# Trim is exercised with Unicode whitespace; control characters (on which "whitespace"
# definitions disagree) are left out of names.
NAMES = st.tuples(
    st.sampled_from(["", " ", "\t", "\u3000", " \n"]),
    st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=40).filter(
        lambda s: s.strip() == s and s != ""
    ),
    st.sampled_from(["", " ", "\u2003"]),
).map("".join)
SLUGS = st.from_regex(r"[a-z0-9-]{1,24}", fullmatch=True).map(lambda s: f"h{s}-{RUN}")
ZONE_PATCHES = st.fixed_dictionaries(
    {},
    optional={
        "name": NAMES,
        "slug": SLUGS,
        "dcr_enabled": st.booleans(),
        "operator_coauthor_badge": st.booleans(),
        "operator_governed": st.booleans(),
    },
)


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def patched_zone(api: Api) -> str:
    return str((await api.zone(hexname("patch")))["id"])


@THROUGH_API
@given(patch=ZONE_PATCHES)
async def test_zone_patch_changes_exactly_the_sent_fields(
    api: Api, patched_zone: str, patch: dict[str, Any]
) -> None:
    path = f"/v1/zones/{patched_zone}"
    before = (await api.get(path)).json()
    response = await api.patch(path, json=patch)
    if not patch:
        assert_envelope(response, 400, "no_fields")
        assert (await api.get(path)).json() == before
        return
    assert response.status_code == 200, response.text
    after = response.json()
    assert list(after) == list(before)
    for name in ZONE_FIELDS:
        if name in patch:
            sent = patch[name]
            assert after[name] == (sent.strip() if name == "name" else sent), name
        else:
            assert after[name] == before[name], name
    for name in ("id", "created_by", "created_via_operator", "created_at"):
        assert after[name] == before[name], name
    assert after["updated_at"] >= before["updated_at"]
    assert (await api.get(path)).json() == after


async def test_zone_patch_of_nothing_is_no_fields(api: Api, patched_zone: str) -> None:
    path = f"/v1/zones/{patched_zone}"
    before = (await api.get(path)).json()
    assert_envelope(await api.patch(path, json={}), 400, "no_fields")
    assert (await api.get(path)).json() == before


# --- (c) CSV export --------------------------------------------------------------------------

CELLS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.decimals(allow_nan=False, allow_infinity=False)
    | st.text()
    | st.sampled_from(["=1+1", "+x", "-2", "@SUM(A1)", "\tx", "\rx", "\nx", "'=x", 'a"b', "a,b"])
    | st.datetimes(timezones=st.just(UTC))
    | st.lists(st.text(max_size=6) | st.integers(), max_size=3)
    | st.dictionaries(st.text(max_size=5), st.text(max_size=5) | st.integers(), max_size=3)
)


def _expected_cell(value: Any) -> str:
    text = export.cell_text(value)
    return "'" + text if text.startswith(("=", "+", "-", "@", "\t", "\r")) else text


def _record_ends(document: str) -> list[int]:
    """Offsets of the line ends outside quoted cells; fails on a bare CR or LF there."""
    ends: list[int] = []
    quoted = False
    i = 0
    while i < len(document):
        ch = document[i]
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in "\r\n":
            assert document[i : i + 2] == "\r\n", (i, document)
            ends.append(i)
            i += 1
        i += 1
    assert not quoted, document
    return ends


@PURE
@given(
    width=st.integers(1, 4),
    data=st.data(),
)
def test_csv_round_trips_through_the_csv_module(width: int, data: st.DataObject) -> None:
    columns = [f"c{n}" for n in range(width)]
    rows = data.draw(
        st.lists(st.lists(CELLS, min_size=width, max_size=width), max_size=4), label="rows"
    )
    document = export.render_csv(columns, [dict(zip(columns, r, strict=True)) for r in rows])
    assert document.endswith("\r\n")
    assert len(_record_ends(document)) == len(rows) + 1
    parsed = list(csv.reader(io.StringIO(document, newline="")))
    assert parsed[0] == columns
    assert len(parsed) == len(rows) + 1
    for got, row in zip(parsed[1:], rows, strict=True):
        want = [_expected_cell(v) for v in row]
        if want == [""]:
            # A single empty cell is an empty line, which the csv module reads as [].
            assert got in ([], [""])
            continue
        assert got == want
        for cell in got:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell


@PURE
@given(value=CELLS)
def test_cell_text_follows_the_9_1_rules(value: Any) -> None:
    text = export.cell_text(value)
    if value is None:
        assert text == ""
    elif isinstance(value, bool):
        assert text == ("true" if value else "false")
    elif isinstance(value, int | float | Decimal):
        assert re.fullmatch(r"-?[0-9]+(\.[0-9]+)?", text), text  # decimal, no exponent
        assert Decimal(text) == Decimal(str(value)) or Decimal(text) == Decimal(value)
    elif isinstance(value, datetime):
        assert OUTPUT_TS.fullmatch(text), text
    elif isinstance(value, dict):
        assert json.loads(text) == {str(k): v for k, v in value.items()}


# --- (d) stream signing -----------------------------------------------------------------------

NAMES_OF_FIELDS = st.text(min_size=1, max_size=12).filter(
    lambda k: k not in (signing.SIG_FIELD, signing.OUTBOX_ID_FIELD)
)
PAYLOADS = st.dictionaries(
    NAMES_OF_FIELDS, st.none() | st.booleans() | st.integers() | st.text(max_size=40), max_size=6
)
STREAMS = st.sampled_from(
    ["caracal.policy.invalidate", "caracal.sessions.revoke", "caracal.agents.lifecycle"]
)
KEYS = st.binary(min_size=32, max_size=32)


@PURE
@given(stream=STREAMS, payload=PAYLOADS, key=KEYS, other_key=KEYS, outbox_id=st.uuids())
def test_signature_verifies(
    stream: str, payload: dict[str, Any], key: bytes, other_key: bytes, outbox_id: Any
) -> None:
    fields = signing.message_fields(stream, str(outbox_id), payload, key)
    assert fields[0] == (signing.OUTBOX_ID_FIELD, str(outbox_id))
    assert fields[-1][0] == signing.SIG_FIELD
    assert signing.verify([key], stream, dict(fields))
    as_bytes = {n.encode(): v.encode() for n, v in fields}
    assert signing.verify([other_key, key], stream, as_bytes)
    assume(other_key != key)
    assert not signing.verify([other_key], stream, dict(fields))


@PURE
@given(
    stream=STREAMS,
    other_stream=st.text(max_size=30),
    payload=PAYLOADS,
    key=KEYS,
    data=st.data(),
)
def test_signature_breaks_on_any_single_change(
    stream: str, other_stream: str, payload: dict[str, Any], key: bytes, data: st.DataObject
) -> None:
    fields = dict(
        signing.message_fields(stream, "01900000-0000-7000-8000-000000000000", payload, key)
    )
    names = [n for n in fields if n != signing.SIG_FIELD]
    name = data.draw(st.sampled_from(names), label="field")
    change = data.draw(st.sampled_from(["value", "drop"]), label="change")
    tampered = dict(fields)
    if change == "drop":
        del tampered[name]
    else:
        new = data.draw(st.text(max_size=40).filter(lambda v: v != fields[name]), label="new")
        tampered[name] = new
    assert not signing.verify([key], stream, tampered)
    if other_stream != stream:
        assert not signing.verify([key], other_stream, fields)
    added = data.draw(NAMES_OF_FIELDS.filter(lambda n: n not in fields), label="added")
    assert not signing.verify([key], stream, {**fields, added: "x"})


# --- (e) JSON bodies ------------------------------------------------------------------------

REASONS = {
    "invalid_utf8",
    "syntax",
    "non_finite_number",
    "duplicate_key",
    "too_deep",
    "unsafe_string",
}
JSON_WHITESPACE = b" \t\n\r"
SAFE_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | SAFE_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(SAFE_TEXT, inner, max_size=4),
    max_leaves=12,
)


def _mutate(raw: bytes, edits: list[tuple[int, int, int]]) -> bytes:
    data = bytearray(raw)
    for kind, where, byte in edits:
        at = where % (len(data) + 1)
        if kind == 0:
            data.insert(at, byte)
        elif data:
            at %= len(data)
            if kind == 1:
                del data[at]
            else:
                data[at] = byte
    return bytes(data)


JSON_BYTES = (
    st.binary()
    | st.builds(lambda v: json.dumps(v, ensure_ascii=False).encode(), SAFE_JSON)
    | st.builds(
        _mutate,
        st.builds(lambda v: json.dumps(v, ensure_ascii=False).encode(), SAFE_JSON),
        st.lists(
            st.tuples(st.integers(0, 2), st.integers(0, 10_000), st.integers(0, 255)), max_size=3
        ),
    )
    | st.builds(
        lambda ws, core: ws + core + ws,
        st.sampled_from(
            [b"", b" ", b"\x0b", b"\x0c", b"\x1c", "\u00a0".encode(), "\u2028".encode()]
        ),
        st.sampled_from(
            [b"", b"null", b"{}", b"1", b"NaN", b"1e400", b'{"a":1,"a":2}', b'"\\ud800"']
        ),
    )
)


@PURE
@given(raw=JSON_BYTES)
@example(raw=b"\x1c")
@example(raw="\u00a0".encode())
@example(raw=b"[" * 70 + b"]" * 70)
@example(raw=b"[" * 20_000)
@example(raw=b"1" * 400)
def test_any_bytes_decode_or_fail_with_a_listed_reason(raw: bytes) -> None:
    try:
        value = jsonio.decode_body(raw)
    except InvalidJson as exc:
        refused: InvalidJson | None = exc
    else:
        refused = None
    if refused is not None:
        assert (refused.status, refused.code) == (400, "invalid_json")
        details = refused.details
        assert details is not None
        assert details["reason"] in REASONS, details
        if details["reason"] == "syntax":
            line, column = details["line"], details["column"]
            assert isinstance(line, int), details
            assert isinstance(column, int), details
            assert line >= 1, details
            assert column >= 1, details
        return
    if jsonio.is_absent(value):
        # Only an empty body (JSON whitespace) or a bare `null` is absent (§4.1).
        assert raw.strip(JSON_WHITESPACE) in (b"", b"null"), raw
        return
    # Anything accepted is plain RFC 8259 JSON meaning the same thing.
    assert value == json.loads(raw.decode("utf-8"))


@PURE
@given(value=SAFE_JSON)
def test_safe_json_decodes_to_itself(value: Any) -> None:
    raw = json.dumps(value, ensure_ascii=False).encode()
    decoded = jsonio.decode_body(raw)
    if value is None:
        assert jsonio.is_absent(decoded)
    else:
        assert decoded == value


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"a": "\\u0000"}', "unsafe_string"),
        (b'{"\\udfff": 1}', "unsafe_string"),
        (b'{"a": 1, "a": 1}', "duplicate_key"),
        (b"[" * 65 + b"]" * 65, "too_deep"),
        (b"-Infinity", "non_finite_number"),
        (b"\xef\xbb\xbf{}", "invalid_utf8"),
        (b"\x1c", "syntax"),
        ("\u00a0".encode(), "syntax"),
    ],
)
def test_listed_reasons(raw: bytes, reason: str) -> None:
    with pytest.raises(InvalidJson) as caught:
        jsonio.decode_body(raw)
    assert caught.value.details is not None
    assert caught.value.details["reason"] == reason


# --- the same rules seen through the API ------------------------------------------------------


async def test_api_refuses_a_body_of_non_json_whitespace(api: Api) -> None:
    for raw in ("\u00a0".encode(), b"\x1c", "\u2028".encode()):
        response = await api.post(
            "/v1/zones", content=raw, headers={"Content-Type": "application/json"}
        )
        body = assert_envelope(response, 400, "invalid_json")
        assert body["details"]["reason"] == "syntax"


async def test_api_refuses_timestamps_with_non_ascii_digits(api: Api) -> None:
    zone = (await api.zone(hexname("digits")))["id"]
    for since in ("٢٠٢٤-٠١-٠١T٠٠:٠٠:٠٠Z", "２０２４-01-01T00:00:00Z"):
        for path in (f"/v1/zones/{zone}/step-up-challenges", f"/v1/zones/{zone}/admin-audit"):
            response = await api.get(path, params={"since": since})
            assert_envelope(response, 400, "invalid_query")
        ok = await api.get(
            f"/v1/zones/{zone}/step-up-challenges", params={"since": "2024-01-01T00:00:00Z"}
        )
        assert ok.status_code == 200, ok.text


async def test_api_renders_early_years_with_four_digits(api: Api) -> None:
    zone = (await api.zone(hexname("early")))["id"]
    config = {
        "authorization_endpoint": "https://idp.example.test/authorize",
        "token_endpoint": "https://idp.example.test/token",
        "redirect_uri": "https://app.example.test/oauth/cb",
        "client_id": "cid",
        "client_secret": "csecret",
        "scopes": ["read"],
    }
    provider = await api.post(
        f"/v1/zones/{zone}/providers",
        json={"name": "early", "kind": "oauth2_authorization_code", "config_json": config},
    )
    assert provider.status_code == 201, provider.text
    imported = await api.post(
        f"/v1/zones/{zone}/provider-connections",
        json={
            "provider_id": provider.json()["id"],
            "access_token": "at",
            "expires_at": "0999-12-31T23:59:59.5Z",
        },
    )
    assert imported.status_code == 201, imported.text
    assert imported.json()["expires_at"] == "0999-12-31T23:59:59.500000Z"
    listed = (await api.get(f"/v1/zones/{zone}/provider-connections")).json()["items"]
    assert listed[0]["expires_at"] == "0999-12-31T23:59:59.500000Z"
