"""Result types of evidence intake and node registration.

Refusals are results, not exceptions: every refused item is counted under its
:class:`IntakeReason` and never changes a score. A result may carry a
:class:`QuarantineDecision` when the item pushed the node's verified-evidence score across
the quarantine threshold; the scheduler turns it into a quarantine (the same path as an
incident) and then calls :meth:`trust.TrustEngine.quarantine`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

from trust.explain import Signal


class IntakeReason(StrEnum):
    """Why an evidence item was accepted or refused (stable codes)."""

    ACCEPTED = "accepted"
    UNAUTHENTICATED = "unauthenticated"
    UNKNOWN_NODE = "unknown_node"
    UNKNOWN_RATER = "unknown_rater"
    SOURCE_MISMATCH = "source_mismatch"
    FUTURE_TIMESTAMP = "future_timestamp"
    STALE = "stale"
    REPLAYED = "replayed"


@dataclass(frozen=True, slots=True)
class QuarantineDecision:
    """The node's score from verified evidence crossed the quarantine threshold."""

    node_id: str
    at: float
    direct_score: float
    threshold: float
    evidence_id: str
    reason: str


class IntakeResult(NamedTuple):
    """Outcome of :meth:`trust.TrustEngine.ingest` (immutable; a tuple because it is built
    once per evidence item on the hot path)."""

    accepted: bool
    reason: IntakeReason
    evidence_id: str
    node_id: str
    quarantine: QuarantineDecision | None = None


@dataclass(frozen=True, slots=True)
class NodeRegistration:
    """Outcome of :meth:`trust.TrustEngine.register_node` with any Sybil signals raised."""

    node_id: str
    registered_at: float
    signals: tuple[Signal, ...]


@dataclass(frozen=True, slots=True)
class PropagationResult:
    """Outcome of a full recomputation (EigenTrust + credibility + ring detection)."""

    at: float
    nodes: int
    edges: int
    iterations: int
    residual: float
    rings: tuple[tuple[str, ...], ...]
    elapsed_s: float
