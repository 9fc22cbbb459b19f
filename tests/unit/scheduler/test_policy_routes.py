"""Every API route is decided by the Cedar policy set: no built-in role rule is left.

The test walks ``create_app``'s routes, calls each one with a valid request, and records
every authorization decision the route asks for. A route passes when it asked at least
once and every action it asked for has a Cedar action (``ACTIONS``), decided by the
``PolicyAuthorizer`` with no fallback. Public routes are listed explicitly (and must not
ask). A new route without a sample request here fails the test until one is added.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from scheduler.app import create_app
from scheduler.authz import AuthzDecision, BuiltinAuthorizer, Principal, Resource
from scheduler.policy_authz import ACTIONS, PolicyAuthorizer
from tests.conftest import bearer
from tests.unit.scheduler.helpers import add_node, add_tenant, submit

PUBLIC = {
    # liveness and the keys that verify tokens
    "GET /healthz",
    "GET /.well-known/jwks.json",
    # the provenance log is a public, verifiable log (tiles, checkpoint, its key)
    "GET /log/checkpoint",
    "GET /log/key",
    "GET /log/tile/{rest:path}",
    # enrollment authenticates with a one-time join token and a CSR, not a bearer principal
    "POST /v1/enroll",
    # the trust domain's roots: what every node must be able to fetch before it has a token
    "GET /v1/trust-bundle",
    # FastAPI's own documentation routes
    "GET /openapi.json",
    "GET /docs",
    "GET /docs/oauth2-redirect",
    "GET /redoc",
}

SUGGESTION = {"reason": "known scanner", "ttl_s": 60, "signature_id": 1}
ALERT = {
    "timestamp": "2026-11-27T10:00:00.000000+0000",
    "event_type": "alert",
    "src_ip": "10.0.0.1",
    "dest_ip": "10.0.0.2",
    "proto": "TCP",
    "alert": {"signature_id": 1, "signature": "test", "severity": 2, "category": "x"},
}

REPORT = {"task_id": "0" * 32, "exit_code": 0, "output_digest": "sha256:" + "0" * 64}

# route -> (principal role, principal name, JSON body or None)
SAMPLES: dict[str, tuple[str, str, Any]] = {
    "POST /v1/tenants": ("admin", "admin", {"name": "bob"}),
    "POST /v1/tasks": ("tenant", "alice", {"command": ["true"]}),
    "GET /v1/tasks": ("tenant", "alice", None),
    "GET /v1/tasks/{task_id}": ("tenant", "alice", None),
    "POST /v1/tasks/{task_id}/cancel": ("tenant", "alice", None),
    "POST /v1/nodes/register": ("node-register", "n2", {"cpu_cores": 2, "memory_mb": 1024}),
    "POST /v1/agent/heartbeat": ("node", "n1", {"running": []}),
    "POST /v1/agent/claim": ("node", "n1", {"max_tasks": 1, "wait_s": 0}),
    "POST /v1/agent/report": ("node", "n1", {"results": [REPORT]}),
    "POST /v1/agent/exchange": ("node", "n1", {"results": [REPORT], "claim_max": 1}),
    "GET /v1/nodes": ("admin", "admin", None),
    "GET /v1/nodes/{node_id}": ("operator", "local", None),
    "GET /v1/stats": ("admin", "admin", None),
    "GET /v1/nodes/{node_id}/trust": ("admin", "admin", None),
    "POST /v1/nodes/{node_id}/release": ("admin", "admin", None),
    "GET /v1/policy": ("regulator", "reg", None),
    "POST /v1/policy/check": ("analyst", "sec", None),
    "PUT /v1/policy": ("regulator", "reg", None),
    "GET /v1/tasks/{task_id}/bundle": ("tenant", "alice", None),
    "GET /v1/tasks/{task_id}/placement/replay": ("tenant", "alice", None),
    "POST /v1/operators": ("admin", "admin", {"name": "op2"}),
    "POST /v1/operators/{operator}/join-tokens": ("operator", "op1", {"ttl_s": 60}),
    "POST /v1/nodes/{node_id}/revoke": ("analyst", "sec", {"reason": "test"}),
    "POST /v1/alerts": ("sensor", "edge-1", [ALERT]),
    "GET /v1/alerts": ("analyst", "sec", None),
    "GET /v1/alerts/export": ("regulator", "reg", None),
    "GET /v1/alerts/{alert_id}": ("analyst", "sec", None),
    "POST /v1/alerts/{alert_id}/triage": ("admin", "admin", {"state": "acknowledged"}),
    "POST /v1/suppressions": ("analyst", "sec", SUGGESTION),
    "GET /v1/suppressions": ("analyst", "sec", None),
    "DELETE /v1/suppressions/{sup_id}": ("analyst", "sec", None),
}


class Spy:
    """Records every decision the routes ask for, then lets the real authorizer decide."""

    def __init__(self, inner: PolicyAuthorizer) -> None:
        self.inner = inner
        self.calls: list[tuple[str, AuthzDecision]] = []

    def decide(self, principal: Principal, action: str, resource: Resource) -> AuthzDecision:
        decision = self.inner.decide(principal, action, resource)
        self.calls.append((action, decision))
        return decision


def _keys(app: Any) -> list[str]:
    keys = []
    for route in app.routes:
        if isinstance(route, APIRoute):
            keys.extend(f"{method} {route.path}" for method in sorted(route.methods))
    return keys


@pytest.fixture
def wired(service: Any) -> Any:
    from scheduler.provenance import ProvenanceLayer, layer_of

    if layer_of(service) is None:
        ProvenanceLayer.for_service(service)  # not started: its routes only need to exist
    with TestClient(create_app(service)) as client:
        yield client


def test_every_route_is_decided_by_the_policy_engine(wired, service):
    api = wired
    authorizer = service.authorizer
    assert isinstance(authorizer, PolicyAuthorizer)
    assert authorizer.unmapped is None, "no built-in fallback may be installed"
    alice = add_tenant(api, service, "alice")
    add_node(api, service, "n1")
    task = submit(api, alice)
    ids = {"task_id": task["id"], "node_id": "n1", "operator": "op1", "alert_id": "1"}
    ids |= {"sup_id": "1", "rest": "0/000"}
    spy = Spy(authorizer)
    service.authorizer = spy
    unsampled, undecided, not_cedar = [], [], []
    try:
        for key in _keys(api.app):
            method, path = key.split(" ", 1)
            url = path.replace("{rest:path}", ids["rest"])
            for name, value in ids.items():
                url = url.replace("{" + name + "}", value)
            spy.calls.clear()
            if key in PUBLIC:
                api.request(method, url)
                assert spy.calls == [], f"public route {key} asked for authorization"
                continue
            if key not in SAMPLES:
                unsampled.append(key)
                continue
            role, name, body = SAMPLES[key]
            headers = bearer(service, role, name)
            resp = api.request(method, url, json=body, headers=headers)
            assert resp.status_code != 422, f"{key}: sample request invalid: {resp.text}"
            if not spy.calls:
                undecided.append(f"{key} -> {resp.status_code}")
            for action, decision in spy.calls:
                if action not in ACTIONS or any("built-in" in r for r in decision.reasons):
                    not_cedar.append(f"{key}: {action}")
    finally:
        service.authorizer = authorizer
    assert unsampled == [], f"routes without a sample request here: {unsampled}"
    assert undecided == [], f"routes that never asked the policy engine: {undecided}"
    assert not_cedar == [], f"decisions not made by Cedar: {not_cedar}"


def test_builtin_role_actions_all_have_cedar_actions():
    from scheduler.authz import _ROLE_ACTIONS

    assert set(_ROLE_ACTIONS) <= set(ACTIONS)


def test_unmapped_action_is_denied_not_sent_to_builtin(service):
    authorizer = service.authorizer
    decision = authorizer.decide(Principal("admin", "root"), "made.up", Resource("task"))
    assert not decision.allowed and decision.reasons == ("unknown action made.up",)
    fallback = PolicyAuthorizer(authorizer.store, authorizer.node_facts, BuiltinAuthorizer())
    said = fallback.decide(Principal("admin", "r"), "made.up", Resource("x"))
    assert "built-in" in said.reasons[-1]


ROLE_CASES = [
    # (role, action, resource, allowed, deciding id)
    ("analyst", "alert.triage", Resource("alert", "7"), True, "analyst.alerts"),
    ("admin", "alert.triage", Resource("alert", "7"), False, "alerts.analysts-only"),
    ("regulator", "alert.triage", Resource("alert", "7"), False, "regulator.write-nothing"),
    ("admin", "alert.suppress", Resource("suppression"), False, "alerts.analysts-only"),
    ("analyst", "alert.suppress", Resource("suppression", "3"), True, "analyst.alerts"),
    ("sensor", "alert.ingest", Resource("alert"), True, "sensor.ingest-alerts"),
    ("tenant", "alert.ingest", Resource("alert"), False, "alerts.ingest-sensors-only"),
    ("sensor", "alert.read", Resource("alert"), False, None),
    ("admin", "node.revoke", Resource("node", "n1"), True, "admin.manage"),
    ("analyst", "node.revoke", Resource("node", "n1"), False, "node.revoke-admins-only"),
    ("admin", "node.release", Resource("node", "n1"), True, "admin.identity"),
    ("operator", "node.release", Resource("node", "n1"), False, "node.release-admins-only"),
    ("admin", "identity.operator.manage", Resource("operator", "o"), True, "admin.identity"),
    ("operator", "identity.join_token.create", Resource("operator", "o"), False, None),
    ("regulator", "identity.ca.rotate", Resource("ca"), False, "regulator.write-nothing"),
    ("admin", "identity.ca.revoke", Resource("operator", "o"), True, "admin.identity"),
    ("analyst", "policy.change", Resource("policy"), False, "policy.admins-only"),
    ("regulator", "policy.change", Resource("policy"), False, "regulator.write-nothing"),
    ("regulator", "policy.read", Resource("policy"), True, "regulator.read"),
]


@pytest.mark.parametrize(("role", "action", "resource", "allowed", "policy_id"), ROLE_CASES)
def test_new_actions_decided_with_reasons(service, role, action, resource, allowed, policy_id):
    decision = service.authorizer.decide(Principal(role, "x"), action, resource)
    assert decision.allowed is allowed, decision
    assert decision.reasons and not any("built-in" in r for r in decision.reasons)
    if policy_id is not None:
        assert policy_id in decision.policy_ids, decision


def test_bare_scheduler_with_builtin_rules_still_registers_nodes(tmp_path, database_url):
    """``cntrust up --no-layers`` decides with the built-in rules: registration (now behind
    the seam) must still work there."""
    from scheduler.service import Service
    from scheduler.settings import Settings

    bare = Service(
        Settings(data_dir=tmp_path / "bare", database_url=database_url),
        authorizer=BuiltinAuthorizer(),
    )
    try:
        with TestClient(create_app(bare, layers=False)) as client:
            body = {"cpu_cores": 2, "memory_mb": 1024}
            headers = bearer(bare, "node-register", "n1")
            assert client.post("/v1/nodes/register", json=body, headers=headers).status_code == 201
            tenant = bearer(bare, "tenant", "t")
            assert client.post("/v1/nodes/register", json=body, headers=tenant).status_code == 401
    finally:
        bare.close()
