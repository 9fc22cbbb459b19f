"""Trust scores with their explanation, and the text rendering operators read.

A :class:`TrustScore` is frozen and complete: the score (expected probability), the opinion,
the hard gates hit (a gated node is not placeable whatever its score), the Sybil/collusion
signals, the evidence items that moved the score most with their contribution, and the
operator's path back. :func:`explain` renders it for ``cntrust trust show --explain``;
``TrustScore.to_dict`` is the JSON shape.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from trust.opinion import Opinion


@dataclass(frozen=True, slots=True)
class Gate:
    """A hard gate: ``code`` is stable (``trust.gate.quarantined``), ``detail`` says why."""

    code: str
    detail: str


@dataclass(frozen=True, slots=True)
class Signal:
    """A Sybil or collusion signal (``trust.signal.sybil_burst``, ``trust.signal.rating_ring``)."""

    code: str
    detail: str


@dataclass(frozen=True, slots=True)
class EvidenceContribution:
    """How much one evidence item moves the score now (decayed; signed)."""

    evidence_id: str
    kind: str
    observed_at: float
    mass: float
    contribution: float


@dataclass(frozen=True, slots=True)
class TrustScore:
    """A node's trust now, with every reason."""

    node_id: str
    at: float
    score: float
    opinion: Opinion
    trusted: bool
    placeable: bool
    verification_share: float
    gates: tuple[Gate, ...]
    signals: tuple[Signal, ...]
    top_evidence: tuple[EvidenceContribution, ...]
    path_back: tuple[str, ...]

    @property
    def score_per_mille(self) -> int:
        """The score as an integer in 0..1000 (Cedar has no floats)."""
        return max(0, min(1000, round(self.score * 1000)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "node_id": self.node_id,
            "at": self.at,
            "score": self.score,
            "score_per_mille": self.score_per_mille,
            "opinion": self.opinion.to_dict(),
            "trusted": self.trusted,
            "placeable": self.placeable,
            "verification_share": self.verification_share,
            "gates": [{"code": g.code, "detail": g.detail} for g in self.gates],
            "signals": [{"code": s.code, "detail": s.detail} for s in self.signals],
            "top_evidence": [
                {
                    "evidence_id": e.evidence_id,
                    "kind": e.kind,
                    "observed_at": e.observed_at,
                    "mass": e.mass,
                    "contribution": e.contribution,
                }
                for e in self.top_evidence
            ],
            "path_back": list(self.path_back),
        }


def verified_tasks_needed(
    positive: float,
    negative: float,
    *,
    prior_weight: float,
    base_rate: float,
    threshold: float,
    max_uncertainty: float,
    mass_per_task: float,
) -> int:
    """Verified successful tasks needed for expected >= threshold and uncertainty <= max."""
    if threshold >= 1.0 or mass_per_task <= 0:
        return 0
    total = positive + negative + prior_weight
    need_score = (threshold * total - positive - prior_weight * base_rate) / (
        mass_per_task * (1.0 - threshold)
    )
    need_u = (prior_weight / max_uncertainty - total) / mass_per_task if max_uncertainty > 0 else 0
    return max(0, math.ceil(max(need_score, need_u) - 1e-9))


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def explain(score: TrustScore) -> str:
    """Render a score and its reasons as plain text for operators and security teams."""
    o = score.opinion
    lines = [
        f"node {score.node_id}: score {score.score:.3f} "
        f"({'trusted' if score.trusted else 'not trusted'}, "
        f"{'placeable' if score.placeable else 'NOT placeable'}) at {_when(score.at)}",
        f"  belief {o.belief:.3f}  disbelief {o.disbelief:.3f}  "
        f"uncertainty {o.uncertainty:.3f}  base rate {o.base_rate:.2f}",
        f"  verification share {score.verification_share:.0%}",
    ]
    if score.gates:
        lines.append("  hard gates (the score cannot outvote these):")
        lines.extend(f"    - {g.code}: {g.detail}" for g in score.gates)
    if score.signals:
        lines.append("  signals:")
        lines.extend(f"    - {s.code}: {s.detail}" for s in score.signals)
    if score.top_evidence:
        lines.append("  evidence that moved the score most:")
        lines.extend(
            f"    {e.contribution:+.3f}  {e.kind}  {e.evidence_id}  ({_when(e.observed_at)})"
            for e in score.top_evidence
        )
    else:
        lines.append("  no evidence yet: a newcomer is uncertain and never trusted")
    if score.path_back:
        lines.append("  path back:")
        lines.extend(f"    - {step}" for step in score.path_back)
    return "\n".join(lines)
