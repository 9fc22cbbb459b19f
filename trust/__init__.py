"""cntrust trust: how far to trust a node now (evidence -> opinion with uncertainty and reasons).

Evidence (attestation results, task outcomes, IDS alerts and incidents, tenant and peer
feedback, capacity checks, revocations) goes into :class:`TrustEngine`, which keeps a Beta /
subjective-logic opinion per node with exponential decay. Scores come out as frozen
:class:`TrustScore` objects carrying their explanation; :func:`explain` renders one.
Placement helpers (:func:`plan_placement`), adaptive verification
(:func:`verification_share`, :func:`decide_replicas`) and EigenTrust propagation are plain
functions. The attack simulator lives in :mod:`trust.simulate`.

Wiring, as the scheduler does it (every refused item is counted, never raised)::

    >>> import trust
    >>> now = 1_800_000_000.0
    >>> engine = trust.TrustEngine(clock=lambda: now)
    >>> reg = engine.register_node("gpu-1", operator="acme", network="10.1.2.0/24")
    >>> ear = trust.from_attestation_result(
    ...     evidence_id="ear-1", node_id="gpu-1", status="affirming", observed_at=now,
    ...     verifier="verifier")
    >>> engine.ingest(ear, authenticated=True).accepted
    True
    >>> engine.score("gpu-1").trusted        # a newcomer is uncertain, never trusted
    False
    >>> for k in range(10):
    ...     outcome = trust.from_task_outcome(
    ...         evidence_id=f"task-{k}", node_id="gpu-1", outcome="succeeded", verified=True,
    ...         observed_at=now, scheduler="scheduler")
    ...     _ = engine.ingest(outcome, authenticated=True)
    >>> round(engine.score("gpu-1").score, 3), engine.score("gpu-1").trusted
    (0.923, True)
    >>> bad = trust.from_task_outcome(
    ...     evidence_id="task-x", node_id="gpu-1", outcome="wrong_result", verified=True,
    ...     observed_at=now, scheduler="scheduler")
    >>> result = engine.ingest(bad, authenticated=True)
    >>> result.quarantine is not None         # the scheduler quarantines, then tells us
    True
    >>> engine.quarantine("gpu-1")
    >>> [g.code for g in engine.score("gpu-1").gates]
    ['trust.gate.quarantined']
    >>> engine.ingest(bad, authenticated=True).reason.value
    'replayed'
"""

from trust.adapters import from_ear, from_eve_alert
from trust.config import DEFAULT_IDS_SEVERITY_WEIGHTS, DEFAULT_WEIGHTS, EngineConfig
from trust.engine import ScoreArrays, TrustEngine
from trust.errors import (
    DuplicateNodeError,
    EvidenceError,
    ScenarioError,
    TrustError,
    UnknownNodeError,
)
from trust.evidence import (
    Evidence,
    EvidenceKind,
    from_attestation_result,
    from_capacity_check,
    from_ids_alert,
    from_peer_feedback,
    from_task_outcome,
    from_tenant_feedback,
    identity_revoked,
)
from trust.explain import (
    EvidenceContribution,
    Gate,
    Signal,
    TrustScore,
    explain,
    verified_tasks_needed,
)
from trust.intake import (
    IntakeReason,
    IntakeResult,
    NodeRegistration,
    PropagationResult,
    QuarantineDecision,
)
from trust.opinion import Opinion, decay_factor
from trust.placement import PlacementPolicy, PlacementView, plan_placement, pools
from trust.propagation import (
    Edges,
    EigenTrustResult,
    FeedbackGraph,
    RatingRing,
    detect_rating_rings,
    eigentrust,
    rater_agreement,
)
from trust.sybil import BurstFlag, BurstTracker
from trust.verification import (
    ReplicaVerdict,
    decide_replicas,
    verification_share,
    verification_shares,
)

__all__ = [
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
]
