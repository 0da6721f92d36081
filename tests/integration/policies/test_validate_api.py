"""PO1 validate (policies.md §2, checklist 1–7, 42)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from caracalai_admin.ensure import ResourceGrant, author_grants_document

from caracal_api.metrics import RATE_LIMIT_REJECTIONS
from caracal_api.templates.catalog import TEMPLATES
from tests.conftest import Api, AppFactory, assert_envelope
from tests.integration.policies.support import HEADER, SLOW, audit_rows, doc, sql

VALIDATE = "/v1/policies/validate"


async def validate(api: Api, content: Any, **kw: Any) -> Any:
    return await api.post(VALIDATE, json={"content": content}, **kw)


def invalid(response: Any, code: str) -> dict[str, Any]:
    body = assert_envelope(response, 422, "invalid_rego")
    assert body["valid"] is False
    assert body["error_description"] == code
    return body


async def test_valid_data_document(api: Api) -> None:
    response = await validate(api, doc(app_ids={"billing": "app-1"}, grants={}))
    assert response.status_code == 200, response.text
    assert response.json() == {
        "valid": True,
        "schema_version": "2026-05-20",
        "input_schema_version": "2026-05-20",
        "output_contract": {
            "package": "caracal.authz",
            "rule": "result",
            "decision": ["allow", "deny"],
            "evaluation_status": ["complete"],
        },
        "preview": {
            "package": "caracal.authz",
            "rules": ["app_ids", "grants"],
            "default_result": False,
            "decisions": [],
            "inputs_referenced": [],
            "data_referenced": [],
        },
    }


async def test_validate_is_audited_on_the_global_chain(api: Api) -> None:
    response = await validate(api, doc(grants={}))
    assert response.status_code == 200
    await asyncio.sleep(0)
    rows = await audit_rows(api, response.headers["x-request-id"])
    assert [(r.status_code, r.entity_type, r.entity_id, r.zone_id) for r in rows] == [
        (200, "policies", "validate", None)
    ]
    assert rows[0].payload_json["change_kind"] == "create"


@pytest.mark.parametrize(
    ("content", "code"),
    [
        ("# caracal:data-document\napp_ids := {}\n", "missing_package_declaration"),
        (
            "# caracal:data-document\npackage other\napp_ids := {}\n",
            "must_use_package_caracal_authz",
        ),
        (
            "# caracal:data-document\npackage caracal..authz\napp_ids := {}\n",
            "invalid_package_name",
        ),
        ("package caracal.authz\napp_ids := {}\n", "must_be_data_document"),
        (HEADER + "result := {}\n", "data_document_must_not_define_result"),
        (HEADER + "allow if { true }\n", "data_document_rule_not_allowed:allow"),
        (HEADER, "data_document_must_define_data"),
        (HEADER + "grants := {\n", "unbalanced_delimiters"),
        (HEADER + 'grants := "open\n', "unterminated_string"),
        (HEADER + 'grants := http.send({"url": "x"})\n', "forbidden_builtin:http.send"),
        (HEADER + "grants := time.now_ns()\n", "forbidden_builtin:time.now_ns"),
        ("SELECT * FROM policies; DROP TABLE policies;", "missing_package_declaration"),
        (HEADER + "grants := {}\n#" + "x" * 262_144, "content_too_large"),
    ],
)
async def test_invalid_documents(api: Api, content: str, code: str) -> None:
    body = invalid(await validate(api, content), code)
    assert "details" not in body


@pytest.mark.parametrize(
    ("content", "ok"),
    [
        (HEADER + 'grants := {"#": 1}\n', True),
        (HEADER + "# { [ (\ngrants := {}\n", True),
        (HEADER + "grants := data.http.send\n", True),
        (HEADER + 'grants := net.cidr_merge(["10.0.0.0/8"])\n', False),
        ("package caracal.authz\n\n# caracal:data-document\ngrants := {}\n", True),
        (HEADER + "grants := {}\nx == 1\n", False),
    ],
)
async def test_static_edge_cases(api: Api, content: str, ok: bool) -> None:
    response = await validate(api, content)
    assert response.status_code == (200 if ok else 422), response.text


@pytest.mark.parametrize("body", [{}, "", 42, None, [], {"content": ""}, {"content": 5}])
async def test_malformed_bodies(api: Api, body: Any) -> None:
    response = await api.post(VALIDATE, json=body)
    assert_envelope(response, 400, "invalid_body")


async def test_read_and_zone_tokens_may_validate(api: Api) -> None:
    zone = await api.zone()
    for token in (await api.mint("read"), await api.mint("write", zone["id"])):
        response = await validate(api, doc(grants={}), token=token["token"])
        assert response.status_code == 200, response.text


async def test_compile_errors_point_at_the_error(api: Api) -> None:
    body = invalid(await validate(api, HEADER + 'app_ids := {"a": }\n'), "rego_compile_error")
    assert body["details"]["module"] == "policy"
    assert (body["details"]["line"], body["details"]["column"]) == (6, 13)
    assert body["details"]["message"]
    body = invalid(
        await validate(api, HEADER + "# zürich-ß 🚀\ngrants := 1 +\n"), "rego_compile_error"
    )
    assert (body["details"]["line"], body["details"]["column"]) == (7, 13)
    body = invalid(await validate(api, HEADER + 'grants := {"é": 1} +\n'), "rego_compile_error")
    assert (body["details"]["line"], body["details"]["column"]) == (6, 20)


async def test_two_different_definitions_fail_evaluation(api: Api) -> None:
    content = HEADER + 'app_ids := {"a": 1}\napp_ids := {"a": 2}\n'
    body = invalid(await validate(api, content), "rego_evaluation_error")
    assert body["details"] == {
        "line": None,
        "column": None,
        "module": "policy",
        "message": "complete rules must not produce multiple outputs",
    }


async def test_slow_data_rule_times_out_and_the_worker_is_replaced(make_api: AppFactory) -> None:
    api = await make_api(rego_timeout_ms=500, rego_workers=1)
    engine = api.runtime.services["rego"]
    before = engine.worker_pids
    body = invalid(await validate(api, SLOW), "rego_evaluation_timeout")
    assert body["details"]["line"] is None
    response = await validate(api, doc(grants={}))
    assert response.status_code == 200, response.text
    assert engine.worker_pids != before


async def test_every_template_validates(api: Api) -> None:
    for template in TEMPLATES:
        response = await validate(api, template["content"])
        assert response.status_code == 200, (template["id"], response.text)


async def test_reconciler_grant_document_validates(api: Api) -> None:
    grants = [
        ResourceGrant("app-billing", "resource://ledger", ["ledger:read", "ledger:write"]),
        ResourceGrant("app-billing", "resource://ledger", ["ledger:read"], role="reporter"),
        ResourceGrant("app-reports", "resource://charts", ["charts:read"]),
    ]
    response = await validate(api, author_grants_document(grants))
    assert response.status_code == 200, response.text
    assert response.json()["preview"]["rules"] == ["app_ids", "grants"]


# --- the validate limiter (checklist 42) -------------------------------------------------------


def rejections() -> float:
    return float(RATE_LIMIT_REJECTIONS.labels("validate")._value.get())


async def test_validate_limiter_per_token(make_api: AppFactory) -> None:
    api = await make_api(policy_validate_rate_limit_per_min=3)
    token = (await api.mint("read"))["token"]
    other = (await api.mint("read"))["token"]
    before = rejections()
    for _ in range(3):
        assert (await validate(api, doc(grants={}), token=token)).status_code == 200
    limited = await validate(api, doc(grants={}), token=token)
    assert_envelope(limited, 429, "rate_limited")
    assert int(limited.headers["Retry-After"]) >= 1
    assert rejections() == before + 1
    await asyncio.sleep(0.2)
    assert await audit_rows(api, limited.headers["x-request-id"]) == []
    # another token from the same address still validates; other routes are not counted
    assert (await validate(api, doc(grants={}), token=other)).status_code == 200
    assert (await api.get("/v1/policy-templates", token=token)).status_code == 200
    assert rejections() == before + 1


async def test_validate_limiter_off_with_zero(make_api: AppFactory) -> None:
    api = await make_api(policy_validate_rate_limit_per_min=0)
    token = (await api.mint("read"))["token"]
    for _ in range(8):
        assert (await validate(api, doc(grants={}), token=token)).status_code == 200


async def test_failures_are_audited_but_not_429(api: Api) -> None:
    response = await validate(api, HEADER + "allow := 1\n")
    assert response.status_code == 422
    for _ in range(50):
        rows = await sql(
            api,
            "SELECT status_code FROM admin_audit_events WHERE request_id = :r",
            r=response.headers["x-request-id"],
        )
        if rows:
            break
        await asyncio.sleep(0.02)
    assert [r.status_code for r in rows] == [422]
