"""Schemathesis against the app's own `/openapi.json`, every operation, bootstrap token.

Each operation gets a bounded, derandomized run of positive and negative cases (schema
conforming and schema violating bodies, queries, headers and path segments). Path
parameters are sometimes the generated text, sometimes a real object of a seeded zone
and sometimes a well-formed id that matches nothing, so handlers see existing objects,
missing ones and malformed segments alike. Every answer must be below 500, and every
4xx must be the error envelope of foundation §5 with `request_id` equal to the
`x-request-id` header.

Requests go through httpx's ASGI transport in the test's own event loop (the app's
database pool is bound to it); Schemathesis only generates the cases.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
import schemathesis
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.core import NotSet

from tests.conftest import BOOTSTRAP_TOKEN, Api
from tests.hostile.support import (
    Route,
    Seeds,
    check_error,
    collection_of,
    examples,
    hostile_app,
    v1_routes,
    zone_param_name,
)
from tests.integration.foundation.harness import V1_HEADERS

ROUTES = v1_routes()
# Half the path parameters name a real object; generated text is mostly not a valid id.
PATH_CHOICES = ("existing", "existing", "missing", "generated")
EXAMPLES = examples(10)
# Generated headers never replace these: the test owns authentication and framing.
OWNED_HEADERS = frozenset(
    {"authorization", "content-type", "content-length", "transfer-encoding", "host", "connection"}
)


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def api(database_dsn: str, redis_url: str) -> AsyncIterator[Api]:
    """A dedicated app: generated bodies create many rows."""
    async with hostile_app(database_dsn, redis_url) as built:
        yield built


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def document(api: Api) -> dict[str, Any]:
    response = await api.client.get("/openapi.json")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def schemas(document: dict[str, Any]) -> dict[GenerationMode, Any]:
    """Per mode: positive cases avoid NUL (refused while decoding, foundation §1.3) so they
    reach the handlers; negative cases keep it."""
    positive = schemathesis.openapi.from_dict(document)
    positive.config.generation.update(allow_x00=False)
    negative = schemathesis.openapi.from_dict(document)
    return {GenerationMode.POSITIVE: positive, GenerationMode.NEGATIVE: negative}


@pytest.fixture(scope="module")
def seeds_by_route() -> dict[str, Seeds]:
    return {}


async def test_document_covers_every_v1_route(schemas: dict[GenerationMode, Any]) -> None:
    schema = schemas[GenerationMode.NEGATIVE]
    documented = {(op.ok().method.upper(), op.ok().path) for op in schema.get_all_operations()}
    declared = {(r.method, r.template) for r in ROUTES}
    assert declared <= documented, sorted(declared - documented)
    assert {d for d in documented if d[1].startswith("/v1/")} == declared


def _headers(generated: dict[str, Any] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in (generated or {}).items():
        text = str(value)
        if name.lower() in OWNED_HEADERS or "\r" in text or "\n" in text:
            continue
        try:
            name.encode("ascii")
            text.encode("latin-1")
        except UnicodeEncodeError:
            continue
        if not name or any(c in name for c in ' :\t()<>@,;\\"/[]?={}'):
            continue
        out[name] = text
    out["Authorization"] = f"Bearer {BOOTSTRAP_TOKEN}"
    return out


def _body(case: Any) -> tuple[bytes | None, str | None]:
    body = case.body
    if isinstance(body, NotSet):
        return None, None
    media_type = case.media_type or "application/json"
    if isinstance(body, bytes):
        return body, media_type
    return json.dumps(body).encode(), media_type


def _query(query: dict[str, Any] | None) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for name, value in (query or {}).items():
        values = value if isinstance(value, list) else [value]
        for item in values:
            if isinstance(item, bool):
                text = "true" if item else "false"
            elif item is None:
                text = ""
            elif isinstance(item, str):
                text = item
            else:
                text = json.dumps(item)
            pairs.append((str(name), text))
    return pairs


async def _fill_path(route: Route, case: Any, data: st.DataObject, seeds: Seeds) -> dict[str, str]:
    """Replace some generated path parameters; returns param → collection it names."""
    zone_param = zone_param_name(route.template)
    used: dict[str, str] = {}
    for name in route.params:
        collection = "zones" if name == zone_param else collection_of(route.template, name)
        choice = data.draw(st.sampled_from(PATH_CHOICES), label=name)
        if choice == "existing" and collection is not None:
            existing = await seeds.get(collection)
            if existing is not None:
                case.path_parameters[name] = existing
                used[name] = collection
        elif choice == "missing":
            case.path_parameters[name] = f"missing-{secrets.token_hex(6)}"
        elif (
            zone_param is not None
            and name != zone_param
            and collection is not None
            and data.draw(st.booleans(), label=f"{name} under seeded zone")
        ):
            # A generated child id under the seeded zone reaches the child lookup.
            case.path_parameters[zone_param] = await seeds.zone()
    return used


@pytest.mark.parametrize("route", ROUTES, ids=[r.label for r in ROUTES])
@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
@given(data=st.data())
async def test_operation_never_fails_server_side(
    api: Api,
    schemas: dict[GenerationMode, Any],
    seeds_by_route: dict[str, Seeds],
    route: Route,
    data: st.DataObject,
) -> None:
    seeds = seeds_by_route.setdefault(route.label, Seeds(api))
    mode = data.draw(st.sampled_from([GenerationMode.POSITIVE, GenerationMode.NEGATIVE]))
    operation = schemas[mode][route.template][route.method]
    case = data.draw(operation.as_strategy(generation_mode=mode), label="case")
    used = await _fill_path(route, case, data, seeds)
    if (
        mode is GenerationMode.POSITIVE
        and isinstance(case.body, dict)
        and data.draw(st.booleans(), label="drop null members")
    ):
        # PATCH models document optional members as nullable; most refuse an explicit null.
        case.body = {k: v for k, v in case.body.items() if v is not None}
    content, media_type = _body(case)
    headers = _headers(case.headers)
    if content is not None and media_type is not None:
        headers["Content-Type"] = media_type
    path = case.formatted_path
    query = _query(case.query)
    note(f"{route.method} {path} query={query!r} headers={headers!r} body={content!r}")
    response = await api.client.request(
        route.method, path, params=query, headers=headers, content=content
    )
    note(f"-> {response.status_code} {response.text[:500]}")
    assert response.status_code < 500, response.text
    assert response.headers.get("x-request-id"), response.headers
    for name, value in V1_HEADERS.items():
        assert response.headers.get(name) == value, (name, response.headers)
    if response.status_code >= 400:
        check_error(response)
    elif response.status_code == 204:
        assert response.content == b""
    elif response.headers.get("content-type", "").startswith("application/json"):
        response.json()
    if route.method == "DELETE" and 200 <= response.status_code < 300:
        # The deleted object (or archived zone) is recreated on next use.
        deleted = used.get(route.params[-1]) if route.params else None
        if deleted is not None:
            seeds.forget(deleted)
