"""Adaptive verification (BOINC-style adaptive replication) and replica comparison.

The lower or more uncertain a node's trust, the larger the share of its tasks that the
scheduler replicates on an independent high-trust node. ``risk = max(uncertainty,
1 - expected)``; the share rises with ``risk ** 2`` from ``min_share`` (a well-known good
node) to ``max_share`` (a newcomer, whose uncertainty is 1).

When replicas disagree, :func:`decide_replicas` finds the trust-weighted majority; every node
that disagrees with it is the one the evidence goes against. Without a strict trusted
majority nothing is decided (the scheduler adds another replica).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from trust.errors import TrustError
from trust.opinion import Opinion


def verification_share(
    opinion: Opinion, *, min_share: float = 0.2, max_share: float = 1.0
) -> float:
    """Share of this node's tasks to replicate on an independent high-trust node.

    Raises:
        TrustError: shares outside [0, 1] or min_share > max_share.
    """
    if not 0.0 <= min_share <= max_share <= 1.0:
        raise TrustError("need 0 <= min_share <= max_share <= 1")
    risk = min(1.0, max(opinion.uncertainty, 1.0 - opinion.expected))
    return min_share + (max_share - min_share) * risk * risk


def verification_shares(
    expected: npt.NDArray[np.float64],
    uncertainty: npt.NDArray[np.float64],
    *,
    min_share: float = 0.2,
    max_share: float = 1.0,
) -> npt.NDArray[np.float64]:
    """Vectorized :func:`verification_share` over arrays of scores and uncertainties."""
    risk = np.clip(np.maximum(uncertainty, 1.0 - expected), 0.0, 1.0)
    out: npt.NDArray[np.float64] = min_share + (max_share - min_share) * risk * risk
    return out


@dataclass(frozen=True, slots=True)
class ReplicaVerdict:
    """Outcome of comparing replica results: who agrees with the trusted majority, who not."""

    decided: bool
    majority_digest: str | None
    agreeing: tuple[str, ...]
    disagreeing: tuple[str, ...]
    reason: str


def decide_replicas(results: Mapping[str, str], trust: Mapping[str, float]) -> ReplicaVerdict:
    """Compare result digests from replicas of one task, weighting each node by its trust.

    ``results`` maps node id -> result digest; ``trust`` maps node id -> score in [0, 1]
    (missing nodes weigh 0). The majority digest needs strictly more than half the total weight.

    Raises:
        TrustError: fewer than two replicas.
    """
    if len(results) < 2:
        raise TrustError("replica comparison needs at least two results")
    weight: dict[str, float] = {}
    for node, digest in results.items():
        weight[digest] = weight.get(digest, 0.0) + max(0.0, trust.get(node, 0.0))
    total = sum(weight.values())
    if len(weight) == 1:
        digest = next(iter(weight))
        return ReplicaVerdict(True, digest, tuple(sorted(results)), (), "all replicas agree")
    best = max(weight, key=lambda d: weight[d])
    if total <= 0 or weight[best] * 2 <= total:
        return ReplicaVerdict(False, None, (), (), "no trusted majority: add a replica")
    agreeing = tuple(sorted(n for n, d in results.items() if d == best))
    disagreeing = tuple(sorted(n for n, d in results.items() if d != best))
    return ReplicaVerdict(True, best, agreeing, disagreeing, "trusted majority found")
