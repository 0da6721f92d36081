"""The callback's HTML answer for browsers (objects.md C5): the API's only non-JSON error body."""

from __future__ import annotations

import html

from starlette.responses import Response

CSP = "default-src 'none'"


def wants_html(accept: bytes | None) -> bool:
    text = (accept or b"").decode("latin-1").lower()
    return "text/html" in text and "application/json" not in text


def page(status: int, title: str, message: str) -> Response:
    body = (
        '<!doctype html><html><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title></head><body><h1>{html.escape(title)}</h1>"
        f"<p>{html.escape(message)}</p></body></html>"
    )
    return Response(
        body.encode("utf-8"),
        status_code=status,
        media_type="text/html; charset=utf-8",
        headers={"content-security-policy": CSP},
    )
