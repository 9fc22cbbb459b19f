"""MakeCredential (server side) and EK checks.

The TPM side (ActivateCredential) is re-implemented here from TPM 2.0 Part 1
to check the blob is decryptable only with the EK private key and the right
AK name; tests/integration/test_swtpm.py checks it against a real TPM.
"""

from __future__ import annotations

import hmac
import struct
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.decrepit.ciphers.modes import CFB
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.x509.oid import NameOID

from identity.attestation import (
    CredentialVerificationError,
    TpmStructureError,
    begin_ak_enrollment,
    make_credential,
    parse_public,
    verify_ek_certificate,
)
from identity.attestation.credential import TPM2_TOOLS_CREDENTIAL_MAGIC, kdfa, kdfe
from identity.attestation.tpm_marshal import marshal_ecc_public, marshal_rsa_public
from identity.attestation.tpm_structures import TPM_ALG_AES, TPM_ALG_CFB, TPM_ALG_NULL
from tests.unit.identity.test_attest_support import (
    SWTPM_EK_ECC_PUBLIC,
    SWTPM_EK_RSA_PUBLIC,
    SoftTpm,
)

EK_ATTRIBUTES = (
    0x000300B2  # fixedTPM fixedParent sensitiveDataOrigin adminWithPolicy restricted decrypt
)
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def _rsa_ek() -> tuple[rsa.RSAPrivateKey, bytes]:
    key = rsa.generate_private_key(65537, 2048)
    modulus = key.public_key().public_numbers().n.to_bytes(256, "big")
    return key, marshal_rsa_public(
        modulus,
        attributes=EK_ATTRIBUTES,
        symmetric=(TPM_ALG_AES, 128, TPM_ALG_CFB),
        scheme=TPM_ALG_NULL,
    )


def _ecc_ek() -> tuple[ec.EllipticCurvePrivateKey, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    n = key.public_key().public_numbers()
    return key, marshal_ecc_public(
        n.x.to_bytes(32, "big"),
        n.y.to_bytes(32, "big"),
        attributes=EK_ATTRIBUTES,
        symmetric=(TPM_ALG_AES, 128, TPM_ALG_CFB),
        scheme=TPM_ALG_NULL,
    )


def _activate(
    ek_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    ek_public: bytes,
    name: bytes,
    blob: bytes,
    secret: bytes,
) -> bytes:
    """TPM2_ActivateCredential in software (the TPM's side)."""
    ek = parse_public(ek_public)
    if isinstance(ek_key, rsa.RSAPrivateKey):
        oaep = padding.OAEP(
            mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=b"IDENTITY\0"
        )
        seed = ek_key.decrypt(secret, oaep)
    else:
        x_len = struct.unpack(">H", secret[:2])[0]
        x = secret[2 : 2 + x_len]
        y = secret[4 + x_len :]
        point = ec.EllipticCurvePublicNumbers(
            int.from_bytes(x, "big"), int.from_bytes(y, "big"), ec.SECP256R1()
        ).public_key()
        z = ek_key.exchange(ec.ECDH(), point)
        seed = kdfe("sha256", z, b"IDENTITY", x, ek.ecc_x, 256)
    hmac_size = struct.unpack(">H", blob[:2])[0]
    outer_hmac, enc_identity = blob[2 : 2 + hmac_size], blob[2 + hmac_size :]
    hmac_key = kdfa("sha256", seed, b"INTEGRITY", b"", b"", 256)
    if not hmac.compare_digest(
        hmac.new(hmac_key, enc_identity + name, "sha256").digest(), outer_hmac
    ):
        raise ValueError("integrity check failed")
    sym_key = kdfa("sha256", seed, b"STORAGE", name, b"", 128)
    decryptor = Cipher(algorithms.AES(sym_key), CFB(bytes(16))).decryptor()
    plain = decryptor.update(enc_identity) + decryptor.finalize()
    return plain[2 : 2 + struct.unpack(">H", plain[:2])[0]]


def test_kdfa_label_and_length() -> None:
    out = kdfa("sha256", b"k" * 32, b"STORAGE", b"u", b"v", 128)
    again = kdfa("sha256", b"k" * 32, b"STORAGE\0", b"u", b"v", 128)
    assert len(out) == 16 and out == again
    assert kdfa("sha256", b"k" * 32, b"INTEGRITY", b"", b"", 512)[:32] != out
    assert len(kdfe("sha256", b"z" * 32, b"IDENTITY", b"u", b"v", 384)) == 48


@pytest.mark.parametrize("ek_kind", ["rsa", "ecc"])
def test_make_credential_activates_only_with_right_ek_and_name(ek_kind: str) -> None:
    ek_key, ek_public = _rsa_ek() if ek_kind == "rsa" else _ecc_ek()
    ak = SoftTpm()
    challenge = make_credential(parse_public(ek_public), ak.name, b"c" * 32)
    assert (
        _activate(ek_key, ek_public, ak.name, challenge.credential_blob, challenge.encrypted_secret)
        == b"c" * 32
    )
    with pytest.raises(ValueError, match="integrity"):
        _activate(
            ek_key, ek_public, SoftTpm().name, challenge.credential_blob, challenge.encrypted_secret
        )


def test_tpm2_tools_file_format() -> None:
    challenge = make_credential(parse_public(SWTPM_EK_RSA_PUBLIC), SoftTpm().name, b"x" * 16)
    blob = challenge.to_tpm2_tools()
    assert struct.unpack(">II", blob[:8]) == (TPM2_TOOLS_CREDENTIAL_MAGIC, 1)
    assert struct.unpack(">H", blob[8:10])[0] == 2 + 32 + 2 + 16
    assert blob.endswith(struct.pack(">H", 256) + challenge.encrypted_secret)
    ecc = make_credential(parse_public(SWTPM_EK_ECC_PUBLIC), SoftTpm().name, b"x" * 16)
    assert len(ecc.encrypted_secret) == 2 + 32 + 2 + 32


def test_credential_size_limits() -> None:
    ek = parse_public(SWTPM_EK_RSA_PUBLIC)
    for bad in (b"", b"x" * 33):
        with pytest.raises(CredentialVerificationError) as err:
            make_credential(ek, SoftTpm().name, bad)
        assert err.value.reason == "credential"


def test_ek_must_be_restricted_decryption_key() -> None:
    signing_ek = SoftTpm().ak_public  # a signing key offered as EK
    with pytest.raises(CredentialVerificationError) as err:
        begin_ak_enrollment(
            signing_ek,
            SoftTpm().ak_public,
            ek_certificate=None,
            ek_roots=[],
            now=NOW,
            require_ek_certificate=False,
        )
    assert err.value.reason == "ek_attributes"
    key = rsa.generate_private_key(65537, 2048).public_key().public_numbers().n.to_bytes(256, "big")
    no_aes = marshal_rsa_public(key, attributes=EK_ATTRIBUTES)
    with pytest.raises(CredentialVerificationError, match="AES"):
        begin_ak_enrollment(
            no_aes,
            SoftTpm().ak_public,
            ek_certificate=None,
            ek_roots=[],
            now=NOW,
            require_ek_certificate=False,
        )


def test_ak_must_be_restricted_signing_key() -> None:
    _, ek_public = _rsa_ek()
    _, not_an_ak = _ecc_ek()
    with pytest.raises(CredentialVerificationError) as err:
        begin_ak_enrollment(
            ek_public,
            not_an_ak,
            ek_certificate=None,
            ek_roots=[],
            now=NOW,
            require_ek_certificate=False,
        )
    assert err.value.reason == "ak_attributes"


def test_malformed_ek_public() -> None:
    with pytest.raises(TpmStructureError):
        begin_ak_enrollment(
            b"\x00\x05abc", SoftTpm().ak_public, ek_certificate=None, ek_roots=[], now=NOW
        )


# --- EK certificates ---------------------------------------------------------


def _ca(
    name: str,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None,
    *,
    ca: bool = True,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_name, issuer_key = (issuer[0].subject, issuer[1]) if issuer else (subject, key)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(issuer_key, hashes.SHA256())
    )
    return cert, key


def _ek_cert(
    ek_public: bytes,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    *,
    days: int = 365,
) -> bytes:
    from cryptography.hazmat.primitives import serialization

    key = parse_public(ek_public).public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(issuer[0].subject)
        .public_key(key)
        .serial_number(7)
        .not_valid_before(NOW - timedelta(days=2))
        .not_valid_after(NOW + timedelta(days=days))
        .sign(issuer[1], hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


def test_ek_certificate_chain_accepted_with_nv_padding() -> None:
    root = _ca("TPM Manufacturer Root")
    intermediate = _ca("TPM Manufacturer EK CA", root)
    ek_key, ek_public = _rsa_ek()
    cert = _ek_cert(ek_public, intermediate) + b"\xff" * 24  # NV index padding
    enrollment = begin_ak_enrollment(
        ek_public,
        (ak := SoftTpm()).ak_public,
        ek_certificate=cert,
        ek_roots=[root[0]],
        ek_intermediates=[intermediate[0]],
        now=NOW,
    )
    ch = enrollment.challenge
    activated = _activate(ek_key, ek_public, ak.name, ch.credential_blob, ch.encrypted_secret)
    enrollment.verify_activation(activated)
    with pytest.raises(CredentialVerificationError) as err:
        enrollment.verify_activation(bytes(len(activated)))
    assert err.value.reason == "activation"


def test_ek_certificate_for_another_key() -> None:
    root = _ca("root")
    _, ek_public = _rsa_ek()
    _, other_public = _rsa_ek()
    with pytest.raises(CredentialVerificationError) as err:
        verify_ek_certificate(
            _ek_cert(other_public, root), parse_public(ek_public), roots=[root[0]], now=NOW
        )
    assert err.value.reason == "ek_certificate_key"


def test_ek_certificate_from_unknown_ca_or_non_ca_intermediate() -> None:
    root, rogue = _ca("root"), _ca("root")  # same name, other key
    _, ek_public = _rsa_ek()
    ek = parse_public(ek_public)
    with pytest.raises(CredentialVerificationError) as err:
        verify_ek_certificate(_ek_cert(ek_public, rogue), ek, roots=[root[0]], now=NOW)
    assert err.value.reason == "ek_certificate_chain"
    leaf_as_ca = _ca("not a CA", root, ca=False)
    with pytest.raises(CredentialVerificationError) as err:
        verify_ek_certificate(
            _ek_cert(ek_public, leaf_as_ca),
            ek,
            roots=[root[0]],
            intermediates=[leaf_as_ca[0]],
            now=NOW,
        )
    assert err.value.reason == "ek_certificate_chain"


def test_ek_certificate_expired_missing_or_malformed() -> None:
    root = _ca("root")
    _, ek_public = _rsa_ek()
    ek = parse_public(ek_public)
    with pytest.raises(CredentialVerificationError, match="not valid now"):
        verify_ek_certificate(_ek_cert(ek_public, root, days=-1), ek, roots=[root[0]], now=NOW)
    with pytest.raises(CredentialVerificationError, match="malformed"):
        verify_ek_certificate(b"\x30\x03\x02\x01\x01", ek, roots=[root[0]], now=NOW)
    with pytest.raises(CredentialVerificationError, match="too large"):
        verify_ek_certificate(b"\x30" * 9000, ek, roots=[root[0]], now=NOW)
    with pytest.raises(CredentialVerificationError, match="required"):
        begin_ak_enrollment(
            ek_public, SoftTpm().ak_public, ek_certificate=None, ek_roots=[root[0]], now=NOW
        )
