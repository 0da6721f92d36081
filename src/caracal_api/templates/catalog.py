"""The policy template catalog (policies.md §7): our own data documents, one per data rule.

Each content is a complete data document that passes the validator and the compile check:
directive line, `package caracal.authz`, `import rego.v1`, then `<rule> := <JSON>`
statements. The values are plain JSON, so a bundle built from templates loads them as
data (see `policies.datadocs`).
"""

from __future__ import annotations

from typing import Final

_HEADER = "# caracal:data-document\npackage caracal.authz\n\nimport rego.v1\n\n"

TEMPLATES: Final[tuple[dict[str, str], ...]] = (
    {
        "id": "application-bindings",
        "name": "Application Bindings",
        "description": (
            "Binds the short application keys used in grants to the application ids the "
            "token service sees as the principal. Replace the ids with your own."
        ),
        "content": _HEADER + "app_ids := {\n"
        '  "billing": "app-billing",\n'
        '  "reports": "app-reports"\n'
        "}\n",
    },
    {
        "id": "resource-grants",
        "name": "Resource Grants",
        "description": (
            "Names the application that owns each resource and the scopes each role may "
            "mint on it. A mint needs ownership, a role that grants the scopes, and a "
            "delegation that narrows to them."
        ),
        "content": _HEADER + "grants := {\n"
        '  "resource://example": {\n'
        '    "application": "billing",\n'
        '    "roles": {\n'
        '      "billing-agent": ["example:read", "example:write"]\n'
        "    }\n"
        "  }\n"
        "}\n",
    },
    {
        "id": "label-confinement",
        "name": "Label Confinement",
        "description": (
            "Caps every session whose labels start with a prefix to a fixed scope set, "
            "whatever its role allows."
        ),
        "content": _HEADER + "confinement := [\n"
        '  {"label_prefix": "customer:", "scopes": ["example:read"]}\n'
        "]\n",
    },
    {
        "id": "zone-restriction",
        "name": "Zone Restriction",
        "description": (
            "Freeze switch: any entry here denies every exchange in the zone. Leave empty "
            "for normal operation."
        ),
        "content": _HEADER + "restrict := {}\n",
    },
    {
        "id": "approval-gates",
        "name": "Approval Gates",
        "description": (
            "Tags risky scopes with a tier and holds mints that touch a gated tier until an "
            "approver decides."
        ),
        "content": _HEADER + "risk := [\n"
        '  {"scope": "example:write", "tier": "high"}\n'
        "]\n"
        "\n"
        "approval_tiers := [\n"
        '  {"tier": "high", "approver": "operator", "ttl_seconds": 1800, "privacy": "identified"}\n'
        "]\n",
    },
)


def catalog() -> list[dict[str, str]]:
    """The catalog in table order (a fresh list of fresh dicts: callers may not mutate ours)."""
    return [dict(t) for t in TEMPLATES]
