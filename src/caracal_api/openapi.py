"""The OpenAPI 3.1 document: our bodies, our auth classes, our error envelope."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel

AUTH_TEXT = {
    "public": "No token.",
    "R": "Any valid admin token; zone tokens inside their own zone.",
    "W": "Capability write; zone tokens inside their own zone.",
    "AP": "Capability approve or the bootstrap token.",
    "MG": "Global tokens only; writes need capability write.",
}

ERROR_ENVELOPE = {
    "type": "object",
    "required": ["error", "error_description", "request_id"],
    "properties": {
        "error": {"type": "string", "description": "Stable error code."},
        "error_description": {"type": "string"},
        "request_id": {"type": "string"},
        "details": {"type": "object"},
    },
}


def _schema_of(model: type[BaseModel], components: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in schema.pop("$defs", {}).items():
        components.setdefault(name, definition)
    components.setdefault(model.__name__, schema)
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def build_openapi(app: FastAPI) -> dict[str, Any]:
    doc = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    components = doc.setdefault("components", {}).setdefault("schemas", {})
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    components["ErrorEnvelope"] = ERROR_ENVELOPE
    doc["components"]["securitySchemes"] = {
        "adminToken": {"type": "http", "scheme": "bearer", "description": "Admin token (cat_…)"}
    }
    error_ref = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}
    for route in app.routes:
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        operations = doc["paths"].get(route.path_format, {})
        for method in route.methods or ():
            operation = operations.get(method.lower())
            if operation is None:
                continue
            auth = getattr(route, "caracal_auth", "R")
            operation["description"] = (
                f"{operation.get('description', '')}\n\nAuth: `{auth}` — {AUTH_TEXT[auth]}"
            ).strip()
            if auth != "public":
                operation["security"] = [{"adminToken": []}]
            body = getattr(route, "caracal_body", None)
            if body is not None:
                operation["requestBody"] = {
                    "required": getattr(route, "caracal_body_required", True),
                    "content": {"application/json": {"schema": _schema_of(body, components)}},
                }
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            responses["4XX"] = {
                "description": "Client error (error envelope).",
                "content": error_ref,
            }
            responses["5XX"] = {
                "description": "Dependency failure (error envelope).",
                "content": error_ref,
            }
    return doc
