"""TPM 2.0 quote verification against the enrolled AK and a replayed measurement log.

``verify_quote`` runs numbered steps and raises on the first failure:

1. parse TPMS_ATTEST and TPMT_SIGNATURE (TpmStructureError, reason ``malformed``)
2. magic is TPM_GENERATED_VALUE (``magic``)
3. type is TPM_ST_ATTEST_QUOTE (``type``)
4. the signature verifies with the AK enrolled for the claimed node
   (``signature_scheme``, ``signature``) — a quote signed by another AK, e.g.
   node A's evidence presented by node B, fails here
5. extraData equals the nonce, and the nonce registry accepts it for this node
   (``nonce``; NonceVerificationError ``nonce_*``)
6. the selection covers every PCR of the log, SHA-256 bank only (``pcr_selection``)
7. pcrDigest equals the digest of the PCR values replayed from the log
   (PcrMismatchError, reason ``pcr_digest``)

The signature is checked before the nonce is consumed, so forged evidence
cannot burn a legitimate node's nonce. Parsed AK keys are cached by their
TPM2B_PUBLIC bytes (an AK is immutable once enrolled).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from functools import lru_cache

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from identity.attestation.errors import (
    CredentialVerificationError,
    PcrMismatchError,
    QuoteVerificationError,
)
from identity.attestation.measurement_log import MeasurementLog, pcr_composite_digest
from identity.attestation.nonces import NonceRegistry
from identity.attestation.tpm_structures import (
    HASH_ALGORITHMS,
    TPM_ALG_ECDSA,
    TPM_ALG_NULL,
    TPM_ALG_RSAPSS,
    TPM_ALG_RSASSA,
    TPM_ALG_SHA256,
    TPM_ALG_SHA384,
    TPM_ALG_SHA512,
    TPM_GENERATED_VALUE,
    TPM_ST_ATTEST_QUOTE,
    TPMA_OBJECT_DECRYPT,
    TPMA_OBJECT_FIXEDPARENT,
    TPMA_OBJECT_FIXEDTPM,
    TPMA_OBJECT_RESTRICTED,
    TPMA_OBJECT_SENSITIVEDATAORIGIN,
    TPMA_OBJECT_SIGN_ENCRYPT,
    Signature,
    TpmPublic,
    parse_attest,
    parse_public,
    parse_signature,
)

AK_REQUIRED_ATTRIBUTES = (
    TPMA_OBJECT_FIXEDTPM
    | TPMA_OBJECT_FIXEDPARENT
    | TPMA_OBJECT_SENSITIVEDATAORIGIN
    | TPMA_OBJECT_RESTRICTED
    | TPMA_OBJECT_SIGN_ENCRYPT
)
_SIGNATURE_HASHES: dict[int, hashes.HashAlgorithm] = {
    TPM_ALG_SHA256: hashes.SHA256(),
    TPM_ALG_SHA384: hashes.SHA384(),
    TPM_ALG_SHA512: hashes.SHA512(),
}
AK_CACHE_SIZE = 32768


@dataclass(frozen=True)
class AttestationKey:
    """An enrolled AK: its TPMT_PUBLIC, name and loaded public key."""

    public: TpmPublic
    key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey

    @property
    def name(self) -> bytes:
        return self.public.name


def verify_ak_public(ak: TpmPublic) -> None:
    """Check that ``ak`` can only sign TPM-generated data.

    An AK must be a restricted, non-decrypting signing key that is fixedTPM,
    fixedParent and sensitiveDataOrigin, with a SHA-256+ signing scheme.
    Raises CredentialVerificationError (reason ``ak_attributes``).
    """
    if not ak.has_attributes(AK_REQUIRED_ATTRIBUTES) or ak.has_attributes(TPMA_OBJECT_DECRYPT):
        raise CredentialVerificationError(
            f"AK attributes 0x{ak.object_attributes:08x} are not a restricted signing key",
            reason="ak_attributes",
        )
    if ak.scheme_hash_alg not in _SIGNATURE_HASHES:
        raise CredentialVerificationError(
            "AK signing scheme must use SHA-256 or stronger", reason="ak_attributes"
        )


@lru_cache(maxsize=AK_CACHE_SIZE)
def load_attestation_key(ak_public: bytes) -> AttestationKey:
    """Parse and check an AK's TPM2B_PUBLIC once (cached by its bytes).

    Raises TpmStructureError or CredentialVerificationError.
    """
    public = parse_public(ak_public)
    verify_ak_public(public)
    return AttestationKey(public, public.public_key())


def _verify_signature(ak: AttestationKey, signature: Signature, message: bytes) -> None:
    algorithm = _SIGNATURE_HASHES.get(signature.hash_alg)
    public = ak.public
    key_scheme_ok = public.scheme in (TPM_ALG_NULL, signature.sig_alg) and (
        public.scheme_hash_alg in (TPM_ALG_NULL, signature.hash_alg)
    )
    if algorithm is None or not key_scheme_ok:
        raise QuoteVerificationError(
            "signature scheme does not match the AK", reason="signature_scheme"
        )
    try:
        key = ak.key
        if signature.sig_alg == TPM_ALG_ECDSA and isinstance(key, ec.EllipticCurvePublicKey):
            der = encode_dss_signature(signature.r, signature.s)
            key.verify(der, message, ec.ECDSA(algorithm))
        elif signature.sig_alg == TPM_ALG_RSASSA and isinstance(key, rsa.RSAPublicKey):
            key.verify(signature.rsa_signature, message, padding.PKCS1v15(), algorithm)
        elif signature.sig_alg == TPM_ALG_RSAPSS and isinstance(key, rsa.RSAPublicKey):
            pss = padding.PSS(mgf=padding.MGF1(algorithm), salt_length=padding.PSS.AUTO)
            key.verify(signature.rsa_signature, message, pss, algorithm)
        else:
            raise QuoteVerificationError(
                "signature algorithm does not fit the AK type", reason="signature_scheme"
            )
    except InvalidSignature as exc:
        raise QuoteVerificationError(
            "quote is not signed by the enrolled AK", reason="signature"
        ) from exc


def verify_quote(
    quote: bytes,
    signature: bytes,
    *,
    ak_public: bytes,
    node_id: str,
    nonce: bytes,
    nonces: NonceRegistry,
    measurement_log: MeasurementLog,
) -> None:
    """Verify a TPM2_Quote from ``node_id`` (steps in the module docstring).

    ``quote`` is the marshalled TPMS_ATTEST, ``signature`` the TPMT_SIGNATURE,
    ``ak_public`` the TPM2B_PUBLIC enrolled for ``node_id`` (never one sent
    with the evidence), ``nonce`` the server-issued nonce the node answered.

    Raises TpmStructureError, QuoteVerificationError, PcrMismatchError,
    NonceVerificationError or CredentialVerificationError.
    """
    # 1. structure
    ak = load_attestation_key(ak_public)
    attest = parse_attest(quote)
    sig = parse_signature(signature)
    # 2. magic
    if attest.magic != TPM_GENERATED_VALUE:
        raise QuoteVerificationError(
            f"magic 0x{attest.magic:08x} is not TPM_GENERATED_VALUE", reason="magic"
        )
    # 3. type
    if attest.type != TPM_ST_ATTEST_QUOTE or attest.quote is None:
        raise QuoteVerificationError(f"type 0x{attest.type:04x} is not a quote", reason="type")
    # 4. signature by the claimed node's enrolled AK
    _verify_signature(ak, sig, quote)
    # 5. freshness: the nonce in extraData, issued to this node, unused, unexpired
    if not hmac.compare_digest(attest.extra_data, nonce):
        raise QuoteVerificationError("extraData does not carry the nonce", reason="nonce")
    nonces.consume(nonce, node_id)
    # 6. selection: SHA-256 bank, covering every PCR the log extends
    selection = attest.quote.pcr_select
    if len(selection) != 1 or selection[0].hash_alg != TPM_ALG_SHA256:
        raise QuoteVerificationError(
            "quote must select the SHA-256 bank only", reason="pcr_selection"
        )
    replayed = measurement_log.replay()
    missing = sorted(set(replayed) - set(selection[0].pcrs))
    if missing:
        raise QuoteVerificationError(
            f"quote does not cover PCRs {missing} of the log", reason="pcr_selection"
        )
    # 7. pcrDigest against the replayed log (digest uses the signing hash)
    hash_name = HASH_ALGORITHMS[sig.hash_alg]
    calculated = pcr_composite_digest(replayed, selection[0].pcrs, hash_name)
    if not hmac.compare_digest(calculated, attest.quote.pcr_digest):
        raise PcrMismatchError(
            "PCR digest does not match the measurement log",
            expected=attest.quote.pcr_digest,
            calculated=calculated,
        )
