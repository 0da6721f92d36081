"""Resource identifiers, upstream URLs and operations (objects.md §4.2, §4.4)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

from caracal_api.kit.ids import uuid7
from caracal_api.providers.identifiers import slugify
from caracal_api.resources.errors import (
    OperationDuplicate,
    OperationMethodAndPathRequired,
    OperationPathMustBeAbsolute,
    OperationScopeNotInResourceScopes,
)

CONTROL_IDENTIFIER = "caracal-control"
RESERVED_PREFIX = "caracal-sys://"
GENERATED_PREFIX = "resource://"
MAX_IDENTIFIER = 512
MAX_UPSTREAM_URL = 2048

_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_WS_OR_CONTROL_RE = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")
_PORT_RE = re.compile(r"^[0-9]*$")


def is_control(identifier: str | None) -> bool:
    return identifier == CONTROL_IDENTIFIER


def is_reserved(identifier: str) -> bool:
    return identifier.strip().lower().startswith(RESERVED_PREFIX)


def is_valid_identifier(identifier: str) -> bool:
    """§4.2: `caracal-control`, or an absolute URI that is not `provider:`."""
    if identifier == CONTROL_IDENTIFIER:
        return True
    if len(identifier) > MAX_IDENTIFIER or _WS_OR_CONTROL_RE.search(identifier):
        return False
    m = _SCHEME_RE.match(identifier)
    if m is None or m[1].lower() == "provider":
        return False
    rest = identifier[m.end() :]
    if not rest.startswith("//"):
        return bool(rest)
    authority = re.split(r"[/?#]", rest[2:], maxsplit=1)[0]
    if "@" in authority:
        return False
    if m[1].lower() in ("http", "https"):
        return _has_host(authority)
    return True


def _has_host(authority: str) -> bool:
    if authority.startswith("["):
        end = authority.find("]")
        if end <= 1:
            return False
        port = authority[end + 1 :]
        return port == "" or (port.startswith(":") and _PORT_RE.fullmatch(port[1:]) is not None)
    host, _, port = authority.partition(":")
    return bool(host) and _PORT_RE.fullmatch(port) is not None


def is_valid_upstream_url(url: str) -> bool:
    """Absolute http(s) URL with a host, no whitespace, ≤ 2048 characters."""
    if len(url) > MAX_UPSTREAM_URL or _WS_OR_CONTROL_RE.search(url):
        return False
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


def generated_base(name: str) -> str:
    if name.startswith(GENERATED_PREFIX):
        return name.strip()
    return GENERATED_PREFIX + slugify(name, "resource")


def candidates(base: str) -> Iterator[str]:
    yield base
    for n in range(2, 1000):
        yield f"{base}-{n}"
    yield f"{base}-{uuid7().replace('-', '')}"


def normalise_operations(
    operations: Iterable[Mapping[str, Any]], scopes: Iterable[str]
) -> list[dict[str, str]]:
    """§4.4: trim/upper-case, then the first failing rule raises its 400."""
    normalised = [
        {
            "method": str(op["method"]).strip().upper(),
            "path": str(op["path"]).strip(),
            "scope": str(op["scope"]),
        }
        for op in operations
    ]
    allowed = set(scopes)
    seen: set[tuple[str, str]] = set()
    for op in normalised:
        if not op["method"] or not op["path"]:
            raise OperationMethodAndPathRequired()
        if not op["path"].startswith("/"):
            raise OperationPathMustBeAbsolute(
                f"Operation path {op['path'][:100]!r} must start with '/'."
            )
        if op["scope"] not in allowed:
            raise OperationScopeNotInResourceScopes(
                f"Operation scope {op['scope'][:200]!r} is not one of the resource's scopes."
            )
        pair = (op["method"], op["path"])
        if pair in seen:
            raise OperationDuplicate(
                f"Operation {op['method']} {op['path'][:100]} is listed twice."
            )
        seen.add(pair)
    return normalised
