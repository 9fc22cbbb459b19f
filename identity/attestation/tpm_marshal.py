"""TPM 2.0 structure encoders, the inverse of :mod:`identity.attestation.tpm_structures`.

Used to round-trip the parsers in tests, to build fixtures and benchmarks,
and by tools that must hand a TPM-format structure to another party. These
functions only marshal; they sign nothing and prove nothing.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from identity.attestation.tpm_structures import (
    TPM_ALG_ECC,
    TPM_ALG_ECDSA,
    TPM_ALG_NULL,
    TPM_ALG_RSA,
    TPM_ALG_SHA256,
    TPM_ECC_NIST_P256,
    TPM_GENERATED_VALUE,
    TPM_ST_ATTEST_QUOTE,
    TPMA_OBJECT_FIXEDPARENT,
    TPMA_OBJECT_FIXEDTPM,
    TPMA_OBJECT_RESTRICTED,
    TPMA_OBJECT_SENSITIVEDATAORIGIN,
    TPMA_OBJECT_SIGN_ENCRYPT,
    ClockInfo,
    PcrSelection,
)

TPMA_OBJECT_USERWITHAUTH = 0x00000040
AK_ATTRIBUTES = (
    TPMA_OBJECT_FIXEDTPM
    | TPMA_OBJECT_FIXEDPARENT
    | TPMA_OBJECT_SENSITIVEDATAORIGIN
    | TPMA_OBJECT_USERWITHAUTH
    | TPMA_OBJECT_RESTRICTED
    | TPMA_OBJECT_SIGN_ENCRYPT
)


def tpm2b(data: bytes) -> bytes:
    """Size-prefixed buffer (any TPM2B_*)."""
    if len(data) > 0xFFFF:
        raise ValueError("TPM2B body longer than 65535 bytes")
    return struct.pack(">H", len(data)) + data


def marshal_ecc_public(
    x: bytes,
    y: bytes,
    *,
    curve: int = TPM_ECC_NIST_P256,
    attributes: int = AK_ATTRIBUTES,
    scheme: int = TPM_ALG_ECDSA,
    scheme_hash: int = TPM_ALG_SHA256,
    name_alg: int = TPM_ALG_SHA256,
    auth_policy: bytes = b"",
    symmetric: tuple[int, int, int] | None = None,
) -> bytes:
    """TPM2B_PUBLIC of an ECC key (default: an ECDSA P-256 / SHA-256 AK template)."""
    body = struct.pack(">HHI", TPM_ALG_ECC, name_alg, attributes) + tpm2b(auth_policy)
    body += _symmetric(symmetric) + _scheme(scheme, scheme_hash)
    body += struct.pack(">HH", curve, TPM_ALG_NULL) + tpm2b(x) + tpm2b(y)
    return tpm2b(body)


def marshal_rsa_public(
    modulus: bytes,
    *,
    exponent: int = 0,
    attributes: int = AK_ATTRIBUTES,
    scheme: int = TPM_ALG_NULL,
    scheme_hash: int = TPM_ALG_SHA256,
    name_alg: int = TPM_ALG_SHA256,
    auth_policy: bytes = b"",
    symmetric: tuple[int, int, int] | None = None,
) -> bytes:
    """TPM2B_PUBLIC of an RSA key (exponent 0 means 65537)."""
    body = struct.pack(">HHI", TPM_ALG_RSA, name_alg, attributes) + tpm2b(auth_policy)
    body += _symmetric(symmetric) + _scheme(scheme, scheme_hash)
    body += struct.pack(">HI", len(modulus) * 8, exponent) + tpm2b(modulus)
    return tpm2b(body)


def _symmetric(symmetric: tuple[int, int, int] | None) -> bytes:
    if symmetric is None:
        return struct.pack(">H", TPM_ALG_NULL)
    return struct.pack(">HHH", *symmetric)


def _scheme(scheme: int, scheme_hash: int) -> bytes:
    if scheme == TPM_ALG_NULL:
        return struct.pack(">H", TPM_ALG_NULL)
    return struct.pack(">HH", scheme, scheme_hash)


def marshal_pcr_selection(selection: Sequence[PcrSelection]) -> bytes:
    """TPML_PCR_SELECTION with 3-byte bitmaps (PCRs 0..23)."""
    out = struct.pack(">I", len(selection))
    for bank in selection:
        bitmap = bytearray(3)
        for pcr in bank.pcrs:
            bitmap[pcr // 8] |= 1 << (pcr % 8)
        out += struct.pack(">HB", bank.hash_alg, 3) + bytes(bitmap)
    return out


def marshal_quote_attest(
    *,
    qualified_signer: bytes,
    extra_data: bytes,
    pcr_select: Sequence[PcrSelection],
    pcr_digest: bytes,
    clock_info: ClockInfo = ClockInfo(1000, 1, 0, True),
    firmware_version: int = 0x2019102300163636,
    magic: int = TPM_GENERATED_VALUE,
    attest_type: int = TPM_ST_ATTEST_QUOTE,
) -> bytes:
    """TPMS_ATTEST carrying a TPMS_QUOTE_INFO."""
    out = struct.pack(">IH", magic, attest_type) + tpm2b(qualified_signer) + tpm2b(extra_data)
    out += struct.pack(
        ">QIIB",
        clock_info.clock,
        clock_info.reset_count,
        clock_info.restart_count,
        int(clock_info.safe),
    )
    out += struct.pack(">Q", firmware_version)
    return out + marshal_pcr_selection(pcr_select) + tpm2b(pcr_digest)


def marshal_ecdsa_signature(r: int, s: int, *, hash_alg: int = TPM_ALG_SHA256) -> bytes:
    """TPMT_SIGNATURE for ECDSA (r and s as 32-byte big-endian for P-256)."""
    size = max(32, (max(r.bit_length(), s.bit_length()) + 7) // 8)
    return (
        struct.pack(">HH", TPM_ALG_ECDSA, hash_alg)
        + tpm2b(r.to_bytes(size, "big"))
        + tpm2b(s.to_bytes(size, "big"))
    )


def marshal_rsa_signature(
    sig_alg: int, signature: bytes, *, hash_alg: int = TPM_ALG_SHA256
) -> bytes:
    """TPMT_SIGNATURE for RSASSA or RSAPSS."""
    return struct.pack(">HH", sig_alg, hash_alg) + tpm2b(signature)
