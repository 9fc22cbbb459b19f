"""Placement stages of the trust layer: a filter for hard gates and quarantine, a ranker by
trust score with exploration for nodes still being learned.

Both ask :meth:`scheduler.trust_wiring.TrustLayer.view` (one engine read per node and second)
and never touch the engine themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from scheduler.placement import NodeView, TaskRequest

if TYPE_CHECKING:
    from scheduler.trust_wiring import TrustLayer


@dataclass(frozen=True)
class NodeTrustView:
    """What placement needs of one node's trust, computed once per node and second."""

    at: float
    score: float
    uncertainty: float
    exclusion: str | None
    exploring: bool
    trusted: bool = False  # score and certainty above the engine's trust thresholds


class TrustFilter:
    """Excludes nodes behind a hard gate or in trust quarantine, with the engine's reason."""

    name = "trust"

    def __init__(self, layer: TrustLayer) -> None:
        self.layer = layer

    def __call__(self, task: TaskRequest, node: NodeView) -> str | None:
        return self.layer.view(node).exclusion


class TrustRanker:
    """Adds ``trust_weight`` x the node's score in [0, 1] to the load ranker's score, and on
    exploration tasks ``exploration_bonus`` x uncertainty for nodes still being learned (not
    trusted, score above the explore floor or uncertainty high): a newcomer (uncertainty 1)
    outranks a node the engine knows well."""

    name = "trust"

    def __init__(self, layer: TrustLayer) -> None:
        self.layer = layer

    def __call__(self, task: TaskRequest, node: NodeView) -> float:
        view = self.layer.view(node)
        score = self.layer.trust_weight * view.score
        if view.exploring and self.layer.exploration_task(task.id):
            # the less known the node, the larger its share of the probes
            score += self.layer.exploration_bonus * view.uncertainty
        return score
