"""Agents and the scheduler over mTLS with X.509-SVIDs: real TLS sockets on loopback.

Each refusal is checked where it happens: OpenSSL refuses, during the handshake, a
certificate that does not chain to the root or is outside its validity (or whose EKU
excludes clientAuth); the scheduler's own per-request verification refuses the rest with a
specific problem+json reason (no EKU, CA as leaf, bad SPIFFE ID, revoked).
"""

from __future__ import annotations

import asyncio
import ssl
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID

from identity.pki import CertificateAuthority, load_node_credentials
from scheduler.agent import Agent, AgentConfig
from scheduler.agent_identity import AgentIdentity, RotatingTransport, renewal_loop
from scheduler.errors import Unauthorized
from tests.conftest import bearer
from tests.integration.mtls_helpers import (
    ClientCert,
    Replica,
    enroll_over_tls,
    make_leaf,
    pem,
    start_replica,
    tls_client,
)

TD = "cntrust.local"


@pytest.fixture
def replica(tmp_path, database_url):
    rep = start_replica(tmp_path / "data", database_url, attest_to_renew=False)
    yield rep
    rep.stop()


def admin(rep: Replica) -> dict[str, str]:
    return bearer(rep.service, "admin", "admin")


def add_operator(rep: Replica, name: str) -> None:
    with httpx.Client(base_url=rep.plain_url) as client:
        resp = client.post("/v1/operators", json={"name": name}, headers=admin(rep))
        assert resp.status_code == 201, resp.text


def node_ctx(rep: Replica, directory: Path) -> ssl.SSLContext:
    return AgentIdentity.load(directory).ssl_context()


def heartbeat(rep: Replica, ctx: ssl.SSLContext) -> httpx.Response:
    with tls_client(rep.tls_url, ctx) as client:
        return client.post("/v1/agent/heartbeat", json={"running": []})


def register(rep: Replica, ctx: ssl.SSLContext, **body: object) -> httpx.Response:
    with tls_client(rep.tls_url, ctx) as client:
        return client.post("/v1/nodes/register", json={"cpu_cores": 2, "memory_mb": 512, **body})


def test_good_svid_end_to_end(replica, tmp_path):
    """An enrolled agent registers, claims and reports over mTLS, with no bearer token."""
    add_operator(replica, "acme")
    node_dir = tmp_path / "n1"
    enroll_over_tls(replica, admin(replica), "acme", "n1", node_dir)
    agent = Agent(AgentConfig(server=replica.tls_url, data_dir=node_dir, mtls=True))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(agent.run(),), daemon=True)
    thread.start()
    try:
        with httpx.Client(base_url=replica.plain_url, timeout=10) as api:
            assert api.post("/v1/tenants", json={"name": "alice"}, headers=admin(replica))
            alice = bearer(replica.service, "tenant", "alice")
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                nodes = api.get("/v1/nodes", headers=admin(replica)).json()
                if any(n["id"] == "n1" for n in nodes):
                    break
                time.sleep(0.1)
            node = api.get("/v1/nodes/n1", headers=admin(replica)).json()
            assert node["operator"] == "acme"  # from the SVID, not from a flag
            task = api.post("/v1/tasks", json={"command": ["echo", "hi"]}, headers=alice).json()
            while time.monotonic() < deadline:
                task = api.get(f"/v1/tasks/{task['id']}", headers=alice).json()
                if task["state"] in ("succeeded", "failed"):
                    break
                time.sleep(0.1)
        assert task["state"] == "succeeded", task
        assert task["node_id"] == "n1"
        assert agent.completed == 1
    finally:
        loop.call_soon_threadsafe(agent.stop)
        thread.join(20)


def test_node_token_is_not_needed_and_a_tenant_token_still_works_over_tls(replica, tmp_path):
    add_operator(replica, "acme")
    enroll_over_tls(replica, admin(replica), "acme", "n1", tmp_path / "n1")
    ctx = node_ctx(replica, tmp_path / "n1")
    assert register(replica, ctx).status_code == 201
    assert heartbeat(replica, ctx).status_code == 200
    # no client certificate: bearer tokens as before
    plain_ctx = ssl.create_default_context(cafile=str(replica.tls.ca_path))
    with tls_client(replica.tls_url, plain_ctx) as client:
        assert client.get("/v1/nodes/n1").status_code == 401
        assert client.get("/v1/nodes/n1", headers=admin(replica)).json()["operator"] == "acme"
    # the certificate's identity is the node's: it cannot register under another operator
    add_operator(replica, "beta")
    refused = register(replica, ctx, operator="beta")
    assert refused.status_code == 403 and refused.json()["reason"] == "operator_mismatch"


def _ca_cert(rep: Replica, tmp_path: Path, uri: str, **kwargs: object) -> ClientCert:
    op = rep.layer.ca.operator("acme")
    cert, key = make_leaf(op, uri, **kwargs)  # type: ignore[arg-type]
    return ClientCert(tmp_path / "leaf", pem(cert) + op.certificate_pem, key)


NODE_URI = f"spiffe://{TD}/operator/acme/node/n9"


@pytest.mark.parametrize(
    ("uri", "kwargs", "reason"),
    [
        (NODE_URI, {"eku": None}, "missing_client_auth"),
        (f"spiffe://{TD}/operator/acme/node/..", {}, "spiffe_id"),
        (f"spiffe://{TD}/operator/acme/node/%2e", {}, "spiffe_id"),
        (f"SPIFFE://{TD}/operator/acme/node/n9", {}, "spiffe_id"),
        (f"spiffe://{TD}/operator/beta/node/n9", {}, "operator_mismatch"),
    ],
    ids=["no-eku", "dot-dot", "pct-2e", "uppercase-scheme", "other-operator"],
)
def test_refused_by_the_scheduler_with_a_specific_reason(replica, tmp_path, uri, kwargs, reason):
    """OpenSSL accepts these (it checks no URI SAN and accepts a missing EKU); the
    scheduler's verification refuses them."""
    add_operator(replica, "acme")
    leaf = _ca_cert(replica, tmp_path, uri, **kwargs)
    resp = heartbeat(replica, leaf.context(replica.tls.ca_path))
    assert resp.status_code == 401, resp.text
    problem = resp.json()
    assert problem["reason"] == reason, problem
    assert resp.headers["content-type"].startswith("application/problem+json")


def test_ca_certificate_as_leaf_refused(replica, tmp_path):
    add_operator(replica, "acme")
    op = replica.layer.ca.operator("acme")
    as_leaf = ClientCert(tmp_path / "ca-leaf", op.certificate_pem, op.private_key)
    resp = heartbeat(replica, as_leaf.context(replica.tls.ca_path))
    assert resp.status_code == 401
    assert resp.json()["reason"] == "ca_as_leaf"


def _refused(rep: Replica, leaf: ClientCert) -> str:
    """Refused twice: in the TLS handshake (with TLS 1.3 the client sees the server drop
    the connection), and by the scheduler's own verification of the same certificate,
    whose specific reason is returned."""
    with pytest.raises(httpx.TransportError):
        heartbeat(rep, leaf.context(rep.tls.ca_path))
    leaf_pem = (
        leaf.chain_pem.split(b"-----END CERTIFICATE-----")[0] + b"-----END CERTIFICATE-----\n"
    )
    with pytest.raises(Unauthorized) as err:
        rep.service.authenticate_peer({"client_cert_chain": [leaf_pem.decode()]})
    return str(err.value.extra["reason"])


def test_server_auth_only_certificate_refused(replica, tmp_path):
    add_operator(replica, "acme")
    leaf = _ca_cert(replica, tmp_path, NODE_URI, eku=(ExtendedKeyUsageOID.SERVER_AUTH,))
    assert _refused(replica, leaf) == "missing_client_auth"


def test_certificate_from_another_root_refused(replica, tmp_path):
    add_operator(replica, "acme")
    other = CertificateAuthority.create(TD)
    op = other.add_operator("acme")
    cert, key = make_leaf(op, NODE_URI)
    leaf = ClientCert(tmp_path / "other", pem(cert) + op.certificate_pem, key)
    assert _refused(replica, leaf) == "untrusted_chain"


@pytest.mark.parametrize(
    ("offset", "reason"),
    [(-timedelta(hours=2), "expired"), (timedelta(hours=2), "not_yet_valid")],
    ids=["expired", "not-yet-valid"],
)
def test_certificate_outside_its_validity_refused(replica, tmp_path, offset, reason):
    add_operator(replica, "acme")
    start = datetime.now(UTC) + offset
    leaf = _ca_cert(
        replica, tmp_path, NODE_URI, not_before=start, not_after=start + timedelta(hours=1)
    )
    assert _refused(replica, leaf) == reason


def test_a_good_certificate_passes_the_same_path(replica, tmp_path):
    """The control for the refusals above: same helper, valid leaf, accepted."""
    add_operator(replica, "acme")
    leaf = _ca_cert(replica, tmp_path, NODE_URI)
    resp = register(replica, leaf.context(replica.tls.ca_path))
    assert resp.status_code == 201 and resp.json()["node_id"] == "n9"
    assert heartbeat(replica, leaf.context(replica.tls.ca_path)).status_code == 200


def test_revoked_refused_within_2s_on_every_replica_and_after_restart(
    replica, tmp_path, database_url
):
    add_operator(replica, "acme")
    enroll_over_tls(replica, admin(replica), "acme", "n1", tmp_path / "n1")
    ctx = node_ctx(replica, tmp_path / "n1")
    other = start_replica(tmp_path / "data", database_url)  # same CA dir and database
    try:
        assert register(replica, ctx).status_code == 201
        assert heartbeat(other, ctx).status_code == 200
        with httpx.Client(base_url=replica.plain_url) as client:
            resp = client.post(
                "/v1/nodes/n1/revoke", json={"reason": "key leaked"}, headers=admin(replica)
            )
        revoked_at = time.monotonic()
        assert resp.status_code == 200, resp.text
        first = heartbeat(replica, ctx)  # the revoking replica: at once
        assert first.status_code == 401 and first.json()["reason"] == "revoked"
        while True:
            resp = heartbeat(other, ctx)
            if resp.status_code == 401:
                break
            assert time.monotonic() - revoked_at < 2.0, "not refused within 2 s"
            time.sleep(0.05)
        assert time.monotonic() - revoked_at < 2.0
        assert resp.json()["reason"] == "revoked"
    finally:
        other.stop()
    restarted = start_replica(tmp_path / "data", database_url)
    try:
        resp = heartbeat(restarted, ctx)
        assert resp.status_code == 401 and resp.json()["reason"] == "revoked"
    finally:
        restarted.stop()


def test_agent_renews_and_new_connections_present_the_new_svid(replica, tmp_path):
    add_operator(replica, "acme")
    node_dir = tmp_path / "n1"
    enroll_over_tls(replica, admin(replica), "acme", "n1", node_dir)
    identity = AgentIdentity.load(node_dir)
    old = identity.credentials.certificate

    async def renew_and_use() -> int:
        transport = RotatingTransport(identity, grace_s=0.1)
        async with httpx.AsyncClient(base_url=replica.tls_url, transport=transport) as client:
            await client.post("/v1/nodes/register", json={"cpu_cores": 1, "memory_mb": 64})
            await identity.renew(client)
            transport.rotate()
            resp = await client.post("/v1/agent/heartbeat", json={"running": []})
            return resp.status_code

    assert asyncio.run(renew_and_use()) == 200
    new = load_node_credentials(node_dir).certificate
    assert new.serial_number != old.serial_number
    assert new.public_key() != old.public_key()  # a fresh key
    assert AgentIdentity.load(node_dir).spiffe_id.uri == f"spiffe://{TD}/operator/acme/node/n1"


def test_renewal_loop_renews_when_due_and_keeps_working(replica, tmp_path):
    add_operator(replica, "acme")
    node_dir = tmp_path / "n1"
    enroll_over_tls(replica, admin(replica), "acme", "n1", node_dir)
    first = load_node_credentials(node_dir).certificate.serial_number

    class DueOnce(AgentIdentity):
        """Due for renewal while it still holds the first SVID (a fake clock would need
        the scheduler's and OpenSSL's clocks moved too)."""

        def needs_renewal(self, now: float) -> bool:
            return self.credentials.certificate.serial_number == first

    identity = DueOnce.load(node_dir)

    async def run() -> int:
        transport = RotatingTransport(identity, grace_s=0.1)
        stop = asyncio.Event()
        async with httpx.AsyncClient(base_url=replica.tls_url, transport=transport) as client:
            await client.post("/v1/nodes/register", json={"cpu_cores": 1, "memory_mb": 64})
            loop = asyncio.create_task(
                renewal_loop(identity, client, transport, stop, check_s=0.05)
            )
            for _ in range(200):
                if identity.credentials.certificate.serial_number != first:
                    break
                await asyncio.sleep(0.05)
            stop.set()
            await loop
            resp = await client.post("/v1/agent/heartbeat", json={"running": []})
            return resp.status_code

    assert asyncio.run(run()) == 200
    assert load_node_credentials(node_dir).certificate.serial_number != first


def test_server_certificate_is_reissued_into_the_live_listener(replica):
    """At half-life the server re-issues its certificate; new handshakes get the new one
    without a restart (the timer calls the same method)."""
    import socket

    from cryptography import x509

    def served_serial() -> int:
        ctx = ssl.create_default_context(cafile=str(replica.tls.ca_path))
        host, port = replica.tls_url.removeprefix("https://").rsplit(":", 1)
        with (
            socket.create_connection((host, int(port)), timeout=5) as raw,
            ctx.wrap_socket(raw, server_hostname=host) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
        assert der is not None
        return x509.load_der_x509_certificate(der).serial_number

    before = served_serial()
    replica.server._renew()
    after = served_serial()
    assert after != before
    on_disk = x509.load_pem_x509_certificate(replica.tls.cert_path.read_bytes())
    assert on_disk.serial_number == after
    assert replica.tls.key_path.stat().st_mode & 0o077 == 0
