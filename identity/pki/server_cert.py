"""The scheduler's TLS server certificate, issued by the trust domain's root CA.

Profile: CA:false (critical), keyUsage digitalSignature (critical), EKU serverAuth only
(so it can never pass as a node's client SVID, which needs clientAuth), SANs: the URI
``spiffe://<trust-domain>/scheduler`` plus the DNS names and IP addresses clients use to
reach the server (TLS clients check those), SKI and AKI of the root.

Invariants: the key is ECDSA P-256 (every TLS client speaks it); the lifetime is positive,
at most ``MAX_SERVER_CERT_TTL`` and never past the root; host names are checked (IP
address literal, or a DNS name of ``[a-z0-9.-]``) and refused with PkiError(``host``).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from identity.pki.ca import CertificateAuthority
from identity.pki.errors import PkiError
from identity.pki.keys import signature_hash

DEFAULT_SERVER_CERT_TTL = timedelta(days=30)
MAX_SERVER_CERT_TTL = timedelta(days=90)
MAX_HOSTS = 32
_LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
_DNS_RE = re.compile(rf"(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*")


@dataclass(frozen=True)
class ServerCertificate:
    """A TLS server certificate and its key, PEM."""

    certificate: x509.Certificate
    certificate_pem: bytes
    private_key_pem: bytes = b""

    @property
    def not_after(self) -> datetime:
        return self.certificate.not_valid_after_utc


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        pass
    name = host.lower()
    if not _DNS_RE.fullmatch(name):
        raise PkiError(f"not an IP address or DNS name: {host[:80]!r}", reason="host")
    return x509.DNSName(name)


def issue_server_certificate(
    ca: CertificateAuthority,
    hosts: Sequence[str],
    *,
    ttl: timedelta = DEFAULT_SERVER_CERT_TTL,
) -> ServerCertificate:
    """Make a P-256 key and a serverAuth certificate for ``hosts`` signed by the root.

    Raises PkiError (``host`` for a bad or missing host, ``lifetime``).
    """
    if not hosts or len(hosts) > MAX_HOSTS:
        raise PkiError(f"need 1 to {MAX_HOSTS} host names", reason="host")
    names = [_san(h) for h in dict.fromkeys(hosts)]
    if not timedelta(0) < ttl <= MAX_SERVER_CERT_TTL:
        raise PkiError(
            f"server certificate lifetime must be in (0, {MAX_SERVER_CERT_TTL}]",
            reason="lifetime",
        )
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.fromtimestamp(int(ca.clock()), tz=UTC)
    root = ca.root_certificate
    not_after = min(now + ttl, root.not_valid_after_utc)
    if not_after <= now:
        raise PkiError("the root CA has expired", reason="lifetime")
    root_ski = root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    uri = x509.UniformResourceIdentifier(f"spiffe://{ca.trust_domain}/scheduler")
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cntrust scheduler")]))
        .issuer_name(root.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName([uri, *names]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(root_ski),
            critical=False,
        )
        .sign(ca.root_key, signature_hash(ca.root_key))
    )
    return ServerCertificate(
        certificate=cert,
        certificate_pem=cert.public_bytes(serialization.Encoding.PEM),
        private_key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
