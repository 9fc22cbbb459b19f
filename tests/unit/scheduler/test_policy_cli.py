"""``cntrust policy show`` against a live scheduler (uvicorn on loopback)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from typer.testing import CliRunner

from scheduler.cli import app
from tests.conftest import bearer
from tests.unit.scheduler.attest_helpers import attest
from tests.unit.scheduler.policy_fixtures import service

__all__ = ["service"]

runner = CliRunner()


@pytest.fixture
def server(service: Any) -> Iterator[str]:
    import uvicorn

    from scheduler.app import create_app
    from scheduler.local import free_port

    port = free_port()
    config = uvicorn.Config(create_app(service), host="127.0.0.1", port=port, log_level="error")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert srv.started, "the scheduler did not start"
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)


def token(service: Any, role: str) -> str:
    return bearer(service, role, "x")["Authorization"][7:]


def test_show_json(server, service):
    result = runner.invoke(
        app, ["policy", "show", "--server", server, "--token", token(service, "admin"), "--json"]
    )
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["version"] == service.authorizer.store.version
    assert "regulator.write-nothing" in {p["id"] for p in body["policies"]}


def test_show_table(server, service):
    result = runner.invoke(
        app, ["policy", "show", "--server", server, "--token", token(service, "regulator")]
    )
    assert result.exit_code == 0, result.output
    assert service.authorizer.store.version in result.output
    assert "no changes since the default pack" in result.output


def test_show_refused_exits_1_with_message(server, service):
    result = runner.invoke(
        app, ["policy", "show", "--server", server, "--token", token(service, "tenant")]
    )
    assert result.exit_code == 1 and "403" in result.output


def test_show_unreachable_exits_3():
    result = runner.invoke(
        app, ["policy", "show", "--server", "http://127.0.0.1:9", "--token", "t"]
    )
    assert result.exit_code == 3 and "cannot reach" in result.output


def _placed_task(server: str, service: Any) -> str:
    import httpx

    admin = bearer(service, "admin", "a")
    with httpx.Client(base_url=server) as http:
        assert http.post("/v1/tenants", json={"name": "alice"}, headers=admin).status_code == 201
        reg = bearer(service, "node-register", "n1")
        body = {"cpu_cores": 2, "memory_mb": 1024}
        registered = http.post("/v1/nodes/register", json=body, headers=reg)
        assert registered.status_code == 201
        node = {"Authorization": f"Bearer {registered.json()['token']}"}
        attest(http, service, node, "n1")  # the attestation gate: no work before attesting
        alice = bearer(service, "tenant", "alice")
        task = http.post("/v1/tasks", json={"command": ["true"]}, headers=alice).json()
    assert task["node_id"] == "n1"
    return str(task["id"])


def test_replay_json_and_table(server, service):
    task_id = _placed_task(server, service)
    args = ["policy", "replay", task_id, "--server", server, "--token", token(service, "regulator")]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["same"] is True and answer["stored"]["policy_ids"] == ["placement.permit"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "same decision" in result.stdout and "placement.permit" in result.stdout


def test_replay_unknown_task_exits_1_with_message(server, service):
    result = runner.invoke(
        app, ["policy", "replay", "nope", "--server", server, "--token", token(service, "admin")]
    )
    assert result.exit_code == 1
    assert "404" in result.output and "task nope not found" in result.output


def test_replay_unreachable_exits_3():
    result = runner.invoke(
        app, ["policy", "replay", "t", "--server", "http://127.0.0.1:9", "--token", "t"]
    )
    assert result.exit_code == 3
