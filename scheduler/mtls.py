"""Node authentication by X.509-SVID (mTLS): the client certificate of a TLS connection
becomes the principal ``node:<node id>``, with no bearer token.

On every request that carries a client certificate (the ASGI TLS extension, see
:mod:`scheduler.tls`) :class:`PeerAuthenticator` runs, in order:

1. ``verify_client_svid`` (chain to the trust bundle through an operator CA, validity,
   CA-as-leaf, clientAuth EKU, one SPIFFE ID in the trust domain, operator of the SPIFFE
   ID = operator of the issuing CA, revocation of the operator CA and of the leaf) against
   the revocation snapshot, which every replica refreshes from the database every second;
2. the node id of the SPIFFE ID is not revoked (a revocation names the node, so it also
   covers certificates the revocation row did not list);
3. the principal is ``node:<node id from the SPIFFE ID>``; every agent route acts on the
   principal's node only, so a certificate can only ever act for the node it names.

A full verification is cached per certificate for at most ``CACHE_TTL_S``; a cached one is
still checked on every request for expiry and for revocation (leaf serial, SPIFFE ID, node
id, operator and operator CA serial), so a revocation takes effect within the snapshot's
refresh interval. Refusals are 401 problem+json with the verification step's ``reason``.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cryptography import x509

from identity.pki import SvidVerificationError, TrustBundle, VerifiedSvid, verify_client_svid
from scheduler.authz import Principal
from scheduler.errors import Unauthorized

if TYPE_CHECKING:
    from scheduler.identity_layer import IdentityLayer
    from scheduler.service import Service

AUTH_CLAIM = "cntrust_auth"
X509_SVID = "x509-svid"
SVID_CLAIM = "x509_svid"
CACHE_TTL_S = 30.0
CACHE_SIZE = 10_000
CA_RELOAD_INTERVAL_S = 1.0
_ATTR = "_cntrust_peer_authenticator"
_lock = threading.Lock()


@dataclass(frozen=True)
class _Cached:
    svid: VerifiedSvid
    not_before: float
    not_after: float
    until: float


def install(service: Service) -> PeerAuthenticator:
    """Accept node X.509-SVIDs on this service (idempotent)."""
    from scheduler.identity_layer import install as install_identity

    with _lock:
        existing = getattr(service, _ATTR, None)
        if existing is not None:
            return existing  # type: ignore[no-any-return]
        authenticator = PeerAuthenticator(install_identity(service))
        setattr(service, _ATTR, authenticator)
        service.authenticate_peer = authenticator  # type: ignore[method-assign]
        return authenticator


def is_certificate_principal(principal: Principal) -> bool:
    return principal.claims.get(AUTH_CLAIM) == X509_SVID


class PeerAuthenticator:
    """TLS client certificate -> node principal (steps in the module docstring)."""

    def __init__(self, layer: IdentityLayer) -> None:
        self.layer = layer
        self.clock = layer.service.clock
        self._cache: dict[str, _Cached] = {}
        self._ca_checked_at = 0.0
        self._ca_mtime = self._ca_stamp()
        self._bundle: tuple[tuple[object, ...], TrustBundle] | None = None

    def __call__(self, tls: Mapping[str, Any]) -> Principal:
        """Raises Unauthorized (``reason`` of the verification step that failed)."""
        chain = tls.get("client_cert_chain") or ()
        if not chain or not isinstance(chain[0], str):
            raise Unauthorized("no client certificate", reason="malformed")
        pem = chain[0]
        now = self.clock()
        self._reload_ca_if_changed(now)
        cached = self._cache.get(pem)
        if cached is None or cached.until <= now:
            cached = self._verify(pem, now)
        # checked on every request, cached or not
        if now > cached.not_after:
            raise Unauthorized("client certificate refused: expired", reason="expired", step=4)
        svid = cached.svid
        snapshot = self.layer.revocations.snapshot()
        revoked = snapshot.revocations
        if revoked.operator_revoked(
            svid.operator, svid.issuer_serial
        ) or self.layer.ca.revocation_set().operator_revoked(svid.operator, svid.issuer_serial):
            self._cache.pop(pem, None)
            raise Unauthorized(
                f"client certificate refused: operator {svid.operator} CA is revoked",
                reason="operator_revoked",
                step=8,
            )
        if revoked.leaf_revoked(svid.serial, svid.spiffe_id.uri) or (
            svid.node_id in snapshot.node_ids
        ):
            self._cache.pop(pem, None)
            raise Unauthorized(
                f"client certificate refused: node {svid.node_id} is revoked",
                reason="revoked",
                step=8,
            )
        return Principal(
            role="node",
            name=svid.node_id,
            claims={
                "sub": svid.node_id,
                AUTH_CLAIM: X509_SVID,
                "spiffe_id": svid.spiffe_id.uri,
                "operator": svid.operator,
                "serial": str(svid.serial),
                "iat": cached.not_before,
                "exp": cached.not_after,
                SVID_CLAIM: svid,
            },
        )

    def _trust_bundle(self) -> TrustBundle:
        """The CA's trust bundle, rebuilt only when an operator CA was added, rotated or
        revoked (building one checks every operator CA's signature)."""
        ca = self.layer.ca
        key = (id(ca), *((o.operator, o.certificate.serial_number, len(o.previous), o.revoked)
                         for o in ca.operators()))  # fmt: skip
        if self._bundle is None or self._bundle[0] != key:
            self._bundle = (key, ca.trust_bundle())
        return self._bundle[1]

    def _verify(self, pem: str, now: float) -> _Cached:
        snapshot = self.layer.revocations.snapshot()
        revocations = snapshot.revocations.union(self.layer.ca.revocation_set())
        try:
            svid = verify_client_svid(pem.encode(), self._trust_bundle(), now, revocations)
        except SvidVerificationError as exc:
            raise Unauthorized(
                f"client certificate refused: {exc.reason}", reason=exc.reason, step=exc.step
            ) from exc
        cert = x509.load_pem_x509_certificate(pem.encode())  # parsed fine in step 1
        cached = _Cached(
            svid,
            cert.not_valid_before_utc.timestamp(),
            svid.not_after.timestamp(),
            min(now + CACHE_TTL_S, svid.not_after.timestamp()),
        )
        if len(self._cache) >= CACHE_SIZE:
            self._cache.pop(next(iter(self._cache)))
        self._cache[pem] = cached
        return cached

    # another process (the CLI) or replica may rotate an operator's CA in the CA directory
    def _ca_stamp(self) -> int:
        try:
            return (self.layer.ca_dir / "ca.json").stat().st_mtime_ns
        except OSError:
            return 0

    def _reload_ca_if_changed(self, now: float) -> None:
        if now - self._ca_checked_at < CA_RELOAD_INTERVAL_S:
            return
        self._ca_checked_at = now
        stamp = self._ca_stamp()
        if stamp != self._ca_mtime:
            self._ca_mtime = stamp
            self.layer.reload_ca()
            self._cache.clear()
