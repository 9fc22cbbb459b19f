"""The node agent's X.509-SVID: mTLS to the scheduler, renewal at half-life.

An agent whose ``--dir`` holds an enrolled node (``node.key``, ``svid.pem``, ``bundle.pem``
from ``cntrust node enroll``) and whose server URL is ``https://`` presents its SVID as the
TLS client certificate and sends no bearer token. It verifies the scheduler against the
trust bundle it received at enrollment.

Renewal: once half of the SVID's lifetime has passed the agent makes a fresh key, sends a
CSR to ``POST /v1/agent/svid/renew`` (authenticated by the current SVID; the scheduler
requires a passing attestation), stores the new key and SVID and swaps the transport, so
new connections present the new certificate; connections of the old transport are closed
after a grace period. A refused renewal keeps the current SVID and is retried.

Invariants: the private key never leaves the node; the key file is written 0600; the
transport swap never interrupts a request in flight (the old transport is closed only
after ``grace_s``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ed25519

from identity.pki import (
    KeyAlgorithm,
    NodeCredentials,
    NodeSpiffeId,
    build_csr,
    generate_node_key,
    load_node_credentials,
    parse_node_spiffe_id,
    save_node_key,
    save_node_svid,
    should_renew,
)
from identity.pki.node import SVID_FILE

log = logging.getLogger("cntrust.agent")

RENEWAL_CHECK_S = 30.0
RENEWAL_RETRY_S = 30.0
GRACE_S = 60.0


def is_enrolled(directory: Path) -> bool:
    return (directory / SVID_FILE).exists()


class RenewalRefused(Exception):
    """The scheduler refused the renewal; ``reason`` is the problem's reason."""

    def __init__(self, status: int, reason: str, detail: str) -> None:
        super().__init__(f"{status} {reason}: {detail}")
        self.status = status
        self.reason = reason


@dataclass
class AgentIdentity:
    """The enrolled node's credentials, reloaded after each renewal."""

    directory: Path
    credentials: NodeCredentials

    @classmethod
    def load(cls, directory: Path) -> AgentIdentity:
        """Raises CaStoreError when the credentials are missing or do not match."""
        return cls(directory, load_node_credentials(directory))

    @property
    def spiffe_id(self) -> NodeSpiffeId:
        san = self.credentials.certificate.extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        ).value
        return parse_node_spiffe_id(san.get_values_for_type(x509.UniformResourceIdentifier)[0])

    @property
    def node_id(self) -> str:
        return self.spiffe_id.node_id

    @property
    def operator(self) -> str:
        return self.spiffe_id.operator

    def ssl_context(self) -> ssl.SSLContext:
        """Verify the scheduler against the trust bundle; present the SVID chain."""
        creds = self.credentials
        ctx = ssl.create_default_context(cafile=str(creds.bundle_path))
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(str(creds.svid_path), str(creds.key_path))
        return ctx

    def needs_renewal(self, now: float) -> bool:
        return should_renew(self.credentials.certificate, now)

    async def renew(self, client: httpx.AsyncClient) -> None:
        """Fresh key, CSR, new SVID stored. Raises RenewalRefused, httpx.HTTPError."""
        algorithm: KeyAlgorithm = (
            "ed25519"
            if isinstance(self.credentials.private_key, ed25519.Ed25519PrivateKey)
            else "ecdsa-p256"
        )
        key = generate_node_key(algorithm)
        csr = build_csr(key, common_name=self.node_id).decode()
        resp = await client.post("/v1/agent/svid/renew", json={"csr_pem": csr})
        if resp.status_code != 200:
            try:
                body = resp.json()
            except ValueError:
                body = {}
            raise RenewalRefused(
                resp.status_code, str(body.get("reason", "")), str(body.get("detail", ""))[:200]
            )
        data = resp.json()
        save_node_key(self.directory, key)
        save_node_svid(
            self.directory, data["svid_chain_pem"].encode(), data["trust_bundle_pem"].encode()
        )
        self.credentials = load_node_credentials(self.directory)


class RotatingTransport(httpx.AsyncBaseTransport):
    """An HTTP transport whose TLS client certificate can be swapped while in use."""

    def __init__(self, identity: AgentIdentity, *, grace_s: float = GRACE_S) -> None:
        self.identity = identity
        self.grace_s = grace_s
        self.current = self._make()
        self._retired: set[asyncio.Task[None]] = set()
        self._old: set[httpx.AsyncHTTPTransport] = set()  # retired, not closed yet

    def _make(self) -> httpx.AsyncHTTPTransport:
        limits = httpx.Limits(max_connections=8, max_keepalive_connections=8)
        return httpx.AsyncHTTPTransport(verify=self.identity.ssl_context(), limits=limits)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.current.handle_async_request(request)

    def rotate(self) -> None:
        """New connections present the identity's current SVID; old ones close later."""
        old, self.current = self.current, self._make()
        self._old.add(old)

        async def retire() -> None:
            await asyncio.sleep(self.grace_s)
            self._old.discard(old)
            await old.aclose()

        task = asyncio.get_running_loop().create_task(retire())
        self._retired.add(task)
        task.add_done_callback(self._retired.discard)

    async def aclose(self) -> None:
        """Close every connection, the retired transports' included (a retired transport
        still in its grace period would otherwise leave its sockets open)."""
        for task in list(self._retired):
            task.cancel()
        for old in list(self._old):
            self._old.discard(old)
            await old.aclose()
        await self.current.aclose()


async def renewal_loop(
    identity: AgentIdentity,
    client: httpx.AsyncClient,
    transport: RotatingTransport,
    stop: asyncio.Event,
    *,
    check_s: float = RENEWAL_CHECK_S,
) -> None:
    """Renew at half-life until ``stop`` is set."""
    while not stop.is_set():
        delay = check_s
        if identity.needs_renewal(time.time()):
            try:
                await identity.renew(client)
                transport.rotate()
                log.info(
                    "renewed SVID for %s until %s",
                    identity.node_id,
                    identity.credentials.certificate.not_valid_after_utc.isoformat(),
                )
            except RenewalRefused as exc:
                log.warning("SVID renewal refused: %s", exc)
                delay = min(check_s, RENEWAL_RETRY_S)
            except httpx.HTTPError as exc:
                log.warning("SVID renewal failed: %s", type(exc).__name__)
                delay = min(check_s, RENEWAL_RETRY_S)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=delay)
