"""The public API of trust is its __all__; this pins it so changes are deliberate."""

from __future__ import annotations

import trust
import trust.simulate

EXPECTED = {
    "DEFAULT_IDS_SEVERITY_WEIGHTS",
    "DEFAULT_WEIGHTS",
    "BurstFlag",
    "BurstTracker",
    "DuplicateNodeError",
    "Edges",
    "EigenTrustResult",
    "EngineConfig",
    "Evidence",
    "EvidenceContribution",
    "EvidenceError",
    "EvidenceKind",
    "FeedbackGraph",
    "Gate",
    "IntakeReason",
    "IntakeResult",
    "NodeRegistration",
    "Opinion",
    "PlacementPolicy",
    "PlacementView",
    "PropagationResult",
    "QuarantineDecision",
    "RatingRing",
    "ReplicaVerdict",
    "ScenarioError",
    "ScoreArrays",
    "Signal",
    "TrustEngine",
    "TrustError",
    "TrustScore",
    "UnknownNodeError",
    "decay_factor",
    "decide_replicas",
    "detect_rating_rings",
    "eigentrust",
    "explain",
    "from_attestation_result",
    "from_capacity_check",
    "from_ear",
    "from_eve_alert",
    "from_ids_alert",
    "from_peer_feedback",
    "from_task_outcome",
    "from_tenant_feedback",
    "identity_revoked",
    "plan_placement",
    "pools",
    "rater_agreement",
    "verification_share",
    "verification_shares",
    "verified_tasks_needed",
}

EXPECTED_SIMULATE = {
    "ALL_STRATEGIES",
    "BEHAVIOURS",
    "TARGETS",
    "Scenario",
    "SimulationReport",
    "StrategyMetrics",
    "bundled_scenarios",
    "gini",
    "load_scenario",
    "parse_scenario",
    "run_strategy",
    "simulate",
}


def test_all_is_pinned() -> None:
    assert set(trust.__all__) == EXPECTED
    assert len(trust.__all__) == len(EXPECTED)


def test_every_exported_name_exists() -> None:
    for name in trust.__all__:
        assert getattr(trust, name) is not None
    for name in trust.simulate.__all__:
        assert getattr(trust.simulate, name) is not None


def test_simulate_all_is_pinned() -> None:
    assert set(trust.simulate.__all__) == EXPECTED_SIMULATE


def test_error_tree() -> None:
    for err in (
        trust.EvidenceError,
        trust.UnknownNodeError,
        trust.DuplicateNodeError,
        trust.ScenarioError,
    ):
        assert issubclass(err, trust.TrustError)


def test_evidence_kinds_are_stable_dotted_ids() -> None:
    assert trust.EvidenceKind.TASK_FAILED.value == "trust.evidence.task_failed"
    for kind in trust.EvidenceKind:
        assert kind.value.startswith("trust.evidence.")
