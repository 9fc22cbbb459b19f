"""Remote attestation (IETF RATS, RFC 9334): the agent attests, this package verifies.

Evidence: TPM 2.0 quotes over a replayed measurement log (``verify_quote``),
or EATs (RFC 9711) for TPM-less nodes and accelerators (``make_eat`` /
``decode_eat``). Freshness: ``NonceRegistry``. Hardware-rooted enrollment:
``begin_ak_enrollment`` (MakeCredential) with ``Tpm2Tools`` on the node.
Reference values: ``ReferenceValueStore`` of signed ``ReferenceValueSet``.
Results: ``appraise_quote`` / ``appraise_eat`` -> ``AttestationResult`` (EAR).
"""

from identity.attestation.appraisal import AppraisalContext, appraise_eat, appraise_quote
from identity.attestation.credential import (
    AkEnrollment,
    CredentialChallenge,
    begin_ak_enrollment,
    make_credential,
    verify_ek_certificate,
    verify_ek_public,
)
from identity.attestation.eat import AcceleratorClaims, EatClaims, decode_eat, make_eat
from identity.attestation.errors import (
    AttestationError,
    CredentialVerificationError,
    EatVerificationError,
    EvidenceVerificationError,
    NonceVerificationError,
    PcrMismatchError,
    QuoteVerificationError,
    ReferenceValueError,
    ReferenceValueSignatureError,
    TpmStructureError,
    TpmToolError,
)
from identity.attestation.measurement_log import (
    MeasurementEvent,
    MeasurementLog,
    pcr_composite_digest,
)
from identity.attestation.nonces import NonceRegistry
from identity.attestation.quote import (
    AttestationKey,
    load_attestation_key,
    verify_ak_public,
    verify_quote,
)
from identity.attestation.reference_values import (
    ReferenceValueEntry,
    ReferenceValueSet,
    ReferenceValueStore,
    SignedReferenceValues,
    open_reference_values,
    sign_reference_values,
    verify_reference_values,
)
from identity.attestation.result import AttestationResult, ClaimAppraisal, TrustTier, is_fresh
from identity.attestation.tpm_structures import (
    Attest,
    Signature,
    TpmPublic,
    parse_attest,
    parse_public,
    parse_signature,
)
from identity.attestation.tpm_tools import Tpm2Tools

__all__ = [
    "AcceleratorClaims",
    "AkEnrollment",
    "AppraisalContext",
    "Attest",
    "AttestationError",
    "AttestationKey",
    "AttestationResult",
    "ClaimAppraisal",
    "CredentialChallenge",
    "CredentialVerificationError",
    "EatClaims",
    "EatVerificationError",
    "EvidenceVerificationError",
    "MeasurementEvent",
    "MeasurementLog",
    "NonceRegistry",
    "NonceVerificationError",
    "PcrMismatchError",
    "QuoteVerificationError",
    "ReferenceValueEntry",
    "ReferenceValueError",
    "ReferenceValueSet",
    "ReferenceValueSignatureError",
    "ReferenceValueStore",
    "Signature",
    "SignedReferenceValues",
    "Tpm2Tools",
    "TpmPublic",
    "TpmStructureError",
    "TpmToolError",
    "TrustTier",
    "appraise_eat",
    "appraise_quote",
    "begin_ak_enrollment",
    "decode_eat",
    "is_fresh",
    "load_attestation_key",
    "make_credential",
    "make_eat",
    "open_reference_values",
    "parse_attest",
    "parse_public",
    "parse_signature",
    "pcr_composite_digest",
    "sign_reference_values",
    "verify_ak_public",
    "verify_ek_certificate",
    "verify_ek_public",
    "verify_quote",
    "verify_reference_values",
]
