"""The public API of identity.attestation is its __all__; this pins it."""

from __future__ import annotations

import identity.attestation as attestation
from identity.errors import IdentityError, VerificationError

EXPECTED = {
    "AcceleratorClaims", "AkEnrollment", "AppraisalContext", "Attest", "AttestationError",
    "AttestationKey", "AttestationResult", "ClaimAppraisal", "CredentialChallenge",
    "CredentialVerificationError", "EatClaims", "EatVerificationError",
    "EvidenceVerificationError", "MeasurementEvent", "MeasurementLog", "NonceRegistry",
    "NonceVerificationError", "PcrMismatchError", "QuoteVerificationError",
    "ReferenceValueEntry", "ReferenceValueError", "ReferenceValueSet",
    "ReferenceValueSignatureError", "ReferenceValueStore", "Signature",
    "SignedReferenceValues", "Tpm2Tools", "TpmPublic", "TpmStructureError", "TpmToolError",
    "TrustTier", "appraise_eat", "appraise_quote", "begin_ak_enrollment", "decode_eat",
    "is_fresh", "load_attestation_key", "make_credential", "make_eat",
    "open_reference_values", "parse_attest", "parse_public", "parse_signature",
    "pcr_composite_digest", "sign_reference_values", "verify_ak_public",
    "verify_ek_certificate", "verify_ek_public", "verify_quote", "verify_reference_values",
}  # fmt: skip


def test_all_is_pinned_and_importable() -> None:
    assert set(attestation.__all__) == EXPECTED
    assert sorted(attestation.__all__) == attestation.__all__
    for name in attestation.__all__:
        assert getattr(attestation, name) is not None


def test_error_tree() -> None:
    assert issubclass(attestation.AttestationError, IdentityError)
    for name in (
        "TpmStructureError",
        "QuoteVerificationError",
        "PcrMismatchError",
        "NonceVerificationError",
        "EatVerificationError",
        "CredentialVerificationError",
        "ReferenceValueSignatureError",
    ):
        error = getattr(attestation, name)
        assert issubclass(error, attestation.EvidenceVerificationError)
        assert issubclass(error, VerificationError)
    assert not issubclass(attestation.TpmToolError, VerificationError)
