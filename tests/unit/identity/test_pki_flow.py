"""The whole node identity life cycle, the way the scheduler wires identity.pki.

operator add -> token create -> node enroll (redeem token, CSR, X.509-SVID) -> mTLS
verification -> JWT-SVID -> renewal at half-life with attestation -> revocation.
Also a real TLS 1.3 handshake on 127.0.0.1 with the issued SVIDs.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from identity.pki import (
    NO_REVOCATIONS,
    InMemoryJoinTokenStore,
    JoinTokenError,
    JwtSvidIssuer,
    JwtSvidVerifier,
    RenewalError,
    RevocationSet,
    SvidVerificationError,
    build_csr,
    create_join_token,
    generate_node_key,
    load_ca,
    load_node_credentials,
    renew_svid,
    save_ca,
    save_node_key,
    save_node_svid,
    should_renew,
    verify_client_svid,
)
from identity.tokens import KeySet, SigningKey, TokenIssuer, TokenVerifier
from tests.unit.identity.test_pki_support import TD, Clock, make_ca, make_csr


def test_life_cycle(tmp_path: Path) -> None:
    clock = Clock()
    ca = make_ca(clock, operators=())
    ca.add_operator("acme")  # cntrust operator add acme
    save_ca(ca, tmp_path / "ca")
    ca = load_ca(tmp_path / "ca", clock=clock)  # e.g. another API replica

    store = InMemoryJoinTokenStore()  # the scheduler's DB table in production
    token, record = create_join_token("acme", now=clock.now, ttl=timedelta(hours=1))
    store.add(record)

    # node enroll: the node makes its key, sends token + CSR
    node_key = ed25519.Ed25519PrivateKey.generate()
    used = store.redeem(token, now=clock.now, node_id="gpu-7")
    issued = ca.issue_svid(make_csr(node_key), used.operator, "gpu-7")
    with pytest.raises(JoinTokenError) as info:
        store.redeem(token, now=clock.now)
    assert info.value.reason == "reused"

    # agent -> scheduler over mTLS
    bundle = ca.trust_bundle()
    identity = verify_client_svid(issued.chain_pem, bundle, clock.now, NO_REVOCATIONS)
    assert str(identity.spiffe_id) == f"spiffe://{TD}/operator/acme/node/gpu-7"

    # a JWT-SVID for a service call
    keys = KeySet(SigningKey.generate())
    jwt_svid = JwtSvidIssuer(TokenIssuer(keys, "https://cntrust", clock), TD).issue(
        identity.spiffe_id, "cntrust-api"
    )
    verified = JwtSvidVerifier(
        TokenVerifier(keys.keys_by_kid, "https://cntrust", "cntrust-api", clock), TD
    ).verify(jwt_svid)
    assert verified.spiffe_id.segments == ("operator", "acme", "node", "gpu-7")

    # renewal at half-life requires a passing attestation
    clock.advance(1799)
    assert not should_renew(issued.certificate, clock.now)
    clock.advance(1)
    assert should_renew(issued.certificate, clock.now)
    with pytest.raises(RenewalError):
        renew_svid(ca, make_csr(node_key), identity, "contraindicated")
    renewed = renew_svid(ca, make_csr(node_key), identity, "affirming")
    assert verify_client_svid(renewed.chain_pem, bundle, clock.now, NO_REVOCATIONS) != identity

    # cntrust node revoke gpu-7: every certificate of the node is refused from now on
    revoked = RevocationSet.of(spiffe_ids=[identity.spiffe_id.uri]).union(ca.revocation_set())
    for chain in (issued.chain_pem, renewed.chain_pem):
        with pytest.raises(SvidVerificationError) as err:
            verify_client_svid(chain, bundle, clock.now, revoked)
        assert err.value.reason == "revoked"


def _pem_key(key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@pytest.mark.parametrize("algorithm", ["ed25519", "ecdsa-p256"])
def test_mutual_tls_on_loopback(tmp_path: Path, algorithm: str) -> None:
    clock = Clock(time.time())  # OpenSSL checks validity against the wall clock
    ca = make_ca(clock, key_algorithm=algorithm)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = ca.issue_svid(make_csr(server_key), "acme", "scheduler", server_auth=True)
    (tmp_path / "server.pem").write_bytes(server.chain_pem)
    (tmp_path / "server.key").write_bytes(_pem_key(server_key))
    # the node side, as `cntrust node enroll` does it: local key, CSR, stored SVID
    node_dir = tmp_path / "node"
    client_key = generate_node_key(algorithm)  # type: ignore[arg-type]
    save_node_key(node_dir, client_key)
    client = ca.issue_svid(build_csr(client_key), "acme", "n1")
    save_node_svid(node_dir, client.chain_pem, client.trust_bundle_pem)
    creds = load_node_credentials(node_dir)

    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    server_ctx.load_cert_chain(tmp_path / "server.pem", tmp_path / "server.key")
    server_ctx.load_verify_locations(creds.bundle_path)
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    client_ctx.check_hostname = False  # SPIFFE authenticates by URI SAN, not host name
    client_ctx.load_cert_chain(creds.svid_path, creds.key_path)
    client_ctx.load_verify_locations(creds.bundle_path)

    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    port = listener.getsockname()[1]
    seen: dict[str, object] = {}

    def serve() -> None:
        conn, _ = listener.accept()
        with server_ctx.wrap_socket(conn, server_side=True) as tls:
            peer = tls.getpeercert(binary_form=True)
            assert peer is not None
            try:
                seen["identity"] = verify_client_svid(
                    peer, ca.trust_bundle(), clock.now + 1, NO_REVOCATIONS
                )
            except SvidVerificationError as exc:
                seen["error"] = exc
            tls.sendall(b"ok")

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            client_ctx.wrap_socket(raw) as tls,
        ):
            assert tls.recv(2) == b"ok"
    finally:
        thread.join(timeout=10)
        listener.close()
    assert "error" not in seen
    identity = seen["identity"]
    assert getattr(identity, "node_id", None) == "n1"
