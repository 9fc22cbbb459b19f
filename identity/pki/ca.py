"""The certificate authority: one root CA and one intermediate CA per operator.

An operator's CA can be rotated (new key and certificate; the rotated-out certificate stays
in the trust bundle so the SVIDs it issued verify until they expire) or revoked (it issues
nothing more, and :meth:`CertificateAuthority.revocation_set` lists it so that
``verify_client_svid`` refuses every SVID it issued) without touching other operators.

Invariants:
- SVIDs carry exactly the assigned SPIFFE ID ``spiffe://<td>/operator/<op>/node/<id>``;
  nothing from the CSR but its checked public key reaches the certificate;
- an SVID never outlives its issuing operator CA; lifetimes are positive and at most
  ``MAX_SVID_TTL`` (24 h), 1 h by default;
- the clock is injected (epoch seconds).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from identity.pki.bundle import TrustBundle
from identity.pki.certs import build_operator_ca, build_root, build_svid
from identity.pki.csr import CheckedCsr, check_csr
from identity.pki.errors import PkiError
from identity.pki.keys import CaPrivateKey, KeyAlgorithm, generate_ca_key, key_algorithm_of
from identity.pki.revocation import RevocationSet
from identity.pki.spiffe import NodeSpiffeId, node_spiffe_id, validate_name, validate_trust_domain

Clock = Callable[[], float]

DEFAULT_SVID_TTL = timedelta(hours=1)
MAX_SVID_TTL = timedelta(hours=24)
DEFAULT_ROOT_TTL = timedelta(days=3650)
DEFAULT_OPERATOR_CA_TTL = timedelta(days=365)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class OperatorCa:
    """One operator's intermediate CA; ``previous`` are rotated-out certificates."""

    operator: str
    certificate: x509.Certificate
    private_key: CaPrivateKey
    previous: tuple[x509.Certificate, ...] = ()
    revoked: bool = False
    # the AKI extension carried by the certificates this CA issues, and its PEM
    authority_key_identifier: x509.AuthorityKeyIdentifier = field(
        init=False, compare=False, repr=False
    )
    certificate_pem: bytes = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        ski = self.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        object.__setattr__(
            self,
            "authority_key_identifier",
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski.value),
        )
        object.__setattr__(self, "certificate_pem", _pem(self.certificate))

    @property
    def serials(self) -> tuple[int, ...]:
        """Serials of the current and every rotated-out certificate."""
        return (self.certificate.serial_number, *(c.serial_number for c in self.previous))


@dataclass(frozen=True)
class IssuedSvid:
    """An issued X.509-SVID: leaf, chain (leaf + operator CA) and trust bundle, all PEM."""

    spiffe_id: NodeSpiffeId
    certificate: x509.Certificate
    leaf_pem: bytes
    chain_pem: bytes
    trust_bundle_pem: bytes

    @property
    def serial(self) -> int:
        return self.certificate.serial_number

    @property
    def not_after(self) -> datetime:
        return self.certificate.not_valid_after_utc


class CertificateAuthority:
    """Root CA plus per-operator intermediates for one trust domain.

    Not thread-safe for mutation (add/rotate/revoke); issuing concurrently is safe.
    """

    def __init__(
        self,
        trust_domain: str,
        root_certificate: x509.Certificate,
        root_key: CaPrivateKey,
        operators: dict[str, OperatorCa] | None = None,
        *,
        clock: Clock = time.time,
    ) -> None:
        self.trust_domain = validate_trust_domain(trust_domain)
        self.root_certificate = root_certificate
        self.root_key = root_key
        self._operators: dict[str, OperatorCa] = dict(operators or {})
        self.clock = clock
        self._root_pem = _pem(root_certificate)

    @classmethod
    def create(
        cls,
        trust_domain: str,
        *,
        clock: Clock = time.time,
        key_algorithm: KeyAlgorithm = "ed25519",
        root_ttl: timedelta = DEFAULT_ROOT_TTL,
    ) -> CertificateAuthority:
        """Make a new root CA. Raises SpiffeIdError for a bad trust domain, PkiError."""
        validate_trust_domain(trust_domain)
        key = generate_ca_key(key_algorithm)
        now = _dt(clock())
        root = build_root(trust_domain, key, now - timedelta(minutes=5), now + root_ttl)
        return cls(trust_domain, root, key, clock=clock)

    @property
    def key_algorithm(self) -> KeyAlgorithm:
        return key_algorithm_of(self.root_key)

    # operators --------------------------------------------------------------------------

    def operators(self) -> list[OperatorCa]:
        return [self._operators[name] for name in sorted(self._operators)]

    def operator(self, name: str) -> OperatorCa:
        """The operator's CA. Raises PkiError(reason="unknown_operator")."""
        try:
            return self._operators[name]
        except KeyError:
            raise PkiError(f"unknown operator {name!r}", reason="unknown_operator") from None

    def add_operator(self, name: str, *, ttl: timedelta = DEFAULT_OPERATOR_CA_TTL) -> OperatorCa:
        """Create the operator's intermediate CA. Raises SpiffeIdError, PkiError(``exists``)."""
        validate_name(name, what="operator")
        if name in self._operators:
            raise PkiError(f"operator {name!r} already exists", reason="exists")
        op = OperatorCa(name, *self._new_operator_cert(name, ttl))
        self._operators[name] = op
        return op

    def rotate_operator(self, name: str, *, ttl: timedelta = DEFAULT_OPERATOR_CA_TTL) -> OperatorCa:
        """Give the operator a new CA key and certificate; the old one stays trusted until
        it expires. Raises PkiError(``unknown_operator``/``operator_revoked``)."""
        current = self._active(name)
        now = _dt(self.clock())
        previous = tuple(
            c for c in (current.certificate, *current.previous) if c.not_valid_after_utc > now
        )
        cert, key = self._new_operator_cert(name, ttl)
        op = OperatorCa(name, cert, key, previous=previous)
        self._operators[name] = op
        return op

    def revoke_operator(self, name: str) -> OperatorCa:
        """Revoke the operator's CA (every certificate it ever had). Raises PkiError."""
        op = replace(self.operator(name), revoked=True)
        self._operators[name] = op
        return op

    def revocation_set(self) -> RevocationSet:
        """Revoked operators and their CA serials, to merge with the caller's revocations."""
        revoked = [op for op in self._operators.values() if op.revoked]
        return RevocationSet.of(
            operators=(op.operator for op in revoked),
            serials=(s for op in revoked for s in op.serials),
        )

    def trust_bundle(self) -> TrustBundle:
        """Root plus every operator CA certificate (revoked ones too: revocation is checked
        separately, and a revoked CA must be recognised to be refused as revoked)."""
        intermediates = tuple(
            cert for op in self.operators() for cert in (op.certificate, *op.previous)
        )
        return TrustBundle(self.trust_domain, (self.root_certificate,), intermediates)

    # issuance ---------------------------------------------------------------------------

    def issue_svid(
        self,
        csr: bytes | CheckedCsr,
        operator: str,
        node_id: str,
        *,
        ttl: timedelta = DEFAULT_SVID_TTL,
        server_auth: bool = False,
    ) -> IssuedSvid:
        """Check the CSR and issue an X.509-SVID for ``operator``/``node_id``.

        Raises CsrError (CSR refused), SpiffeIdError (bad operator or node id), PkiError
        (``unknown_operator``, ``operator_revoked``, ``lifetime``, ``operator_ca_expired``).
        """
        checked = csr if isinstance(csr, CheckedCsr) else check_csr(csr)
        spiffe_id = node_spiffe_id(self.trust_domain, operator, node_id)
        if not timedelta(0) < ttl <= MAX_SVID_TTL:
            raise PkiError(f"SVID lifetime must be in (0, {MAX_SVID_TTL}]", reason="lifetime")
        op = self._active(operator)
        now = _dt(self.clock())
        not_after = min(now + ttl, op.certificate.not_valid_after_utc)
        if not_after <= now:
            raise PkiError(f"operator CA {operator!r} has expired", reason="operator_ca_expired")
        cert = build_svid(
            spiffe_uri=spiffe_id.uri,
            subject_cn=f"{operator}/{node_id}",
            public_key=checked.public_key,
            issuer_cert=op.certificate,
            issuer_aki=op.authority_key_identifier,
            issuer_key=op.private_key,
            not_before=now,
            not_after=not_after,
            server_auth=server_auth,
        )
        leaf_pem = _pem(cert)
        return IssuedSvid(
            spiffe_id=spiffe_id,
            certificate=cert,
            leaf_pem=leaf_pem,
            chain_pem=leaf_pem + op.certificate_pem,
            trust_bundle_pem=self._root_pem,
        )

    # internals --------------------------------------------------------------------------

    def _active(self, name: str) -> OperatorCa:
        op = self.operator(name)
        if op.revoked:
            raise PkiError(f"operator {name!r} CA is revoked", reason="operator_revoked")
        return op

    def _new_operator_cert(
        self, name: str, ttl: timedelta
    ) -> tuple[x509.Certificate, CaPrivateKey]:
        if ttl <= timedelta(0):
            raise PkiError("operator CA lifetime must be positive", reason="lifetime")
        key = generate_ca_key(self.key_algorithm)
        now = _dt(self.clock())
        cert = build_operator_ca(
            self.trust_domain,
            name,
            key,
            self.root_certificate,
            self.root_key,
            now - timedelta(minutes=5),
            now + ttl,
        )
        return cert, key


def _dt(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(int(epoch_s), tz=UTC)
