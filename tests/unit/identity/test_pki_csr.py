"""CSR checks: key kinds accepted, every refusal's reason, requested names ignored."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

from identity.errors import VerificationError
from identity.pki import MAX_CSR_BYTES, CsrError, check_csr
from tests.unit.identity.test_pki_support import make_csr


def reason(data: object) -> str:
    with pytest.raises(CsrError) as info:
        check_csr(data)  # type: ignore[arg-type]
    assert isinstance(info.value, VerificationError)
    return info.value.reason


@pytest.mark.parametrize(
    "key",
    [
        ed25519.Ed25519PrivateKey.generate(),
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP384R1()),
        rsa.generate_private_key(65537, 2048),
    ],
    ids=["ed25519", "p256", "p384", "rsa2048"],
)
def test_accepted_keys(key: ed25519.Ed25519PrivateKey) -> None:
    checked = check_csr(make_csr(key))
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    assert checked.public_key.public_bytes(*spki) == key.public_key().public_bytes(*spki)


def test_der_is_accepted() -> None:
    assert isinstance(check_csr(make_csr(der=True)).csr, x509.CertificateSigningRequest)


def test_size_checked_before_parsing() -> None:
    assert reason(b"\x30" * (MAX_CSR_BYTES + 1)) == "too_large"
    padded = make_csr() + b"\n" * MAX_CSR_BYTES
    assert reason(padded) == "too_large"


@pytest.mark.parametrize(
    "data", [b"", b"garbage", b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n", b"\x30\x03\x02\x01"]
)
def test_malformed(data: bytes) -> None:
    assert reason(data) == "malformed"


def test_not_bytes() -> None:
    assert reason("-----BEGIN CERTIFICATE REQUEST-----") == "malformed"


def test_bad_self_signature_is_refused() -> None:
    good = x509.load_pem_x509_csr(make_csr())
    der = bytearray(good.public_bytes(serialization.Encoding.DER))
    der[-1] ^= 0x01  # flip a bit of the signature
    assert reason(bytes(der)) == "signature"


def test_small_rsa_is_refused() -> None:
    assert reason(make_csr(rsa.generate_private_key(65537, 1024))) == "key_size"


def test_rsa_exponent_3_is_refused() -> None:
    assert reason(make_csr(rsa.generate_private_key(3, 2048))) == "key_size"


def test_other_curve_is_refused() -> None:
    assert reason(make_csr(ec.generate_private_key(ec.SECP256K1()))) == "key_size"


def test_other_key_types_are_refused() -> None:
    assert reason(make_csr(ed448.Ed448PrivateKey.generate())) == "key_type"
    dsa_key = dsa.generate_private_key(1024)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .sign(dsa_key, hashes.SHA256())
    )
    assert reason(csr.public_bytes(serialization.Encoding.PEM)) == "key_type"


def test_ca_bit_is_refused() -> None:
    assert reason(make_csr(ca=True)) == "ca_requested"


def test_key_cert_sign_is_refused() -> None:
    assert reason(make_csr(cert_sign=True)) == "ca_requested"


def test_requested_names_do_not_matter_to_the_check() -> None:
    sans: list[x509.GeneralName] = [
        x509.UniformResourceIdentifier("spiffe://example.org/operator/other/node/admin"),
        x509.DNSName("scheduler.example.org"),
    ]
    checked = check_csr(make_csr(sans=sans))
    assert checked.public_key is not None


def test_regressions_found_by_fuzzing() -> None:
    # cryptography raises InvalidVersion / UnsupportedAlgorithm (not ValueError) for these
    der = make_csr(der=True)
    assert b"\x02\x01\x00" in der
    assert reason(der.replace(b"\x02\x01\x00", b"\x02\x01\x01", 1)) == "malformed"
    ed25519_oid = b"\x06\x03\x2b\x65\x70"
    assert reason(der.replace(ed25519_oid, b"\x06\x03\x2a\x65\x70", 1)) == "malformed"
