"""Operator revocation refuses the bearer tokens of the operator's nodes, not only their
certificates: nodes it certified and nodes registered under it, on this replica at once,
on another replica within the refresh interval, and after a restart."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from scheduler.app import create_app
from tests.conftest import bearer
from tests.unit.scheduler.helpers import admin
from tests.unit.scheduler.test_identity import add_operator, enrolled, heartbeat, register


def _revoke(api: Any, service: Any, name: str) -> Any:
    return api.post(f"/v1/operators/{name}/revoke", json={"reason": "CA key leaked"},
                    headers=admin(service))  # fmt: skip


def _registered(api: Any, service: Any, name: str, operator: str) -> dict[str, str]:
    """A bearer-token node registered under ``operator`` (no certificate)."""
    body = {"cpu_cores": 1, "memory_mb": 64, "operator": operator}
    resp = api.post("/v1/nodes/register", json=body, headers=bearer(service, "node-register", name))
    assert resp.status_code == 201, resp.text
    return {"Authorization": f"Bearer {resp.json()['token']}"}


def test_revoked_operators_node_tokens_are_refused(api, service):
    add_operator(api, service, "acme")
    add_operator(api, service, "beta")
    a1 = register(api, enrolled(api, service, "acme", "a1")["node_token"])
    a2 = _registered(api, service, "a2", "acme")
    b1 = register(api, enrolled(api, service, "beta", "b1")["node_token"])
    for node in (a1, a2, b1):
        assert heartbeat(api, node).status_code == 200
    assert _revoke(api, service, "acme").status_code == 200
    for node in (a1, a2):
        refused = heartbeat(api, node)
        assert refused.status_code == 401, refused.text
        assert refused.json()["reason"] == "operator_revoked"
        assert refused.headers["content-type"] == "application/problem+json"
    assert heartbeat(api, b1).status_code == 200  # another operator's node is untouched
    # a fresh session token for a revoked operator's node is refused as well
    again = bearer(service, "node", "a1")
    assert heartbeat(api, again).json()["reason"] == "operator_revoked"
    # revoking again changes nothing and breaks nothing
    assert _revoke(api, service, "acme").json()["already_revoked"] is True
    assert heartbeat(api, b1).status_code == 200


def test_token_refusal_reaches_another_replica_and_survives_restart(api, service, clock):
    from scheduler.service import Service

    add_operator(api, service, "acme")
    a1 = register(api, enrolled(api, service, "acme", "a1")["node_token"])
    other = Service(service.settings, clock=clock)  # a second replica: same DB and CA dir
    try:
        with TestClient(create_app(other)) as replica:
            assert heartbeat(replica, a1).status_code == 200
            assert _revoke(api, service, "acme").status_code == 200
            clock.advance(1.0)  # the other replica's revocation refresh interval
            refused = heartbeat(replica, a1)
            assert refused.status_code == 401 and refused.json()["reason"] == "operator_revoked"
    finally:
        other.close()
    restarted = Service(service.settings, clock=clock)
    try:
        with TestClient(create_app(restarted)) as fresh:
            assert heartbeat(fresh, a1).json()["reason"] == "operator_revoked"
    finally:
        restarted.close()


def test_revoking_an_unknown_operator_refuses_no_token(api, service):
    add_operator(api, service, "acme")
    a1 = register(api, enrolled(api, service, "acme", "a1")["node_token"])
    resp = _revoke(api, service, "nope")
    assert resp.status_code == 404 and resp.headers["content-type"] == "application/problem+json"
    assert heartbeat(api, a1).status_code == 200
