"""Helpers for scheduler tests: tenants, nodes and tokens through the real API."""

from __future__ import annotations

from typing import Any

from tests.conftest import bearer


def admin(service: Any) -> dict[str, str]:
    return bearer(service, "admin", "admin")


def add_tenant(api: Any, service: Any, name: str) -> dict[str, str]:
    resp = api.post("/v1/tenants", json={"name": name}, headers=admin(service))
    assert resp.status_code == 201, resp.text
    return bearer(service, "tenant", name)


def add_node(api: Any, service: Any, name: str, **spec: Any) -> dict[str, str]:
    body = {"cpu_cores": 4, "memory_mb": 4096, **spec}
    resp = api.post("/v1/nodes/register", json=body, headers=bearer(service, "node-register", name))
    assert resp.status_code == 201, resp.text
    return {"Authorization": f"Bearer {resp.json()['token']}"}


def submit(api: Any, headers: dict[str, str], command: list[str] | None = None, **spec: Any):
    resp = api.post("/v1/tasks", json={"command": command or ["true"], **spec}, headers=headers)
    assert resp.status_code == 201, resp.text
    return resp.json()


def claim(api: Any, node: dict[str, str], max_tasks: int = 8) -> list[dict[str, Any]]:
    resp = api.post("/v1/agent/claim", json={"max_tasks": max_tasks, "wait_s": 0}, headers=node)
    assert resp.status_code == 200, resp.text
    return resp.json()


def report(api: Any, node: dict[str, str], task_id: str, exit_code: int = 0):
    body = {
        "results": [
            {"task_id": task_id, "exit_code": exit_code, "output_digest": "sha256:" + "0" * 64}
        ]
    }
    return api.post("/v1/agent/report", json=body, headers=node)
