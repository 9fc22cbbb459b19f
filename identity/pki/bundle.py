"""Trust bundles: the roots of a trust domain plus the operator CAs known to the server.

``to_pem()`` gives the SPIFFE trust bundle a node receives (the roots only). The server
side also keeps every operator CA certificate (current and rotated-out ones) so that a
client presenting only its leaf certificate can still be chained.

Invariants: parsing is size-checked first and raises :class:`SvidVerificationError`
(reason ``malformed``) for anything that is not a PEM certificate list.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import verification

from identity.pki.errors import SvidVerificationError
from identity.pki.parsing import X509_PARSE_ERRORS, X509_PARSE_OR_SIGNATURE_ERRORS
from identity.pki.spiffe import validate_trust_domain

MAX_BUNDLE_BYTES = 1024 * 1024
MAX_CHAIN_BYTES = 64 * 1024
MAX_CHAIN_CERTS = 8


def _ski(cert: x509.Certificate) -> bytes | None:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return None


@dataclass(frozen=True)
class TrustBundle:
    """Roots (trust anchors) and operator CA certificates of one trust domain."""

    trust_domain: str
    roots: tuple[x509.Certificate, ...]
    intermediates: tuple[x509.Certificate, ...] = ()
    _by_ski: dict[bytes, tuple[x509.Certificate, ...]] = field(
        init=False, compare=False, repr=False
    )
    _trusted: dict[bytes, x509.Certificate] = field(init=False, compare=False, repr=False)
    _store: verification.Store = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        index: dict[bytes, list[x509.Certificate]] = {}
        for cert in (*self.roots, *self.intermediates):
            ski = _ski(cert)
            if ski is not None:
                index.setdefault(ski, []).append(cert)
        object.__setattr__(self, "_by_ski", {k: tuple(v) for k, v in index.items()})
        # operator CAs directly issued by a root, checked once here rather than per request
        validate_trust_domain(self.trust_domain)
        trusted = {
            c.fingerprint(hashes.SHA256()): root
            for c in self.intermediates
            for root in self.roots
            if _directly_issued(c, root)
        }
        object.__setattr__(self, "_trusted", trusted)
        object.__setattr__(self, "_store", verification.Store(list(self.roots)))

    def store(self) -> verification.Store:
        """The roots as a cryptography verification store."""
        return self._store

    def issuing_root(self, cert: x509.Certificate) -> x509.Certificate | None:
        """The root that signed ``cert`` if it is an operator CA of this bundle."""
        return self._trusted.get(cert.fingerprint(hashes.SHA256()))

    def by_ski(self, ski: bytes) -> tuple[x509.Certificate, ...]:
        return self._by_ski.get(ski, ())

    def is_root(self, cert: x509.Certificate) -> bool:
        return any(cert == root for root in self.roots)

    def to_pem(self) -> bytes:
        """The SPIFFE trust bundle given to nodes: the root certificates, PEM."""
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in self.roots)

    def intermediates_pem(self) -> bytes:
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in self.intermediates)

    @classmethod
    def from_pem(
        cls, trust_domain: str, roots_pem: bytes, intermediates_pem: bytes = b""
    ) -> TrustBundle:
        """Parse PEM roots (and optional operator CAs). Raises SvidVerificationError."""
        return cls(
            trust_domain,
            tuple(load_pem_certificates(roots_pem, limit=MAX_BUNDLE_BYTES, max_certs=10_000)),
            tuple(
                load_pem_certificates(intermediates_pem, limit=MAX_BUNDLE_BYTES, max_certs=10_000)
            )
            if intermediates_pem
            else (),
        )


def _directly_issued(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except X509_PARSE_OR_SIGNATURE_ERRORS:
        return False
    return True


def load_pem_certificates(data: bytes, *, limit: int, max_certs: int) -> list[x509.Certificate]:
    """Parse a PEM list of certificates, size-checked first. Raises SvidVerificationError."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise SvidVerificationError("certificates must be bytes", reason="malformed", step=1)
    if len(data) > limit:
        raise SvidVerificationError(
            f"certificate data larger than {limit} bytes", reason="malformed", step=1
        )
    try:
        certs = x509.load_pem_x509_certificates(bytes(data))
        for cert in certs:
            _decode_fully(cert)
    except X509_PARSE_ERRORS as exc:
        raise SvidVerificationError(
            f"not a PEM certificate list: {exc}", reason="malformed", step=1
        ) from exc
    if not certs or len(certs) > max_certs:
        raise SvidVerificationError(
            f"expected 1 to {max_certs} certificates", reason="malformed", step=1
        )
    return certs


def load_chain(chain: object) -> list[x509.Certificate]:
    """Parse a presented chain: PEM (one or more), one DER certificate, or a list of DER.

    The leaf comes first. Raises SvidVerificationError(reason="malformed", step=1).
    """
    if isinstance(chain, list | tuple):
        if not all(isinstance(c, bytes) for c in chain):
            raise SvidVerificationError("chain entries must be bytes", reason="malformed", step=1)
        if not chain or len(chain) > MAX_CHAIN_CERTS:
            raise SvidVerificationError(
                f"expected 1 to {MAX_CHAIN_CERTS} certificates", reason="malformed", step=1
            )
        if sum(len(c) for c in chain) > MAX_CHAIN_BYTES:
            raise SvidVerificationError("chain too large", reason="malformed", step=1)
        return [_load_der(c) for c in chain]
    if not isinstance(chain, bytes | bytearray):
        raise SvidVerificationError("chain must be bytes", reason="malformed", step=1)
    if len(chain) > MAX_CHAIN_BYTES:
        raise SvidVerificationError("chain too large", reason="malformed", step=1)
    if bytes(chain).lstrip().startswith(b"-----BEGIN"):
        return load_pem_certificates(bytes(chain), limit=MAX_CHAIN_BYTES, max_certs=MAX_CHAIN_CERTS)
    return [_load_der(bytes(chain))]


def _load_der(data: bytes) -> x509.Certificate:
    try:
        return _decode_fully(x509.load_der_x509_certificate(data))
    except X509_PARSE_ERRORS as exc:
        raise SvidVerificationError(
            f"not a DER certificate: {exc}", reason="malformed", step=1
        ) from exc


def _decode_fully(cert: x509.Certificate) -> x509.Certificate:
    """Decode the lazily parsed parts now, so later steps never meet a parse error."""
    for ext in cert.extensions:
        if isinstance(ext.value, x509.SubjectAlternativeName):
            list(ext.value)
    cert.public_key()
    _ = (cert.not_valid_before_utc, cert.not_valid_after_utc, cert.issuer, cert.subject)
    return cert
