"""Routes declare their auth class; the pipeline resolves raw paths against them.

Resolution follows foundation §14.5: exact matching on the raw (percent-encoded) path,
literal segments compared undecoded and preferred over parameters, parameter segments
percent-decoded once. FastAPI's own router is never asked to match: the pipeline hands the
chosen route its request directly, so the order of registration does not matter.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes

from fastapi import APIRouter
from fastapi.routing import APIRoute
from pydantic import BaseModel

from caracal_api.auth.gates import AUTH_CLASSES
from caracal_api.kit.ids import is_valid_id


class CaracalRouter(APIRouter):
    """APIRouter whose routes carry `auth` (foundation §7.1) and an optional `body` model.

    Bodies are decoded by the pipeline, not by FastAPI; `body` only documents the request
    schema in the OpenAPI document.
    """

    def _add(
        self,
        method: str,
        path: str,
        *,
        auth: str,
        body: type[BaseModel] | None = None,
        body_required: bool = True,
        head: bool = True,
        **kwargs: Any,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        if auth not in AUTH_CLASSES:
            raise ValueError(f"unknown auth class {auth!r}")
        extra = dict(kwargs.pop("openapi_extra", None) or {})
        extra["x-caracal-auth"] = auth

        def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
            if len(inspect.signature(fn).parameters) != 1:
                raise TypeError(f"{fn.__name__}: endpoints take exactly one `call: Call` argument")
            self.add_api_route(path, fn, methods=[method], openapi_extra=extra, **kwargs)
            route = self.routes[-1]
            route.caracal_auth = auth  # type: ignore[attr-defined]
            route.caracal_body = body  # type: ignore[attr-defined]
            route.caracal_body_required = body_required  # type: ignore[attr-defined]
            route.caracal_head = head and method == "GET"  # type: ignore[attr-defined]
            return fn

        return decorator

    def get(self, path: str, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:  # type: ignore[override]
        return self._add("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:  # type: ignore[override]
        return self._add("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:  # type: ignore[override]
        return self._add("PUT", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:  # type: ignore[override]
        return self._add("PATCH", path, **kwargs)

    def delete(  # type: ignore[override]
        self, path: str, **kwargs: Any
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        return self._add("DELETE", path, **kwargs)


@dataclass(frozen=True)
class Endpoint:
    method: str
    route: APIRoute
    auth: str
    head: bool


@dataclass
class PathTemplate:
    template: str
    segments: tuple[str | None, ...]  # literal text, or None for a parameter
    param_names: tuple[str, ...]
    endpoints: dict[str, Endpoint]

    @property
    def allowed(self) -> list[str]:
        methods = set(self.endpoints)
        if any(e.head for e in self.endpoints.values()):
            methods.add("HEAD")
        order = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
        return [m for m in order if m in methods]

    def endpoint_for(self, method: str) -> Endpoint | None:
        if method == "HEAD":
            get = self.endpoints.get("GET")
            return get if get is not None and get.head else None
        return self.endpoints.get(method)


@dataclass
class Match:
    template: PathTemplate
    params: dict[str, str]
    params_valid: bool

    @property
    def zone_param(self) -> str | None:
        """`:zoneId`, or `:id` on the `/v1/zones/:id…` routes (foundation §7.2)."""
        if "zoneId" in self.params:
            return self.params["zoneId"]
        segments = self.template.segments
        if len(segments) >= 3 and segments[1] == "zones" and segments[2] is None:
            return self.params.get(self.template.param_names[0])
        return None


def _decode_segment(raw: str) -> str | None:
    try:
        return unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        return None


class RouteTable:
    def __init__(self, routes: Iterable[Any]) -> None:
        by_template: dict[str, PathTemplate] = {}
        for route in routes:
            if not isinstance(route, APIRoute) or not hasattr(route, "caracal_auth"):
                continue
            template = by_template.get(route.path)
            if template is None:
                parts = route.path.strip("/").split("/")
                segments = tuple(None if p.startswith("{") else p for p in parts)
                names = tuple(p[1:-1] for p in parts if p.startswith("{"))
                template = PathTemplate(route.path, segments, names, {})
                by_template[route.path] = template
            for method in route.methods or ():
                template.endpoints[method] = Endpoint(
                    method, route, route.caracal_auth, getattr(route, "caracal_head", False)
                )
        self._by_length: dict[int, list[PathTemplate]] = {}
        for template in by_template.values():
            self._by_length.setdefault(len(template.segments), []).append(template)
        for candidates in self._by_length.values():
            # Literal segments win over parameters, leftmost difference first.
            candidates.sort(key=lambda t: tuple(0 if s is not None else 1 for s in t.segments))
        self.templates = list(by_template.values())

    def resolve(self, raw_path: str) -> Match | None:
        if not raw_path.startswith("/") or (raw_path.endswith("/") and raw_path != "/"):
            return None
        parts = raw_path[1:].split("/")
        for template in self._by_length.get(len(parts), ()):
            if all(
                lit is None or lit == part
                for lit, part in zip(template.segments, parts, strict=True)
            ):
                params: dict[str, str] = {}
                valid = True
                names = iter(template.param_names)
                for lit, part in zip(template.segments, parts, strict=True):
                    if lit is None:
                        decoded = _decode_segment(part)
                        if decoded is None or not is_valid_id(decoded):
                            valid = False
                        params[next(names)] = decoded if decoded is not None else part
                return Match(template, params, valid)
        return None
