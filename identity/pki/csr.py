"""Certificate signing request checks (PKCS #10, RFC 2986) before an X.509-SVID is issued.

Steps (each refusal raises :class:`CsrError` with a stable ``reason``):
1. size: at most 16 KiB, checked before parsing (``too_large``);
2. parse PEM or DER (``malformed``);
3. key type and size (``key_type`` / ``key_size``). Accepted: Ed25519; ECDSA P-256 and
   P-384; RSA 2048 to 4096 bits with public exponent 65537 (RSA 2048 and P-256 because TPM
   2.0 resident keys are of these kinds). Everything else (RSA < 2048, DSA, Ed448, X25519,
   other curves) is refused;
4. the self-signature verifies with the CSR's own key (``signature``) — proof of possession;
5. no CA request: a basicConstraints extension with CA:true, or a keyUsage asking for
   keyCertSign or cRLSign, is refused (``ca_requested``).

Requested subject names and SANs are ignored: the issuer puts the assigned SPIFFE ID in
the certificate, never anything the requester asked for.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

from identity.pki.errors import CsrError
from identity.pki.parsing import X509_PARSE_ERRORS

MAX_CSR_BYTES = 16 * 1024
RSA_MIN_BITS = 2048
RSA_MAX_BITS = 4096
ACCEPTED_CURVES = (ec.SECP256R1, ec.SECP384R1)

NodePublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey | rsa.RSAPublicKey


@dataclass(frozen=True)
class CheckedCsr:
    """A CSR that passed every check; only its public key is ever used."""

    public_key: NodePublicKey
    csr: x509.CertificateSigningRequest


def check_csr(data: bytes) -> CheckedCsr:
    """Run the CSR checks (module docstring) and return the accepted key. Raises CsrError."""
    # 1. size before parsing
    if not isinstance(data, bytes | bytearray):
        raise CsrError("CSR must be bytes", reason="malformed")
    if len(data) > MAX_CSR_BYTES:
        raise CsrError(f"CSR larger than {MAX_CSR_BYTES} bytes", reason="too_large")
    # 2. parse
    raw = bytes(data)
    try:
        if raw.lstrip().startswith(b"-----BEGIN"):
            csr = x509.load_pem_x509_csr(raw)
        else:
            csr = x509.load_der_x509_csr(raw)
        public_key: CertificatePublicKeyTypes = csr.public_key()
    except X509_PARSE_ERRORS as exc:
        raise CsrError(f"not a PKCS#10 CSR: {exc}", reason="malformed") from exc
    # 3. key type and size (before the signature: other key kinds are never verified)
    key = _accepted_key(public_key)
    # 4. proof of possession
    try:
        signature_ok = csr.is_signature_valid
    except X509_PARSE_ERRORS as exc:
        raise CsrError(f"CSR signature cannot be checked: {exc}", reason="signature") from exc
    if not signature_ok:
        raise CsrError("CSR self-signature does not verify", reason="signature")
    # 5. no CA bit
    try:
        extensions = csr.extensions
    except X509_PARSE_ERRORS as exc:
        raise CsrError(f"CSR extensions malformed: {exc}", reason="malformed") from exc
    for ext in extensions:
        value = ext.value
        if isinstance(value, x509.BasicConstraints) and value.ca:
            raise CsrError("CSR asks for basicConstraints CA:true", reason="ca_requested")
        if isinstance(value, x509.KeyUsage) and (value.key_cert_sign or value.crl_sign):
            raise CsrError("CSR asks for keyCertSign/cRLSign", reason="ca_requested")
    return CheckedCsr(key, csr)


def _accepted_key(key: CertificatePublicKeyTypes) -> NodePublicKey:
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ACCEPTED_CURVES):
            raise CsrError(f"EC curve {key.curve.name} is not accepted", reason="key_size")
        return key
    if isinstance(key, rsa.RSAPublicKey):
        if not RSA_MIN_BITS <= key.key_size <= RSA_MAX_BITS:
            raise CsrError(
                f"RSA key of {key.key_size} bits; need {RSA_MIN_BITS} to {RSA_MAX_BITS}",
                reason="key_size",
            )
        if key.public_numbers().e != 65537:
            raise CsrError("RSA public exponent must be 65537", reason="key_size")
        return key
    raise CsrError(f"key type {type(key).__name__} is not accepted", reason="key_type")
