"""Hardware-rooted enrollment: MakeCredential on the server, and EK checks.

Before an AK is enrolled the server proves that it is resident in the same
TPM as the EK (TPM 2.0 Library, Part 1, "Credential Protection"): it wraps a
random credential so that only the TPM holding the EK's private key, and
holding a loaded object whose name is the AK's, can unwrap it with
TPM2_ActivateCredential. The node runs ``tpm2_activatecredential`` and
returns the credential; the server compares it in constant time.

MakeCredential, with H the EK's nameAlg and ``name`` the AK's name:

- seed: RSA EK -> random |H| bytes, encrypted with RSA-OAEP(H) and label
  ``"IDENTITY\\0"``; ECC EK -> ephemeral ECDH on the EK's curve,
  ``seed = KDFe(H, Z, "IDENTITY", ephemeral.x, ek.x, |H|*8)`` and the
  encrypted secret is the ephemeral point (TPMS_ECC_POINT)
- ``symKey = KDFa(H, seed, "STORAGE", name, "", EK symmetric keyBits)``
- ``encIdentity = AES-CFB(symKey, IV=0, TPM2B_DIGEST(credential))``
- ``hmacKey = KDFa(H, seed, "INTEGRITY", "", "", |H|*8)``;
  ``outerHMAC = HMAC-H(hmacKey, encIdentity || name)``
- ``TPM2B_ID_OBJECT = TPM2B_DIGEST(outerHMAC) || encIdentity``

Invariants: the EK must be a restricted decryption key (not a signing key)
with an AES-CFB symmetric definition; the AK must pass ``verify_ak_public``;
an EK certificate, when given, must carry the same public key and chain to a
configured EK CA. Failures raise :class:`CredentialVerificationError`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.decrepit.ciphers.modes import CFB
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from identity.attestation.errors import CredentialVerificationError
from identity.attestation.quote import verify_ak_public
from identity.attestation.tpm_structures import (
    DIGEST_SIZES,
    ECC_COORDINATE_SIZES,
    ECC_CURVES,
    HASH_ALGORITHMS,
    TPM_ALG_AES,
    TPM_ALG_CFB,
    TPM_ALG_RSA,
    TPMA_OBJECT_DECRYPT,
    TPMA_OBJECT_FIXEDTPM,
    TPMA_OBJECT_RESTRICTED,
    TPMA_OBJECT_SIGN_ENCRYPT,
    TpmPublic,
    parse_public,
)

TPM2_TOOLS_CREDENTIAL_MAGIC = 0xBADCC0DE
TPM2_TOOLS_CREDENTIAL_VERSION = 1
MAX_EK_CERTIFICATE_BYTES = 8192
MAX_CHAIN_DEPTH = 4
_OAEP_HASHES: dict[int, type[hashes.HashAlgorithm]] = {
    0x000B: hashes.SHA256,
    0x000C: hashes.SHA384,
    0x000D: hashes.SHA512,
    0x0004: hashes.SHA1,
}


def _label(label: bytes) -> bytes:
    return label if label.endswith(b"\0") else label + b"\0"


def kdfa(
    hash_name: str, key: bytes, label: bytes, context_u: bytes, context_v: bytes, bits: int
) -> bytes:
    """KDFa (SP 800-108 counter mode with HMAC), TPM 2.0 Part 1 §11.4.10.2."""
    out = b""
    counter = 0
    tail = _label(label) + context_u + context_v + struct.pack(">I", bits)
    while len(out) * 8 < bits:
        counter += 1
        out += hmac.new(key, struct.pack(">I", counter) + tail, hash_name).digest()
    return out[: (bits + 7) // 8]


def kdfe(
    hash_name: str, z: bytes, label: bytes, party_u: bytes, party_v: bytes, bits: int
) -> bytes:
    """KDFe (SP 800-56A concatenation KDF), TPM 2.0 Part 1 §11.4.10.3."""
    out = b""
    counter = 0
    tail = z + _label(label) + party_u + party_v
    while len(out) * 8 < bits:
        counter += 1
        out += hashlib.new(hash_name, struct.pack(">I", counter) + tail).digest()
    return out[: (bits + 7) // 8]


def _tpm2b(data: bytes) -> bytes:
    return struct.pack(">H", len(data)) + data


@dataclass(frozen=True)
class CredentialChallenge:
    """The output of MakeCredential: TPM2B_ID_OBJECT and TPM2B_ENCRYPTED_SECRET bodies."""

    credential_blob: bytes
    encrypted_secret: bytes

    def to_tpm2_tools(self) -> bytes:
        """The file ``tpm2_activatecredential -i`` reads (tpm2-tools 5 format)."""
        return (
            struct.pack(">II", TPM2_TOOLS_CREDENTIAL_MAGIC, TPM2_TOOLS_CREDENTIAL_VERSION)
            + _tpm2b(self.credential_blob)
            + _tpm2b(self.encrypted_secret)
        )


def verify_ek_public(ek: TpmPublic) -> None:
    """An EK must be a fixedTPM restricted decryption key with AES-CFB protection.

    Raises CredentialVerificationError (reason ``ek_attributes``).
    """
    attrs = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT
    if not ek.has_attributes(attrs) or ek.has_attributes(TPMA_OBJECT_SIGN_ENCRYPT):
        raise CredentialVerificationError(
            f"EK attributes 0x{ek.object_attributes:08x} are not a restricted decryption key",
            reason="ek_attributes",
        )
    sym = ek.symmetric
    if sym.algorithm != TPM_ALG_AES or sym.mode != TPM_ALG_CFB or sym.key_bits not in (128, 256):
        raise CredentialVerificationError(
            "EK symmetric definition must be AES-128/256-CFB", reason="ek_attributes"
        )
    if ek.name_alg not in _OAEP_HASHES:
        raise CredentialVerificationError("EK nameAlg unsupported", reason="ek_attributes")


def make_credential(
    ek: TpmPublic,
    ak_name: bytes,
    credential: bytes,
    *,
    randomness: Callable[[int], bytes] = secrets.token_bytes,
) -> CredentialChallenge:
    """TPM2_MakeCredential computed in software for ``ek`` and the object named ``ak_name``.

    Raises CredentialVerificationError if the EK is unsuitable or the
    credential is longer than the EK's nameAlg digest.
    """
    verify_ek_public(ek)
    hash_name = HASH_ALGORITHMS[ek.name_alg]
    digest_size = DIGEST_SIZES[ek.name_alg]
    if not 0 < len(credential) <= digest_size:
        raise CredentialVerificationError(
            f"credential must be 1..{digest_size} bytes", reason="credential"
        )
    if ek.type == TPM_ALG_RSA:
        seed = randomness(digest_size)
        ek_key = ek.public_key()
        if not isinstance(ek_key, rsa.RSAPublicKey):
            raise CredentialVerificationError("EK is not RSA", reason="ek_attributes")
        oaep_hash = _OAEP_HASHES[ek.name_alg]()
        encrypted_secret = ek_key.encrypt(
            seed,
            padding.OAEP(mgf=padding.MGF1(oaep_hash), algorithm=oaep_hash, label=b"IDENTITY\0"),
        )
    else:
        ek_key = ek.public_key()
        if not isinstance(ek_key, ec.EllipticCurvePublicKey):
            raise CredentialVerificationError("EK is not ECC", reason="ek_attributes")
        size = ECC_COORDINATE_SIZES[ek.ecc_curve]
        ephemeral = ec.generate_private_key(ECC_CURVES[ek.ecc_curve])
        z = ephemeral.exchange(ec.ECDH(), ek_key)
        numbers = ephemeral.public_key().public_numbers()
        eph_x, eph_y = numbers.x.to_bytes(size, "big"), numbers.y.to_bytes(size, "big")
        ek_x = ek.ecc_x.rjust(size, b"\0")
        seed = kdfe(hash_name, z, b"IDENTITY", eph_x, ek_x, digest_size * 8)
        encrypted_secret = _tpm2b(eph_x) + _tpm2b(eph_y)
    sym_key = kdfa(hash_name, seed, b"STORAGE", ak_name, b"", ek.symmetric.key_bits)
    encryptor = Cipher(algorithms.AES(sym_key), CFB(bytes(16))).encryptor()
    enc_identity = encryptor.update(_tpm2b(credential)) + encryptor.finalize()
    hmac_key = kdfa(hash_name, seed, b"INTEGRITY", b"", b"", digest_size * 8)
    outer_hmac = hmac.new(hmac_key, enc_identity + ak_name, hash_name).digest()
    return CredentialChallenge(_tpm2b(outer_hmac) + enc_identity, encrypted_secret)


def _der_trim(data: bytes) -> bytes:
    """Cut NV-index padding after a DER SEQUENCE (EK certificates are read from NV)."""
    if len(data) < 2 or data[0] != 0x30:
        return data
    first = data[1]
    if first < 0x80:
        return data[: 2 + first]
    n = first & 0x7F
    if not 1 <= n <= 3 or len(data) < 2 + n:
        return data
    return data[: 2 + n + int.from_bytes(data[2 : 2 + n], "big")]


def _same_key(cert_key: object, ek: TpmPublic) -> bool:
    ek_key = ek.public_key()
    if isinstance(cert_key, rsa.RSAPublicKey) and isinstance(ek_key, rsa.RSAPublicKey):
        return cert_key.public_numbers() == ek_key.public_numbers()
    if isinstance(cert_key, ec.EllipticCurvePublicKey) and isinstance(
        ek_key, ec.EllipticCurvePublicKey
    ):
        return cert_key.public_numbers() == ek_key.public_numbers()
    return False


def _check_validity(cert: x509.Certificate, now: datetime, what: str) -> None:
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise CredentialVerificationError(f"{what} is not valid now", reason="ek_certificate")


def verify_ek_certificate(
    certificate_der: bytes,
    ek: TpmPublic,
    *,
    roots: Sequence[x509.Certificate],
    intermediates: Sequence[x509.Certificate] = (),
    now: datetime,
) -> None:
    """Check an EK certificate: 1. parses, 2. certifies this EK's public key,
    3. is valid at ``now``, 4. chains through ``intermediates`` to one of ``roots``.

    Raises CredentialVerificationError (reasons ``ek_certificate``,
    ``ek_certificate_key``, ``ek_certificate_chain``).
    """
    # 1. parse (size-checked; NV padding trimmed)
    if not isinstance(certificate_der, bytes) or len(certificate_der) > MAX_EK_CERTIFICATE_BYTES:
        raise CredentialVerificationError(
            "EK certificate missing or too large", reason="ek_certificate"
        )
    try:
        cert = x509.load_der_x509_certificate(_der_trim(certificate_der))
        cert_key = cert.public_key()
        # cryptography parses names and validity lazily: parse them here, where a malformed
        # field is a credential error, not later as a bare ValueError
        _ = (cert.issuer, cert.subject, cert.not_valid_before_utc, cert.not_valid_after_utc)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise CredentialVerificationError(
            f"EK certificate malformed: {exc}", reason="ek_certificate"
        ) from exc
    # 2. key match
    if not _same_key(cert_key, ek):
        raise CredentialVerificationError(
            "EK certificate certifies another key", reason="ek_certificate_key"
        )
    # 3. validity, 4. chain
    _check_validity(cert, now, "EK certificate")
    current = cert
    for _ in range(MAX_CHAIN_DEPTH):
        for root in roots:
            if root.subject == current.issuer and _issued_by(current, root):
                _check_validity(root, now, "EK root CA")
                return
        parent = next(
            (c for c in intermediates if c.subject == current.issuer and _issued_by(current, c)),
            None,
        )
        if parent is None or not _is_ca(parent):
            break
        _check_validity(parent, now, "EK intermediate CA")
        current = parent
    raise CredentialVerificationError(
        "EK certificate does not chain to a configured EK CA", reason="ek_certificate_chain"
    )


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


@dataclass(frozen=True)
class AkEnrollment:
    """Server-side state of one AK enrollment, between challenge and activation."""

    ek: TpmPublic
    ak_public: bytes
    ak_name: bytes
    challenge: CredentialChallenge
    _credential: bytes = field(repr=False)

    def verify_activation(self, activated: bytes) -> None:
        """The node's TPM returned the credential; raises CredentialVerificationError
        (reason ``activation``) if it differs."""
        if not isinstance(activated, bytes) or not hmac.compare_digest(activated, self._credential):
            raise CredentialVerificationError(
                "activated credential does not match: AK not resident with this EK",
                reason="activation",
            )


def begin_ak_enrollment(
    ek_public: bytes,
    ak_public: bytes,
    *,
    ek_certificate: bytes | None,
    ek_roots: Sequence[x509.Certificate],
    ek_intermediates: Sequence[x509.Certificate] = (),
    now: datetime,
    randomness: Callable[[int], bytes] = secrets.token_bytes,
    require_ek_certificate: bool = True,
) -> AkEnrollment:
    """Check the EK (and its certificate) and the AK, then make the credential challenge.

    Send ``enrollment.challenge.to_tpm2_tools()`` to the node; call
    ``enrollment.verify_activation(returned)`` with what it sends back.
    Raises TpmStructureError or CredentialVerificationError (``ek_certificate``
    when a certificate is required and absent).
    """
    ek = parse_public(ek_public)
    verify_ek_public(ek)
    if ek_certificate is not None:
        verify_ek_certificate(
            ek_certificate, ek, roots=ek_roots, intermediates=ek_intermediates, now=now
        )
    elif require_ek_certificate:
        raise CredentialVerificationError("EK certificate required", reason="ek_certificate")
    ak = parse_public(ak_public)
    verify_ak_public(ak)
    credential = randomness(DIGEST_SIZES[ek.name_alg])
    challenge = make_credential(ek, ak.name, credential, randomness=randomness)
    return AkEnrollment(ek, bytes(ak_public), ak.name, challenge, credential)
