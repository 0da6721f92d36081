"""Which data documents bundles load as JSON data, and the data they produce."""

from __future__ import annotations

import json

import pytest

from caracal_api.policies import datadocs

HEADER = "# caracal:data-document\npackage caracal.authz\nimport rego.v1\n"


def test_plain_json_statements_are_recognised() -> None:
    content = (
        HEADER
        + '\ngrants := {\n  "r": {"application": "a"}\n} # trailing comment\napp_ids = ["x"]\n'
    )
    assert datadocs.json_statements(content) == [
        ("grants", '{\n  "r": {"application": "a"}\n}'),
        ("app_ids", '["x"]'),
    ]


@pytest.mark.parametrize(
    "body",
    [
        'grants := {"a": 1,}',  # Rego, not JSON
        "grants := {1, 2}",  # a set
        'grants := x if { x := {"a": 1} }',
        "default grants := {}",
        'grants["a"] := 1',
        "grants := NaN",
        "grants := 1e400",
        'grants := {"a": 1} {"b": 2}',
        "grants := {'a': 1}",
        "allow := true",
        "grants :=\n{}",
        "grants := input.x",
    ],
)
def test_anything_else_is_compiled_as_rego(body: str) -> None:
    assert datadocs.json_statements(HEADER + body + "\n") is None


def test_imports_other_than_keywords_and_missing_package_are_rego() -> None:
    assert datadocs.json_statements("import data.x\npackage caracal.authz\ngrants := {}\n") is None
    assert datadocs.json_statements(HEADER + "import data.other\ngrants := {}\n") is None
    assert datadocs.json_statements("grants := {}\n") is None
    assert datadocs.json_statements(HEADER) is None
    assert datadocs.json_statements(HEADER + "package caracal.authz\ngrants := {}\n") is None
    assert datadocs.json_statements(HEADER + "import future.keywords.in\ngrants := {}\n") == [
        ("grants", "{}")
    ]


def test_data_json_merges_modules_and_fills_absent_documents() -> None:
    out = datadocs.data_json([HEADER + 'risk := [{"scope": "s"}]\n', HEADER + "restrict := []\n"])
    assert out is not None
    assert json.loads(out) == {
        "caracal": {
            "authz": {
                "app_ids": {},
                "grants": {},
                "confinement": [],
                "restrict": [],
                "risk": [{"scope": "s"}],
                "approval_tiers": [],
            },
            "platform": {"index": {}},
        }
    }


def test_object_documents_looked_up_by_key_are_indexed() -> None:
    grants = {f"res://{i}": {"application": f"a{i}"} for i in range(40)}
    out = datadocs.data_json(
        [HEADER + f"grants := {json.dumps(grants)}\n", HEADER + 'app_ids := {"a1": "id-1"}\n']
    )
    assert out is not None
    data = json.loads(out)
    assert data["caracal"]["authz"]["grants"] == {}
    assert data["caracal"]["authz"]["app_ids"] == {}
    index = data["caracal"]["platform"]["index"]
    rebuilt = {
        key: value
        for first in index["grants"].values()
        for second in first.values()
        for key, value in second.items()
    }
    assert rebuilt == grants
    first, second = datadocs.bucket("res://7")
    assert index["grants"][first][second]["res://7"] == {"application": "a7"}
    assert index["app_ids"] == {
        datadocs.bucket("a1")[0]: {datadocs.bucket("a1")[1]: {"a1": "id-1"}}
    }


def test_bucket_is_the_md5_of_the_utf8_key() -> None:
    assert datadocs.bucket("r0") == ("c", "c")  # md5("r0") = cc15cffe...
    assert datadocs.bucket("zürich-ß🚀") == ("7", "e")


def test_index_keeps_number_text_and_non_objects_stay_as_written() -> None:
    out = datadocs.data_json([HEADER + 'grants := {"r": {"n": 1e3, "m": -0.50, "k": 10}}\n'])
    assert out is not None
    assert '"r":{"n":1e3,"m":-0.50,"k":10}' in out
    arrays = datadocs.data_json([HEADER + 'app_ids := ["a", "b"]\ngrants := [1]\n'])
    assert arrays is not None
    assert json.loads(arrays)["caracal"]["authz"]["app_ids"] == ["a", "b"]
    assert json.loads(arrays)["caracal"]["platform"]["index"] == {}


def test_data_json_keeps_the_literal_text() -> None:
    out = datadocs.data_json([HEADER + "restrict := [1e3, 1.50]\n"])
    assert out is not None
    assert '"restrict":[1e3, 1.50]' in out


def test_a_rule_defined_twice_or_any_rego_module_disables_the_data_path() -> None:
    assert datadocs.data_json([HEADER + "grants := {}\n", HEADER + "grants := {}\n"]) is None
    assert datadocs.data_json([HEADER + "grants := {}\ngrants := {}\n"]) is None
    assert datadocs.data_json([HEADER + "grants := {}\n", HEADER + "risk := [1,]\n"]) is None


def test_single_definitions() -> None:
    assert datadocs.has_single_definitions([("a", "1"), ("b", "1")])
    assert not datadocs.has_single_definitions([("a", "1"), ("a", "1")])
