"""Helpers for scheduler tests: tenants, nodes and tokens through the real API."""

from __future__ import annotations

import uuid
from typing import Any

from tests.conftest import bearer
from tests.unit.scheduler import attest_helpers


def admin(service: Any) -> dict[str, str]:
    return bearer(service, "admin", "admin")


def add_tenant(api: Any, service: Any, name: str) -> dict[str, str]:
    resp = api.post("/v1/tenants", json={"name": name}, headers=admin(service))
    assert resp.status_code == 201, resp.text
    return bearer(service, "tenant", name)


def add_node(
    api: Any, service: Any, name: str, attested: bool | None = None, **spec: Any
) -> dict[str, str]:
    """Register a node through the API; where the attestation gate is on, it also attests
    through the real path (nonce, EAT, appraisal) unless ``attested=False``."""
    body = {"cpu_cores": 4, "memory_mb": 4096, **spec}
    resp = api.post("/v1/nodes/register", json=body, headers=bearer(service, "node-register", name))
    assert resp.status_code == 201, resp.text
    headers = {"Authorization": f"Bearer {resp.json()['token']}"}
    if attested is None:
        attested = attest_helpers.gate_on(service)
    if attested:  # with the attestation gate on, a node gets work only once attested
        attest_helpers.attest(api, service, headers, name)
    return headers


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


def task_row(now: float, tenant: str = "t", **values: Any) -> Any:
    """A new task row as the API's submit builds it (for operations run on the store)."""
    from scheduler.models import Classification, Task, TaskState, new_row

    fields: dict[str, Any] = {
        "id": uuid.uuid4().hex, "tenant": tenant, "state": TaskState.SUBMITTED,
        "command": ["true"], "cpu": 1.0, "memory_mb": 64, "gpu": 0, "accelerator_kind": None,
        "classification": Classification.INTERNAL, "region": None, "timeout_s": 60.0,
        "submitted_at": now, "updated_at": now, "trace_parent": None, "idempotency_key": None,
    }  # fmt: skip
    return new_row(Task, **{**fields, **values})
