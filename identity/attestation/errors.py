"""Errors raised by `identity.attestation`.

Tree (the roots live in :mod:`identity.errors`)::

    IdentityError
    ├── AttestationError                    misuse or environment failure, not a refusal
    │   ├── ReferenceValueError             a reference-value set is malformed or misused
    │   └── TpmToolError                    a tpm2-tools command failed on the node
    └── VerificationError                   (identity.errors) carries a stable ``reason``
        └── EvidenceVerificationError       evidence or endorsement was refused
            ├── TpmStructureError           malformed TPM structure; ``structure``, ``offset``
            ├── QuoteVerificationError      a TPM quote was refused
            │   └── PcrMismatchError        PCR digest differs from the replayed log
            ├── NonceVerificationError      unknown, replayed, expired or misbound nonce
            ├── EatVerificationError        an EAT (RFC 9711) was refused
            ├── CredentialVerificationError EK/AK checks or credential activation failed
            └── ReferenceValueSignatureError a signed reference-value set was refused
"""

from __future__ import annotations

from identity.errors import IdentityError, VerificationError


class AttestationError(IdentityError):
    """Root of the attestation errors that are not refusals of evidence."""


class ReferenceValueError(AttestationError):
    """A reference-value set is malformed, or the store was used wrongly."""


class TpmToolError(AttestationError):
    """A tpm2-tools command failed; carries the command, its exit code and stderr."""

    def __init__(self, message: str, *, command: str, returncode: int, stderr: str) -> None:
        super().__init__(message)
        self.command = command
        self.returncode = returncode
        self.stderr = stderr


class EvidenceVerificationError(VerificationError):
    """Attestation evidence (or an endorsement of it) was refused."""


class TpmStructureError(EvidenceVerificationError):
    """A TPM 2.0 structure is malformed; ``offset`` is where parsing stopped."""

    def __init__(self, message: str, *, structure: str, offset: int) -> None:
        super().__init__(f"{structure} at offset {offset}: {message}", reason="malformed")
        self.structure = structure
        self.offset = offset


class QuoteVerificationError(EvidenceVerificationError):
    """A TPM quote was refused (reasons: magic, type, signer, signature, nonce, ...)."""


class PcrMismatchError(QuoteVerificationError):
    """The quoted PCR digest differs from the digest of the replayed measurement log."""

    def __init__(self, message: str, *, expected: bytes, calculated: bytes) -> None:
        super().__init__(message, reason="pcr_digest")
        self.expected = expected
        self.calculated = calculated


class NonceVerificationError(EvidenceVerificationError):
    """A nonce is unknown, replayed, expired, or was issued for another node."""


class EatVerificationError(EvidenceVerificationError):
    """An Entity Attestation Token was refused."""


class CredentialVerificationError(EvidenceVerificationError):
    """An EK, EK certificate, AK or credential activation failed its check."""


class ReferenceValueSignatureError(EvidenceVerificationError):
    """A signed reference-value set has a bad signature or an untrusted signer."""
