"""Shared pieces of the hostile suites: the module app, error checks, seeded objects.

- `hostile_app(...)`: the app `make_api` builds, kept for a whole module, with outbound
  HTTP pinned to a blocked address so generated URLs never leave the machine.
- `check_error(response)`: the error envelope of foundation §5 on a 4xx/5xx.
- `Seeds`: real objects (zone, application, provider, resource, grant, step-up challenge,
  policy, policy set, admin token) created on demand so generated requests can hit
  existing ids.
- `v1_routes()`: every `/v1` route of `caracal_api.app.routers()`, derived from the routes.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import text

from tests.conftest import Api
from tests.integration.foundation.harness import VALID_POLICY, check_error_response, open_api


def examples(default: int) -> int:
    """Examples per property / operation: `HOSTILE_EXAMPLES` overrides the bounded default."""
    raw = os.environ.get("HOSTILE_EXAMPLES", "")
    return int(raw) if raw.isascii() and raw.isdigit() and int(raw) > 0 else default


async def _blocked_resolver(_host: str, _port: int) -> list[str]:
    # 0.0.0.0/8 is never allowed (objects.md §1.6): every outbound call is refused at once.
    return ["0.0.0.0"]


@asynccontextmanager
async def hostile_app(database_dsn: str, redis_url: str, **overrides: Any) -> AsyncIterator[Api]:
    """A dedicated in-process app for one module (no workers, limits off)."""
    from caracal_api.kit.egress import Egress, EgressPolicy

    async with open_api(database_dsn, redis_url, **overrides) as api:
        api.runtime.services["egress"] = Egress(
            EgressPolicy.from_settings(api.runtime.settings), resolver=_blocked_resolver
        )
        yield api


def check_error(response: httpx.Response) -> dict[str, Any]:
    """A 4xx/5xx must be the §5 envelope with `request_id` = the `x-request-id` header."""
    return check_error_response(response)


def hexname(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


# --- routes ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    auth: str
    head: bool  # GET route that also answers HEAD

    @property
    def label(self) -> str:
        return f"{self.method} {self.template}"

    @property
    def params(self) -> tuple[str, ...]:
        return tuple(re.findall(r"\{([^}]+)\}", self.template))


def v1_routes() -> list[Route]:
    """Every `/v1` route declared by `routers()`, in declaration order."""
    from caracal_api.app import routers

    out: list[Route] = []
    for router in routers():
        for route in router.routes:
            path = getattr(route, "path", "")
            if not path.startswith("/v1/"):
                continue
            for method in sorted(getattr(route, "methods", None) or ()):
                out.append(
                    Route(
                        method,
                        path,
                        route.caracal_auth,  # type: ignore[attr-defined]
                        bool(getattr(route, "caracal_head", False)),
                    )
                )
    return out


def zone_param_name(template: str) -> str | None:
    """foundation §7.2: `:zoneId`, or `:id` on the `/v1/zones/:id…` routes."""
    if "{zoneId}" in template:
        return "zoneId"
    m = re.match(r"^/v1/zones/\{([^}]+)\}", template)
    return m.group(1) if m else None


def collection_of(template: str, param: str) -> str | None:
    """The collection segment right before `{param}` (`applications` for `.../{id}`)."""
    segments = template.strip("/").split("/")
    for i, segment in enumerate(segments):
        if segment == "{" + param + "}" and i > 0:
            return segments[i - 1]
    return None


# --- seeded objects ---------------------------------------------------------------------------


async def sql(api: Api, statement: str, **params: Any) -> list[Any]:
    async with api.runtime.engine.begin() as conn:
        result = await conn.execute(text(statement), params)
        return list(result.all()) if result.returns_rows else []


def _created(response: httpx.Response) -> str:
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _created_or_none(response: httpx.Response) -> str | None:
    # Routes still being filled in: a refusal only means "no existing object".
    return str(response.json()["id"]) if response.status_code == 201 else None


@dataclass
class Seeds:
    """Objects of one zone, created on first use and forgotten when deleted."""

    api: Api
    ids: dict[str, str] = field(default_factory=dict)

    async def zone(self) -> str:
        if "zones" not in self.ids:
            self.ids = {"zones": (await self.api.zone(hexname("hostile")))["id"]}
        return self.ids["zones"]

    async def get(self, collection: str) -> str | None:
        """An existing id for `collection`, or None when none can be made."""
        if collection == "zones":
            return await self.zone()
        if collection not in self.ids:
            made = await self._make(collection)
            if made is None:
                return None
            self.ids[collection] = made
        return self.ids[collection]

    def forget(self, collection: str) -> None:
        if collection == "zones":
            self.ids = {}
        else:
            self.ids.pop(collection, None)

    async def _make(self, collection: str) -> str | None:
        api = self.api
        zone = await self.zone()
        base = f"/v1/zones/{zone}"
        if collection == "applications":
            body: dict[str, Any] = {"name": hexname("app"), "registration_method": "managed"}
            return _created(await api.post(f"{base}/applications", json=body))
        if collection == "providers":
            body = {"name": hexname("prov"), "kind": "bearer_token"}
            body["config_json"] = {"bearer_token": "t"}
            return _created(await api.post(f"{base}/providers", json=body))
        if collection == "resources":
            body = {
                "name": hexname("res"),
                "scopes": ["docs:read", "docs:write"],
                "credential_provider_id": await self.get("providers"),
                "upstream_url": "https://docs.example.test",
            }
            return _created(await api.post(f"{base}/resources", json=body))
        if collection == "grants":
            app = await self.get("applications")
            resource = await self.get("resources")
            body = {
                "application_id": app,
                "user_id": "user-1",
                "resource_id": resource,
                "scopes": ["docs:read"],
            }
            return _created(await api.post(f"{base}/grants", json=body))
        if collection == "step-up-challenges":
            challenge = f"ch-{secrets.token_hex(6)}"
            await sql(
                api,
                "INSERT INTO step_up_challenges (id, zone_id, challenge_type, principal_id,"
                " session_id, metadata_json, expires_at, created_at) VALUES (:id, :zone,"
                " 'human_approval', 'user-1', 'sess-1', CAST('{}' AS jsonb),"
                " now() + interval '1 hour', now())",
                id=challenge,
                zone=zone,
            )
            return challenge
        if collection == "policies":
            body = {"name": hexname("policy"), "content": VALID_POLICY}
            return _created_or_none(await api.post(f"{base}/policies", json=body))
        if collection == "policy-sets":
            body = {"name": hexname("set")}
            return _created_or_none(await api.post(f"{base}/policy-sets", json=body))
        if collection == "admin-tokens":
            token = await api.mint("read", name=hexname("seeded"))
            return str(token["id"])
        return None
