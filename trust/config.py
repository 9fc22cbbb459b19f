"""Engine configuration: decay half-life, evidence weights, thresholds.

Weights are signed Beta evidence masses: a positive weight adds to the node's positive count
``r``, a negative one to its negative count ``s`` (Josang & Ismail's Beta reputation system).
One verified successful task is worth 1.0; an unverified success is worth little because a
wrong result passes unnoticed without verification; a wrong result caught by verification is
an integrity failure and weighs enough to cross the quarantine threshold on its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from trust.errors import TrustError
from trust.evidence import EvidenceKind

DEFAULT_WEIGHTS: Mapping[EvidenceKind, float] = MappingProxyType(
    {
        EvidenceKind.ATTESTATION_AFFIRMING: 1.0,
        EvidenceKind.ATTESTATION_WARNING: -2.0,
        EvidenceKind.ATTESTATION_CONTRAINDICATED: -5.0,
        EvidenceKind.ATTESTATION_MISSING: -1.0,
        EvidenceKind.TASK_SUCCEEDED: 0.1,
        EvidenceKind.TASK_VERIFIED: 1.0,
        EvidenceKind.TASK_FAILED: -1.0,
        EvidenceKind.TASK_WRONG_RESULT: -100.0,
        EvidenceKind.TASK_SLA_MISS: -0.3,
        EvidenceKind.TASK_TIMEOUT: -0.5,
        EvidenceKind.INCIDENT: -100.0,
        EvidenceKind.CAPACITY_CONFIRMED: 1.0,
        EvidenceKind.CAPACITY_REFUTED: -50.0,
        EvidenceKind.IDENTITY_REVOKED: -1.0,
    }
)

# EVE severity 1 (high) .. 3 (low) -> negative mass of one IDS alert.
DEFAULT_IDS_SEVERITY_WEIGHTS: Mapping[int, float] = MappingProxyType({1: -10.0, 2: -3.0, 3: -1.0})


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """Every tunable of :class:`trust.TrustEngine`, validated at construction.

    Raises:
        TrustError: a value out of range (the message names it).
    """

    half_life_s: float = 7 * 86400.0
    prior_weight: float = 2.0
    base_rate: float = 0.5
    trust_threshold: float = 0.8
    max_trusted_uncertainty: float = 0.2
    explore_floor: float = 0.4
    quarantine_threshold: float = 0.35
    quarantine_min_negative: float = 5.0
    explore_uncertainty: float = 0.5
    max_clock_skew_s: float = 30.0
    replay_window_s: float = 7 * 86400.0
    attestation_ttl_s: float = 86400.0
    peer_feedback_weight: float = 0.2
    tenant_feedback_weight: float = 0.05
    feedback_cap_ratio: float = 0.1
    pretrusted_prior: float = 10.0
    eigentrust_alpha: float = 0.15
    sybil_window_s: float = 3600.0
    sybil_burst_min: int = 10
    sybil_base_rate_factor: float = 0.5
    min_verification_share: float = 0.2
    max_verification_share: float = 1.0
    explain_top: int = 5
    recent_evidence: int = 16
    weights: Mapping[EvidenceKind, float] = field(default_factory=lambda: DEFAULT_WEIGHTS)
    ids_severity_weights: Mapping[int, float] = field(
        default_factory=lambda: DEFAULT_IDS_SEVERITY_WEIGHTS
    )

    def __post_init__(self) -> None:
        positive = ("half_life_s", "prior_weight", "replay_window_s", "attestation_ttl_s")
        for name in positive:
            if not getattr(self, name) > 0:
                raise TrustError(f"{name} must be > 0")
        unit = (
            "base_rate",
            "trust_threshold",
            "max_trusted_uncertainty",
            "explore_floor",
            "quarantine_threshold",
            "explore_uncertainty",
            "feedback_cap_ratio",
            "eigentrust_alpha",
            "sybil_base_rate_factor",
            "min_verification_share",
            "max_verification_share",
        )
        for name in unit:
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise TrustError(f"{name} must be within [0, 1]")
        if not self.quarantine_threshold < self.explore_floor < self.trust_threshold:
            raise TrustError("need quarantine_threshold < explore_floor < trust_threshold")
        if self.min_verification_share > self.max_verification_share:
            raise TrustError("min_verification_share must be <= max_verification_share")
        if (
            self.quarantine_min_negative < 0
            or self.max_clock_skew_s < 0
            or self.sybil_window_s <= 0
            or self.sybil_burst_min < 2
        ):
            raise TrustError(
                "need quarantine_min_negative >= 0, max_clock_skew_s >= 0, "
                "sybil_window_s > 0, sybil_burst_min >= 2"
            )
        if self.explain_top < 1 or self.recent_evidence < self.explain_top:
            raise TrustError("need 1 <= explain_top <= recent_evidence")
        missing = [k for k in EvidenceKind if k not in self.weights and k not in _UNWEIGHTED]
        if missing:
            raise TrustError(f"weights missing for {', '.join(missing)}")
        if sorted(self.ids_severity_weights) != [1, 2, 3]:
            raise TrustError("ids_severity_weights needs severities 1, 2 and 3")


_UNWEIGHTED = frozenset(
    {EvidenceKind.IDS_ALERT, EvidenceKind.FEEDBACK_PEER, EvidenceKind.FEEDBACK_TENANT}
)
