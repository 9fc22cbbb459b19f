"""Attestation results in the EAR shape (draft-ietf-rats-ear, RFC 9334 "attestation result").

An :class:`AttestationResult` is what the verifier hands the relying party
(the scheduler): an overall ``ear.status`` (the worst tier of its claims),
one :class:`ClaimAppraisal` per appraised trustworthiness claim with its
reasons, issue and expiry times, the verifier id and a result id.

Trust tiers and their EAR values: none 0, affirming 2, warning 32,
contraindicated 96. A result with no appraised claim is contraindicated
(fail closed).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

EAR_PROFILE = "tag:github.com,2023:veraison/ear"
EAR_CLAIMS = (
    "instance-identity",
    "configuration",
    "executables",
    "file-system",
    "hardware",
    "runtime-opaque",
    "storage-opaque",
    "sourced-data",
)


class TrustTier(IntEnum):
    """EAR trust tiers, ordered so that ``max`` is the worst."""

    NONE = 0
    AFFIRMING = 2
    WARNING = 32
    CONTRAINDICATED = 96

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class ClaimAppraisal:
    """The tier of one trustworthiness claim and why."""

    claim: str
    tier: TrustTier
    reasons: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.claim not in EAR_CLAIMS:
            raise ValueError(f"{self.claim!r} is not an EAR trustworthiness claim")


@dataclass(frozen=True)
class AttestationResult:
    """One appraisal of one node's evidence."""

    result_id: str
    node_id: str
    verifier_id: str
    evidence_type: str
    claims: tuple[ClaimAppraisal, ...]
    issued_at: float
    expires_at: float
    reference_values_id: str | None = None
    # the EvidenceVerificationError reason when the evidence itself was refused (bad
    # signature, replayed nonce, ...): no reference values were consulted
    refusal: str | None = None

    @property
    def status(self) -> TrustTier:
        if not self.claims:
            return TrustTier.CONTRAINDICATED
        return max(c.tier for c in self.claims)

    def reasons(self) -> dict[str, tuple[str, ...]]:
        return {c.claim: c.reasons for c in self.claims}

    def permits_work(self, now: float) -> bool:
        """Fresh and not contraindicated (a warning still permits work)."""
        return is_fresh(self, now) and self.status < TrustTier.CONTRAINDICATED

    def to_dict(self) -> dict[str, Any]:
        """EAR claims-set (JSON form); cntrust additions are prefixed ``cntrust.``."""
        submod: dict[str, Any] = {
            "ear.status": self.status.label,
            "ear.trustworthiness-vector": {c.claim: int(c.tier) for c in self.claims},
            "cntrust.reasons": {c.claim: list(c.reasons) for c in self.claims},
            "cntrust.evidence-type": self.evidence_type,
        }
        if self.reference_values_id is not None:
            submod["ear.appraisal-policy-id"] = self.reference_values_id
        return {
            "eat_profile": EAR_PROFILE,
            "iat": int(self.issued_at),
            "exp": int(self.expires_at),
            "jti": self.result_id,
            "ear.verifier-id": {"developer": "cntrust", "build": self.verifier_id},
            "submods": {self.node_id: submod},
        }


def is_fresh(result: AttestationResult, now: float) -> bool:
    """True while ``now`` lies in [issued_at, expires_at)."""
    return result.issued_at <= now < result.expires_at
