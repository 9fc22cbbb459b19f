"""X.509 certificate profiles (RFC 5280) for the root CA, operator CAs and X.509-SVIDs.

Profiles:
- root CA: self-signed, basicConstraints CA:true pathLen 1 (critical), keyUsage
  keyCertSign + cRLSign (critical), URI SAN ``spiffe://<trust-domain>``, SKI.
- operator CA (intermediate): signed by the root, CA:true pathLen 0 (critical), keyUsage
  keyCertSign + cRLSign (critical), URI SAN ``spiffe://<td>/operator/<op>`` naming the
  operator it may issue for, subject OU = operator, SKI and AKI.
- X.509-SVID (leaf): CA:false (critical), keyUsage digitalSignature (critical), EKU
  clientAuth (+ serverAuth when asked), exactly one URI SAN holding the SPIFFE ID (not critical: the
  subject CN is ``<operator>/<node>``; RFC 5280 wants a critical SAN only with an empty
  subject),
  random 159-bit serial, SKI and AKI.
"""

from __future__ import annotations

from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from identity.pki.keys import CaPrivateKey, signature_hash

_NO_USAGE = {
    "content_commitment": False,
    "key_encipherment": False,
    "data_encipherment": False,
    "key_agreement": False,
    "encipher_only": False,
    "decipher_only": False,
}


def _ca_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, **_NO_USAGE)


def operator_ca_uri(trust_domain: str, operator: str) -> str:
    return f"spiffe://{trust_domain}/operator/{operator}"


def build_root(
    trust_domain: str, key: CaPrivateKey, not_before: datetime, not_after: datetime
) -> x509.Certificate:
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "cntrust"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"cntrust root CA {trust_domain}"[:64]),
        ]
    )
    public = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .add_extension(_ca_key_usage(), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(f"spiffe://{trust_domain}")]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, signature_hash(key))
    )


def build_operator_ca(
    trust_domain: str,
    operator: str,
    key: CaPrivateKey,
    root_cert: x509.Certificate,
    root_key: CaPrivateKey,
    not_before: datetime,
    not_after: datetime,
) -> x509.Certificate:
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "cntrust"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, operator),
            x509.NameAttribute(NameOID.COMMON_NAME, f"cntrust operator CA {operator}"[:64]),
        ]
    )
    public = key.public_key()
    root_ski = root_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(root_cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(min(not_after, root_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_ca_key_usage(), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(operator_ca_uri(trust_domain, operator))]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(root_ski),
            critical=False,
        )
        .sign(root_key, signature_hash(root_key))
    )


def build_svid(
    *,
    spiffe_uri: str,
    subject_cn: str,
    public_key: CertificatePublicKeyTypes,
    issuer_cert: x509.Certificate,
    issuer_aki: x509.AuthorityKeyIdentifier,
    issuer_key: CaPrivateKey,
    not_before: datetime,
    not_after: datetime,
    server_auth: bool,
) -> x509.Certificate:
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
    if server_auth:
        usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_cn[:64])]))
        .issuer_name(issuer_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False, **_NO_USAGE),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(spiffe_uri)]),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(issuer_aki, critical=False)
        .sign(issuer_key, signature_hash(issuer_key))
    )
