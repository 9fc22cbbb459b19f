"""Helpers for mTLS tests: a scheduler replica serving plain HTTP and mTLS on loopback
(real sockets, real TLS), and hand-made client certificates for the refusals."""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from identity.pki import OperatorCa, build_csr, generate_node_key
from identity.pki.keys import signature_hash
from scheduler.app import create_app
from scheduler.identity_layer import IdentityLayer
from scheduler.identity_layer import install as install_identity
from scheduler.service import Service
from scheduler.settings import Settings
from scheduler.tls import MtlsServer, ServerTls, bind_socket, mtls_config, server_hosts

HOST = "127.0.0.1"


@dataclass
class Replica:
    """One scheduler replica: a Service (real clock) and its plain + mTLS listeners."""

    service: Service
    server: MtlsServer
    thread: threading.Thread
    plain_url: str
    tls_url: str
    tls: ServerTls

    @property
    def layer(self) -> IdentityLayer:
        return install_identity(self.service)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)
        self.service.close()


def start_replica(data_dir: Path, database_url: str, **settings: Any) -> Replica:
    service = Service(
        Settings(data_dir=data_dir, database_url=database_url, claim_wait_s=0.5, **settings)
    )
    app = create_app(service)
    from scheduler.attestation import trust_local_agents

    trust_local_agents(service)  # agents run from this checkout attest affirming
    plain, tls_sock = bind_socket(HOST), bind_socket(HOST)
    config = mtls_config(app, HOST, 0, log_level="warning", access_log=False)
    tls = ServerTls(data_dir / "tls")
    server = MtlsServer(
        config,
        tls_socket=tls_sock,
        tls=tls,
        ca=install_identity(service).ca,
        hosts=server_hosts(HOST),
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [plain]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("replica did not start")
        time.sleep(0.02)
    return Replica(
        service,
        server,
        thread,
        f"http://{HOST}:{plain.getsockname()[1]}",
        f"https://{HOST}:{tls_sock.getsockname()[1]}",
        tls,
    )


@dataclass
class ClientCert:
    """A client certificate chain (PEM) and its key, written where ssl can load them."""

    directory: Path
    chain_pem: bytes
    key: Any = field(repr=False)

    def context(self, ca_path: Path) -> ssl.SSLContext:
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "chain.pem").write_bytes(self.chain_pem)
        key_pem = self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        (self.directory / "key.pem").write_bytes(key_pem)
        (self.directory / "key.pem").chmod(0o600)
        ctx = ssl.create_default_context(cafile=str(ca_path))
        ctx.load_cert_chain(str(self.directory / "chain.pem"), str(self.directory / "key.pem"))
        return ctx


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def make_leaf(
    issuer: OperatorCa,
    uri: str,
    *,
    eku: Sequence[x509.ObjectIdentifier] | None = (ExtendedKeyUsageOID.CLIENT_AUTH,),
    not_before: datetime | None = None,
    not_after: datetime | None = None,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A leaf signed by ``issuer`` with the given URI SAN, EKU (None: no EKU) and validity."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test leaf")]))
        .issuer_name(issuer.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - timedelta(minutes=1))
        .not_valid_after(not_after or now + timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri)]), False)
        .add_extension(issuer.authority_key_identifier, critical=False)
    )
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
    cert = builder.sign(issuer.private_key, signature_hash(issuer.private_key))
    return cert, key


def tls_client(url: str, ctx: ssl.SSLContext | None = None, **kwargs: Any) -> httpx.Client:
    return httpx.Client(base_url=url, verify=ctx if ctx is not None else True, timeout=10, **kwargs)


def enroll_over_tls(replica: Replica, admin: dict[str, str], operator: str, node_id: str,
                    directory: Path) -> dict[str, Any]:  # fmt: skip
    """Join token from the admin API, enrollment over the TLS listener (server verified
    with the trust bundle), credentials saved as ``cntrust node enroll`` does."""
    from identity.pki import save_node_key, save_node_svid

    ca_ctx = ssl.create_default_context(cafile=str(replica.tls.ca_path))
    with tls_client(replica.tls_url, ca_ctx) as client:
        resp = client.post(f"/v1/operators/{operator}/join-tokens", json={}, headers=admin)
        assert resp.status_code == 201, resp.text
        key = generate_node_key()
        body = {
            "join_token": resp.json()["join_token"],
            "csr_pem": build_csr(key).decode(),
            "node_id": node_id,
        }
        resp = client.post("/v1/enroll", json=body)
        assert resp.status_code == 201, resp.text
    data = resp.json()
    save_node_key(directory, key)
    save_node_svid(directory, data["svid_chain_pem"].encode(), data["trust_bundle_pem"].encode())
    return dict(data)
