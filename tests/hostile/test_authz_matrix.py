"""Authorization matrix: every `/v1` route × every kind of caller (foundation §6.5, §7).

The routes come from `caracal_api.app.routers()` at collection time, so a new route is in
the matrix the moment it is registered. The expected answer of each request comes from
`expected_answer`, a small pure implementation of the auth-class rules (§7.1) and the gate
table (§7.2); `test_gates_follow_the_7_3_matrix` checks that function against the
capability/scope matrix of §7.3 before the app is asked anything.

Path parameters: the zone parameter (§7.2: `:zoneId`, or `:id` on `/v1/zones/:id…`) is a
real zone (an ordinary one, and for the global tokens also a reserved system zone); every
other parameter is a well-formed id that matches nothing. No request carries a body, so a
caller that passes the gates meets the route's own checks (400/404/…): for those only
"no 401, no gate 403, no 5xx" is asserted.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace

import httpx
import pytest
import pytest_asyncio

from tests.conftest import BOOTSTRAP_TOKEN, Api
from tests.hostile.support import (
    Route,
    check_error,
    hexname,
    hostile_app,
    sql,
    v1_routes,
    zone_param_name,
)

READ_METHODS = frozenset({"GET", "HEAD"})
# §7.4: class R routes zone tokens may call although they name no zone.
GLOBAL_READ_PATHS = frozenset({("POST", "/v1/policies/validate"), ("GET", "/v1/policy-templates")})
GATE_CODES = frozenset(
    {
        "admin_token_read_only",
        "admin_token_approve_only",
        "approve_capability_required",
        "admin_token_zone_mismatch",
        "system_zone_read_only",
    }
)
UNAUTHENTICATED = (401, "invalid_admin_token")
PLACEHOLDER = "hostile-missing-id"

Answer = tuple[int, str] | None  # None: the request passes authentication and the gates


# --- the oracle (pure) -----------------------------------------------------------------------


@dataclass(frozen=True)
class Caller:
    """One kind of caller. `zone` is the token's zone for zone-scoped tokens."""

    name: str
    authenticated: bool = True
    capability: str = "write"
    zone: str | None = None
    bootstrap: bool = False
    header: str | None = field(default=None, compare=False, repr=False)


def gate_answer(
    auth: str, method: str, template: str, route_zone: str | None, reserved: bool, caller: Caller
) -> Answer:
    """The first failing gate of foundation §7.2, or None."""
    mg_write = auth == "MG" and method not in READ_METHODS
    if caller.capability == "read" and (auth in ("W", "AP") or mg_write):
        return 403, "admin_token_read_only"
    if caller.capability == "approve" and (auth == "W" or mg_write):
        return 403, "admin_token_approve_only"
    if auth == "AP" and caller.capability == "write" and not caller.bootstrap:
        return 403, "approve_capability_required"
    if caller.zone is not None:
        as_get = "GET" if method == "HEAD" else method
        if (as_get, template) not in GLOBAL_READ_PATHS and (
            route_zone is None or route_zone != caller.zone
        ):
            return 403, "admin_token_zone_mismatch"
    if auth in ("W", "AP") and route_zone is not None and reserved and not caller.bootstrap:
        return 403, "system_zone_read_only"
    return None


def expected_answer(
    route: Route, method: str, route_zone: str | None, reserved: bool, caller: Caller
) -> Answer:
    """What foundation §2 steps 4–7 answer for `caller` on `route` (None: passes)."""
    if route.auth == "public":
        return None  # no token is read
    if not caller.authenticated:
        return UNAUTHENTICATED
    if method == "HEAD" and not route.head:
        return 405, "method_not_allowed"
    return gate_answer(route.auth, method, route.template, route_zone, reserved, caller)


# --- §7.3, as a table -------------------------------------------------------------------------

OK = None
RO = (403, "admin_token_read_only")
AO = (403, "admin_token_approve_only")
APR = (403, "approve_capability_required")
ZM = (403, "admin_token_zone_mismatch")
SZ = (403, "system_zone_read_only")

# Column → (auth class, method, template, zone the route names, reserved zone?)
COLUMNS: dict[str, tuple[str, str, str, str | None, bool]] = {
    "R": ("R", "GET", "/v1/zones/{zoneId}/applications", "Z", False),
    "W": ("W", "POST", "/v1/zones/{zoneId}/applications", "Z", False),
    "AP": ("AP", "POST", "/v1/zones/{zoneId}/step-up-challenges/{id}/approve", "Z", False),
    "MG GET": ("MG", "GET", "/v1/admin-tokens", None, False),
    "MG HEAD": ("MG", "HEAD", "/v1/admin-tokens", None, False),
    "MG POST": ("MG", "POST", "/v1/admin-tokens", None, False),
    "MG DELETE": ("MG", "DELETE", "/v1/admin-tokens/{id}", None, False),
    "zones list": ("R", "GET", "/v1/zones", None, False),
    "zones create": ("W", "POST", "/v1/zones", None, False),
    "reveal": ("W", "GET", "/v1/zones/{zoneId}/applications/{id}/client-secret", "Z", False),
    "R system": ("R", "GET", "/v1/zones/{id}", "S", True),
    "W system": ("W", "PATCH", "/v1/zones/{id}", "S", True),
    "AP system": ("AP", "POST", "/v1/zones/{zoneId}/step-up-challenges/{id}/reject", "S", True),
    "validate": ("R", "POST", "/v1/policies/validate", None, False),
    "templates": ("R", "GET", "/v1/policy-templates", None, False),
}

TABLE_CALLERS = {
    "global read": Caller("global read", capability="read"),
    "global write": Caller("global write", capability="write"),
    "global approve": Caller("global approve", capability="approve"),
    "bootstrap": Caller("bootstrap", capability="write", bootstrap=True),
    "zone Z read": Caller("zone Z read", capability="read", zone="Z"),
    "zone Z write": Caller("zone Z write", capability="write", zone="Z"),
    "zone Z approve": Caller("zone Z approve", capability="approve", zone="Z"),
    "zone S write": Caller("zone S write", capability="write", zone="S"),
    "zone O read": Caller("zone O read", capability="read", zone="O"),
    "zone O write": Caller("zone O write", capability="write", zone="O"),
    "zone O approve": Caller("zone O approve", capability="approve", zone="O"),
}

# Rows of foundation §7.3 (plus §7.4 global read paths and §7.5 reserved zones). A zone
# token outside its zone: gates 1–3 answer before gate 4 ("read/approve tokens: gate 1/2
# code first"; an AP route with a write token is gate 3).
# fmt: off
TABLE_7_3: dict[str, dict[str, tuple[int, str] | None]] = {
    "global read": {
        "R": OK, "W": RO, "AP": RO, "MG GET": OK, "MG HEAD": OK, "MG POST": RO,
        "MG DELETE": RO, "zones list": OK, "zones create": RO, "reveal": RO,
        "R system": OK, "W system": RO, "AP system": RO, "validate": OK, "templates": OK,
    },
    "global write": {
        "R": OK, "W": OK, "AP": APR, "MG GET": OK, "MG HEAD": OK, "MG POST": OK,
        "MG DELETE": OK, "zones list": OK, "zones create": OK, "reveal": OK,
        "R system": OK, "W system": SZ, "AP system": APR, "validate": OK, "templates": OK,
    },
    "global approve": {
        "R": OK, "W": AO, "AP": OK, "MG GET": OK, "MG HEAD": OK, "MG POST": AO,
        "MG DELETE": AO, "zones list": OK, "zones create": AO, "reveal": AO,
        "R system": OK, "W system": AO, "AP system": SZ, "validate": OK, "templates": OK,
    },
    "bootstrap": {
        "R": OK, "W": OK, "AP": OK, "MG GET": OK, "MG HEAD": OK, "MG POST": OK,
        "MG DELETE": OK, "zones list": OK, "zones create": OK, "reveal": OK,
        "R system": OK, "W system": OK, "AP system": OK, "validate": OK, "templates": OK,
    },
    "zone Z read": {
        "R": OK, "W": RO, "AP": RO, "MG GET": ZM, "MG HEAD": ZM, "MG POST": RO,
        "MG DELETE": RO, "zones list": ZM, "zones create": RO, "reveal": RO,
        "R system": ZM, "W system": RO, "AP system": RO, "validate": OK, "templates": OK,
    },
    "zone Z write": {
        "R": OK, "W": OK, "AP": APR, "MG GET": ZM, "MG HEAD": ZM, "MG POST": ZM,
        "MG DELETE": ZM, "zones list": ZM, "zones create": ZM, "reveal": OK,
        "R system": ZM, "W system": ZM, "AP system": APR, "validate": OK, "templates": OK,
    },
    "zone Z approve": {
        "R": OK, "W": AO, "AP": OK, "MG GET": ZM, "MG HEAD": ZM, "MG POST": AO,
        "MG DELETE": AO, "zones list": ZM, "zones create": AO, "reveal": AO,
        "R system": ZM, "W system": AO, "AP system": ZM, "validate": OK, "templates": OK,
    },
    "zone S write": {
        "R": ZM, "W": ZM, "AP": APR, "MG GET": ZM, "MG HEAD": ZM, "MG POST": ZM,
        "MG DELETE": ZM, "zones list": ZM, "zones create": ZM, "reveal": ZM,
        "R system": OK, "W system": SZ, "AP system": APR, "validate": OK, "templates": OK,
    },
    "zone O read": {
        "R": ZM, "W": RO, "AP": RO, "MG GET": ZM, "MG HEAD": ZM, "MG POST": RO,
        "MG DELETE": RO, "zones list": ZM, "zones create": RO, "reveal": RO,
        "R system": ZM, "W system": RO, "AP system": RO, "validate": OK, "templates": OK,
    },
    "zone O write": {
        "R": ZM, "W": ZM, "AP": APR, "MG GET": ZM, "MG HEAD": ZM, "MG POST": ZM,
        "MG DELETE": ZM, "zones list": ZM, "zones create": ZM, "reveal": ZM,
        "R system": ZM, "W system": ZM, "AP system": APR, "validate": OK, "templates": OK,
    },
    "zone O approve": {
        "R": ZM, "W": AO, "AP": ZM, "MG GET": ZM, "MG HEAD": ZM, "MG POST": AO,
        "MG DELETE": AO, "zones list": ZM, "zones create": AO, "reveal": AO,
        "R system": ZM, "W system": AO, "AP system": ZM, "validate": OK, "templates": OK,
    },
}
# fmt: on


@pytest.mark.parametrize("row", sorted(TABLE_7_3))
def test_gates_follow_the_7_3_matrix(row: str) -> None:
    caller = TABLE_CALLERS[row]
    assert set(TABLE_7_3[row]) == set(COLUMNS)
    for column, want in TABLE_7_3[row].items():
        auth, method, template, zone, reserved = COLUMNS[column]
        got = gate_answer(auth, method, template, zone, reserved, caller)
        assert got == want, (row, column, got, want)


def test_unauthenticated_and_public_rules() -> None:
    anonymous = Caller("none", authenticated=False)
    read = Caller("read", capability="read")
    callback = Route(
        "GET", "/v1/zones/{zoneId}/provider-connections/oauth/callback", "public", True
    )
    create = Route("POST", "/v1/zones", "W", False)
    reveal = Route("GET", "/v1/zones/{zoneId}/applications/{id}/client-secret", "W", False)
    assert expected_answer(callback, "GET", "Z", False, anonymous) is None
    assert expected_answer(callback, "GET", "Z", False, read) is None
    assert expected_answer(create, "POST", None, False, anonymous) == UNAUTHENTICATED
    # Authentication (step 4) precedes the 405 (step 6), which precedes the gates (step 7).
    assert expected_answer(reveal, "HEAD", "Z", False, anonymous) == UNAUTHENTICATED
    assert expected_answer(reveal, "HEAD", "Z", False, read) == (405, "method_not_allowed")
    assert expected_answer(reveal, "GET", "Z", False, read) == RO


# --- the app ----------------------------------------------------------------------------------

ROUTES = v1_routes()


@dataclass
class World:
    api: Api
    zone: str  # the ordinary zone the zone parameter names
    other: str
    system: str  # a reserved system zone (§7.5)
    callers: list[Caller]
    global_callers: list[Caller]  # also run against the reserved zone


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def api(database_dsn: str, redis_url: str) -> AsyncIterator[Api]:
    async with hostile_app(database_dsn, redis_url) as built:
        yield built


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def world(api: Api) -> World:
    zone = (await api.zone(hexname("matrix")))["id"]
    other = (await api.zone(hexname("matrix-other")))["id"]
    system = (await api.zone(f"caracal.sys/{hexname('matrix')}"))["id"]

    async def bearer(capability: str, zone_id: str | None = None) -> str:
        token = await api.mint(capability, zone_id, name=hexname(f"matrix-{capability}"))
        return f"Bearer {token['token']}"

    revoked = await api.mint("write", name=hexname("matrix-revoked"))
    gone = await api.delete(f"/v1/admin-tokens/{revoked['id']}")
    assert gone.status_code == 204, gone.text
    # §6.1: console-derived rows never authenticate in caracal-api.
    derived = await api.mint("write", name=hexname("matrix-derived"))
    await sql(
        api,
        "UPDATE admin_tokens SET created_by = 'env-derived:console' WHERE id = :id",
        id=derived["id"],
    )

    anonymous = Caller("none", authenticated=False)
    callers = [
        anonymous,
        replace(anonymous, name="basic scheme", header="Basic dXNlcjpwYXNz"),
        replace(anonymous, name="bare token", header=BOOTSTRAP_TOKEN),
        replace(anonymous, name="empty bearer", header="Bearer    "),
        replace(anonymous, name="oversized bearer", header="Bearer " + "a" * 5000),
        replace(anonymous, name="unknown token", header=f"Bearer cat_{secrets.token_urlsafe(32)}"),
        replace(anonymous, name="revoked token", header=f"Bearer {revoked['token']}"),
        replace(anonymous, name="console-derived token", header=f"Bearer {derived['token']}"),
        Caller("global read", capability="read", header=await bearer("read")),
        Caller("global write", capability="write", header=await bearer("write")),
        Caller("global approve", capability="approve", header=await bearer("approve")),
        Caller("bootstrap", bootstrap=True, header=f"Bearer {BOOTSTRAP_TOKEN}"),
        Caller("own zone read", capability="read", zone=zone, header=await bearer("read", zone)),
        Caller("own zone write", zone=zone, header=await bearer("write", zone)),
        Caller(
            "own zone approve",
            capability="approve",
            zone=zone,
            header=await bearer("approve", zone),
        ),
        Caller("other zone write", zone=other, header=await bearer("write", other)),
    ]
    global_callers = [c for c in callers if c.authenticated and c.zone is None]
    return World(api, zone, other, system, callers, global_callers)


def _path(route: Route, zone: str | None) -> str:
    zone_param = zone_param_name(route.template)
    path = route.template
    for name in route.params:
        value = zone if name == zone_param and zone is not None else PLACEHOLDER
        path = path.replace("{" + name + "}", value)
    return path


def _archives_its_zone(route: Route) -> bool:
    """`DELETE /v1/zones/:id`: passing callers would archive the shared zone."""
    zone_param = zone_param_name(route.template)
    return route.method == "DELETE" and route.template.endswith("{" + str(zone_param) + "}")


async def _victim(world: World, reserved: bool, caller: Caller) -> tuple[str, Caller]:
    """A fresh zone (and, for a zone token, a fresh token of that zone) to archive."""
    name = f"caracal.sys/{hexname('victim')}" if reserved else hexname("victim")
    zone = (await world.api.zone(name))["id"]
    if caller.zone is None:
        return zone, caller
    token = await world.api.mint(caller.capability, zone, name=hexname("victim"))
    return zone, replace(caller, zone=zone, header=f"Bearer {token['token']}")


def _problem(
    route: Route, method: str, caller: Caller, where: str, want: Answer, response: httpx.Response
) -> str | None:
    status = response.status_code
    code = None
    if status >= 400 and method != "HEAD":
        try:
            code = check_error(response)["error"]
        except AssertionError as exc:
            return f"{method} {route.template} as {caller.name} ({where}): bad envelope {exc}"
    got = f"{status} {code or ''}".strip()
    label = f"{method} {route.template} as {caller.name} ({where})"
    if want is not None:
        if status != want[0] or (method != "HEAD" and code != want[1]):
            return f"{label}: expected {want[0]} {want[1]}, got {got}"
        return None
    if status >= 500 or status == 401 or code in GATE_CODES or (method == "HEAD" and status == 403):
        return f"{label}: expected to pass authentication and the gates, got {got}"
    return None


@pytest.mark.parametrize("route", ROUTES, ids=[r.label for r in ROUTES])
async def test_route_answers_every_caller_per_its_auth_class(world: World, route: Route) -> None:
    zone_param = zone_param_name(route.template)
    contexts: list[tuple[str, str | None, bool, list[Caller]]] = [
        ("ordinary zone" if zone_param else "no zone", world.zone if zone_param else None, False,
         world.callers),
    ]  # fmt: skip
    if zone_param is not None:
        contexts.append(("reserved zone", world.system, True, world.global_callers))
    methods = [route.method, "HEAD"] if route.method == "GET" else [route.method]
    problems: list[str] = []
    for where, zone, reserved, callers in contexts:
        for caller in callers:
            for method in methods:
                who, route_zone = caller, zone
                want = expected_answer(route, method, route_zone, reserved, who)
                if want is None and _archives_its_zone(route):
                    route_zone, who = await _victim(world, reserved, caller)
                    want = expected_answer(route, method, route_zone, reserved, who)
                headers = {"Authorization": who.header} if who.header else {}
                response = await world.api.client.request(
                    method, _path(route, route_zone), headers=headers
                )
                problem = _problem(route, method, who, where, want, response)
                if problem:
                    problems.append(problem)
    assert not problems, "\n".join(problems)
