"""The static validator (policies.md §2.1), the schema check and the preview (§2.3)."""

from __future__ import annotations

import pytest

from caracal_api.policies import validation
from caracal_api.policies.validation import validate_static

HEADER = "# caracal:data-document\npackage caracal.authz\n\nimport rego.v1\n\n"


def code(content: str) -> str | None:
    return validate_static(content).code


def test_valid_data_document_passes_with_rules_in_source_order() -> None:
    result = validate_static(HEADER + 'grants := {}\napp_ids := {"a": "b"}\n')
    assert result.ok
    assert result.package == "caracal.authz"
    assert result.rules == ("grants", "app_ids")
    assert result.data_rules == ("grants", "app_ids")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("", "empty_policy"),
        ("# caracal:data-document\napp_ids := {}\n", "missing_package_declaration"),
        (
            "# caracal:data-document\npackage other\napp_ids := {}\n",
            "must_use_package_caracal_authz",
        ),
        (
            "# caracal:data-document\npackage caracal..authz\napp_ids := {}\n",
            "invalid_package_name",
        ),
        ("# caracal:data-document\npackage 1caracal\napp_ids := {}\n", "invalid_package_name"),
        ("package caracal.authz\napp_ids := {}\n", "must_be_data_document"),
        (HEADER + "result := {}\n", "data_document_must_not_define_result"),
        (HEADER + "default result := {}\n", "data_document_must_not_define_result"),
        (HEADER + "allow if { true }\n", "data_document_rule_not_allowed:allow"),
        (HEADER + "grants := {}\nallow := true\n", "data_document_rule_not_allowed:allow"),
        (HEADER, "data_document_must_define_data"),
        (HEADER + "grants := {\n", "unbalanced_delimiters"),
        (HEADER + "grants := {)\n", "unbalanced_delimiters"),
        (HEADER + "grants := [}]\n", "unbalanced_delimiters"),
        (HEADER + 'grants := "abc\n', "unterminated_string"),
        (HEADER + 'grants := "abc', "unterminated_string"),
        (HEADER + "grants := `abc", "unterminated_string"),
        (HEADER + 'grants := "abc\\', "unterminated_string"),
        (HEADER + 'grants := http.send({"url": "x"})\n', "forbidden_builtin:http.send"),
        (HEADER + "grants := time.now_ns()\n", "forbidden_builtin:time.now_ns"),
        (HEADER + 'grants := net.cidr_merge(["10.0.0.0/8"])\n', "forbidden_builtin:net.cidr_merge"),
        (HEADER + "grants := opa.runtime ()\n", "forbidden_builtin:opa.runtime"),
        (HEADER + 'grants := rand.intn("x", 3)\n', "forbidden_builtin:rand.intn"),
        (HEADER + 'grants := net.lookup_ip_addr("x")\n', "forbidden_builtin:net.lookup_ip_addr"),
        (HEADER + 'grants := net.cidr_contains("a", "b")\n', "forbidden_builtin:net.cidr_contains"),
        (
            HEADER + 'grants := net.cidr_intersects("a", "b")\n',
            "forbidden_builtin:net.cidr_intersects",
        ),
        (HEADER + 'grants := net.cidr_expand("a")\n', "forbidden_builtin:net.cidr_expand"),
        ("SELECT * FROM policies; DROP TABLE policies;", "missing_package_declaration"),
    ],
)
def test_invalid_documents_get_their_exact_code(content: str, expected: str) -> None:
    assert code(content) == expected


def test_content_too_large_counts_utf16_units() -> None:
    limit = validation.MAX_CONTENT_UNITS
    filler_at_limit = HEADER + "grants := {}\n#" + "x" * (limit - len(HEADER) - 14)
    assert len(filler_at_limit) == limit
    assert code(filler_at_limit) is None
    assert code(filler_at_limit + "x") == "content_too_large"
    # One astral character is two UTF-16 units: the same character count goes over.
    astral = filler_at_limit[:-2] + "🚀"
    assert len(astral) == limit - 1
    assert validation.utf16_length(astral) == limit
    assert code(astral) is None
    assert code(astral + "x") == "content_too_large"


def test_first_failure_wins_in_the_specified_order() -> None:
    # unbalanced before package; package before forbidden built-ins; those before directive
    assert code("package other\nx := http.send({}) {\n") == "unbalanced_delimiters"
    assert code("x := http.send({})\n") == "missing_package_declaration"
    assert code("package other\nx := http.send({})\n") == "forbidden_builtin:http.send"
    assert code("package caracal.authz\nresult := 1\n") == "must_be_data_document"
    # forbidden built-ins are reported in the specification's order, not in source order
    assert (
        code(HEADER + "grants := [time.now_ns(), http.send({})]\n") == "forbidden_builtin:http.send"
    )


def test_hash_inside_a_string_is_not_a_comment() -> None:
    content = HEADER + 'grants := {"#": "a # b"}\n'
    assert code(content) is None
    # a real comment hides brackets and strings alike
    assert code(HEADER + 'grants := {} # { ( [ "unterminated\n') is None


def test_brackets_inside_comments_and_strings_are_ignored() -> None:
    assert code(HEADER + "# {{{ ((( [[[\ngrants := {}\n") is None
    assert code(HEADER + 'grants := {"}": "{[("}\n') is None
    assert code(HEADER + "grants := {`}}}`: 1}\n") is None


def test_raw_strings_allow_newlines_and_no_escapes() -> None:
    assert code(HEADER + "grants := {`a\nb\\`: 1}\n") is None


def test_backslash_escapes_skip_the_next_character() -> None:
    assert code(HEADER + 'grants := {"a\\"}": 1}\n') is None
    assert code(HEADER + 'grants := {"a\\\\": 1}\n') is None


def test_reference_to_data_http_send_without_call_passes() -> None:
    assert code(HEADER + "grants := data.http.send\n") is None
    assert code(HEADER + "grants := [http.send]\n") is None
    assert code(HEADER + "grants := data.http.send(1)\n") is None


def test_forbidden_call_in_a_comment_or_string_passes() -> None:
    assert code(HEADER + '# time.now_ns()\ngrants := "http.send(x)"\n') is None


def test_directive_on_a_later_line_is_accepted() -> None:
    content = "package caracal.authz\n\n  #   caracal:data-document\ngrants := {}\n"
    assert code(content) is None


def test_directive_needs_a_word_boundary_and_a_line_start() -> None:
    assert code("package caracal.authz\n# caracal:data-documents\ngrants := {}\n") == (
        "must_be_data_document"
    )
    assert code("package caracal.authz\ngrants := {} # caracal:data-document\n") == (
        "must_be_data_document"
    )
    # the directive is read from the original text, a non-ASCII letter is a boundary
    assert code("package caracal.authz\n# caracal:data-documenté\ngrants := {}\n") is None


def test_line_start_comparison_counts_as_a_rule() -> None:
    assert validate_static(HEADER + "grants := {}\nx == 1\n").code == (
        "data_document_rule_not_allowed:x"
    )


def test_function_style_heads_count_by_name() -> None:
    result = validate_static(HEADER + "grants(x) = 1\n")
    assert result.ok
    assert result.rules == ("grants",)


@pytest.mark.parametrize(
    ("line", "rule"),
    [
        ("grants contains x if { x := 1 }", "grants"),
        ("grants if { true }", "grants"),
        ("grants { true }", "grants"),
        ("default grants := {}", "grants"),
        ("grants = {}", "grants"),
        ("  risk := []", "risk"),
    ],
)
def test_rule_head_forms(line: str, rule: str) -> None:
    result = validate_static(HEADER + line + "\n")
    assert result.ok, result.code
    assert result.rules == (rule,)


def test_keywords_at_line_start_are_not_rules() -> None:
    content = HEADER + "grants := x if {\n  x := 1\n} else := 2\n"
    assert validate_static(content).code == "data_document_rule_not_allowed:x"
    ok = HEADER + "grants := 1 if { input.x } \nelse := 2\n"
    assert validate_static(ok).rules == ("grants",)


def test_rules_collected_once_in_first_seen_order() -> None:
    result = validate_static(HEADER + "risk := []\ngrants := {}\nrisk := []\n")
    assert result.rules == ("risk", "grants")


def test_schema_check() -> None:
    assert validation.check_schema_version("2026-05-20") is None
    assert validation.check_schema_version("1900-01-01") == "unsupported_schema_version:1900-01-01"


def test_preview_of_a_normal_data_document() -> None:
    content = HEADER + 'grants := {}\napp_ids := {"a": "b"}\n'
    result = validate_static(content)
    assert validation.preview(content, result) == {
        "package": "caracal.authz",
        "rules": ["app_ids", "grants"],
        "default_result": False,
        "decisions": [],
        "inputs_referenced": [],
        "data_referenced": [],
    }


def test_preview_collects_references_and_decisions() -> None:
    content = (
        HEADER
        + 'grants := {"x": input.principal.id, "y": data.caracal.authz.app_ids}\n'
        + 'app_ids := {"decision" : "deny", "z": input.context.requested_scopes}\n'
        + "# not counted: input.comment.ref\n"
        + 'risk := [{"d": "\\"decision\\":\\"allow\\""}, myinput.x, input]\n'
    )
    result = validate_static(content)
    assert result.ok
    out = validation.preview(content, result)
    assert out["inputs_referenced"] == ["input.context.requested_scopes", "input.principal.id"]
    assert out["data_referenced"] == ["data.caracal.authz.app_ids"]
    assert out["decisions"] == ["deny"]
    assert out["rules"] == ["app_ids", "grants", "risk"]


def test_strip_replaces_strings_by_one_space_and_drops_comments() -> None:
    stripped = validation.strip_comments_and_strings('a "b c" `d\ne` # f\ng')
    assert stripped == "a     \ng"
