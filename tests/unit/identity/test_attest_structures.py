"""TPM 2.0 structure parsers: known answers from swtpm, and specific errors for bad input."""

from __future__ import annotations

import struct

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from identity.attestation import TpmStructureError, parse_attest, parse_public, parse_signature
from identity.attestation.tpm_marshal import marshal_ecc_public, marshal_quote_attest
from identity.attestation.tpm_structures import (
    TPM_ALG_AES,
    TPM_ALG_CFB,
    TPM_ALG_ECC,
    TPM_ALG_ECDSA,
    TPM_ALG_RSA,
    TPM_ALG_SHA256,
    TPM_GENERATED_VALUE,
    TPM_ST_ATTEST_QUOTE,
    PcrSelection,
    parse_tpmt_public,
)
from tests.unit.identity.test_attest_support import (
    SWTPM_AK_NAME,
    SWTPM_AK_PUBLIC,
    SWTPM_EK_ECC_PUBLIC,
    SWTPM_EK_RSA_PUBLIC,
    SWTPM_NONCE,
    SWTPM_QUOTE,
    SWTPM_SIGNATURE,
)


def test_swtpm_quote_parses_to_its_fields() -> None:
    attest = parse_attest(SWTPM_QUOTE)
    assert attest.magic == TPM_GENERATED_VALUE
    assert attest.type == TPM_ST_ATTEST_QUOTE
    assert attest.extra_data == SWTPM_NONCE
    assert attest.qualified_signer[:2] == b"\x00\x0b" and len(attest.qualified_signer) == 34
    assert attest.clock_info.reset_count == 2 and attest.clock_info.safe
    assert attest.quote is not None
    assert attest.quote.pcr_select == (PcrSelection(TPM_ALG_SHA256, (10, 11)),)
    assert len(attest.quote.pcr_digest) == 32


def test_swtpm_signature_is_ecdsa_sha256() -> None:
    sig = parse_signature(SWTPM_SIGNATURE)
    assert (sig.sig_alg, sig.hash_alg) == (TPM_ALG_ECDSA, TPM_ALG_SHA256)
    assert sig.r.bit_length() > 200 and sig.s.bit_length() > 200


def test_swtpm_ak_name_matches_tpm2_tools() -> None:
    ak = parse_public(SWTPM_AK_PUBLIC)
    assert ak.type == TPM_ALG_ECC and ak.name == SWTPM_AK_NAME
    assert isinstance(ak.public_key(), ec.EllipticCurvePublicKey)


def test_swtpm_ek_templates_parse() -> None:
    ek = parse_public(SWTPM_EK_RSA_PUBLIC)
    assert ek.type == TPM_ALG_RSA and ek.rsa_key_bits == 2048 and ek.rsa_exponent == 0
    assert (ek.symmetric.algorithm, ek.symmetric.key_bits, ek.symmetric.mode) == (
        TPM_ALG_AES,
        128,
        TPM_ALG_CFB,
    )
    key = ek.public_key()
    assert isinstance(key, rsa.RSAPublicKey) and key.public_numbers().e == 65537
    ecc = parse_public(SWTPM_EK_ECC_PUBLIC)
    assert ecc.type == TPM_ALG_ECC and len(ecc.auth_policy) == 32


@pytest.mark.parametrize("cut", [0, 3, 6, 10, 40, 60, 90, len(SWTPM_QUOTE) - 1])
def test_truncated_quote_reports_offset(cut: int) -> None:
    with pytest.raises(TpmStructureError) as err:
        parse_attest(SWTPM_QUOTE[:cut])
    assert err.value.reason == "malformed"
    assert 0 <= err.value.offset <= cut


def test_trailing_bytes_refused() -> None:
    with pytest.raises(TpmStructureError, match="trailing"):
        parse_attest(SWTPM_QUOTE + b"\x00")
    with pytest.raises(TpmStructureError, match="trailing"):
        parse_signature(SWTPM_SIGNATURE + b"\x00")
    with pytest.raises(TpmStructureError, match="trailing"):
        parse_public(SWTPM_AK_PUBLIC + b"\x00")


def test_oversized_fields_refused_with_offset() -> None:
    # extraData claims 65 bytes (TPM2B_DATA max 64)
    bad = SWTPM_QUOTE[:42] + struct.pack(">H", 65) + bytes(65)
    with pytest.raises(TpmStructureError, match="exceeds maximum") as err:
        parse_attest(bad)
    assert err.value.offset == 42
    with pytest.raises(TpmStructureError, match="exceeds maximum"):
        parse_attest(bytes(4096))


def test_pcr_selection_bounds() -> None:
    attest = marshal_quote_attest(
        qualified_signer=b"", extra_data=b"", pcr_select=[], pcr_digest=b""
    )
    head = attest[: len(attest) - 6]  # cut count (4) + empty digest (2)
    with pytest.raises(TpmStructureError, match="count 17"):
        parse_attest(head + struct.pack(">I", 17))
    with pytest.raises(TpmStructureError, match="sizeofSelect"):
        parse_attest(head + struct.pack(">IHB", 1, TPM_ALG_SHA256, 9) + bytes(9) + b"\0\0")


def test_non_quote_type_is_parsed_without_quote_info() -> None:
    attest = parse_attest(SWTPM_QUOTE[:4] + b"\x80\x17" + SWTPM_QUOTE[6:])
    assert attest.type == 0x8017 and attest.quote is None


def test_unsupported_signature_and_key_types() -> None:
    with pytest.raises(TpmStructureError, match="unsupported signature"):
        parse_signature(b"\x00\x10")
    with pytest.raises(TpmStructureError, match="unsupported key type"):
        parse_tpmt_public(struct.pack(">HHI", 0x0008, TPM_ALG_SHA256, 0) + b"\0\0")
    with pytest.raises(TpmStructureError, match="nameAlg"):
        parse_tpmt_public(struct.pack(">HHI", TPM_ALG_ECC, 0x0099, 0))
    with pytest.raises(TpmStructureError, match="curve"):
        parse_public(marshal_ecc_public(bytes(32), bytes(32), curve=0x0010))


def test_rsa_modulus_size_must_match_key_bits() -> None:
    body = bytearray(SWTPM_EK_RSA_PUBLIC[2:])
    key_bits_at = len(body) - 256 - 2 - 4 - 2
    body[key_bits_at : key_bits_at + 2] = struct.pack(">H", 3072)
    with pytest.raises(TpmStructureError, match="keyBits 3072"):
        parse_tpmt_public(bytes(body))


def test_point_not_on_curve_is_a_structure_error() -> None:
    public = parse_public(marshal_ecc_public(b"\x01" * 32, b"\x02" * 32))
    with pytest.raises(TpmStructureError, match="not a valid public key"):
        public.public_key()


def test_non_bytes_input_refused() -> None:
    with pytest.raises(TpmStructureError):
        parse_attest("ff54" * 10)  # type: ignore[arg-type]
    with pytest.raises(TpmStructureError):
        parse_public(None)  # type: ignore[arg-type]
