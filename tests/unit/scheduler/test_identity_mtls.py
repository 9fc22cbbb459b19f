"""SVID renewal (attest-to-renew) and operator CA rotation/revocation through the API.

Requests "over mTLS" here carry the ASGI TLS extension the TLS listener adds
(scheduler.tls), injected by a small wrapper; tests/integration/test_mtls.py runs the same
checks over real TLS sockets.
"""

from __future__ import annotations

from typing import Any

import pytest
from cryptography import x509
from fastapi.testclient import TestClient
from sqlmodel import select

from identity.pki import build_csr, generate_node_key
from scheduler.app import create_app
from scheduler.models import Node
from scheduler.tables.identity_mtls import IdentityOperatorRotation, IdentityRenewal
from tests.conftest import bearer
from tests.unit.scheduler.helpers import admin

CERT_HEADER = "x-test-client-cert"


def with_client_cert(app: Any) -> Any:
    """Move a test header's PEM into scope["extensions"]["tls"], as the listener does."""

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            cert = headers.pop(CERT_HEADER.encode(), None)
            scope["headers"] = list(headers.items())
            if cert is not None:
                pem = cert.decode().replace("\\n", "\n")
                scope.setdefault("extensions", {})["tls"] = {"client_cert_chain": [pem]}
        await app(scope, receive, send)

    return wrapped


@pytest.fixture
def mapi(service):
    with TestClient(with_client_cert(create_app(service))) as client:
        yield client


def as_node(svid_chain_pem: str) -> dict[str, str]:
    leaf = svid_chain_pem.split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n"
    return {CERT_HEADER: leaf.replace("\n", "\\n")}


def add_operator(api: Any, service: Any, name: str) -> None:
    resp = api.post("/v1/operators", json={"name": name}, headers=admin(service))
    assert resp.status_code == 201, resp.text


def enroll(api: Any, service: Any, operator: str, node_id: str) -> Any:
    resp = api.post(
        f"/v1/operators/{operator}/join-tokens", json={"ttl_s": 600}, headers=admin(service)
    )
    assert resp.status_code == 201, resp.text
    body = {
        "join_token": resp.json()["join_token"],
        "csr_pem": build_csr(generate_node_key()).decode(),
        "node_id": node_id,
    }
    return api.post("/v1/enroll", json=body)


def enrolled(api: Any, service: Any, operator: str, node_id: str) -> dict[str, str]:
    """Enroll and register over 'mTLS'; return the node's certificate headers."""
    resp = enroll(api, service, operator, node_id)
    assert resp.status_code == 201, resp.text
    node = as_node(resp.json()["svid_chain_pem"])
    reg = api.post("/v1/nodes/register", json={"cpu_cores": 1, "memory_mb": 64}, headers=node)
    assert reg.status_code == 201, reg.text
    return node


def heartbeat(api: Any, node: dict[str, str]) -> Any:
    return api.post("/v1/agent/heartbeat", json={"running": []}, headers=node)


def renew(api: Any, node: dict[str, str]) -> Any:
    csr = build_csr(generate_node_key()).decode()
    return api.post("/v1/agent/svid/renew", json={"csr_pem": csr}, headers=node)


def set_attestation(service: Any, node_id: str, status: str | None, expires_at: float) -> None:
    def op(session: Any) -> None:
        node = session.get(Node, node_id)
        node.attestation_status = status
        node.attestation_id = f"ear-{status}"
        node.attestation_expires_at = expires_at
        session.add(node)

    service.write_sync(op)


# -- renewal ---------------------------------------------------------------------------


def test_renewal_before_expiry_when_attestation_is_not_required(mapi, service, clock):
    service.settings.attest_to_renew = False
    add_operator(mapi, service, "acme")
    node = enrolled(mapi, service, "acme", "n1")
    clock.advance(31 * 60)  # past half-life, before expiry
    resp = renew(mapi, node)
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert out["attestation"] == "not_required"
    assert out["spiffe_id"] == "spiffe://cntrust.local/operator/acme/node/n1"
    assert out["not_after"] == pytest.approx(clock() + 3600, abs=1)
    renewed = as_node(out["svid_chain_pem"])
    assert heartbeat(mapi, renewed).status_code == 200
    with service.read() as session:
        rows = session.exec(select(IdentityRenewal)).all()
    assert [(r.node_id, r.attestation) for r in rows] == [("n1", "not_required")]
    new_serial = x509.load_pem_x509_certificate(out["svid_chain_pem"].encode()).serial_number
    assert rows[0].new_serial == str(new_serial)


def test_renewal_requires_a_passing_attestation(mapi, service, clock):
    assert service.settings.attest_to_renew  # the default: fail closed
    add_operator(mapi, service, "acme")
    node = enrolled(mapi, service, "acme", "n1")
    cases = [
        (None, clock() + 60, "attestation_required"),
        ("affirming", clock() - 1, "attestation_expired"),
        ("contraindicated", clock() + 60, "attestation_failed"),
        ("warning", clock() + 60, "attestation_failed"),
    ]
    for status, expires_at, reason in cases:
        set_attestation(service, "n1", status, expires_at)
        resp = renew(mapi, node)
        assert resp.status_code == 403, (status, resp.text)
        assert resp.json()["reason"] == reason
    set_attestation(service, "n1", "affirming", clock() + 60)
    resp = renew(mapi, node)
    assert resp.status_code == 200, resp.text
    assert resp.json()["attestation"] == "affirming"
    assert resp.json()["attestation_id"] == "ear-affirming"
    with service.read() as session:
        assert [r.attestation for r in session.exec(select(IdentityRenewal))] == ["affirming"]


def test_renewal_refused_for_a_revoked_node(mapi, service):
    service.settings.attest_to_renew = False
    add_operator(mapi, service, "acme")
    node = enrolled(mapi, service, "acme", "n1")
    resp = mapi.post("/v1/nodes/n1/revoke", json={"reason": "stolen"}, headers=admin(service))
    assert resp.status_code == 200
    refused = renew(mapi, node)
    assert refused.status_code == 401 and refused.json()["reason"] == "revoked"


def test_renewal_needs_the_current_certificate_and_a_good_csr(mapi, service):
    service.settings.attest_to_renew = False
    add_operator(mapi, service, "acme")
    node = enrolled(mapi, service, "acme", "n1")
    token = bearer(service, "node", "n1")
    resp = mapi.post("/v1/agent/svid/renew", json={"csr_pem": "x"}, headers=token)
    assert resp.status_code == 401 and resp.json()["reason"] == "client_certificate_required"
    resp = mapi.post("/v1/agent/svid/renew", json={"csr_pem": "not a csr"}, headers=node)
    assert resp.status_code == 422 and resp.json()["reason"] == "malformed"


def test_certificate_nodes_get_no_bearer_token_from_heartbeats(mapi, service, clock):
    add_operator(mapi, service, "acme")
    node = enrolled(mapi, service, "acme", "n1")
    clock.advance(45 * 60)  # past the SVID's half-life: it renews the SVID, not a token
    resp = heartbeat(mapi, node)
    assert resp.status_code == 200 and resp.json()["token"] is None


def test_expired_certificate_is_refused_even_when_cached(mapi, service, clock):
    add_operator(mapi, service, "acme")
    node = enrolled(mapi, service, "acme", "n1")
    assert heartbeat(mapi, node).status_code == 200  # verified and cached
    clock.advance(3601)
    resp = heartbeat(mapi, node)
    assert resp.status_code == 401 and resp.json()["reason"] == "expired"


# -- operator CA rotation and revocation -------------------------------------------------


def test_rotating_one_operator_leaves_the_others_working(mapi, service):
    add_operator(mapi, service, "acme")
    add_operator(mapi, service, "beta")
    a1 = enrolled(mapi, service, "acme", "a1")
    b1 = enrolled(mapi, service, "beta", "b1")
    resp = mapi.post("/v1/operators/acme/rotate", headers=admin(service))
    assert resp.status_code == 200, resp.text
    rotated = resp.json()
    assert rotated["old_ca_serial"] != rotated["new_ca_serial"]
    # the rotated-out CA's SVIDs keep working until they expire; other operators untouched
    assert heartbeat(mapi, a1).status_code == 200
    assert heartbeat(mapi, b1).status_code == 200
    # new SVIDs come from the new CA and work
    fresh = enroll(mapi, service, "acme", "a2")
    assert fresh.status_code == 201
    leaf = x509.load_pem_x509_certificate(fresh.json()["svid_chain_pem"].encode())
    new_ca = x509.load_pem_x509_certificate(rotated["ca_certificate_pem"].encode())
    leaf.verify_directly_issued_by(new_ca)
    a2 = as_node(fresh.json()["svid_chain_pem"])
    reg = mapi.post("/v1/nodes/register", json={"cpu_cores": 1, "memory_mb": 64}, headers=a2)
    assert reg.status_code == 201
    with service.read() as session:
        rows = session.exec(select(IdentityOperatorRotation)).all()
    assert [(r.operator, r.rotated_by) for r in rows] == [("acme", "admin:admin")]


def test_revoking_an_operator_refuses_all_its_nodes(mapi, service, clock, tmp_path):
    add_operator(mapi, service, "acme")
    add_operator(mapi, service, "beta")
    a1 = enrolled(mapi, service, "acme", "a1")
    assert mapi.post("/v1/operators/acme/rotate", headers=admin(service)).status_code == 200
    a2 = enrolled(mapi, service, "acme", "a2")  # from the rotated CA
    b1 = enrolled(mapi, service, "beta", "b1")
    resp = mapi.post(
        "/v1/operators/acme/revoke", json={"reason": "CA key leaked"}, headers=admin(service)
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["already_revoked"] is False
    assert len(resp.json()["ca_serials"]) == 2  # current and rotated-out
    for node in (a1, a2):
        refused = heartbeat(mapi, node)
        assert refused.status_code == 401 and refused.json()["reason"] == "operator_revoked"
    assert heartbeat(mapi, b1).status_code == 200
    again = enroll(mapi, service, "acme", "a3")
    assert again.status_code == 403 and again.json()["reason"] == "operator_revoked"
    rotate = mapi.post("/v1/operators/acme/rotate", headers=admin(service))
    assert rotate.status_code == 409 and rotate.json()["reason"] == "operator_revoked"
    second = mapi.post("/v1/operators/acme/revoke", json={"reason": "x"}, headers=admin(service))
    assert second.json()["already_revoked"] is True
    assert second.json()["reason"] == "CA key leaked"


def test_operator_revocation_reaches_another_replica_and_survives_restart(
    mapi, service, clock, database_url
):
    from scheduler.service import Service

    add_operator(mapi, service, "acme")
    a1 = enrolled(mapi, service, "acme", "a1")
    other = Service(service.settings, clock=clock)  # a second replica: same DB and CA dir
    try:
        with TestClient(with_client_cert(create_app(other))) as replica:
            assert heartbeat(replica, a1).status_code == 200
            resp = mapi.post(
                "/v1/operators/acme/revoke", json={"reason": "gone"}, headers=admin(service)
            )
            assert resp.status_code == 200
            clock.advance(1.0)  # the other replica's revocation refresh interval
            refused = heartbeat(replica, a1)
            assert refused.status_code == 401
            assert refused.json()["reason"] == "operator_revoked"
    finally:
        other.close()
    restarted = Service(service.settings, clock=clock)
    try:
        with TestClient(with_client_cert(create_app(restarted))) as fresh:
            assert heartbeat(fresh, a1).json()["reason"] == "operator_revoked"
    finally:
        restarted.close()


def test_operator_routes_refuse_bad_input(mapi, service):
    add_operator(mapi, service, "acme")
    assert mapi.post("/v1/operators/nope/rotate", headers=admin(service)).status_code == 404
    resp = mapi.post("/v1/operators/nope/revoke", json={"reason": "x"}, headers=admin(service))
    assert resp.status_code == 404
    resp = mapi.post("/v1/operators/acme/revoke", json={"reason": ""}, headers=admin(service))
    assert resp.status_code == 422
    tenant = bearer(service, "tenant", "alice")
    assert mapi.post("/v1/operators/acme/rotate", headers=tenant).status_code == 403


def test_rotation_on_one_replica_is_picked_up_by_another(mapi, service, clock):
    """Replicas sharing the CA directory reload it when it changes (checked every second),
    so an SVID from the rotated CA is accepted everywhere."""
    from scheduler.service import Service

    add_operator(mapi, service, "acme")
    other = Service(service.settings, clock=clock)
    try:
        with TestClient(with_client_cert(create_app(other))) as replica:
            a1 = enrolled(mapi, service, "acme", "a1")
            clock.advance(1.0)
            assert heartbeat(replica, a1).status_code == 200
            rotated = mapi.post("/v1/operators/acme/rotate", headers=admin(service))
            assert rotated.status_code == 200
            a2 = enrolled(mapi, service, "acme", "a2")  # issued by the new operator CA
            clock.advance(1.0)
            resp = heartbeat(replica, a2)
            assert resp.status_code == 200, resp.text
    finally:
        other.close()


def test_operator_revocation_is_a_recorded_response_action(mapi, service):
    seen = []
    service.response_hooks.append(lambda session, action: seen.append(action))
    add_operator(mapi, service, "acme")
    resp = mapi.post("/v1/operators/acme/revoke", json={"reason": "leak"}, headers=admin(service))
    assert resp.status_code == 200
    mapi.post("/v1/operators/acme/revoke", json={"reason": "again"}, headers=admin(service))
    assert [(a.action, a.subject, a.reason, a.actor) for a in seen] == [
        ("response.revoke", "operator:acme", "leak", "admin:admin")
    ]
