"""Shared helpers for the identity.pki tests (no tests here)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from identity.pki import CertificateAuthority, OperatorCa

T0 = 1_800_000_000.0
TD = "example.org"

NodeKey = (
    ed25519.Ed25519PrivateKey
    | ec.EllipticCurvePrivateKey
    | rsa.RSAPrivateKey
    | ed448.Ed448PrivateKey
)


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def dt(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, tz=UTC)


def _hash_for(key: object) -> hashes.SHA256 | None:
    if isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        return None
    return hashes.SHA256()


def make_csr(
    key: NodeKey | None = None,
    *,
    ca: bool = False,
    cert_sign: bool = False,
    sans: list[x509.GeneralName] | None = None,
    der: bool = False,
) -> bytes:
    key = key or ed25519.Ed25519PrivateKey.generate()
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "requested-name")])
    )
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
    if cert_sign:
        builder = builder.add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), True
        )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), False)
    csr = builder.sign(key, _hash_for(key))
    encoding = serialization.Encoding.DER if der else serialization.Encoding.PEM
    return csr.public_bytes(encoding)


def make_ca(
    clock: Clock, *, key_algorithm: str = "ed25519", operators: tuple[str, ...] = ("acme",)
) -> CertificateAuthority:
    ca = CertificateAuthority.create(TD, clock=clock, key_algorithm=key_algorithm)  # type: ignore[arg-type]
    for op in operators:
        ca.add_operator(op)
    return ca


def forge_leaf(
    issuer: OperatorCa,
    *,
    uri: str | None = f"spiffe://{TD}/operator/acme/node/n1",
    extra_uris: tuple[str, ...] = (),
    eku: tuple[x509.ObjectIdentifier, ...] | None = (ExtendedKeyUsageOID.CLIENT_AUTH,),
    ca: bool = False,
    digital_signature: bool = True,
    not_before: float = T0,
    not_after: float = T0 + 3600,
    unknown_critical: bool = False,
    san_critical: bool = False,
    key: NodeKey | None = None,
) -> x509.Certificate:
    """A leaf signed by ``issuer`` with whatever shape a negative test needs."""
    key = key or ed25519.Ed25519PrivateKey.generate()
    public = key.public_key()
    ski = issuer.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "forged")]))
        .issuer_name(issuer.certificate.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(dt(not_before))
        .not_valid_after(dt(not_after))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature, False, False, False, False, ca, ca, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
    )
    uris = ([uri] if uri else []) + list(extra_uris)
    if uris:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(u) for u in uris]),
            critical=san_critical,
        )
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
    if unknown_critical:
        builder = builder.add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.55555.1"), b"\x05\x00"),
            critical=True,
        )
    signing_key = issuer.private_key
    return builder.sign(signing_key, _hash_for(signing_key))


def pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def ttl_s(cert: x509.Certificate) -> float:
    delta: timedelta = cert.not_valid_after_utc - cert.not_valid_before_utc
    return delta.total_seconds()
