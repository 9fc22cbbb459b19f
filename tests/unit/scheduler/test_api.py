"""The scheduler API end to end (in-process), on SQLite or PostgreSQL."""

from __future__ import annotations

import time

import pytest

from tests.conftest import bearer
from tests.unit.scheduler.helpers import add_node, add_tenant, admin, claim, report, submit

PROBLEM = "application/problem+json"


def test_task_lifecycle_submit_place_claim_report(api, service):
    alice = add_tenant(api, service, "alice")
    node = add_node(api, service, "n1")
    task = submit(api, alice, ["echo", "hi"])
    assert task["state"] == "placed" and task["node_id"] == "n1"
    claimed = claim(api, node)
    assert [c["id"] for c in claimed] == [task["id"]]
    assert claimed[0]["trace_parent"].split("-")[1] == task["trace_id"]
    resp = report(api, node, task["id"])
    assert resp.status_code == 200 and resp.json()[0]["state"] == "succeeded"
    shown = api.get(f"/v1/tasks/{task['id']}", headers=alice).json()
    states = [e["to_state"] for e in shown["events"]]
    assert states == ["submitted", "admitted", "placed", "running", "succeeded"]
    assert all(e["at"] > 0 and e["reason"] for e in shown["events"])
    # the node's resources are released after the task finished
    n = api.get("/v1/nodes/n1", headers=admin(service)).json()
    assert n["active_tasks"] == 0 and n["cpu_used"] == 0


def test_failed_exit_code_marks_failed(api, service):
    alice = add_tenant(api, service, "alice")
    node = add_node(api, service, "n1")
    task = submit(api, alice)
    claim(api, node)
    assert report(api, node, task["id"], exit_code=3).json()[0]["state"] == "failed"


def test_task_waits_admitted_until_a_node_fits(api, service):
    alice = add_tenant(api, service, "alice")
    add_node(api, service, "small", cpu_cores=1)
    task = submit(api, alice, cpu=8)
    assert task["state"] == "admitted"
    assert "no online node has 8 CPU" in task["reason"]
    add_node(api, service, "big", cpu_cores=16)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        shown = api.get(f"/v1/tasks/{task['id']}", headers=alice).json()
        if shown["state"] == "placed":
            break
        time.sleep(0.05)
    assert shown["state"] == "placed" and shown["node_id"] == "big"


def test_gpu_and_region_constraints(api, service):
    alice = add_tenant(api, service, "alice")
    add_node(api, service, "cpu-east", region="east")
    add_node(
        api,
        service,
        "gpu-west",
        region="west",
        accelerators=[{"kind": "gpu", "model": "a100", "count": 2}],
    )
    assert submit(api, alice, gpu=1)["node_id"] == "gpu-west"
    assert submit(api, alice, region="east")["node_id"] == "cpu-east"
    stuck = submit(api, alice, region="east", gpu=1)
    assert stuck["state"] == "admitted"


def test_tenant_isolation(api, service):
    alice = add_tenant(api, service, "alice")
    bob = add_tenant(api, service, "bob")
    task = submit(api, alice)
    resp = api.get(f"/v1/tasks/{task['id']}", headers=bob)
    assert resp.status_code == 404 and resp.headers["content-type"] == PROBLEM
    assert api.post(f"/v1/tasks/{task['id']}/cancel", headers=bob).status_code == 404
    assert api.get("/v1/tasks", headers=bob).json() == []
    assert [t["id"] for t in api.get("/v1/tasks", headers=alice).json()] == [task["id"]]


def test_node_cannot_report_on_task_it_does_not_hold(api, service):
    alice = add_tenant(api, service, "alice")
    n1 = add_node(api, service, "n1")
    n2 = add_node(api, service, "n2", cpu_cores=1)
    task = submit(api, alice)
    assert task["node_id"] == "n1"
    resp = report(api, n2, task["id"])
    assert resp.status_code == 409 and resp.headers["content-type"] == PROBLEM
    assert "does not hold" in resp.json()["detail"]
    # placed but not yet claimed: not held by n1 either
    assert report(api, n1, task["id"]).status_code == 409
    # a node cannot read another node's task
    assert api.get(f"/v1/tasks/{task['id']}", headers=n2).status_code == 403


def test_report_unknown_task_is_404(api, service):
    node = add_node(api, service, "n1")
    resp = report(api, node, "f" * 32)
    assert resp.status_code == 404 and resp.json()["type"].endswith("/not-found")


def test_cancel_then_cancel_again_conflicts(api, service):
    alice = add_tenant(api, service, "alice")
    task = submit(api, alice)
    assert api.post(f"/v1/tasks/{task['id']}/cancel", headers=alice).json()["state"] == (
        "cancelled"
    )
    again = api.post(f"/v1/tasks/{task['id']}/cancel", headers=alice)
    assert again.status_code == 409


@pytest.mark.parametrize(
    ("body", "status", "slug"),
    [
        (b"{not json", 400, "malformed-json"),
        (b'{"command": "echo"}', 422, "invalid-request"),
        (b'{"command": ["true"], "cpu": "lots"}', 422, "invalid-request"),
        (b'{"command": ["true"], "surprise": 1}', 422, "invalid-request"),
        (b'{"command": []}', 422, "invalid-request"),
        (b'{"command": ["true"], "classification": "top"}', 422, "invalid-request"),
        (b'{"command": ["true"], "region": "../etc"}', 422, "invalid-request"),
    ],
)
def test_bad_submissions_get_problem_json(api, service, body, status, slug):
    alice = add_tenant(api, service, "alice")
    resp = api.post(
        "/v1/tasks", content=body, headers={**alice, "Content-Type": "application/json"}
    )
    assert resp.status_code == status
    assert resp.headers["content-type"] == PROBLEM
    problem = resp.json()
    assert problem["type"].endswith("/" + slug) and problem["status"] == status
    assert api.get("/v1/tasks", headers=alice).json() == []


def test_oversize_body_is_413(api, service):
    alice = add_tenant(api, service, "alice")
    big = {"command": ["echo", "x" * 4000] + ["y" * 4000] * 5}
    resp = api.post("/v1/tasks", json=big, headers=alice)
    assert resp.status_code == 413
    assert resp.headers["content-type"] == PROBLEM


def test_unknown_ids_are_404(api, service):
    alice = add_tenant(api, service, "alice")
    assert api.get("/v1/tasks/nope", headers=alice).status_code == 404
    assert api.get("/v1/tasks/" + "x" * 500, headers=alice).status_code == 404
    assert api.get("/v1/nodes/ghost", headers=admin(service)).status_code == 404
    assert api.get("/v1/nothing-here").status_code == 404


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer not-a-jwt"},
        {"Authorization": "Bearer " + "a" * 9000},
    ],
)
def test_missing_or_bad_token_is_401(api, headers):
    resp = api.get("/v1/tasks", headers=headers)
    assert resp.status_code == 401 and resp.headers["content-type"] == PROBLEM


def test_expired_token_is_401(api, service, clock):
    alice = add_tenant(api, service, "alice")
    clock.advance(3600)
    resp = api.get("/v1/tasks", headers=alice)
    assert resp.status_code == 401 and resp.json()["reason"] == "expired"


def test_roles_are_enforced(api, service):
    alice = add_tenant(api, service, "alice")
    node = add_node(api, service, "n1")
    assert api.post("/v1/tenants", json={"name": "eve"}, headers=alice).status_code == 403
    forbidden = api.get("/v1/nodes", headers=alice)
    assert forbidden.status_code == 403 and forbidden.json()["reasons"]
    assert api.post("/v1/tasks", json={"command": ["true"]}, headers=node).status_code == 403
    assert api.post("/v1/agent/claim", json={}, headers=alice).status_code == 403
    # a registration token is only good for registering
    reg = bearer(service, "node-register", "n9")
    assert api.get("/v1/tasks", headers=reg).status_code == 403


def test_unregistered_tenant_cannot_submit(api, service):
    ghost = bearer(service, "tenant", "ghost")
    resp = api.post("/v1/tasks", json={"command": ["true"]}, headers=ghost)
    assert resp.status_code == 404


def test_silent_node_tasks_are_rescheduled(api, service, clock):
    alice = add_tenant(api, service, "alice")
    n1 = add_node(api, service, "n1", cpu_cores=8)
    task = submit(api, alice)
    assert task["node_id"] == "n1"
    claim(api, n1)
    n2 = add_node(api, service, "n2", cpu_cores=2)
    clock.advance(5)
    assert api.post("/v1/agent/heartbeat", json={"running": []}, headers=n2).status_code == 200
    clock.advance(6)  # n1 silent for 11 s > 10 s timeout; n2 heard 6 s ago
    deadline = time.monotonic() + 5
    shown = api.get(f"/v1/tasks/{task['id']}", headers=alice).json()
    while shown["node_id"] != "n2" and time.monotonic() < deadline:
        time.sleep(0.05)
        shown = api.get(f"/v1/tasks/{task['id']}", headers=alice).json()
    assert shown["node_id"] == "n2" and shown["attempt"] == 1 and shown["state"] == "placed"
    assert any("stopped heartbeating" in e["reason"] for e in shown["events"])
    assert api.get("/v1/nodes/n1", headers=admin(service)).json()["status"] == "offline"
    # the old holder's late report is refused
    assert report(api, n1, task["id"]).status_code == 409


def test_heartbeat_requeues_tasks_the_agent_lost(api, service, clock):
    alice = add_tenant(api, service, "alice")
    node = add_node(api, service, "n1")
    task = submit(api, alice)
    claim(api, node)
    clock.advance(6)  # past the running grace period
    hb = api.post("/v1/agent/heartbeat", json={"running": []}, headers=node).json()
    assert hb["requeued"] == [task["id"]]


def test_heartbeat_renews_node_token_at_half_life(api, service, clock):
    node = add_node(api, service, "n1")
    assert api.post("/v1/agent/heartbeat", json={}, headers=node).json()["token"] is None
    clock.advance(8 * 60)
    renewed = api.post("/v1/agent/heartbeat", json={}, headers=node).json()["token"]
    assert renewed
    clock.advance(10 * 60)  # the first token has expired, the renewed one has not
    assert api.post("/v1/agent/heartbeat", json={}, headers=node).status_code == 401
    fresh = {"Authorization": f"Bearer {renewed}"}
    assert api.post("/v1/agent/heartbeat", json={}, headers=fresh).status_code == 200


def test_idempotency_key_returns_the_same_task(api, service):
    alice = add_tenant(api, service, "alice")
    first = submit(api, alice, idempotency_key="k1")
    again = submit(api, alice, idempotency_key="k1")
    assert first["id"] == again["id"]
    assert len(api.get("/v1/tasks", headers=alice).json()) == 1


def test_jwks_is_published(api, service):
    keys = api.get("/.well-known/jwks.json").json()["keys"]
    assert keys and keys[0]["kty"] == "OKP" and keys[0]["kid"] == service.keyset.active.kid


def test_openapi_documents_the_routes(api):
    paths = api.get("/openapi.json").json()["paths"]
    assert {"/v1/tasks", "/v1/tasks/{task_id}", "/v1/agent/claim", "/v1/nodes"} <= set(paths)


def test_spans_carry_task_ids_and_share_a_trace(api, service):
    alice = add_tenant(api, service, "alice")
    node = add_node(api, service, "n1")
    task = submit(api, alice)
    claim(api, node)
    report(api, node, task["id"])
    spans = [
        s
        for s in service.telemetry.ring.spans()
        if format(s.context.trace_id, "032x") == task["trace_id"]
    ]
    assert {s.name for s in spans} == {"task.submit", "task.place", "task.report"}
    assert all(s.attributes["cntrust.task_id"] == task["id"] for s in spans)


def test_a_cached_token_still_expires(api, service, clock):
    alice = add_tenant(api, service, "alice")
    assert api.get("/v1/tasks", headers=alice).status_code == 200  # verified and cached
    clock.advance(25)
    assert api.get("/v1/tasks", headers=alice).status_code == 200  # served from the cache
    clock.advance(3600)
    resp = api.get("/v1/tasks", headers=alice)
    assert resp.status_code == 401 and resp.json()["reason"] == "expired"


def test_metrics_report_tasks_by_state_and_placement_latency(api, service):
    alice = add_tenant(api, service, "alice")
    add_node(api, service, "n1")
    submit(api, alice)
    submit(api, alice, cpu=64)  # stays admitted
    data = service.telemetry.metric_reader.get_metrics_data()
    points = {}
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                points[metric.name] = list(metric.data.data_points)
    by_state = {p.attributes["state"]: p.value for p in points["cntrust.tasks"]}
    assert by_state == {"placed": 1, "admitted": 1}
    assert sum(p.count for p in points["cntrust.placement.latency"]) == 2


def test_exchange_reports_and_claims_in_one_round_trip(api, service):
    alice = add_tenant(api, service, "alice")
    node = add_node(api, service, "n1", cpu_cores=1)
    first = submit(api, alice)
    second = submit(api, alice)  # waits: the node has one CPU
    assert second["state"] == "admitted"
    assert [c["id"] for c in claim(api, node)] == [first["id"]]
    body = {
        "claim_max": 4,
        "results": [
            {"task_id": first["id"], "exit_code": 0, "output_digest": "sha256:" + "0" * 64},
            {"task_id": "f" * 32, "exit_code": 0, "output_digest": "sha256:" + "0" * 64},
        ],
    }
    resp = api.post("/v1/agent/exchange", json=body, headers=node)
    assert resp.status_code == 200, resp.text
    data = resp.json()
    assert [o["accepted"] for o in data["outcomes"]] == [True, False]
    assert data["outcomes"][1]["problem"]["status"] == 404
    # the freed CPU went to the waiting task, handed over in the same answer
    assert [t["id"] for t in data["tasks"]] == [second["id"]]
    shown = api.get(f"/v1/tasks/{second['id']}", headers=alice).json()
    assert shown["state"] == "running" and shown["node_id"] == "n1"
    tenant_try = api.post("/v1/agent/exchange", json=body, headers=alice)
    assert tenant_try.status_code == 403
