"""Zero-configuration run: embedded PostgreSQL, in-process streams, generated token."""

from __future__ import annotations

import json

import httpx
from caracalai_admin import AdminClient

from tests.e2e.harness import ServerProcess


def test_ready_reports_embedded_dependencies(embedded_server: ServerProcess) -> None:
    ready = httpx.get(f"{embedded_server.url}/ready", timeout=10)
    assert ready.status_code == 200
    assert ready.json() == {
        "ok": True,
        "postgres": "embedded",
        "redis": "embedded",
        "workers": {"dispatcher": True, "audit_ingest": True},
    }


def test_generated_token_is_printed_once_and_works(embedded_server: ServerProcess) -> None:
    token = embedded_server.bootstrap_token()
    assert token is not None
    assert token.startswith("cat_")
    assert token not in embedded_server.stdout()
    client = AdminClient(api_url=embedded_server.url, admin_token=token)
    zone = client.zones.create({"name": "Embedded Zone"})
    assert zone["slug"] == "embedded-zone"
    assert client.zones.get(zone["id"])["name"] == "Embedded Zone"


def test_stdout_is_json_lines(embedded_server: ServerProcess) -> None:
    httpx.get(f"{embedded_server.url}/health", timeout=10)
    lines = [line for line in embedded_server.stdout().splitlines() if line.strip()]
    assert lines
    for line in lines:
        record = json.loads(line)
        assert list(record)[:4] == ["ts", "level", "logger", "msg"]


def test_second_serve_on_the_same_data_dir_refuses(embedded_server: ServerProcess) -> None:
    second = ServerProcess(embedded_server.env, embedded_server.workdir).start()
    assert second.process is not None
    code = second.process.wait(timeout=120)
    assert code == 2
    assert "REDIS_URL" in second.stderr()
